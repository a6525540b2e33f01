"""What an environment is, as plain data, and the validation of everything a user types for it.

Pure: no I/O, no clock, no environment read. Every rejection is a DevagentError(status=USAGE) that names the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus

# The one definition of a valid environment name and login user (core/ssh/host_entry.py checks ssh entries with them).
# Always used with fullmatch: `$` would also accept a trailing newline, which would start a new ssh config line.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
NAME_RULE = "use 1-63 characters: lowercase letters, digits, '_', '.', '-', starting with a letter or digit"
# The portable POSIX user name of shadow's useradd (NAME_REGEX [a-z_][a-z0-9_-]*, at most 32 characters). Debian's
# and Ubuntu's useradd accept more (a '.', say), but this is the rule devagent has always given users; the image's
# useradd accepts every name it allows.
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
GPU_UUID_RE = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]{8,}$")
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)

DEFAULT_CPUS = 8
DEFAULT_BASE_IMAGE = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
OFFLINE_BASE_IMAGE = "devagent-base:bookworm"
SSHD_PORT = 2222  # inside the container: sshd runs as the login user, so the port must be >= 1024
LABEL_PREFIX = "devagent."


def validate_name(name: str) -> str:
    """Return NAME if it is a valid environment name (it becomes a container name and an ssh alias).

    >>> validate_name("pytorch-dev")
    'pytorch-dev'
    """
    if not NAME_RE.fullmatch(name):
        raise DevagentError(f"invalid environment name {name!r}", hint=NAME_RULE, status=ExitStatus.USAGE)
    return name


# Names every Debian, Ubuntu and Red Hat /etc/hosts gives the machine itself.
LOOPBACK_NAMES = frozenset({"localhost", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback"})
# One part of an IPv4 address as inet_aton (and so ssh, through getaddrinfo) reads it: decimal, octal or hex.
# Out-of-range values and bad octal digits are counted too: refusing a few names no resolver takes costs nothing.
_ADDRESS_PART = re.compile(r"0x[0-9a-f]*|[0-9]+")
# The last label of a DNS name: a top-level domain is letters (or an IDN's xn--… form), never digits alone.
_TOP_LEVEL = re.compile(r"[a-z]{2,}|xn--[a-z0-9-]+")


def host_name_kind(name: str) -> str | None:
    """What NAME already means to ssh on its own, if it means a host; None for a name that is free.

    An environment's ssh alias is its name, and devagent's Include line comes first in the user's ssh config, so
    an environment named like a real host would take `ssh HOST` (and git, rsync, scp to it) over.

    >>> host_name_kind("github.com"), host_name_kind("10.1.2.3"), host_name_kind("2130706433")
    ('a DNS name', 'an IPv4 address', 'an IPv4 address')
    >>> host_name_kind("localhost"), host_name_kind("exp_01.v2"), host_name_kind("pytorch-dev")
    ('this machine (localhost)', None, None)
    """
    labels = name.split(".")
    if name in LOOPBACK_NAMES:
        return f"this machine ({name})"
    if len(labels) <= 4 and all(_ADDRESS_PART.fullmatch(label) for label in labels):
        return "an IPv4 address"
    if name.endswith("."):
        return "a fully qualified DNS name"
    if len(labels) > 1 and _TOP_LEVEL.fullmatch(labels[-1]):
        return "a DNS name"
    return None


def suggest_name(name: str) -> str:
    """A name like NAME that means no host to ssh.

    >>> suggest_name("github.com"), suggest_name("10.1.2.3"), suggest_name("localhost"), suggest_name("42")
    ('github-com', '10-1-2-3', 'localhost-dev', '42-dev')
    """
    candidate = name.rstrip(".").replace(".", "-")
    if host_name_kind(candidate) is None and NAME_RE.fullmatch(candidate):
        return candidate
    return f"{candidate[:59]}-dev"


def validate_new_name(name: str) -> str:
    """Return NAME if an environment may be made with it: a valid name (see validate_name) that does not already
    mean a host to ssh (see host_name_kind). Environments made before keep working under their names.

    >>> validate_new_name("github.com")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: environment name 'github.com' is a DNS name: its ssh alias would take \
