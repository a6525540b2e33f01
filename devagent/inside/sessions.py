"""Inside an environment: whose ssh session a process belongs to, and the sessions of one person (to end them).

sshd runs with ``ExposeAuthInfo yes``: after a login it writes the key it accepted into a new file
``/tmp/sshauth.XXXXXXXXXXXXXXX`` (``publickey TYPE BASE64``) and names that file in ``SSH_USER_AUTH`` of the
session's processes. An environment variable is whatever its process was started with
(``SSH_USER_AUTH=/tmp/mine devagent run …``), so it is not what decides. Instead:

1. walk up the process's ancestry to the session's first process: the one whose parent is an sshd (the real
   binary, by ``/proc/PID/exe``) — the session process, with the connection's own sshd above it;
2. the session's file is the sshauth file that came into being between the connection's start (its sshd's start)
   and the fork of the session's first process — kernel start times, which no process can change, against the
   file's change time, which only moves forward: a file made or rewritten later does not count;
3. that file names the key. Two logins with different keys in the same moment may leave two: the session is
   then not known (a guess could name the wrong person). SSH_USER_AUTH itself is never read.

What this does not stop: every process in the container runs as the same user, who can write those files and
start processes, so a determined user can still forge a session (docs/explanation/security-model.md, "Who ran
what"). It stops the trivial and the accidental: a variable set in the session, a file written in it.

Standard library only: the agent's observer and `devagent run` use it, in any interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devagent.core import layout
from devagent.core.people import fingerprint, parse_people
from devagent.nofollow.walk import open_regular

SSHD_TMP = Path("/tmp")  # noqa: S108 - where sshd writes its auth files (a fixed path in OpenSSH)
SSHD_NAMES = frozenset({"sshd", "sshd-session"})
AUTH_FILE_PREFIX = "sshauth."
MAX_DEPTH = 64  # ancestors walked at most
MAX_AUTH_FILE = 64 << 10
# Change times come from a coarse clock (one scheduler tick, up to 10 ms behind the true time): allowed before the
# connection's start. After the first process's fork, one tick of its start time (which is rounded down) is.
COARSE_CLOCK = 0.010


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    start: float  # seconds after boot


@dataclass(frozen=True)
class Session:
    """One ssh session: its sshd process, the session's first process below it, and the key it logged in with
    (``TYPE BASE64``; None when it cannot be told). CANDIDATES: every key it may have logged in with (more than
    one when logins came in the same moment)."""

    sshd: int
    first: int
    key: str | None
    candidates: frozenset[str] = frozenset()


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _proc(proc: Path, pid: int) -> _Proc | None:
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
        fields = raw[raw.rindex(b")") + 2:].split()
        return _Proc(pid=pid, ppid=int(fields[1]), start=int(fields[19]) / _ticks())
    except (OSError, ValueError, IndexError):
        return None


def _is_sshd(proc: Path, pid: int) -> bool:
    """Whether PID runs OpenSSH's sshd (or sshd-session) binary."""
    try:
        return os.path.basename(os.readlink(proc / str(pid) / "exe")).split(" ")[0] in SSHD_NAMES
    except OSError:  # a process that may not be traced hides its exe: its name is all there is
        try:
            return (proc / str(pid) / "comm").read_text().strip() in SSHD_NAMES
        except OSError:
            return False


