"""What the GPU timeline costs a run: CPU at the default interval, and memory for a week-long run.

    .venv/bin/python benchmarks/gpu_sampler_bench.py [--quick] [--gpus 8]

Figures (target in brackets), each beside a baseline measured in the same run:

- CPU per sample of the run's sampler (runs/gpu_memory.py with the timeline, over GPUS GPUs and this process's
  real /proc tree) against the same sampler with the timeline switched off (the memory sampler as it was), and
  the share of one core at the default 0.5 s interval [timeline on: < 1 % of a core];
- the same sampler's thread, really running at 0.5 s for a few seconds, measured as process CPU time against
  the same wait with no sampler;
- memory of one GPU's timeline after 7 days of 0.5 s samples (1,209,600) pushed through the downsampler,
  against the same samples kept raw (extrapolated from a day) [bounded: the same size after a day or a week].

**NVML here is a stand-in** (this machine has no GPU): every call returns a constant in well under a
microsecond. On a GPU machine a real NVML call costs 1-7 µs (docs/explanation/performance.md), 4 calls per GPU
per sample for the timeline, so add up to 28 µs per GPU per sample there: with 8 GPUs at 0.5 s, < 0.05 % of a
core. The real-GPU figure is still to be measured on a lent machine. It reports, it does not gate: exit status 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devagent.core.runs.gpu_timeline import DeviceTimeline
from devagent.runs.gpu_memory import GpuSampler

INTERVAL = 0.5  # the sampler's default (runs/streaming.py)
WEEK = 7 * 24 * 3600


class StandInNvml:
    """The calls the sampler makes, answering constants (a busy GPU with one process of this tree on it)."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus
        self.me = [SimpleNamespace(pid=os.getpid(), usedGpuMemory=3 << 30)]
        self.memory = SimpleNamespace(total=80 << 30, used=4 << 30, free=76 << 30)
        self.rates = SimpleNamespace(gpu=93, memory=40)

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: return self.gpus
    def nvmlDeviceGetHandleByIndex(self, index: int) -> int: return index
    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any: return self.memory
    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]: return self.me
    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]: return []
    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any: return self.rates
    def nvmlDeviceGetPowerUsage(self, handle: int) -> int: return 612_000
    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int: return 61


def per_sample_cpu(gpus: int, samples: int, *, timeline: bool) -> float:
    sampler = GpuSampler.open(interval=INTERVAL, nvml=StandInNvml(gpus))
    assert sampler is not None
    if not timeline:
        sampler.timelines.record = lambda handles: None  # type: ignore[method-assign]
    start = time.process_time()
    for _ in range(samples):
        sampler.sample(os.getpid())
    return (time.process_time() - start) / samples


def thread_cpu(gpus: int, seconds: float, *, sampler_on: bool) -> float:
    start = time.process_time()
    sampler = GpuSampler.open(interval=INTERVAL, nvml=StandInNvml(gpus)) if sampler_on else None
    if sampler is not None:
        sampler.follow(os.getpid())
    time.sleep(seconds)
    if sampler is not None:
        sampler.stop()
    return time.process_time() - start


def week_memory(samples: int) -> tuple[int, int]:
    """(bytes held by a timeline of SAMPLES samples, bytes of a day of the same samples kept raw)."""
    tracemalloc.start()
    timeline = DeviceTimeline(0)
    for i in range(samples):
        timeline.add(i * INTERVAL, util=i % 101, mem_used=(i % 977) << 20, mem_total=80 << 30, power_w=600.0 + i % 50,
                     temp_c=60, dt=INTERVAL)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    day = int(24 * 3600 / INTERVAL)
    tracemalloc.start()
    raw = [(i * INTERVAL, i % 101, (i % 977) << 20, 600.0 + i % 50, 60) for i in range(day)]
    raw_day = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del raw, timeline
    return held, raw_day


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gpus", type=int, default=8)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores; NVML: a stand-in "
          "(no GPU here)")

    samples = 200 if args.quick else 1000
    off = min(per_sample_cpu(args.gpus, samples, timeline=False) for _ in range(3))
    on = min(per_sample_cpu(args.gpus, samples, timeline=True) for _ in range(3))
    print(f"CPU per sample, {args.gpus} GPUs: {on * 1e6:.0f} µs with the timeline vs {off * 1e6:.0f} µs without "
          f"(the memory sampler alone) = {on / off:.2f}×; at one sample per {INTERVAL} s: {100 * on / INTERVAL:.3f} % "
          f"of a core [target < 1 %]")

    seconds = 3.0 if args.quick else 10.0
    idle = thread_cpu(args.gpus, seconds, sampler_on=False)
    busy = thread_cpu(args.gpus, seconds, sampler_on=True)
    print(f"the sampler's thread for {seconds:.0f} s: {busy * 1000:.1f} ms of CPU vs {idle * 1000:.1f} ms with no "
          f"sampler = {100 * (busy - idle) / seconds:.3f} % of a core [target < 1 %]")

    week = int(WEEK / INTERVAL)
    day_samples = week // 7
    start = time.perf_counter()
    held_week, raw_day = week_memory(week)
    held_day, _ = week_memory(day_samples)
    took = time.perf_counter() - start
    print(f"one GPU's timeline after 7 days at {INTERVAL} s ({week:,} samples): {held_week / 1024:.0f} KiB "
          f"(after 1 day: {held_day / 1024:.0f} KiB) vs {7 * raw_day / (1 << 20):.0f} MiB for the samples kept raw "
          f"(7 × a day measured) = {held_week / (7 * raw_day):.4f}×; {args.gpus} GPUs: "
          f"{args.gpus * held_week / 1024:.0f} KiB [bounded] ({took:.1f} s to simulate)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
