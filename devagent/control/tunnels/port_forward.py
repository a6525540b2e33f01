"""`devagent forward`: a port of an environment on this machine's 127.0.0.1, through the alias, with the real client.

    forward = SshForward(paths.user_ssh_config, "pytorch-dev", local=8888, remote=8888)
    forward.start()
    forward.wait_listening(timeout=60)   # ssh's own log says its forwards listen
    ...                                  # the URL is printed; Ctrl-C ends it
    forward.close()                      # terminate, wait, kill: no ssh process left behind

The alias does the rest: the pinned host key, the identity, and, for an environment on a server, the jump through
it. Nothing is bound anywhere but 127.0.0.1 (core/ssh/forward_plan.py builds the command).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from devagent.control.lifecycle.interrupts import Stopped, StopSignals, exit_status, wait_for_exit
from devagent.control.paths import Paths
from devagent.control.ssh import managed_config
from devagent.control.ssh.children import start_ssh
from devagent.core.ssh import forward_plan as f
from devagent.core.ssh.command_line import LOOPBACK
from devagent.errors import DevagentError, ExitStatus

TAIL_LINES = 30  # what an error shows of ssh's own messages


def check_alias(paths: Paths, name: str) -> None:
    """Refuse a NAME that is not one of devagent's aliases: the way `devagent ssh` reaches it is the alias."""
    if name not in managed_config.hosts(paths.managed_ssh_config):
        raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                            hint=f"list them with `devagent ls`, or make it first: devagent up {name}")


def _taken(port: int) -> DevagentError:
    return DevagentError(
        f"port {port} on this machine's 127.0.0.1 is taken by another program", status=ExitStatus.PORT_TAKEN,
        hint=f"pick another local port (PORT:LOCAL, or --port), or 0 for any free one; `ss -ltnp 'sport = :{port}'` "
        "shows who holds it")


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:PORT can be bound now, the way ssh binds it (SO_REUSEADDR: a port in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except PermissionError:
            raise DevagentError(f"port {port} needs root to listen on", status=ExitStatus.USAGE,
                                hint="pick a local port of 1024 or above, or 0 for any free one") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def any_free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 now (ssh binds it a moment later; `run` retries if it lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def choose_local(wanted: int | None) -> int:
    """WANTED when it is free (PORT_TAKEN naming it when not); any free port when WANTED is None."""
    if wanted is None:
        return any_free_port()
    if not port_free(wanted):
        raise _taken(wanted)
    return wanted


class SshForward:
    """One `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:REMOTE NAME`, its log read by a thread.

    ssh's debug lines (-v) only tell when the forward listens; its other lines (errors such as "connect failed:
    Connection refused" when nothing listens inside yet) go to ERR as they come, until `close`.
    """

    def __init__(self, config: Path, name: str, *, local: int, remote: int, ssh: str = "ssh",
                 err: IO[str] | None = None) -> None:
        self.argv = f.forward_argv(config, name, local=local, remote=remote, ssh=ssh)
        self.name, self.local, self.remote = name, local, remote
        self.process: subprocess.Popen[str] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._listening = threading.Event()
        self._quiet = threading.Event()  # set by close: what ssh says while it ends is not the user's business
        self._err = err
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        # Its own session: a Ctrl-C at the terminal reaches devagent alone, which then ends ssh itself (and ssh
        # does not print "Killed by signal 2." over the user's prompt).
        self.process = start_ssh(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True,
                                        name=f"ssh-forward-{self.local}")
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            if f.forward_listening(line):
                self._listening.set()
            if f.is_debug(line) or not line:
                continue
            self.tail.append(line)
            if not self._quiet.is_set():
                with contextlib.suppress(OSError, ValueError):
                    print(line, file=self._err or sys.stderr, flush=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def wait_listening(self, *, timeout: float) -> None:
        """Return once ssh says the forward listens; raise when ssh ended first, or did not within TIMEOUT."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None:
                if self._reader:
                    self._reader.join(timeout=2)  # its last lines say why
                if self._listening.is_set():  # listened, then ended at once
                    break
                raise self.failure()
            if time.monotonic() > deadline:
                raise DevagentError(f"the forward through ssh alias {self.name!r} was not up within {timeout:.0f} s",
                                    status=ExitStatus.LOGIN_FAILED, details="\n".join(self.tail) or None,
                                    hint=f"check the login with `devagent doctor {self.name}`")
        if self.process.poll() is not None:
            raise self.failure()

    def failure(self) -> DevagentError:
        """Why ssh ended (or could not start the forward)."""
        code = self.process.poll() if self.process else None
        lines = list(self.tail)
        if f.bind_failed(lines):
            error = _taken(self.local)
            error.details = "\n".join(lines)
            return error
        return DevagentError(f"ssh through the alias {self.name!r} ended (exit {code})", status=ExitStatus.LOGIN_FAILED,
                             details="\n".join(lines) or None,
                             hint=f"`devagent doctor {self.name}` checks the environment and the login")

    def wait(self) -> int:
        """Block until ssh ends; its exit status."""
        assert self.process is not None, "start() first"
        return wait_for_exit(self.process)  # in short waits: a stop signal is acted on at once

    def close(self, *, timeout: float = 5.0) -> None:
        """End ssh and reap it: SIGTERM, then SIGKILL after TIMEOUT. Safe to call twice, or before start."""
        self._quiet.set()
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader:
            self._reader.join(timeout=2)


PICK_ATTEMPTS = 3  # a free port picked for ssh can be taken by someone else before ssh binds it: pick again


def open_forward(config: Path, name: str, *, wanted: int | None, remote: int, signals: StopSignals,
                 timeout: float = 60.0) -> SshForward:
    """A listening forward to NAME's 127.0.0.1:REMOTE on 127.0.0.1:WANTED (None: any free port).

    On any failure, Ctrl-C included, its ssh is ended and reaped before the exception leaves."""
    for attempt in range(1, PICK_ATTEMPTS + 1):
        forward = SshForward(config, name, local=choose_local(wanted), remote=remote)
        try:
            with signals.deferred():  # a Stopped between Popen and here would leave ssh running unseen
                forward.start()
            forward.wait_listening(timeout=timeout)
            return forward
        except DevagentError as exc:
            with signals.held():
                forward.close()
            if wanted is None and exc.status == ExitStatus.PORT_TAKEN and attempt < PICK_ATTEMPTS:
                continue
            raise
        except BaseException:
            with signals.held():
                forward.close()
            raise
    raise AssertionError("unreachable")  # the loop returns or raises


def run_forward(paths: Paths, name: str, ports: f.PortPair, *, show: Callable[[str], None]) -> ExitStatus:
    """`devagent forward NAME PORT[:LOCAL]`: forward until Ctrl-C, SIGTERM or SIGHUP (their exit status), or
    until ssh ends by itself (a DevagentError saying why). SHOW gets each line for the user once it is up."""
    check_alias(paths, name)
    with StopSignals() as signals:
        forward: SshForward | None = None
        try:
            forward = open_forward(paths.user_ssh_config, name, wanted=f.local_port(ports.local, ports.remote),
                                   remote=ports.remote, signals=signals)
            show(f"✔ forwarding {name}'s {LOOPBACK}:{ports.remote} to {LOOPBACK}:{forward.local} on this machine")
            show(f"  open {f.url(forward.local)}    (Ctrl-C ends the forward)")
            forward.wait()
            raise forward.failure()
        except Stopped as stop:
            return exit_status(stop.signum)
        finally:
            if forward is not None:
                with signals.held():
                    forward.close()
