"""Runs nobody wrapped: a Python process running a watched script gets an "observed run" section when it ends.

The agent scans ``/proc`` about once a second for processes of its own user whose command line names a watched
script in the workspace (``python train.py`` typed in a VS Code terminal) and that `devagent run` did not start
(those carry ``DEVAGENT_RUN`` in their environment). It follows each one to its end, sampling its GPU memory on
the way, then appends what can be known: argv, hyperparameters, duration, metrics from the helper's file or
Lightning's metrics.csv, GPU memory. The exit status of a process that is not our child cannot be known; the
section says so. A process shorter than the scan interval can be missed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from devagent.core import layout
from devagent.core.runs.record import GitState
from devagent.core.runs.secrets import redact_argv
from devagent.inside.sessions import started_by
from devagent.runs.finish import Finished, code_state, finish_run
from devagent.runs.gpu_memory import GpuSampler
from devagent.runs.place import RunPlace
from devagent.runs.proctree import proc_stat
from devagent.runs.runlog import RunLog
from devagent.runs.script import find_script

log = logging.getLogger("devagent.observer")


@dataclass
class Observed:
    """A process being followed."""

    pid: int
    argv: list[str]
    cwd: Path
    started: datetime
    environ: dict[str, str]
    sampler: GpuSampler | None = None
    git: GitState | None = None
    number: int | None = None
    started_by: str | None = None
    first_seen: float = field(default_factory=time.monotonic)
    workers: set[int] = field(default_factory=set)  # its children that are Python too: a launcher's ranks


class RunObserver:
    """Finds and follows unwrapped runs of watched scripts; ``scan()`` is one pass, ``run()`` loops."""

    def __init__(self, place: RunPlace, *, is_watched: Callable[[str], bool], interval: float = 1.0,
                 proc: Path = Path("/proc"), uid: int | None = None) -> None:
        self.place = place
        self.runs = RunLog(place.workspace)
        self.is_watched = is_watched
        self.interval = interval
        self.proc = proc
        self.uid = os.getuid() if uid is None else uid
        self.following: dict[int, Observed] = {}
        self._ignored: set[tuple[int, int]] = set()  # (pid, start ticks) already judged not a run
        self._boot = _boot_time(proc)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # one bad pass must not end observation
                log.exception("observer pass failed")

    def scan(self) -> list[int]:
        """Start following new runs, finish those that ended. Returns the run numbers finished in this pass."""
        alive = self._pids()
        finished = []
        for pid in list(self.following):
            if pid not in alive:
                number = self._finish(self.following.pop(pid))
                if number is not None:
                    finished.append(number)
        # Forget judged processes that are gone (a long-lived environment starts many short ones).
        self._ignored = {(pid, ticks) for pid, ticks in self._ignored if alive.get(pid, (None, 0))[0] == ticks}
        for pid, (ticks, ppid) in sorted(alive.items()):
            if pid in self.following or (pid, ticks) in self._ignored:
                continue
            if ppid in self.following:  # a DataLoader worker, or a launcher's rank: part of the run we follow
                self.following[ppid].workers.add(pid)
                continue
            found = self._candidate(pid, ticks)
            if found is None:
                self._ignored.add((pid, ticks))
                continue
            self.following[pid] = found
            log.info("following an unwrapped run: pid %d, %s", pid, " ".join(redact_argv(found.argv)))
        return finished

    def _pids(self) -> dict[int, tuple[int, int]]:
        """Our user's live processes: pid -> (start time in clock ticks, parent pid); a reused pid gets a new
        start time."""
        out: dict[int, tuple[int, int]] = {}
        for entry in os.scandir(self.proc):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != self.uid:
                    continue
            except OSError:
                continue
            stat = proc_stat(entry.path)
            if stat is None or stat.state == "Z" or stat.start_ticks is None:
                continue  # gone, or a zombie: it has ended
            out[int(entry.name)] = (stat.start_ticks, stat.ppid)
        return out

    def _candidate(self, pid: int, ticks: int) -> Observed | None:
        found = None if pid == os.getpid() else _python_process(self.proc / str(pid))
        if found is None:
            return None
        argv, environ, cwd = found
        if environ.get("LOCAL_RANK", "0") != "0" and environ.get("WORLD_SIZE", "1") != "1":
            # One rank of a distributed run whose launcher we do not follow (not Python, or started before we
            # looked): its local rank 0 stands for the node, the others are not runs of their own.
            return None
        script, _ = find_script(argv, cwd)
        if script is None or not self.is_watched(os.path.abspath(cwd / script)):
            return None
        started = datetime.fromtimestamp(self._boot + ticks / os.sysconf("SC_CLK_TCK"), timezone.utc).astimezone()
        # Who, while the ssh session that started it is still there to be read (inside/sessions.py).
        observed = Observed(pid=pid, argv=argv, cwd=cwd, started=started, environ=environ,
                            git=code_state(self.place, cwd, number=None), started_by=started_by(pid, proc=self.proc))
        observed.sampler = GpuSampler.start(pid)
        return observed

    def _finish(self, run: Observed) -> int | None:
        ended = datetime.now(timezone.utc).astimezone()
        peak = total = None
        gpus = 0
        devices: tuple[int, ...] = ()
        if run.sampler is not None:
            peak, total, gpus = run.sampler.stop()
            devices = tuple(sorted(run.sampler.usage.devices))
        number = self.runs.reserve(run.started.isoformat(timespec="seconds"))
        # A launcher's (torchrun's) own pid writes nothing: its rank 0 does, under the rank's pid.
        lab_file = next((f for f in (layout.observed_lab_file(self.place.workspace, pid)
                                     for pid in (run.pid, *sorted(run.workers))) if f.is_file()),
                        layout.observed_lab_file(self.place.workspace, run.pid))
        finished = Finished(
            number=number, argv=run.argv, cwd=run.cwd, started=run.started,
            duration_s=max(0.0, (ended - run.started).total_seconds()), exit_code=None, observed=True,
            lab_file=lab_file if lab_file.is_file() else None, gpu_peak=peak, gpu_total=total, gpus_used=gpus,
            gpu_devices=devices, git=run.git, environ=run.environ, started_by=run.started_by,
        )
        try:
            finish_run(self.place, self.runs, finished)
        except Exception:
            log.exception("could not write the observed run %d", number)
            return None
        if lab_file.is_file():  # the run's own folder keeps it, as for a wrapped run
            with contextlib.suppress(OSError):
                self.runs.make_run_dir(number)  # no link followed on the way
                lab_file.rename(layout.run_lab_file(self.place.workspace, number))
        log.info("observed run %d ended: %s", number, " ".join(redact_argv(run.argv)))
        return number


def _python_process(base: Path) -> tuple[list[str], dict[str, str], Path] | None:
    """(argv, environment, cwd) of the process at /proc/PID when it is a Python that `devagent run` did not
    start; None otherwise (or when it is gone)."""
    try:
        argv = [a.decode(errors="replace") for a in (base / "cmdline").read_bytes().split(b"\0") if a]
        if not argv or not Path(argv[0]).name.startswith("python"):
            return None
        if any(Path(a).name == "devagent" for a in argv[1:3]) or argv[1:3] == ["-m", "devagent"]:
            return None  # `devagent run` itself
        environ = _environ((base / "environ").read_bytes())
        cwd = Path(os.readlink(base / "cwd"))
    except OSError:
        return None
    if "DEVAGENT_RUN" in environ:
        return None  # started by `devagent run`, which writes its own section
    return argv, environ, cwd


def _environ(raw: bytes) -> dict[str, str]:
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _boot_time(proc: Path) -> float:
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()
