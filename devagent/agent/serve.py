"""`devagent serve jupyter|tensorboard` (inside the environment): start the user's Jupyter or TensorBoard on the
environment's 127.0.0.1, say on stdout when it listens, and stop it when stdin closes.

`devagent jupyter NAME` / `devagent tensorboard NAME` on the host run this over the alias (`ssh NAME devagent serve
…`) and forward the port it names. The protocol, one JSON object per stdout line:

    host → serve   first stdin line: Jupyter's token (empty for TensorBoard); then stdin stays open
    serve → host   {"ready": PORT}                                 it listens on 127.0.0.1:PORT
                   {"error": MESSAGE, "hint": HINT, "status": N}   it could not start (N: an ExitStatus)
    host → serve   stdin closes (devagent ended, or its ssh died)  → the server is stopped, SIGTERM then SIGKILL

The token reaches Jupyter as JUPYTER_TOKEN in its environment, never on a command line (`ps` shows those to every
process in the environment). stdin is the only lifeline a command over ssh has without a terminal: sshd sends no
signal when the client goes away, it only closes the pipes.

The server's own output goes to stderr, which ssh carries to the user's terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devagent.errors import ExitStatus

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 180.0  # a first Jupyter start on a busy 2-core machine takes tens of seconds
STOP_TIMEOUT = 10.0  # Jupyter shuts its kernels down on SIGTERM; then SIGKILL


@dataclass(frozen=True)
class Kind:
    name: str  # as the user calls it
    programs: tuple[str, ...]  # the first one found is started
    default_port: int
    install: str  # what to pip install


KINDS = {
    "jupyter": Kind("Jupyter", ("jupyter-lab", "jupyter-notebook", "jupyter-server"), 8888, "jupyterlab"),
    "tensorboard": Kind("TensorBoard", ("tensorboard",), 6006, "tensorboard"),
}


def search_path(workspace: Path, home: Path, path: str) -> list[str]:
    """Where the programs are looked for: the workspace's venv first (the one place that outlives --recreate, where
    the docs say to pip install), then the session's PATH, then pip's --user scripts.

    >>> search_path(Path("/home/dev/workspace"), Path("/home/dev"), "/opt/venv/bin:/usr/bin")
    ['/home/dev/workspace/.venv/bin', '/opt/venv/bin', '/usr/bin', '/home/dev/.local/bin']
    """
    return [str(workspace / ".venv" / "bin"), *[p for p in path.split(os.pathsep) if p], str(home / ".local" / "bin")]


def find_program(kind: Kind, search: Sequence[str]) -> str | None:
    """The first of KIND's programs found on SEARCH."""
    joined = os.pathsep.join(search)
    for program in kind.programs:
        found = shutil.which(program, path=joined)
        if found:
            return found
    return None


def server_argv(kind: str, program: str, port: int, *, logdir: str | None) -> list[str]:
    """The server's command line: 127.0.0.1 only, on PORT exactly (no silent move to another port).

    >>> server_argv("jupyter", "/x/jupyter-lab", 8888, logdir=None)
    ['/x/jupyter-lab', '--no-browser', '--ip=127.0.0.1', '--port=8888', '--port-retries=0']
    >>> server_argv("tensorboard", "/x/tensorboard", 6006, logdir="runs")
    ['/x/tensorboard', '--logdir', 'runs', '--host', '127.0.0.1', '--port', '6006']
    """
    if kind == "jupyter":
        return [program, "--no-browser", f"--ip={LOOPBACK}", f"--port={port}", "--port-retries=0"]
    return [program, "--logdir", logdir or ".", "--host", LOOPBACK, "--port", str(port)]


