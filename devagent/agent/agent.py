"""`devagent agent`: the container's main process (under `--init`).

It runs sshd as the login user and restarts it if it dies, writes the notebook header and a GPU check, runs the
save watcher and the observer of runs nobody wrapped, and shuts everything down cleanly on SIGTERM. It logs to
stdout, so `docker logs NAME` shows it. It never runs as root, and imports only the standard library, click,
watchdog and nvidia-ml-py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from devagent.core import layout
from devagent.inside.locations import open_notebook, ready_flag, record_agent, save_gpu_check

# What sshd's start waits for is imported here; the rest (the notebook, the GPU check and NVML, the idle watcher)
# where it is used, once sshd runs: every `up` waits for sshd's banner.
if TYPE_CHECKING:
    from devagent.agent.idle import IdleWatcher
    from devagent.agent.watcher import Watcher
    from devagent.core.gpu.check_report import GpuCheck
    from devagent.core.ssh import sshd
    from devagent.inside.notebook_writer import NotebookWriter

log = logging.getLogger("devagent.agent")

SSHD = layout.SSHD
STOP_POLL_S = 0.5  # the longest the main thread waits before it looks for a stop signal again


def supported_algorithms(ssh: str = "ssh", sshd_path: str = SSHD) -> sshd.Supported:
    """What this image's OpenSSH supports, from `ssh -Q` (the client is built from the same source as sshd), and
    sshd's own version from `sshd -V` (an sshd without -V names its version in the usage it prints instead)."""
    from devagent.core.ssh import sshd
    from devagent.core.ssh.command_line import client_argv

    def query(what: str) -> tuple[str, ...]:
        out = subprocess.run(client_argv("-Q", what, ssh=ssh), capture_output=True, text=True, check=True)
        return tuple(out.stdout.split())

    try:
        out = subprocess.run([sshd_path, "-V"], capture_output=True, text=True, check=False)
        version = sshd.openssh_version(out.stderr + out.stdout)
    except OSError:
        version = None
    return sshd.Supported(kex=query("kex"), ciphers=query("cipher"), macs=query("mac"), version=version)


class Adopted:
    """A child this process did not start itself: sshd, started by the container's shell before it exec'd the agent
    (core/mounts/home.py SSHD_FIRST). The pid survives the exec, so it is our child all the same: the same calls as
    the subprocess.Popen it stands for, on os.waitpid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> bool:
        """False when another thread reaped it first (and is about to set returncode)."""
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            return False
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)
        return True

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            if deadline is None and self._reap(0):
                continue
            if self.poll() is None:
                if deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(SSHD, timeout or 0.0)
                time.sleep(0.02)
        return self.returncode

    def _signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


def adopted_sshd(environ: MutableMapping[str, str] = os.environ) -> Adopted | None:
    """The sshd the container's shell started (its pid in layout.SSHD_PID_ENV, taken out of ENVIRON so that no process
    of the agent's inherits it), if it is our child; None: the agent starts sshd itself."""
    text = environ.pop(layout.SSHD_PID_ENV, "")
    if not text.isdigit():
        return None
    sshd_proc = Adopted(int(text))
    try:
        pid, status = os.waitpid(sshd_proc.pid, os.WNOHANG)  # is it ours (and still running)?
    except ChildProcessError:
        log.warning("%s=%s is not a child of the agent: the agent starts sshd itself", layout.SSHD_PID_ENV, text)
        return None
    if pid:  # it has already exited, and is reaped now: waiting for it again would never end
        log.warning("sshd %s exited before the agent started (%s): the agent starts sshd itself", text,
                    os.waitstatus_to_exitcode(status))
        return None
    return sshd_proc


