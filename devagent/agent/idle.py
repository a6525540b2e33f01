"""The agent's idle watcher: it samples the environment's own GPUs through NVML (utilisation, every few seconds),
keeps the last hour in the agent's home for `devagent gpus` (core/gpu/idle_rule.py has the record and the rules), and,
in an environment made with an idle limit (`up --idle-release`), gives the GPUs back once every GPU has been idle
for the limit with no ssh session open and no `devagent run` running: it writes the notebook's line and stops
the agent, which exits with RELEASED_EXIT — the container stops (restart policy "no"), the ledger sees that
exit status and counts the environment's leases free (devagent/control/engine/gpu_leases.py).

What never releases: an open ssh session (devagent/inside/sessions.py: any process whose parent is an sshd), a
`devagent run` process, a GPU NVML cannot read (unknown is not idle), an environment whose GPUs NVML does not see
at all (no driver: nothing is known, so nothing is given back).

Usage::

    watcher = IdleWatcher(limit=1800.0, name="exp", on_release=notebook.append, lib=nvml.pynvml)
    watcher.run(stopping)            # returns when STOPPING is set; watcher.released says whether it released
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from devagent.core import layout
from devagent.core.gpu.idle_rule import (
    NVML_STAND_IN,
    History,
    release_due,
    released_entry,
    sample_interval,
    usage_record,
)
from devagent.inside import nvml

log = logging.getLogger("devagent.idle")


def utilization(lib: Any) -> dict[str, int | None]:
    """Each GPU NVML sees, by UUID: its utilisation now (None where NVML cannot say). {} without NVML or GPUs.
    The caller has started NVML."""
    count = nvml.query(lib, lib.nvmlDeviceGetCount) or 0
    out: dict[str, int | None] = {}
    for index in range(count):
        handle = nvml.query(lib, lib.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            continue
        uuid = nvml.query(lib, lib.nvmlDeviceGetUUID, handle)
        if not uuid:
            continue
        rates = nvml.query(lib, lib.nvmlDeviceGetUtilizationRates, handle)
        value = getattr(rates, "gpu", None)
        out[uuid.decode(errors="replace") if isinstance(uuid, bytes) else str(uuid)] = (
            int(value) if isinstance(value, int) else None)
    return out


def devagent_runs(proc: Path = Path("/proc"), *, me: int | None = None) -> list[int]:
    """The pids of `devagent run` processes (``devagent run …`` or ``python -m devagent run …``), from
    PROC/PID/cmdline."""
    me = os.getpid() if me is None else me
    found: list[int] = []
    try:
        pids = [int(e.name) for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if os.path.basename(arg) == b"devagent" and argv[i + 1] == b"run":  # also `python -m devagent run`
                found.append(pid)
                break
    return found


class StandInNvml:
    """TEST SEAM (core/gpu_idle.NVML_STAND_IN): the GPUs and utilisation a test writes into PATH, in NVML's calls
    that `utilization` makes. A file that cannot be read is a driver that is not there."""

    class NVMLError(Exception):
        pass

    def __init__(self, path: Path) -> None:
        self.path = path
        self._gpus: list[tuple[str, int | None]] = []

    def nvmlInit(self) -> None:
        self._read()

    def nvmlShutdown(self) -> None:
        pass

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise self.NVMLError(f"stand-in NVML {self.path}: {exc}") from None
        self._gpus = [(str(k), v if isinstance(v, int) else None) for k, v in dict(data).items()]

    def nvmlDeviceGetCount(self) -> int:
        self._read()  # once per sample: the test changes the figures while the agent runs
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._gpus[handle][0]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        value = self._gpus[handle][1]
        if value is None:
            raise self.NVMLError("Not Supported")
        return type("Rates", (), {"gpu": value})()


def nvml_library() -> Any:
    """NVML for the watcher: pynvml, or the test-only stand-in NVML_STAND_IN names."""
    path = os.environ.get(NVML_STAND_IN)
    return StandInNvml(Path(path)) if path else nvml.pynvml


def _sessions_open() -> bool:
    from devagent.inside.sessions import sessions

    return bool(sessions())


class IdleWatcher:
    """Samples every INTERVAL seconds (core/gpu_idle.sample_interval of LIMIT); releases once due when LIMIT is
    set. ON_RELEASE gets the notebook entry to append. CLOCK: seconds that only move forward (the decision);
    WALL: the clock time for people."""

    def __init__(self, *, limit: float | None, name: str, on_release: Callable[[str], None], lib: Any = None,
                 usage_file: Path | None = None, interval: float | None = None,
                 busy: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc).astimezone()) -> None:
        self.limit, self.name, self.on_release = limit, name, on_release
        self.lib = nvml_library() if lib is None else lib
        self.usage_file = usage_file or layout.gpu_usage_file(Path.home())
        self.history = History(interval=interval or sample_interval(limit))
        self.busy = busy or (lambda: _sessions_open() or bool(devagent_runs()))
        self.clock, self.wall = clock, wall
        self.released = False
        self._last_busy = clock()  # the start counts as busy: `up` has just logged in

    def tick(self) -> bool:
        """One sample; True when the GPUs are to be given back now (the entry has been handed to ON_RELEASE)."""
        now = self.clock()
        self.history.add(now, utilization(self.lib))
        if self.busy():
            self._last_busy = now
        self._write(now)
        if self.limit is None or not release_due(self.history, now=now, limit=self.limit,
                                                 last_busy=self._last_busy):
            return False
        log.info("the GPUs were idle for %.0f s with nobody logged in: giving them back", self.limit)
        self.released = True
        self.on_release(released_entry(when=self.wall(), name=self.name, uuids=sorted(self.history.samples),
                                       limit=self.limit))
        return True

    def _write(self, now: float) -> None:
        record = usage_record(self.history, now=now, wall=self.wall(), limit=self.limit, last_busy=self._last_busy)
        tmp = self.usage_file.with_name(f".{self.usage_file.name}.tmp")
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.usage_file)
        except OSError as exc:  # a full disk: `devagent gpus` then shows the last record, or none
            log.warning("cannot write the GPU usage record %s: %s", self.usage_file, exc)

    def run(self, stopping: threading.Event) -> None:
        """Sample until STOPPING is set or the GPUs are given back (then STOPPING is set: the agent stops)."""
        error = nvml.init(self.lib)
        if error is not None:
            log.info("GPU usage is not sampled: %s", error)
            return
        try:
            while not stopping.is_set():
                try:
                    if self.tick():
                        stopping.set()
                        return
                except Exception:  # a sampling bug must not take sshd down with it
                    log.exception("the GPU usage sample failed")
                stopping.wait(self.history.interval)
        finally:
            nvml.shutdown(self.lib)
