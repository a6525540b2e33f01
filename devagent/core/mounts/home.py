"""The environment's home that outlives its container, and the read-only root file system around it. Pure.

What a container of environment NAME gets besides its workspace (docs/explanation/home-and-root.md says why):

- **the home**, a named Docker volume ``devagent-home-NAME`` at the login user's home: made (and seeded with the
  image's own home, by Docker's copy-up into an empty volume) by the first ``up``, mounted again by every later
  container of NAME — ``--recreate`` and restarts keep it — and removed by ``down`` unless ``--keep-home``. A
  named volume rather than a folder beside devagent's files, because it is the one storage that works the same on
  this machine's engine and on a server's engine reached over ssh: the engine makes it, seeds it with the right
  owner and reports its size, and no path on the engine's machine needs to exist or be writable by anyone;
- **/tmp and /var/tmp**, each an anonymous volume of the container: on disk (a tmpfs would count against
  ``--memory``), kept across restarts, gone with the container (``--recreate`` starts them empty);
- **/etc/devagent**, an anonymous volume too, seeded from the image (the sshd configurations) and filled by
  ``up`` with the host key and the keys of who may log in before the container starts: Docker refuses to copy
  files into a read-only root file system, but not into a volume. Everything in it belongs to root except the
  host key, which rootless sshd needs owned by the login user (0600), as before;
- **/run/lock** (and /var/lock, its link), a small tmpfs, the one place of the root file system a user could
  write before that programs expect to be writable (lock files).

Everything else of the root file system is read-only (CIS Docker Benchmark 5.13).

>>> home_volume("pytorch-dev")
'devagent-home-pytorch-dev'
>>> [m.target for m in mount_plan("pytorch-dev", home="/home/dev", up_id="ab12")]
['/home/dev', '/tmp', '/var/tmp', '/etc/devagent', '/run/lock']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devagent.core import layout
from devagent.core.spec import LABEL_PREFIX

HOME_VOLUME_PREFIX = "devagent-home-"
HOME_LABEL = f"{LABEL_PREFIX}home"  # on the home volume: "true"
# The up that made the home volume: a failed first `up` removes the volume it made, and only that one.
HOME_UP_LABEL = f"{LABEL_PREFIX}home-up-id"
# Small: lock files only. A tmpfs is memory, so it counts against --memory.
RUN_LOCK_BYTES = 1 << 20
# The container's command starts with this check, in sh (any image has it; the agent of an older team image does
# not know the check): the home must be the login user's, or nobody could write it. Exit HOME_NOT_YOURS_EXIT says
# so to `up`, which turns it into an error that names the fix. It also takes away the flag by which up's last login
# tells the agent that up has committed (layout.READY_FLAG): the home now outlives the container, and a new
# container's agent must wait for its own up, not believe an old one's.
HOME_NOT_YOURS_EXIT = 78  # EX_CONFIG
HOME_CHECK = (
    '[ -O "$HOME" ] && [ -w "$HOME" ] || { echo "devagent: the home $HOME belongs to uid '
    '$(stat -c %u "$HOME"), not to $(id -un) (uid $(id -u))" >&2; exit ' + str(HOME_NOT_YOURS_EXIT) + "; }; "
    f'rm -f "$HOME/{layout.READY_FLAG}"; exec "$@"')
# The same check, and sshd started by the shell before the agent ($1: its configuration), its pid handed to the
# agent in layout.SSHD_PID_ENV: the agent's Python start and imports (40 ms on a calm machine, 140 ms on a busy one) no
# longer stand between the container's start and sshd's banner, which every `up` waits for. Not as root (root owns
# /, and the agent refuses root), nor with a session environment (its `-o SetEnv` is the agent's to compute): the
# agent then starts sshd itself, as it always did. Only for the images this devagent derived, whose agent adopts
# the pid (an older team image's agent would start a second sshd on the same port).
SSHD_FIRST = HOME_CHECK.replace(
    'exec "$@"',
    f'if [ ! -O / ] && [ ! -e {layout.SESSION_ENV_PATH} ]; then {layout.SSHD} -D -e -f "$1" & '
    f'{layout.SSHD_PID_ENV}=$!; export {layout.SSHD_PID_ENV}; fi; shift; exec "$@"')
# The home's size as the login user sees it, without what is mounted below it (the workspace): the engine's own
# figure (`docker system df -v`) walks every volume on the engine, which on a server full of datasets takes long.
DU_HOME = ('set -- $(awk -v h="$HOME/" \'index($5, h) == 1 {print "--exclude=" $5}\' /proc/self/mountinfo); '
           'du -sk "$@" "$HOME"')
# Paths inside the container, on a volume of their own each (not this machine's temporary folders).
TEMP_FOLDERS = ("/tmp", "/var/tmp")  # noqa: S108


@dataclass(frozen=True)
class Mount:
    """One mount of the plan. VOLUME None: an anonymous volume (removed with its container); TMPFS_BYTES > 0: a
    tmpfs of that size instead of a volume."""

    target: str
    volume: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    tmpfs_bytes: int = 0


def home_volume(name: str) -> str:
    """The name of environment NAME's home volume (NAME is a valid environment name, so a valid volume name)."""
    return f"{HOME_VOLUME_PREFIX}{name}"