class Supervised:
    """A child process kept alive: restarted with a growing back-off when it exits, until stop().

    ADOPT: the first run is that process, already started (adopted_sshd); the restarts run ARGV."""

    def __init__(self, name: str, argv: list[str], *, max_backoff: float = 30.0, adopt: Adopted | None = None) -> None:
        self.name, self.argv, self.max_backoff = name, argv, max_backoff
        self.restarts = 0
        self._adopt = adopt
        self._proc: subprocess.Popen[bytes] | Adopted | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            started = time.monotonic()
            # The child's stdout/stderr are ours: `docker logs` shows sshd's messages next to the agent's.
            if self._adopt is not None:
                self._proc, self._adopt = self._adopt, None
            else:
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
    notebook: Path | None = None  # default: <workspace>/lab-notebook.md (layout.default_notebook)
    launch_context: Path = Path(layout.LAUNCH_CONTEXT_PATH)
    polling: bool | None = None
    python: str | None = None
    watch: tuple[str, ...] = ()  # globs; empty: the watcher's default (**/*.py)
    idle_release: float | None = None  # seconds: give the GPUs back after so long idle (agent/idle.py)
    session_env: str = layout.SESSION_ENV_PATH  # put there by `up` from a devcontainer.json, or absent

    @property
    def notebook_path(self) -> Path:
        return self.notebook or layout.default_notebook(self.workspace)


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def run(config: AgentConfig, *, stop: threading.Event | None = None) -> int:
    """Run the agent until SIGTERM/SIGINT (or STOP is set). Returns the exit status."""
    if os.getuid() == 0:
        log.error("refusing to run as root: the agent and sshd run as the login user")
        return 1
    stopping = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stopping.set())

    record_agent(config.workspace, config.notebook_path)
    adopt = adopted_sshd()
    sshd_proc = Supervised("sshd", [SSHD, "-D", "-e", "-f", config.sshd_config, *_session_env_option(config)],
                           adopt=adopt)
    sshd_proc.start()
    _start_heartbeat(config, sshd_proc, stopping)
    watcher = _start_watcher(config)
    notebook = open_notebook(config.notebook_path, config.launch_context, workspace=config.workspace)
    worker = threading.Thread(target=_notebook_work, args=(config, notebook, stopping), name="notebook",
                              daemon=True)
    worker.start()
    observer = threading.Thread(target=_observe_runs, args=(config, watcher, stopping), name="observer",
                                daemon=True)
    observer.start()
    idle = _start_idle_watcher(config, notebook, stopping)

    log.info("agent ready: workspace %s, notebook %s", config.workspace, config.notebook_path)
    # Short waits: a handler runs only once the main thread's blocking call returns, and a SIGTERM that lands
    # just before an endless wait began would wait for ever (docker stop would SIGKILL us, unflushed).
    while not stopping.wait(STOP_POLL_S):
        pass
    log.info("stopping")
    if watcher is not None:
        watcher.stop()
    sshd_proc.stop()
    if notebook.pending:
        notebook.flush_pending()
    if idle.released:  # the exit status the GPU ledger reads: this stopped environment holds no GPU
        from devagent.core.gpu.idle_rule import RELEASED_EXIT

        log.info("stopped: the GPUs are given back (`devagent up` takes them anew)")
        return RELEASED_EXIT
    log.info("stopped")
    return 0


def _session_env_option(config: AgentConfig) -> list[str]:
    """sshd's `-o SetEnv ...` for a devcontainer.json's containerEnv/remoteEnv (core/ssh/sshd.py), or nothing."""
    try:
        text = Path(config.session_env).read_text()
    except FileNotFoundError:
        return []
    from devagent.core.ssh import sshd  # only here: its imports would delay every container's sshd by ~10 ms
    try:
        base = sshd.parse_setenv(Path(config.sshd_config).read_text())
    except OSError:
        base = {}
    option = sshd.session_setenv(base, text, os.environ)
    return ["-o", option] if option else []


def _start_idle_watcher(config: AgentConfig, notebook: NotebookWriter, stopping: threading.Event) -> IdleWatcher:
    """The GPU usage sampler, and the idle limit's keeper: once `up` has committed (a release writes the
    notebook, which a failed `up` must not)."""
    from devagent.agent.idle import IdleWatcher  # NVML's bindings: imported once sshd runs

    watcher = IdleWatcher(limit=config.idle_release, name=os.environ.get("DEVAGENT_NAME", "NAME"),
                          on_release=lambda entry: notebook.append(entry))  # noqa: PLW0108 - looked up late

    def work() -> None:
        while not ready_flag().exists():
            if stopping.wait(0.2):
                return
        watcher.run(stopping)

    threading.Thread(target=work, name="idle", daemon=True).start()
    return watcher