`ssh github.com` over
      hint: pick a name ssh does not read as a host, e.g. github-com
    """
    kind = host_name_kind(validate_name(name))
    if kind is not None:
        raise DevagentError(f"environment name {name!r} is {kind}: its ssh alias would take `ssh {name}` over",
                            hint=f"pick a name ssh does not read as a host, e.g. {suggest_name(name)}",
                            status=ExitStatus.USAGE)
    return name


def validate_user(user: str) -> str:
    if not USER_RE.fullmatch(user) or user == "root":
        raise DevagentError(
            f"invalid login user {user!r}",
            hint="use a lowercase POSIX user name other than root, e.g. --user dev",
            status=ExitStatus.USAGE,
        )
    return user


# The smallest sizes `up` accepts: the Docker Engine refuses a memory limit under 6 MiB (only when it creates the
# container, after the image was built); a /dev/shm under 1 MiB holds no batch a DataLoader worker hands over.
MIN_MEMORY = 6 * 1024**2
MIN_SHM_SIZE = 1024**2


def parse_size(text: str, *, option: str, minimum: int = 1) -> int:
    """Parse a Docker-style size ('32g', '512m', '1024b') into bytes. The unit is required: a bare number is bytes
    to Docker, and ``memory = 2`` meant 2 gigabytes to no one. Below MINIMUM is refused with the smallest size.

    >>> parse_size("8g", option="--shm-size")
    8589934592
    >>> parse_size("2", option="--memory")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: --memory: size '2' has no unit (to Docker, a bare number is bytes)
      hint: write the unit b, k, m or g after the number, e.g. --memory 2g
    """
    m = SIZE_RE.fullmatch(text.strip())
    if not m:
        raise DevagentError(
            f"{option}: cannot read size {text!r}",
            hint=f"write a number and a unit b, k, m or g, e.g. {option} 8g",
            status=ExitStatus.USAGE,
        )
    number, unit = float(m.group(1)), m.group(2).lower()
    if not unit and number > 0:
        raise DevagentError(f"{option}: size {text!r} has no unit (to Docker, a bare number is bytes)",
                            hint=f"write the unit b, k, m or g after the number, e.g. {option} {m.group(1)}g",
                            status=ExitStatus.USAGE)
    factor = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    value = int(number * factor)
    if value <= 0:
        raise DevagentError(f"{option}: size must be positive, not {text!r}", hint=f"e.g. {option} 8g",
                            status=ExitStatus.USAGE)
    if value < minimum:
        raise DevagentError(f"{option}: size {text!r} is below the minimum, {format_size(minimum)}",
                            hint=f"e.g. {option} 8g", status=ExitStatus.USAGE)
    return value


def format_size(n: int) -> str:
    """Render bytes the way Docker users write them.

    >>> format_size(8589934592), format_size(1536 * 1024**2)
    ('8g', '1536m')
    """
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}b"


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DevagentError(f"--cpus: {text!r} is not a positive number", hint="e.g. --cpus 8 or --cpus 0.5",
                            status=ExitStatus.USAGE)
    return value


def parse_pids(text: str) -> int:
    if not text.isdigit() or int(text) < 64:
        raise DevagentError(f"--pids: {text!r} is not a whole number of at least 64",
                            hint="DataLoader workers need room: e.g. --pids 4096", status=ExitStatus.USAGE)
    return int(text)


@dataclass(frozen=True)
class GpuRequest:
    """Which GPUs an environment gets: none, all, a list of indexes or UUIDs (never mixed), or any COUNT free ones
    (the host side picks them and records them by UUID)."""

    mode: str  # "none" | "all" | "list" | "any"
    devices: tuple[str, ...] = ()
    count: int = 0  # mode "any"

    def describe(self) -> str:
        if self.mode == "any":
            return f"any:{self.count}"
        return {"none": "none", "all": "all"}.get(self.mode, ",".join(self.devices))


GPUS_HINT = "use none, all, any:N (N free GPUs), indexes like 0,1 or UUIDs from `devagent gpus` like GPU-5c3f…"


def parse_gpus(text: str) -> GpuRequest:
    """Parse --gpus: 'none', 'all', 'any:N', '0,1' or 'GPU-<uuid>,...'.

    >>> parse_gpus("0,1"), parse_gpus("any:2")
    (GpuRequest(mode='list', devices=('0', '1'), count=0), GpuRequest(mode='any', devices=(), count=2))
    """
    value = text.strip()
    if value.lower() in ("", "none"):
        return GpuRequest("none")
    if value.lower() == "all":
        return GpuRequest("all")
    hint = GPUS_HINT
    if value.lower().startswith("any"):
        count = value[4:].strip()  # exactly one colon: "any::2" is a typo, not a count
        if value[3:4] != ":" or not count.isdigit() or not 1 <= int(count) <= 64:
            raise DevagentError(f"--gpus: {text!r} is not any:N with N a number of GPUs from 1 to 64",
                                hint=hint, status=ExitStatus.USAGE)
        return GpuRequest("any", count=int(count))
    items = tuple(item.strip() for item in value.split(","))
    if any(not item for item in items):
        raise DevagentError(f"--gpus: empty item in {text!r}", hint=hint, status=ExitStatus.USAGE)
    is_index = [item.isdigit() for item in items]
    is_uuid = [bool(GPU_UUID_RE.fullmatch(item)) for item in items]
    if not (all(is_index) or all(is_uuid)):
        bad = [item for item, a, b in zip(items, is_index, is_uuid, strict=True) if not (a or b)]
        problem = f"not a GPU index or UUID: {', '.join(bad)}" if bad else "indexes and UUIDs mixed"
        raise DevagentError(f"--gpus: {problem}", hint=hint, status=ExitStatus.USAGE)
    if len(set(items)) != len(items):
        raise DevagentError(f"--gpus: a GPU is listed twice in {text!r}", hint=hint, status=ExitStatus.USAGE)
    return GpuRequest("list", items)


@dataclass(frozen=True)
class Limits:
    """Resource limits. Defaults suit PyTorch DataLoader workers (shared memory, many processes)."""

    memory: int = 16 * 1024**3
    cpus: float | None = None  # None: min(8, the engine's CPUs), resolved by the host side
    shm_size: int = 2 * 1024**3
    pids: int = 4096

    def describe(self) -> str:
        cpus = "all" if self.cpus is None else f"{self.cpus:g}"
        return f"memory {format_size(self.memory)} · {cpus} cpus · shm {format_size(self.shm_size)} · pids {self.pids}"


@dataclass(frozen=True)
class AgentOptions:
    """How the agent inside keeps the notebook: where it is, which files count as training scripts, how saves
    are detected (polling for network mounts where inotify does not fire)."""

    notebook: str | None = None  # relative to the workspace; default lab-notebook.md
    watch: tuple[str, ...] = ()  # globs; default **/*.py
    polling: bool = False

    def command(self, *, sshd_config: str, inside_workspace: str) -> list[str]:
        """The container's main command.

        >>> AgentOptions(watch=("src/**/*.py",), polling=True).command(sshd_config="/c", inside_workspace="/w")
        ['devagent', 'agent', '--sshd-config', '/c', '--watch', 'src/**/*.py', '--polling']
        """
        argv = ["devagent", "agent", "--sshd-config", sshd_config]
        if self.notebook:
            argv += ["--notebook", f"{inside_workspace}/{self.notebook}"]
        for glob in self.watch:
            argv += ["--watch", glob]
        if self.polling:
            argv.append("--polling")
        return argv


def validate_notebook_path(path: str) -> str:
    """A notebook path must stay inside the workspace."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise DevagentError(f"--notebook {path!r} must be a path inside the workspace",
                            hint="e.g. --notebook notes/lab-notebook.md", status=ExitStatus.USAGE)
    return path


