"""How busy a run kept the CPU: its processes' CPU time over its duration × the cores it could use (the
input-pipeline hint of the GPU activity block needs it).

The cores a run can use are the fewer of its CPU affinity and its cgroup's quota (``cpu.max``: `up --cpus 8`
sets 800000 100000), so a container limited to 8 of 64 cores counts 8.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2, inside a container with its own cgroup namespace


def children_cpu() -> float:
    """CPU seconds of our waited-for descendants (a DataLoader's workers count once their parent reaped them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def usable_cores(cpu_max: Path = CPU_MAX) -> float:
    """The cores this process may run on: its affinity, capped by the cgroup's quota where one is set.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "cpu.max"; _ = f.write_text("150000 100000\\n")
    >>> usable_cores(f) == min(1.5, len(os.sched_getaffinity(0)))
    True
    """
    try:
        cores: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, _, period = cpu_max.read_text().partition(" ")
        if quota != "max":
            cores = min(cores, int(quota) / int(period))
    except (OSError, ValueError, ZeroDivisionError):
        pass  # no cgroup v2 file here, or no quota: the affinity alone
    return cores


def cpu_share(seconds: float, duration: float, *, cpu_max: Path = CPU_MAX) -> float | None:
    """SECONDS of CPU over DURATION × the usable cores; None for a run of no duration.

    >>> cpu_share(3.0, 2.0, cpu_max=Path("/nonexistent")) == 1.5 / min(len(os.sched_getaffinity(0)), 10**6)
    True
    """
    return seconds / (duration * usable_cores(cpu_max)) if duration > 0 else None