def home_labels(name: str, *, up_id: str) -> dict[str, str]:
    """The labels the home volume is made with (Docker applies them only when it makes the volume).

    >>> home_labels("x", up_id="ab")["devagent.name"]
    'x'
    """
    return {f"{LABEL_PREFIX}managed": "true", f"{LABEL_PREFIX}name": name, HOME_LABEL: "true", HOME_UP_LABEL: up_id}


def mount_plan(name: str, *, home: str, up_id: str) -> list[Mount]:
    """What a container of NAME mounts besides its workspace, HOME being the login user's home."""
    return [
        Mount(home, home_volume(name), home_labels(name, up_id=up_id)),
        *(Mount(folder) for folder in TEMP_FOLDERS),
        Mount(layout.CONFIG_DIR),
        Mount("/run/lock", tmpfs_bytes=RUN_LOCK_BYTES),
    ]


def container_command(argv: list[str], *, sshd_first: str | None = None) -> list[str]:
    """ARGV (the agent's command) behind HOME_CHECK; with SSHD_FIRST (sshd's configuration) behind SSHD_FIRST.

    >>> container_command(["devagent", "agent"])[-2:]
    ['devagent', 'agent']
    >>> container_command(["devagent", "agent"], sshd_first="/c")[3:]
    ['devagent-home-check', '/c', 'devagent', 'agent']
    """
    if sshd_first is None:
        return ["sh", "-c", HOME_CHECK, "devagent-home-check", *argv]
    return ["sh", "-c", SSHD_FIRST, "devagent-home-check", sshd_first, *argv]


def is_ours(labels: Mapping[str, str] | None, name: str) -> bool:
    """Whether a volume with LABELS is the home devagent made for NAME (never touch one it did not make).

    >>> is_ours(home_labels("x", up_id="1"), "x"), is_ours({}, "x"), is_ours(None, "x")
    (True, False, False)
    """
    return labels is not None and labels.get(HOME_LABEL) == "true" and labels.get(f"{LABEL_PREFIX}name") == name


def describe_size(size: int | None) -> str:
    """A volume's size for people: bytes in the largest unit that keeps it over 1; None when the engine did not say.

    >>> describe_size(0), describe_size(1536), describe_size(3 * 1024 ** 3), describe_size(None)
    ('0 B', '1.5 KiB', '3.0 GiB', 'size unknown')
    """
    if size is None or size < 0:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def du_bytes(output: str) -> int | None:
    """The bytes in DU_HOME's output (`du -sk`: KiB, then the path); None when it printed no number.

    >>> du_bytes("1204 /home/dev"), du_bytes("du: cannot read")
    (1232896, None)
    """
    words = output.split()
    return int(words[0]) * 1024 if words and words[0].isdigit() else None