@dataclass(frozen=True)
class EnvSpec:
    """Everything `devagent up` needs to know about one environment."""

    name: str
    base_image: str
    workspace: str  # absolute host path
    user: str = "dev"
    uid: int = 1000
    gpus: GpuRequest = field(default_factory=lambda: GpuRequest("none"))
    limits: Limits = field(default_factory=Limits)
    sshd_profile: str = "strict"  # "strict" | "compat"
    share_gpus: bool = False  # take GPUs others hold too, knowingly (the notebook header says so)
    agent: AgentOptions = field(default_factory=AgentOptions)
    image: str | None = None  # a derived image from a registry (`up --image`): started as it is, never built
    idle_release: float | None = None  # seconds: the GPUs go back after so long idle (core/gpu/idle_rule.py)
    # A devcontainer.json's containerEnv (the container's environment and its ssh sessions') and remoteEnv (the
    # sessions' only; None unsets): checked by core/devcontainer/config_file.py, applied by the agent
    # (core/ssh/sshd.py).
    container_env: tuple[tuple[str, str], ...] = ()
    remote_env: tuple[tuple[str, str | None], ...] = ()
    forward_ports: tuple[int, ...] = ()  # a devcontainer.json's forwardPorts: what `devagent forward NAME` takes

    def idle_release_args(self) -> list[str]:
        """The agent's option for the idle limit (appended to its command).

        >>> EnvSpec("exp", "debian:12", "/w", idle_release=1800.0).idle_release_args()
        ['--idle-release', '1800']
        """
        return [] if self.idle_release is None else ["--idle-release", f"{self.idle_release:g}"]

    def up_args(self) -> tuple[str, ...]:
        """The options of `devagent up` that give an environment these GPUs, limits and login user.

        >>> EnvSpec("exp", "debian:12", "/w", limits=Limits(cpus=2.0)).up_args()
        ('--gpus', 'none', '--memory', '16g', '--cpus', '2', '--shm-size', '2g', '--pids', '4096', '--user', 'dev')
        """
        limits = self.limits
        cpus = ("--cpus", f"{limits.cpus:g}") if limits.cpus is not None else ()
        return ("--gpus", self.gpus.describe(), "--memory", format_size(limits.memory), *cpus,
                "--shm-size", format_size(limits.shm_size), "--pids", str(limits.pids), "--user", self.user)

    @property
    def home(self) -> str:
        return layout.login_home(self.user)

    @property
    def inside_workspace(self) -> str:
        """Where the workspace is mounted in the container."""
        return inside_workspace(self.user)

    def labels(self, *, version: str, image: str) -> dict[str, str]:
        """The labels every Docker object of this environment carries; Docker is the source of truth."""
        return {
            f"{LABEL_PREFIX}managed": "true",
            f"{LABEL_PREFIX}name": self.name,
            f"{LABEL_PREFIX}user": self.user,
            f"{LABEL_PREFIX}workspace": self.workspace,
            f"{LABEL_PREFIX}gpus": self.gpus.describe(),
            f"{LABEL_PREFIX}share-gpus": "true" if self.share_gpus else "false",
            f"{LABEL_PREFIX}base-image": self.base_image,
            f"{LABEL_PREFIX}image": image,
            f"{LABEL_PREFIX}sshd-profile": self.sshd_profile,
            f"{LABEL_PREFIX}version": version,
        }


def inside_workspace(user: str) -> str:
    """Where the workspace is mounted in a container whose login user is USER.

    >>> inside_workspace("dev")
    '/home/dev/workspace'
    """
    return f"{layout.login_home(user)}/{layout.HOME_WORKSPACE}"
