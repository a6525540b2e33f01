"""`devagent doctor` as plain data: checks, their text and JSON forms, and the container-side probe.

Pure: no I/O, no clock, no environment read. The host side (control/features/doctor_report.py) gathers facts, runs the
probe over the ssh alias and hands the answers to the functions here, which turn them into checks that each name a fix.

    >>> checks = [Check("tar", True, "tar (GNU tar) 1.34"), Check("bash", False, "no bash", fix="install bash")]
    >>> print("\\n".join(render(checks)))
    ✔ tar — tar (GNU tar) 1.34
    ✘ bash — no bash
      fix: install bash
    >>> passed(checks)
    False
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from devagent.core import health, layout
from devagent.core.vscode import jsonc_to_json

JSON_VERSION = 1
MIN_GLIBC = (2, 28)  # VS Code's server (and its node) needs glibc 2.28 or newer
MIN_FREE_KB = 1024 * 1024  # 1 GiB: VS Code's server alone takes a few hundred MB
PROBE_MARKER = "devagent_probe=1"


@dataclass(frozen=True)
class Check:
    """One item of the doctor's report. `ok` is None when the check was skipped or does not apply; `detail`
    then says why. A failed check carries the fix, as something to type or do."""

    name: str
    ok: bool | None
    detail: str
    fix: str | None = None
    # A warning: ok is None (not failed, the doctor still exits 0), but it is likely to bite; fix says how.
    warning: bool = field(default=False, repr=False)


def skipped(name: str, why: str) -> Check:
    return Check(name, None, why)


def warning(name: str, detail: str, fix: str) -> Check:
    return Check(name, None, detail, fix=fix, warning=True)


def passed(checks: Sequence[Check]) -> bool:
    """True when no check failed (skipped ones count as passed): the doctor then exits 0."""
    return not any(c.ok is False for c in checks)


def render(checks: Sequence[Check]) -> list[str]:
    """The report as text lines: `✔ name — detail`, `✘ name — detail` + `  fix: …`, `! name — detail` + `  fix: …`
    (a warning), `– name — skipped: why`."""
    lines: list[str] = []
    for c in checks:
        if c.warning:
            lines.extend((f"! {c.name} — {c.detail}", f"  fix: {c.fix}"))
            continue
        if c.ok is None:
            lines.append(f"– {c.name} — skipped: {c.detail}")
            continue
        lines.append(f"{'✔' if c.ok else '✘'} {c.name} — {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"  fix: {c.fix}")
    return lines


def summary(checks: Sequence[Check]) -> str:
    """One closing line.

    >>> summary([Check("a", True, ""), Check("b", None, ""), Check("c", False, "")])
    '1 of 3 checks failed, 1 skipped'
    >>> summary([Check("a", True, ""), warning("b", "", "do this")])
    'all 1 checks passed, 1 warning'
    """
    failed = sum(c.ok is False for c in checks)
    warned = sum(c.warning for c in checks)
    skips = sum(c.ok is None and not c.warning for c in checks)
    tail = (f", {skips} skipped" if skips else "") + (f", {warned} warning{'s' * (warned != 1)}" if warned else "")
    if failed:
        return f"{failed} of {len(checks)} checks failed{tail}"
    return f"all {len(checks) - skips - warned} checks passed{tail}"


def envelope(checks: Sequence[Check]) -> dict[str, object]:
    """The `--json` envelope; `version` changes only when a key changes meaning or goes away."""
    # "warning" is there only on a warning (ok is null there): the keys of every other item stay as they were.
    return {"version": JSON_VERSION, "ok": passed(checks),
            "checks": [{k: v for k, v in asdict(c).items() if k != "warning" or v} for c in checks]}


# -- small judgements -------------------------------------------------------------------------------------------


def glibc_version(text: str) -> tuple[int, int] | None:
    """The glibc version in `getconf GNU_LIBC_VERSION` or `ldd --version`'s first line; None for another libc.

    >>> glibc_version("glibc 2.36"), glibc_version("ldd (Debian GLIBC 2.36-9+deb12u4) 2.36")
    ((2, 36), (2, 36))
    >>> glibc_version("ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27"), glibc_version("musl libc (x86_64)")
    ((2, 27), None)
    """
    if not re.search(r"glibc|gnu libc", text, re.IGNORECASE):
        return None
    m = re.search(r"(\d+)\.(\d+)\s*$", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def df_available_kb(line: str) -> int | None:
    """The Available column (KiB) of a `df -Pk` data line.

    >>> df_available_kb("overlay 264212084 26384028 80006884 25% /")
    80006884
    """
    fields = line.split()
    return int(fields[3]) if len(fields) >= 6 and fields[3].isdigit() else None


def gib(kb: int) -> str:
    return f"{kb / (1024 * 1024):.1f} GiB"


def mode_problem(mode: int, *, forbidden: int) -> bool:
    """Whether permission bits MODE include any of FORBIDDEN (e.g. 0o077: anything for group or others)."""
    return bool(mode & forbidden)


def strip_jsonc(text: str) -> str:
    """JSON with comments (VS Code's settings.json) as plain JSON: comments outside strings and trailing commas
    blanked out (one implementation for devagent: ``core/vscode.py``'s, which tasks.json uses too).

    >>> import json; json.loads(strip_jsonc('{"a": "http://x", // note\\n "b": [1, 2,], /* c */}'))
    {'a': 'http://x', 'b': [1, 2]}
    """
    return jsonc_to_json(text)


def vscode_config_file_check(*, label: str, settings_file: str, settings: object, user_config: str,
                             default_config: str, home: str) -> Check:
    """Judge one VS Code settings.json (already parsed): does Remote-SSH read the ssh config devagent writes to?

    Remote-SSH reads `remote.SSH.configFile`, else DEFAULT_CONFIG (~/.ssh/config); `~` there means HOME.
    """
    name = f"{label} remote.SSH.configFile"
    if not isinstance(settings, dict):
        return skipped(name, f"{settings_file} does not hold a JSON object")
    value = settings.get("remote.SSH.configFile")
    set_it = f'set "remote.SSH.configFile": "{user_config}" in {settings_file}'
    if value is None or value == "":
        if user_config == default_config:
            return Check(name, True, f"not set: Remote-SSH reads {default_config}, which includes devagent's config")
        return Check(name, False, f"not set, so Remote-SSH reads {default_config}, but devagent's Include is in "
                     f"{user_config} (DEVAGENT_SSH_CONFIG)", fix=set_it)
    if not isinstance(value, str):
        return Check(name, False, f"remote.SSH.configFile in {settings_file} is not a path: {value!r}", fix=set_it)
    resolved = home + value[1:] if value == "~" or value.startswith("~/") else value
    if _normpath(resolved) == _normpath(user_config):
        return Check(name, True, f"{value}, which includes devagent's config")
    fix = set_it + (" (or delete the setting)" if user_config == default_config else "")
    return Check(name, False, f"{value} in {settings_file}, so Remote-SSH does not read {user_config}, where "
                 "devagent's Include is", fix=fix)


def _normpath(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts:
            parts.pop()
        elif part != "..":
            parts.append(part)
    return "/" + "/".join(parts)


# -- the container-side probe -----------------------------------------------------------------------------------

# POSIX sh, fed to `ssh NAME sh -s` on stdin; prints one key=value line per fact, after PROBE_MARKER (anything a
# shell prints before it is noise). It changes nothing it does not remove again.
PROBE_SCRIPT = r"""
echo PROBE_MARKER
echo "uid=$(id -u)"
echo "user=$(id -un)"
echo "home=$HOME"
echo "bash=$(command -v bash || true)"
if command -v tar >/dev/null 2>&1; then echo "tar=$(tar --version 2>/dev/null | head -n 1)"; else echo "tar="; fi
echo "download=$(command -v curl || command -v wget || true)"
libc=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)
[ -n "$libc" ] || libc=$(ldd --version 2>&1 | head -n 1)
echo "glibc=$libc"
if f=$(mktemp "$HOME/.devagent-doctor.XXXXXX" 2>/dev/null); then rm -f "$f"; echo home_writable=yes
else echo home_writable=no; fi
if t=$(mktemp /tmp/devagent-doctor.XXXXXX 2>/dev/null); then
  printf '#!/bin/sh\necho ran\n' > "$t" && chmod 700 "$t"
  if [ "$("$t" 2>/dev/null)" = ran ]; then echo tmp_exec=yes; else echo tmp_exec=no; fi
  rm -f "$t"
else echo tmp_exec=unwritable; fi
state="$HOME/AGENT_RECORD"
ws=${WORKSPACE_ENV:-$HOME/HOME_WORKSPACE}
nb="$ws/NOTEBOOK"
if [ -f "$state" ]; then
  echo agent_state=yes
  paths=$(AGENT_PYTHON -I -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["workspace"]); print(d["notebook"])' "$state" 2>/dev/null || true)
  if [ -n "$paths" ]; then
    ws=$(printf '%s\n' "$paths" | sed -n 1p); nb=$(printf '%s\n' "$paths" | sed -n 2p)
  fi
else echo agent_state=no; fi
agent=
for d in /proc/[0-9]*; do
  cmd=$(tr '\000' ' ' 2>/dev/null < "$d/cmdline") || continue
  case "$cmd" in
    */docker-init\ *|docker-init\ *|*/tini\ *|tini\ *) ;;  # --init's PID 1 carries the agent's command line
    *devagent\ agent\ *) agent=${d#/proc/}; break ;;
  esac
done
echo "agent_pid=$agent"
echo "workspace=$ws"
echo "home_df=$(df -Pk "$HOME" 2>/dev/null | tail -n 1)"
echo "workspace_df=$(df -Pk "$ws" 2>/dev/null | tail -n 1)"
echo "notebook=$nb"
if [ -e "$nb" ]; then w=$nb; else w=$(dirname "$nb"); fi
if [ -w "$w" ]; then echo notebook_writable=yes; else echo notebook_writable=no; fi
echo probe_done=1
exit 0
""".replace("PROBE_MARKER", PROBE_MARKER).replace("AGENT_RECORD", layout.AGENT_RECORD).replace(
    "WORKSPACE_ENV", layout.WORKSPACE_ENV).replace("HOME_WORKSPACE", layout.HOME_WORKSPACE).replace(
    "NOTEBOOK", layout.NOTEBOOK).replace("AGENT_PYTHON", shlex.quote(f"{layout.AGENT_VENV}/bin/python"))

PROBE_KEYS = ("uid", "user", "home", "bash", "tar", "download", "glibc", "home_writable", "tmp_exec", "agent_state",
              "agent_pid", "workspace", "home_df", "workspace_df", "notebook", "notebook_writable", "probe_done")
_KEY_LINE = re.compile(r"^([a-z_]+)=(.*)$")


def probe_reached(output: str) -> bool:
    """Whether the probe ran at all (the login worked and sh read the script)."""
    return PROBE_MARKER in output.splitlines()


def parse_probe(output: str) -> dict[str, str]:
    """The probe's key=value lines after its marker; unknown keys, garbage and a shell's chatter are ignored.

    >>> parse_probe("Welcome!\\nuid=0\\ndevagent_probe=1\\nuid=1000\\nnonsense\\nfoo=bar\\nuid=7\\nbash=/bin/bash")
    {'uid': '1000', 'bash': '/bin/bash'}
    """
    values: dict[str, str] = {}
    lines = output.splitlines()
    if PROBE_MARKER not in lines:
        return values
    for line in lines[lines.index(PROBE_MARKER) + 1:]:
        m = _KEY_LINE.match(line)  # splitlines() has taken a "\r\n" (and a lone "\r") away
        if m and m.group(1) in PROBE_KEYS and m.group(1) not in values:
            values[m.group(1)] = m.group(2)
    return values


@dataclass(frozen=True)
class Environment:
    """What the host knows about the environment, for naming fixes."""

    name: str
    host_workspace: str | None = None  # the host folder mounted at ~/workspace (the devagent.workspace label)

    @property
    def recreate(self) -> str:
        return f"devagent up {self.name} --recreate"

    @property
    def rebase(self) -> str:
        return f"`devagent up {self.name} --recreate --base-image IMAGE`"


LOGIN = "login through the alias"
FORWARDING = "TCP forwarding"
TMP_EXEC = "/tmp allows executing"  # noqa: S108 - a check's name, not a path devagent writes
HOME_DISK, WORKSPACE_DISK = "free disk in home", "free disk in the workspace"
# Every check made from inside the container, in the order shown; all skipped when the login is not possible.
DOWNLOAD = "download tool"
CONTAINER_SIDE = (LOGIN, FORWARDING, "bash", "tar", DOWNLOAD, "glibc", "home writable", TMP_EXEC, HOME_DISK,
                  WORKSPACE_DISK, "agent", "notebook writable")


def _missing(name: str, key: str, env: Environment) -> Check:
    return Check(name, False, f"the probe did not report {key}",
                 fix=f"run `devagent doctor {env.name}` again; if it persists, log in with `ssh {env.name}` "
                 "and look for errors from its shell")


def _bash(bash: str, values: Mapping[str, str], env: Environment) -> Check:
    if bash:
        return Check("bash", True, bash)
    return Check("bash", False, "no bash in the image; Remote-SSH runs its server's install script with bash",
                 fix=f"use a base image that has bash (Debian and Ubuntu images do): {env.rebase}")


def _tar(tar: str, values: Mapping[str, str], env: Environment) -> Check:
    if tar:
        return Check("tar", True, tar)
    return Check("tar", False, "no tar in the image; Remote-SSH unpacks its server with tar",
                 fix="use a base image that has tar (devagent does not install it; Debian and Ubuntu images have "
                 f"it): {env.rebase}")


def _download(tool: str, values: Mapping[str, str], env: Environment) -> Check:
    """The Remote-SSH client's setup script downloads VS Code's server inside the environment with curl or wget.
    Without either, Microsoft's Remote-SSH downloads it on your machine and copies it over (that works);
    VSCodium's open-remote-ssh stops ("no tool to download server binary"): a warning, not a failure."""
    if tool:
        return Check(DOWNLOAD, True, f"{tool} (Remote-SSH's setup script downloads VS Code's server with it)")
    return warning(DOWNLOAD, "neither curl nor wget in the image: Microsoft's Remote-SSH downloads VS Code's server "
                   "on your machine and copies it over (that works); VSCodium's open-remote-ssh stops with \"no tool "
                   "to download server binary\"", fix=f"for VSCodium, use a base image with curl or wget: "
                   f"{env.rebase} (devagent's own base images carry curl once rebuilt)")


def _glibc(libc: str, values: Mapping[str, str], env: Environment) -> Check:
    version = glibc_version(libc)
    floor = ".".join(map(str, MIN_GLIBC))
    if version is None:
        return Check("glibc", False, f"no glibc ({libc or 'nothing reported'}); VS Code's server needs glibc "
                     f"≥ {floor} (musl, as in Alpine, does not do)",
                     fix=f"use a Debian- or Ubuntu-based image: {env.rebase}")
    if version < MIN_GLIBC:
        return Check("glibc", False, f"glibc {version[0]}.{version[1]}; VS Code's server needs ≥ {floor}",
                     fix=f"use a newer base image (Debian 10+, Ubuntu 20.04+): {env.rebase}")
    return Check("glibc", True, f"{version[0]}.{version[1]} (VS Code's server needs ≥ {floor})")


def _home(writable: str, values: Mapping[str, str], env: Environment) -> Check:
    home = values.get("home") or "~"
    if writable == "yes":
        return Check("home writable", True, f"{home} (VS Code installs its server in ~/.vscode-server)")
    return Check("home writable", False, f"cannot create a file in {home}; VS Code installs its server there",
                 fix=f"a fresh container has a fresh home: `{env.recreate}` (free disk space first if it is full)")


def _tmp(tmp: str, values: Mapping[str, str], env: Environment) -> Check:
    if tmp == "yes":
        return Check(TMP_EXEC, True, "a script written to /tmp ran")
    if tmp == "unwritable":
        return Check(TMP_EXEC, False, "cannot create a file in /tmp",
                     fix=f"make /tmp writable for everyone (chmod 1777 /tmp in the base image), then {env.rebase}")
    return Check(TMP_EXEC, False, "a script written to /tmp did not run (mounted noexec?); VS Code's server runs "
                 "helpers from there", fix="give the container a /tmp without noexec (check the base image and "
                 f"the Docker daemon's options), then `{env.recreate}`")


def _disk(name: str, where: str, line: str, fix: str) -> Check:
    kb = df_available_kb(line)
    if kb is None:
        return Check(name, False, f"df gave no figure for {where}: {line!r}", fix=fix)
    if kb < MIN_FREE_KB:
        return Check(name, False, f"only {gib(kb)} free in {where} (warning: under 1 GiB)", fix=fix)
    return Check(name, True, f"{gib(kb)} free in {where}")


def _home_disk(line: str, values: Mapping[str, str], env: Environment) -> Check:
    return _disk(HOME_DISK, values.get("home") or "~", line,
                 "free space where Docker keeps its containers (`docker system df` shows what uses it, "
                 "`docker system prune` removes what is unused)")


def _workspace_disk(line: str, values: Mapping[str, str], env: Environment) -> Check:
    inside = f"~/{layout.HOME_WORKSPACE}"
    return _disk(WORKSPACE_DISK, values.get("workspace") or inside, line,
                 f"free space on the file system of {env.host_workspace or 'the workspace folder'} (the host "
                 f"folder mounted at {inside})")


def _agent(state: str, values: Mapping[str, str], env: Environment) -> Check:
    if "agent_pid" not in values:
        return _missing("agent", "agent_pid", env)
    pid = values["agent_pid"]
    wrong = [] if pid else ["the agent's process is not running"]
    if state != "yes":
        wrong.append(f"the agent has not written ~/{layout.AGENT_RECORD}")
    if wrong:
        return Check("agent", False, "; ".join(wrong),
                     fix=f"`docker logs {env.name}` shows why; `{env.recreate}` starts a fresh container")
    return Check("agent", True, f"running (pid {pid}), state in ~/{layout.AGENT_RECORD}")


def _notebook(writable: str, values: Mapping[str, str], env: Environment) -> Check:
    notebook = values.get("notebook") or "the notebook"
    if writable == "yes":
        return Check("notebook writable", True, notebook)
    uid = values.get("uid") or "UID"
    user = values.get("user") or "the login user"
    return Check("notebook writable", False, f"{notebook} cannot be written by {user}",
                 fix=f"on the host, give the workspace to the login user: chown -R {uid} "
                 f"{env.host_workspace or 'WORKSPACE'}")


# (check name, the probe's key it judges, the judge)
_JUDGES = (
    ("bash", "bash", _bash),
    ("tar", "tar", _tar),
    (DOWNLOAD, "download", _download),
    ("glibc", "glibc", _glibc),
    ("home writable", "home_writable", _home),
    (TMP_EXEC, "tmp_exec", _tmp),
    (HOME_DISK, "home_df", _home_disk),
    (WORKSPACE_DISK, "workspace_df", _workspace_disk),
    ("agent", "agent_state", _agent),
    ("notebook writable", "notebook_writable", _notebook),
)


def container_checks(values: Mapping[str, str], env: Environment) -> list[Check]:
    """The checks made from the probe's parsed output, in the order they are shown; a key the probe did not
    report fails its check.

    >>> [c.ok for c in container_checks({"bash": "/bin/bash", "tar": ""}, Environment("dev"))][:3]
    [True, False, False]
    """
    return [judge(values[key], values, env) if key in values else _missing(name, key, env)
            for name, key, judge in _JUDGES]


HEALTH = "container health"
HOME = "home volume"  # the environment's home volume and its size (information)


def health_check(status: str | None, output: str, *, name: str) -> Check:
    """Docker's health check of a running container (core/health.py): STATUS and what its last run printed.

    >>> health_check("healthy", "ok", name="dev")
    Check(name='container health', ok=True, detail='healthy: sshd listens and the agent reports', fix=None)
    >>> health_check("unhealthy", "sshd does not listen on port 2222", name="dev").detail
    'unhealthy: sshd does not listen on port 2222'
    """
    if status == "healthy":
        return Check(HEALTH, True, "healthy: sshd listens and the agent reports")
    if status == "unhealthy":
        return Check(HEALTH, False, f"unhealthy: {output or 'the check printed nothing'}",
                     fix=f"`docker logs {name}` shows what the agent and sshd said; `devagent up {name} --recreate` "
                     "starts a fresh container")
    if status == "starting":
        return skipped(HEALTH, f"Docker has not checked it yet (the first check runs {health.INTERVAL_SECONDS} s "
                       "after the start)")
    return skipped(HEALTH, f"the container has no health check (an older devagent made it); `devagent up {name} "
                   "--recreate` adds one")


def login_check(values: Mapping[str, str], *, name: str) -> Check:
    """The login itself, judged from the probe's uid and user (the probe ran, so the key login worked)."""
    uid, user = values.get("uid", ""), values.get("user", "")
    if not uid.isdigit():
        return _missing(LOGIN, "uid", Environment(name))
    if uid == "0":
        return Check(LOGIN, False, f"ssh {name} landed as root",
                     fix=f"`devagent up {name} --recreate` (devagent's sshd never lets root in)")
    return Check(LOGIN, True, f"ssh {name} logs in as {user} (uid {uid})")
