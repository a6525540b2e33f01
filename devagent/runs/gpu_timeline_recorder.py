"""Each GPU's utilisation, memory, power and temperature over a run, sampled through NVML beside the memory
sampler (gpu_memory.py calls ``record`` on each of its samples, in its thread).

Cost: one reading is about 4 NVML calls per GPU (1-7 µs each on a GPU machine) plus a few µs of bookkeeping,
at the memory sampler's 0.5 s: far under 1 % of a core (benchmarks/gpu_sampler_bench.py). Memory: at most
core.runs.gpu_timeline.BUCKETS buckets per GPU, whatever the run's length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from devagent.core.runs.gpu_timeline import DeviceTimeline
from devagent.inside.gpu_readings import read_gpu


class GpuTimelines:
    """The timelines of every GPU NVML sees; the run's own are picked at the end (``of``)."""

    def __init__(self, nvml: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml = nvml
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self.devices: dict[int, DeviceTimeline] = {}

    def record(self, handles: Mapping[int, Any]) -> None:
        """One reading of each GPU in HANDLES, now."""
        now = self._clock()
        dt, self._last = now - self._last, now
        for index, handle in handles.items():
            reading = read_gpu(self._nvml, handle)
            timeline = self.devices.setdefault(index, DeviceTimeline(index))
            timeline.add(now - self._started, util=reading.util, mem_used=reading.mem_used,
                         mem_total=reading.mem_total, power_w=reading.power_w, temp_c=reading.temp_c, dt=dt)

    def of(self, devices: set[int] | tuple[int, ...]) -> tuple[DeviceTimeline, ...]:
        """The timelines of DEVICES (the GPUs the run's processes were seen on), in index order."""
        return tuple(self.devices[d] for d in sorted(devices) if d in self.devices)
