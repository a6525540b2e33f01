"""`devagent jupyter NAME` and `devagent tensorboard NAME`: the server started inside over the alias, bound to the
environment's 127.0.0.1, then forwarded here (control/tunnels/port_forward.py) and its URL printed; Ctrl-C stops both.

Two ssh processes, both through the alias: `ssh NAME devagent serve KIND …` runs the server and tells which port it
listens on (agent/serve.py has the protocol), and `ssh -N -L …` forwards that port. The server's port is only
known once it runs, and a forward's port is fixed when ssh starts; hence two.

    session = RemoteServer(config, "pytorch-dev", "jupyter", token=secrets.token_urlsafe(32))
    session.start()
    port = session.wait_ready(signals)   # the server listens on the environment's 127.0.0.1:port
    ...                                  # open_forward(…, remote=port), print the URL, wait
    session.stop()                       # stdin closed → the server is stopped inside; ssh reaped
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from devagent.control.lifecycle.interrupts import POLL_S, Stopped, StopSignals, exit_status, wait_for_exit
from devagent.control.paths import Paths
from devagent.control.ssh.children import start_ssh
from devagent.control.tunnels.port_forward import SshForward, check_alias, choose_local, open_forward
from devagent.core.ssh import forward_plan as f
from devagent.core.ssh.command_line import KEEPALIVE, LOOPBACK, NO_SHARED_MASTER, ssh_argv
from devagent.errors import DevagentError, ExitStatus

TAIL_LINES = 40
DEFAULT_PORTS = {"jupyter": 8888, "tensorboard": 6006}
NAMES = {"jupyter": "Jupyter", "tensorboard": "TensorBoard"}


class RemoteServer:
    """`ssh NAME devagent serve KIND …`: its stdout is the protocol, its stderr the server's output (passed on)."""

    def __init__(self, config: Path, name: str, kind: str, *, token: str = "", logdir: str | None = None,
                 port: int | None = None, ssh: str = "ssh", err: IO[str] | None = None) -> None:
        remote = ["devagent", "serve", kind, *(["--port", str(port)] if port else []),
                  *(["--logdir", logdir] if logdir is not None else [])]
        # ssh hands the remote command to the login shell as one string: quote each word. No ControlMaster: the
        # server lives as long as this ssh, not as long as a master connection of the user's config.
        self.argv = ssh_argv(config, name, shlex.join(remote), ssh=ssh,
                             options={"ConnectTimeout": 20, **NO_SHARED_MASTER, **KEEPALIVE})
        self.name, self.kind, self.token = name, kind, token
        self.process: subprocess.Popen[str] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._err = err
        self._reader: threading.Thread | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()  # its stdout; None once it ended

    def start(self) -> None:
        self.process = start_ssh(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True,
                                        name=f"ssh-{self.kind}")
        self._reader.start()
        # Its stdout is read by a thread too: the main thread waits for a line in short waits, so that a stop
        # signal that lands just before a wait is acted on at once, not when the server next says something.
        threading.Thread(target=self._read_stdout, args=(self.process.stdout,), daemon=True,
                         name=f"ssh-{self.kind}-stdout").start()
        assert self.process.stdin is not None
        try:  # the token travels on stdin: never on a command line, here or inside
            self.process.stdin.write(self.token + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # ssh already ended: wait_ready says why

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            self.tail.append(line)
            with contextlib.suppress(OSError, ValueError):
                print(line, file=self._err or sys.stderr, flush=True)

    def _read_stdout(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def _messages(self) -> Iterator[dict[str, Any]]:
        assert self.process is not None, "start() first"
        while True:
            try:
                line = self._lines.get(timeout=POLL_S)
            except queue.Empty:
                continue  # a stop signal's handler runs here
            if line is None:
                self._lines.put(None)  # ended: so for whoever asks next, too
                return
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a login banner or a shell's greeting: not ours
            if isinstance(message, dict):
                yield message

    def _refused(self, message: dict[str, Any]) -> DevagentError:
        try:
            status = ExitStatus(int(message.get("status", ExitStatus.CONTAINER_FAILED)))
        except (TypeError, ValueError):
            status = ExitStatus.CONTAINER_FAILED
        return DevagentError(f"environment {self.name!r}: {message['error']}", status=status,
                             hint=str(message.get("hint") or "") or None)

    def wait_ready(self) -> int:
        """The port the server listens on inside, once it does; a DevagentError when it cannot start."""
        for message in self._messages():
            if isinstance(message.get("ready"), int):
                return int(message["ready"])
            if "error" in message:
                raise self._refused(message)
        assert self.process is not None
        code = wait_for_exit(self.process)
        if self._reader:
            self._reader.join(timeout=2)
        details = "\n".join(self.tail) or None
        if "No such command 'serve'" in (details or ""):
            raise DevagentError(f"environment {self.name!r} was made by an older devagent, without `devagent serve`",
                                status=ExitStatus.USAGE, details=details,
                                hint=f"recreate it (files and alias are kept): devagent up {self.name} --recreate")
        raise DevagentError(f"ssh {self.name} devagent serve {self.kind} ended (exit {code}) before the server "
                            "listened", status=ExitStatus.LOGIN_FAILED if code == 255 else ExitStatus.CONTAINER_FAILED,
                            details=details, hint=f"`devagent doctor {self.name}` checks the environment and the login")

    def ended(self) -> DevagentError:
        """Why the server ended after it was ready (its own output is above, on stderr)."""
        assert self.process is not None, "start() first"
        for message in self._messages():
            if "error" in message:
                return self._refused(message)
        return DevagentError(f"{NAMES[self.kind]} in {self.name} ended (ssh exit {self.process.wait()})",
                             status=ExitStatus.CONTAINER_FAILED,
                             hint=f"its output is above; `devagent doctor {self.name}` checks the environment")

    def stop(self, *, timeout: float = 20.0) -> None:
        """Close stdin (the server inside is stopped), wait for ssh; SIGTERM, then SIGKILL, if it hangs."""
        proc = self.process
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin:
                proc.stdin.close()
        for step in (None, proc.terminate, proc.kill):
            if step is not None and proc.poll() is None:
                step()
            try:
                proc.wait(timeout=timeout if step is None else 5)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader:
            self._reader.join(timeout=2)


def run_server(paths: Paths, name: str, kind: str, *, local: int | None, logdir: str | None,
               show: Callable[[str], None]) -> ExitStatus:
    """Start KIND inside NAME, forward it to 127.0.0.1:LOCAL here (None: the server's usual port; 0: any free),
    print its URL, and stop both on Ctrl-C, SIGTERM or SIGHUP (their exit status)."""
    check_alias(paths, name)
    wanted = f.local_port(local, DEFAULT_PORTS[kind])
    if wanted is not None:
        choose_local(wanted)  # refuse a taken port before anything starts inside
    token = secrets.token_urlsafe(32) if kind == "jupyter" else ""
    server = RemoteServer(paths.user_ssh_config, name, kind, token=token, logdir=logdir)
    forward: SshForward | None = None
    with StopSignals() as signals:
        try:
            with signals.deferred():
                server.start()
            remote = server.wait_ready()
            forward = open_forward(paths.user_ssh_config, name, wanted=wanted, remote=remote, signals=signals)
            show(f"✔ {NAMES[kind]} in {name} on its {LOOPBACK}:{remote}, forwarded to {LOOPBACK}:{forward.local} "
                 "on this machine")
            if kind == "tensorboard":
                show("  TensorBoard has no login: anyone who can reach this machine's 127.0.0.1 can read it "
                     "while it runs")
            show(f"  open {f.url(forward.local, token=token or None)}    (Ctrl-C stops it)")
            _wait_either(server, forward)
            if server.process is not None and server.process.poll() is not None:
                raise server.ended()
            raise forward.failure()
        except Stopped as stop:
            return exit_status(stop.signum)
        finally:
            with signals.held():
                if forward is not None:
                    forward.close()
                server.stop()


def _wait_either(server: RemoteServer, forward: SshForward) -> None:
    """Block until one of the two ssh processes ends (a stop signal ends the wait by raising)."""
    assert server.process is not None and forward.process is not None
    while server.process.poll() is None and forward.process.poll() is None:
        time.sleep(0.2)