def choose_port(preferred: int) -> int:
    """PREFERRED when it is free on 127.0.0.1 here, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def _say(out: IO[str], message: dict[str, object]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the host is gone: nobody to tell
        out.write(json.dumps(message) + "\n")
        out.flush()


def _error(out: IO[str], message: str, *, hint: str, status: ExitStatus) -> int:
    _say(out, {"error": message, "hint": hint, "status": int(status)})
    return int(status)


def stop(process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the server's process group, then SIGKILL after TIMEOUT; reaped either way."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, None)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # Whatever is left in its group (a kernel that outlived the server) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _refusal(kind_name: str, program: str | None, logdir: str | None) -> tuple[str, str] | None:
    """(message, hint) when the server cannot be started at all (exit 2), else None."""
    kind = KINDS[kind_name]
    if program is None:
        return (f"{kind.name} is not installed in this environment (no {' or '.join(kind.programs)})",
                "install it into the workspace's venv: python3 -m venv --system-site-packages ~/workspace/.venv && "
                f"~/workspace/.venv/bin/pip install {kind.install} (or use a base image that has it: "
                "docs/how-to/use-your-own-base-image.md)")
    if kind_name == "tensorboard" and logdir is not None and not Path(logdir).is_dir():
        return (f"no folder {logdir} in the environment",
                "pass --logdir the folder your SummaryWriter writes to, relative to the workspace")
    return None


def serve(kind_name: str, *, port: int | None, logdir: str | None, workspace: Path, stdin: IO[str],
          stdout: IO[str], environ: dict[str, str] | None = None) -> int:
    """Run the server until STDIN closes; the exit status (0 when it was stopped that way)."""
    kind = KINDS[kind_name]
    env = dict(os.environ if environ is None else environ)
    token = stdin.readline().strip()
    program = find_program(kind, search_path(workspace, Path.home(), env.get("PATH", "")))
    if logdir is not None:
        logdir = str(workspace / Path(logdir).expanduser())
    refusal = _refusal(kind_name, program, logdir)
    if refusal is not None or program is None:
        message, hint = refusal or ("", "")
        return _error(stdout, message, hint=hint, status=ExitStatus.USAGE)
    if token:
        env["JUPYTER_TOKEN"] = token
    chosen = choose_port(port or kind.default_port)
    closed = threading.Event()

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while stdin.readline():
                pass
        closed.set()

    def on_signal(signum: int, frame: object) -> None:
        closed.set()

    # Before the server starts: a signal from then on stops it (none can end us and leave it running), and the
    # server starts with these signals' default actions, not with whatever we inherited ignored.
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)
    # Its own process group, so that stop() reaches what it starts; its output is the user's, on stderr.
    process = subprocess.Popen(server_argv(kind_name, program, chosen, logdir=logdir), cwd=workspace, env=env,
                               stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)
    threading.Thread(target=watch_stdin, daemon=True, name="stdin").start()
    try:
        return _supervise(process, Path(program).name, chosen, closed=closed, stdout=stdout)
    finally:
        stop(process)


def _supervise(process: subprocess.Popen[bytes], program: str, port: int, *, closed: threading.Event,
               stdout: IO[str]) -> int:
    """Say when PROCESS listens on PORT; then wait for CLOSED (0) or for PROCESS to end (an error)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not listening(port):
        if process.poll() is not None:
            return _error(stdout, f"{program} exited with {process.returncode} before it listened on "
                          f"{LOOPBACK}:{port}", hint="its output above says why", status=ExitStatus.CONTAINER_FAILED)
        if closed.is_set():
            return 0
        if time.monotonic() > deadline:
            return _error(stdout, f"{program} did not listen on {LOOPBACK}:{port} within {START_TIMEOUT:.0f} s",
                          hint="its output above says why", status=ExitStatus.CONTAINER_FAILED)
        closed.wait(0.1)
    _say(stdout, {"ready": port})
    while not closed.wait(0.5):
        if process.poll() is not None:
            return _error(stdout, f"{program} exited with {process.returncode}", hint="its output above says why",
                          status=ExitStatus.CONTAINER_FAILED)
    return 0