def _start_heartbeat(config: AgentConfig, sshd_proc: Supervised, stopping: threading.Event) -> None:
    """Docker's health check reads what this thread writes (core/health.py)."""
    from devagent.agent import heartbeat as beat
    from devagent.core.health import sshd_problems
    from devagent.core.spec import SSHD_PORT

    try:
        port = beat.sshd_port(Path(config.sshd_config).read_text(), SSHD_PORT)
    except OSError:
        port = SSHD_PORT

    def problems() -> list[str]:
        running = sshd_proc.running
        return sshd_problems(running=running, restarts=sshd_proc.restarts, port=port,
                             listening=running and beat.listening(port))

    threading.Thread(target=beat.keep_beating, args=(beat.health_file(), problems, stopping), name="heartbeat",
                     daemon=True).start()


def _notebook_work(config: AgentConfig, notebook: NotebookWriter, stopping: threading.Event) -> None:
    """GPU check and the notebook, once `up` has committed; then retry kept-back entries. The check waits too:
    its torch probe is seconds of CPU (torch's import in the user's interpreter), which would compete with `up`'s
    proof login for the server's cores; nobody reads it before the commit."""
    from devagent.core.gpu.check_report import render_gpu_check

    # The notebook is the user's: a failed `up` must not write to it, so wait for up's commit.
    while not ready_flag().exists():
        if stopping.wait(0.2):
            return
    check = _gpu_check(config)
    try:
        notebook.ensure_header()
        if check is not None:
            notebook.append(render_gpu_check(check, now=_now()))
    except OSError as exc:
        log.error("cannot write the notebook %s: %s", config.notebook_path, exc)
    # Entries kept back by a full or read-only disk are retried until they land.
    while not stopping.wait(30):
        if notebook.pending:
            notebook.flush_pending()


def _observe_runs(config: AgentConfig, watcher: Watcher | None, stopping: threading.Event) -> None:
    """Runs nobody wrapped get a section too (devagent/runs/observer.py), once `up` has committed."""
    from devagent.agent.watcher import DEFAULT_INCLUDE, SaveHandler
    from devagent.runs.observer import RunObserver
    from devagent.runs.place import RunPlace

    while not ready_flag().exists():
        if stopping.wait(0.2):
            return
    handler = watcher.handler if watcher is not None else SaveHandler(
        None, root=config.workspace, include_globs=config.watch or DEFAULT_INCLUDE)  # type: ignore[arg-type]
    RunObserver(RunPlace(config.workspace, config.notebook_path), is_watched=handler.is_watched).run(stopping)


def _start_watcher(config: AgentConfig) -> Watcher | None:
    from devagent.agent.journal import Journal
    from devagent.agent.watcher import DEFAULT_INCLUDE, start_watcher  # watchdog: only the agent needs it

    try:
        watcher = start_watcher(config.workspace, Journal(config.workspace), polling=config.polling,
                                include_globs=config.watch or DEFAULT_INCLUDE)
    except OSError as exc:
        log.error("save detection is off: %s", exc)
        return None
    return watcher  # the watcher logs its own mode (inotify or polling)


def _gpu_check(config: AgentConfig) -> GpuCheck | None:
    # Imported once sshd runs: NVML's bindings and the probe cost ~17 ms that a login would otherwise wait for.
    from devagent.agent.gpucheck import run_gpu_check
    from devagent.core.gpu.check_report import summary_line

    try:
        check = run_gpu_check(python=config.python)
    except Exception:  # a failed probe must not take sshd down with it
        log.exception("the GPU check failed")
        return None
    log.info("GPU check: %s", summary_line(check))
    save_gpu_check(check, _now())
    return check
