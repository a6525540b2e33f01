"""The GPU memory a run's process tree uses, sampled through NVML while it runs (the peak goes into the section).

Without nvidia-ml-py, a driver or a GPU there is no sampler at all (devagent/inside/nvml.py guards NVML).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devagent.inside import nvml as nvml_guard
from devagent.runs.gpu_timeline_recorder import GpuTimelines
from devagent.runs.proctree import process_tree

log = logging.getLogger("devagent.process")


@dataclass
class GpuUsage:
    """What a GpuSampler saw: the peak of the tree's summed GPU memory, the GPUs it was on and their memory."""

    peak_bytes: int = 0
    devices: set[int] = field(default_factory=set)
    totals: dict[int, int] = field(default_factory=dict)  # device index → total memory, where NVML tells

    @property
    def total_bytes(self) -> int | None:
        known = [self.totals[d] for d in self.devices if d in self.totals]
        return sum(known) if known else None


class GpuSampler:
    """Samples, in a daemon thread, the GPU memory NVML attributes to a process tree.

    Where NVML's pids are from another pid namespace (a container without the host's pids, the usual case:
    NVML reports host pids) none of them matches the tree; the sampler then counts the rise of each device's used
    memory over what it was when the sampler opened, which includes anything else that started on that GPU.

    >>> GpuSampler.start(4242, nvml=None) is None   # no NVML: no sampler, no thread
    True
    """

    def __init__(self, nvml: Any, handles: dict[int, Any], *, interval: float, proc: Path = Path("/proc")) -> None:
        self._nvml = nvml
        self._handles = handles
        self._interval = interval
        self._proc = proc
        self._baseline: dict[int, int] = {}
        self.usage = GpuUsage()
        self.timelines = GpuTimelines(nvml)  # what each GPU did over time (the section's GPU activity)
        for index, handle in handles.items():
            memory = self._field(nvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                self.usage.totals[index] = int(memory.total)
                self._baseline[index] = int(memory.used)
        self._root: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, *, interval: float, nvml: Any = nvml_guard.pynvml,
             proc: Path = Path("/proc")) -> GpuSampler | None:
        """A sampler over every GPU NVML sees; None without NVML, when it cannot start, or with no GPU."""
        error = nvml_guard.init(nvml)
        if error is not None:
            log.debug("no GPU sampling: %s", error)
            return None
        try:
            handles = {}
            for index in range(nvml.nvmlDeviceGetCount()):
                with contextlib.suppress(nvml.NVMLError):  # a lost GPU is left out
                    handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            if handles:
                return cls(nvml, handles, interval=interval, proc=proc)
        except Exception as exc:
            log.debug("no GPU sampling: %s", nvml_guard.error_text(exc))
        nvml_guard.shutdown(nvml)
        return None

    @classmethod
    def start(cls, root: int, *, interval: float = 0.5, nvml: Any = nvml_guard.pynvml,
              proc: Path = Path("/proc")) -> GpuSampler | None:
        """Open a sampler and follow ROOT's tree now (a process that is already running, such as an observed
        one); None where ``open`` gives none."""
        sampler = cls.open(interval=interval, nvml=nvml, proc=proc)
        if sampler is not None:
            sampler.follow(root)
        return sampler

    def follow(self, root: int) -> None:
        """Sample ROOT's tree every interval, in a daemon thread, until ``stop``."""
        self._root = root
        self._thread = threading.Thread(target=self._run, name="devagent-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int, int | None, int]:
        """End the sampling and release NVML. Returns (peak bytes, total bytes of the GPUs used or None when
        none was, number of GPUs used); ``usage`` keeps the details."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        nvml_guard.shutdown(self._nvml)
        return self.usage.peak_bytes, self.usage.total_bytes, len(self.usage.devices)

    def sample(self, root: int) -> int:
        """One sample of ROOT's tree: its GPU memory now, summed over GPUs (also folded into ``usage``)."""
        tree = process_tree(root, self._proc)
        total = 0
        for index, handle in self._handles.items():
            used = self._device_bytes(index, handle, tree)
            if used is not None:
                self.usage.devices.add(index)
                total += used
        self.usage.peak_bytes = max(self.usage.peak_bytes, total)
        self.timelines.record(self._handles)
        return total

    def _device_bytes(self, index: int, handle: Any, tree: set[int]) -> int | None:
        """The tree's memory on one GPU, or None when the tree is not on it."""
        running = [*(self._field(self._nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []),
                   *(self._field(self._nvml.nvmlDeviceGetGraphicsRunningProcesses, handle) or [])]
        known = 0
        matched = unknown = foreign = False
        seen: set[int] = set()
        for process in running:
            pid = int(process.pid)
            if pid in seen:  # a process with a compute and a graphics context is listed twice
                continue
            seen.add(pid)
            if pid in tree:
                matched = True
                if process.usedGpuMemory is None:  # NVML_VALUE_NOT_AVAILABLE (no permission, some vGPUs)
                    unknown = True
                else:
                    known += int(process.usedGpuMemory)
            elif not (self._proc / str(pid)).exists():
                foreign = True
        if matched and not unknown:
            return known
        if (unknown or foreign) and index in self._baseline:
            memory = self._field(self._nvml.nvmlDeviceGetMemoryInfo, handle)
            rise = int(memory.used) - self._baseline[index] if memory is not None else 0
            if rise > 0:
                return max(rise, known)
        return known if matched else None

    def _run(self) -> None:
        assert self._root is not None
        while not self._stop.wait(self._interval):
            try:
                self.sample(self._root)
            except Exception:  # never let a sampling error end the run's streaming or the thread
                log.debug("GPU sample failed", exc_info=True)

    def _field(self, query: Callable[..., Any], *args: Any) -> Any:
        return nvml_guard.query(self._nvml, query, *args)