def _boot_offset() -> float:
    """Wall-clock time minus time since boot (the clock process start times are counted on)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def _auth_files(tmp: Path, since: float, until: float) -> dict[str, str]:
    """{path: key} of the regular sshauth files of ours in TMP whose change time (after boot) is in [SINCE, UNTIL]."""
    offset = _boot_offset()
    found: dict[str, str] = {}
    try:
        entries = [e for e in os.scandir(tmp) if e.name.startswith(AUTH_FILE_PREFIX)]
    except OSError:
        return found
    for entry in entries:
        try:
            fd = open_regular(entry.path, follow_links=False)  # a regular file, not through a link, no waiting
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            changed = st.st_ctime - offset
            if st.st_uid != os.getuid() or not since <= changed <= until:
                continue
            data = os.read(fd, MAX_AUTH_FILE)
        except OSError:
            continue
        finally:
            os.close(fd)
        key = _key_in(data)
        if key is not None:
            found[entry.path] = key
    return found


def _key_in(data: bytes) -> str | None:
    """``TYPE BASE64`` of the first ``publickey`` line sshd wrote."""
    for line in data.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "publickey":
            return f"{fields[1]} {fields[2]}"
    return None


def session_of(pid: int, *, proc: Path = Path("/proc"), tmp: Path = SSHD_TMP) -> Session | None:
    """The ssh session process PID runs in; None when no sshd is above it (a `docker exec`, a daemon that left
    its session)."""
    current = _proc(proc, pid)
    for _ in range(MAX_DEPTH):
        if current is None or current.ppid <= 1:
            return None
        if _is_sshd(proc, current.ppid):
            return _session(proc, tmp, current)
        current = _proc(proc, current.ppid)
    return None


def _session(proc: Path, tmp: Path, first: _Proc) -> Session:
    sshd = _proc(proc, first.ppid)
    connection = sshd
    if sshd is not None and _is_sshd(proc, sshd.ppid):
        above = _proc(proc, sshd.ppid)
        # The connection's sshd (the monitor) started when the connection came; the listener above it long before.
        if above is not None and above.ppid > 1 and _is_sshd(proc, above.ppid):
            connection = above
    since = (connection.start if connection else first.start) - COARSE_CLOCK
    until = first.start + 1 / _ticks() + COARSE_CLOCK / 5
    keys = frozenset(_auth_files(tmp, since, until).values())
    # Two logins with different keys in the same moment: which is whose cannot be told, and a guess (or the
    # session's own say, its SSH_USER_AUTH) could name the wrong person.
    return Session(sshd=first.ppid, first=first.pid, key=next(iter(keys)) if len(keys) == 1 else None,
                   candidates=keys)


def key_of(pid: int, *, proc: Path = Path("/proc"), tmp: Path = SSHD_TMP) -> str | None:
    """The key (``TYPE BASE64``) the ssh session of PID logged in with; None when it cannot be told."""
    session = session_of(pid, proc=proc, tmp=tmp)
    return session.key if session else None


def _all(proc: Path) -> list[_Proc]:
    out: list[_Proc] = []
    try:
        names = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return out
    for name in names:
        found = _proc(proc, int(name))
        if found is not None:
            out.append(found)
    return out


def sessions(*, proc: Path = Path("/proc"), tmp: Path = SSHD_TMP) -> list[Session]:
    """Every ssh session now: each process whose parent is an sshd and which is not an sshd itself."""
    procs = _all(proc)
    sshds = {p.pid for p in procs if _is_sshd(proc, p.pid)}
    return [_session(proc, tmp, p) for p in procs if p.ppid in sshds and p.pid not in sshds]


def end_sessions(keys: Iterable[str], *, proc: Path = Path("/proc"), tmp: Path = SSHD_TMP,
                 kill: Callable[[int, int], None] = os.kill) -> list[int]:
    """End every ssh session that logged in with one of KEYS (``TYPE BASE64``): SIGTERM to the connection's sshd
    processes and to everything below them. Returns the sshd pids of the sessions ended.

    A session that may have logged in with one of KEYS ends too: when two logins came in the same moment, the
    other one goes with it rather than a removed key staying logged in."""
    wanted = {" ".join(k.split()[:2]) for k in keys}
    procs = _all(proc)
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    by_pid = {p.pid: p for p in procs}
    ended = []
    for session in sessions(proc=proc, tmp=tmp):
        if not wanted & session.candidates:
            continue
        top = session.sshd
        parent = by_pid.get(top)
        # The connection's monitor above the session's sshd goes too (not the listener, which serves everyone).
        if parent is not None and _is_sshd(proc, parent.ppid):
            grand = by_pid.get(parent.ppid)
            if grand is not None and grand.ppid > 1 and _is_sshd(proc, grand.ppid):
                top = parent.ppid
        tree, todo = [top], [top]
        while todo:
            for child in children.get(todo.pop(), ()):
                tree.append(child)
                todo.append(child)
        for pid in reversed(tree):  # the deepest first: the shell's children do not outlive it by a signal race
            with contextlib.suppress(OSError):
                kill(pid, signal.SIGTERM)
        ended.append(session.sshd)
    return ended


def started_by(pid: int, *, people_file: Path = Path(layout.PEOPLE_PATH), proc: Path = Path("/proc"),
               tmp: Path = SSHD_TMP) -> str | None:
    """Who started process PID, as the notebook says it: the name of the person (from people.json, which `up` and
    `share` put into the container) whose key the ssh session above PID logged in with. None outside an
    environment (no people.json): nothing is said then."""
    try:
        people = parse_people(people_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    session = session_of(pid, proc=proc, tmp=tmp)
    if session is None:
        return "unknown (not started from an ssh login)"
    if session.key is None:
        return "unknown (the ssh login's key could not be told)"
    try:
        key_fingerprint = fingerprint(session.key.split()[1])
    except (ValueError, IndexError):
        return "unknown (the ssh login's key could not be told)"
    found = next((p for p in people if p.fingerprint == key_fingerprint), None)
    if found is None:
        return f"a key no longer invited ({key_fingerprint})"
    return f"{found.name} (owner)" if found.owner else found.name
