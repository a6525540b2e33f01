"""`devagent agent`: the container's main process (under `--init`).

It runs sshd as the login user and restarts it if it dies, writes the notebook header and a GPU check, runs the
save watcher, and shuts everything down cleanly on SIGTERM. It logs to stdout, so `docker logs NAME` shows it.
It never runs as root, and imports only the standard library, click, watchdog and nvidia-ml-py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from devagent.core import sshd

log = logging.getLogger("devagent.agent")

SSHD = "/usr/sbin/sshd"


def supported_algorithms(ssh: str = "ssh") -> sshd.Supported:
    """What this image's OpenSSH supports, from `ssh -Q` (the client is built from the same source as sshd)."""

    def query(what: str) -> tuple[str, ...]:
        out = subprocess.run([ssh, "-Q", what], capture_output=True, text=True, check=True)
        return tuple(out.stdout.split())

    return sshd.Supported(kex=query("kex"), ciphers=query("cipher"), macs=query("mac"))


class Supervised:
    """A child process kept alive: restarted with a growing back-off when it exits, until stop()."""

    def __init__(self, name: str, argv: list[str], *, max_backoff: float = 30.0) -> None:
        self.name, self.argv, self.max_backoff = name, argv, max_backoff
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            started = time.monotonic()
            # The child's stdout/stderr are ours: `docker logs` shows sshd's messages next to the agent's.
            self._proc = subprocess.Popen(self.argv)
            log.info("%s started (pid %d)", self.name, self._proc.pid)
            code = self._proc.wait()
            if self._stopping.is_set():
                break
            self.restarts += 1
            if time.monotonic() - started > 60:
                backoff = 0.5
            log.warning("%s exited with status %d; restarting in %.1f s", self.name, code, backoff)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        proc = self._proc
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)


@dataclass
class AgentConfig:
    workspace: Path
    sshd_config: str
    notebook: Path | None = None  # default: <workspace>/lab-notebook.md
    launch_context: Path = Path(sshd.LAUNCH_CONTEXT_PATH)
    polling: bool | None = None
    python: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def notebook_path(self) -> Path:
        return self.notebook or self.workspace / "lab-notebook.md"


def state_dir() -> Path:
    return Path.home() / ".cache" / "devagent"


def default_workspace() -> Path:
    """$DEVAGENT_WORKSPACE (set in the image), else ~/workspace (ssh sessions do not see the image's env)."""
    return Path(os.environ.get("DEVAGENT_WORKSPACE") or Path.home() / "workspace")


def running_notebook() -> Path:
    """The notebook the running agent writes (it records it at start), for commands run over ssh."""
    try:
        return Path(json.loads((state_dir() / "agent.json").read_text())["notebook"])
    except (FileNotFoundError, KeyError, ValueError):
        return default_workspace() / "lab-notebook.md"


def ready_flag() -> Path:
    """Exists once `devagent up` has proven the login through the alias (host/provision.py READY_COMMAND)."""
    return state_dir() / "ready"


def _wait_ready(stop: threading.Event, poll: float = 0.2) -> bool:
    """Wait until `up` commits; the notebook is the user's, so a failed `up` must not write to it."""
    while not ready_flag().exists():
        if stop.wait(poll):
            return False
    return True


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def run(config: AgentConfig, *, stop: threading.Event | None = None) -> int:
    """Run the agent until SIGTERM/SIGINT (or STOP is set). Returns the exit status."""
    if os.getuid() == 0:
        log.error("refusing to run as root: the agent and sshd run as the login user")
        return 1
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())

    state_dir().mkdir(parents=True, exist_ok=True)
    (state_dir() / "agent.json").write_text(json.dumps({"workspace": str(config.workspace),
                                                         "notebook": str(config.notebook_path)}))
    sshd_proc = Supervised("sshd", [SSHD, "-D", "-e", "-f", config.sshd_config])
    sshd_proc.start()

    watcher = _start_watcher(config)
    notebook_box: list[object] = []

    def notebook_work() -> None:
        check = _gpu_check(config)  # runs while up is still proving the login
        if not _wait_ready(stop):
            return
        notebook = _open_notebook(config)
        notebook_box.append(notebook)
        if check is not None:
            _append(notebook, render_gpu_entry(check))
        # Entries kept back by a full or read-only disk are retried until they land.
        while not stop.wait(30):
            if notebook.pending:
                notebook.flush_pending()

    threading.Thread(target=notebook_work, name="notebook", daemon=True).start()

    log.info("agent ready: workspace %s, notebook %s", config.workspace, config.notebook_path)
    stop.wait()
    log.info("stopping")
    if watcher is not None:
        watcher.stop()
    sshd_proc.stop()
    for notebook in notebook_box:
        if notebook.pending:  # type: ignore[attr-defined]
            notebook.flush_pending()  # type: ignore[attr-defined]
    log.info("stopped")
    return 0


def open_notebook(path: Path, launch_context: Path = Path(sshd.LAUNCH_CONTEXT_PATH)):  # type: ignore[no-untyped-def]
    """The notebook writer, with the header rendered from the launch context `up` put into the container."""
    from devagent.container.notebook_writer import NotebookWriter
    from devagent.core.notebook import LaunchContext, render_header

    try:
        header = render_header(LaunchContext.from_json(launch_context.read_text()))
    except FileNotFoundError:
        log.warning("no launch context at %s: the notebook header will be minimal", launch_context)
        header = "# Lab notebook\n"
    return NotebookWriter(path, header)


def _open_notebook(config: AgentConfig):  # type: ignore[no-untyped-def]
    writer = open_notebook(config.notebook_path, config.launch_context)
    try:
        writer.ensure_header()
    except OSError as exc:
        log.error("cannot write the notebook %s: %s", config.notebook_path, exc)
    return writer


def _start_watcher(config: AgentConfig):  # type: ignore[no-untyped-def]
    from devagent.container.journal import Journal
    from devagent.container.watcher import start_watcher

    try:
        watcher = start_watcher(config.workspace, Journal(config.workspace), polling=config.polling)
    except OSError as exc:
        log.error("save detection is off: %s", exc)
        return None
    log.info("watching %s for saves (%s)", config.workspace, watcher.mode)
    return watcher


def _gpu_check(config: AgentConfig):  # type: ignore[no-untyped-def]
    from devagent.container.gpucheck import run_gpu_check
    from devagent.core.gpu import summary_line

    try:
        check = run_gpu_check(python=config.python)
    except Exception:
        log.exception("the GPU check failed")
        return None
    log.info("GPU check: %s", summary_line(check))
    return check


def render_gpu_entry(check) -> str:  # type: ignore[no-untyped-def]
    from devagent.core.gpu import render_gpu_check

    return render_gpu_check(check, now=_now())


def _append(notebook, entry: str) -> None:  # type: ignore[no-untyped-def]
    try:
        notebook.append(entry)
    except Exception:
        log.exception("could not append to the notebook")
