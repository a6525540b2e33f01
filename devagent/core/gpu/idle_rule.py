"""Idle GPUs: an environment's GPU utilisation over the last hour, how long each GPU has been idle, and when an
environment made with an idle limit (`up --idle-release`) gives its GPUs back. Pure: samples, times and the
record's text come in as arguments; the agent samples (devagent/agent/idle.py) and `devagent gpus` shows.

The agent keeps the record in its home (``~/.cache/devagent/gpu-usage.json``, layout.GPU_USAGE): one sample per
GPU every INTERVAL seconds, the last hour at most (a bounded ring: 3600 / interval samples per GPU), plus how long
each GPU has been idle and when an ssh session or a `devagent run` was last seen.

>>> h = History(interval=10.0)
>>> for t in range(0, 70, 10):
...     h.add(float(t), {"GPU-a": 0 if t >= 30 else 90})
>>> h.idle_seconds("GPU-a", now=60.0), round(h.mean("GPU-a"))
(30.0, 39)
>>> release_due(h, now=60.0, limit=30.0, last_busy=0.0)
True
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from devagent.errors import DevagentError, ExitStatus

# A GPU below this utilisation (percent) is idle: a real GPU at rest reads 0-1 %, a model held in memory with
# nobody computing reads 0 %.
IDLE_BELOW = 5
HOUR = 3600.0
# How often the agent samples: often enough that an hour holds 240 samples, rarely enough to cost nothing (one
# NVML query per GPU costs microseconds). A short limit samples more often (a tenth of the limit, at least 0.2 s).
DEFAULT_INTERVAL = 15.0
# The shortest limit `up` takes: a shorter one would stop environments between two cups of coffee. The test-only
# MINIMUM_STAND_IN lowers it.
MIN_IDLE_RELEASE = 300.0
MINIMUM_STAND_IN = "DEVAGENT_TEST_MIN_IDLE_RELEASE"
# TEST SEAM, never set by the product: a JSON file inside the environment standing in for its GPUs' NVML
# (``{"GPU-…": utilisation percent or null}``, read at every sample), for tests on machines without a GPU. `up`
# passes it from its own environment into the container's; agent/idle.py's StandInNvml reads it.
NVML_STAND_IN = "DEVAGENT_TEST_NVML"
# The agent's exit status when it stops its container to give the GPUs back: the ledger reads it from the engine's
# list of containers (`Exited (75)`) to know that such a stopped environment holds no GPU (EX_TEMPFAIL: come back).
RELEASED_EXIT = 75
USAGE_VERSION = 1

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def idle_test_seam(environ: Mapping[str, str]) -> dict[str, str]:
    """What `up` passes into the container for the test-only NVML_STAND_IN ({} unless a test set it)."""
    return {NVML_STAND_IN: environ[NVML_STAND_IN]} if environ.get(NVML_STAND_IN) else {}


def sample_interval(limit: float | None) -> float:
    """How often the agent samples for LIMIT.

    >>> sample_interval(None), sample_interval(1800.0), sample_interval(5.0)
    (15.0, 15.0, 0.5)
    """
    if limit is None:
        return DEFAULT_INTERVAL
    return max(0.2, min(DEFAULT_INTERVAL, limit / 10))


def parse_duration(text: str, *, option: str = "--idle-release", minimum: float = MIN_IDLE_RELEASE) -> float:
    """Seconds in TEXT (``90s``, ``30m``, ``2h``, ``1h30m``, ``1d``); a limit below MINIMUM is refused.

    >>> parse_duration("1h30m"), parse_duration("45m")
    (5400.0, 2700.0)
    >>> try:
    ...     parse_duration("5s")
    ... except DevagentError as exc:
    ...     print(exc.message)
    --idle-release 5s is shorter than the shortest limit, 5m
    """
    raw = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", raw)
    if not raw or "".join(n + u for n, u in parts) != raw:  # every character a part of a duration
        raise DevagentError(f"{option} {text!r} is not a duration", status=ExitStatus.USAGE,
                            hint=f"e.g. {option} 30m (units: s, m, h, d; 1h30m)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < minimum:
        raise DevagentError(f"{option} {text} is shorter than the shortest limit, {format_duration(minimum)}",
                            status=ExitStatus.USAGE,
                            hint=f"give {format_duration(minimum)} or more, e.g. {option} 30m")
    return seconds


def format_duration(seconds: float) -> str:
    """SECONDS as people write it.

    >>> format_duration(300), format_duration(5400), format_duration(42), format_duration(90000)
    ('5m', '1h30m', '42s', '1d1h')
    """
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    # s >= 60: a day, an hour or a minute at least
    return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")


@dataclass
class History:
    """The last hour of one environment's GPU samples: per GPU UUID a ring of (time, utilisation or None), and
    since when each GPU has been idle (None: busy at its last sample, or never read)."""

    interval: float
    samples: dict[str, deque[tuple[float, int | None]]] = field(default_factory=dict)
    idle_since: dict[str, float | None] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return max(1, int(HOUR / self.interval) + 1)

    def add(self, now: float, utilization: Mapping[str, int | None]) -> None:
        """One sample at NOW of each GPU in UTILIZATION (None where NVML could not say: not idle)."""
        for uuid, value in utilization.items():
            ring = self.samples.setdefault(uuid, deque(maxlen=self.capacity))
            ring.append((now, value))
            if value is not None and value < IDLE_BELOW:
                if self.idle_since.get(uuid) is None:
                    self.idle_since[uuid] = now
            else:
                self.idle_since[uuid] = None

    def idle_seconds(self, uuid: str, *, now: float) -> float:
        since = self.idle_since.get(uuid)
        return 0.0 if since is None else max(0.0, now - since)

    def mean(self, uuid: str) -> float | None:
        """The mean utilisation of UUID over the samples kept (the last hour); None without one."""
        values = [v for _, v in self.samples.get(uuid, ()) if v is not None]
        return sum(values) / len(values) if values else None

    def all_idle_seconds(self, *, now: float) -> float:
        """How long every GPU has been idle together (0 when one is busy or there is none)."""
        if not self.samples:
            return 0.0
        return min(self.idle_seconds(u, now=now) for u in self.samples)


def release_due(history: History, *, now: float, limit: float, last_busy: float) -> bool:
    """Whether an environment with idle limit LIMIT gives its GPUs back at NOW: every GPU idle for LIMIT, and
    nobody busy (an ssh session open, a `devagent run` running) since LAST_BUSY for as long."""
    return bool(history.samples) and history.all_idle_seconds(now=now) >= limit and now - last_busy >= limit


# -- the record the agent writes, read back by `devagent gpus` -----------------------------------------------------


def usage_record(history: History, *, now: float, wall: datetime, limit: float | None,
                 last_busy: float) -> dict[str, object]:
    """What the agent writes for `devagent gpus`: per GPU, the last hour's mean utilisation and the idle time,
    as of WALL (a clock time, for people)."""
    return {
        "version": USAGE_VERSION, "time": wall.isoformat(timespec="seconds"), "interval_seconds": history.interval,
        "idle_release_seconds": limit, "quiet_seconds": round(max(0.0, now - last_busy), 1),
        "gpus": {uuid: {"mean_utilization_percent": None if history.mean(uuid) is None else round(
                            history.mean(uuid) or 0.0, 1),
                        "idle_seconds": round(history.idle_seconds(uuid, now=now), 1),
                        "samples": len(history.samples[uuid])}
                 for uuid in sorted(history.samples)},
    }


@dataclass(frozen=True)
class GpuUsage:
    """One GPU's last hour, as an environment's agent recorded it."""

    mean_utilization: float | None
    idle_seconds: float
    time: str  # when the agent wrote it


def parse_usage(text: str) -> dict[str, GpuUsage]:
    """The usage record's GPUs by UUID; {} for a record that cannot be read (an older agent wrote none).

    >>> parse_usage('{"version": 1, "time": "t", "gpus": {"GPU-a": {"mean_utilization_percent": 3.5, '
    ...             '"idle_seconds": 600}}}')
    {'GPU-a': GpuUsage(mean_utilization=3.5, idle_seconds=600.0, time='t')}
    """
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("version") != USAGE_VERSION or not isinstance(data.get("gpus"), dict):
        return {}
    out = {}
    for uuid, row in data["gpus"].items():
        if not isinstance(row, dict):
            continue
        mean, idle = row.get("mean_utilization_percent"), row.get("idle_seconds")
        out[str(uuid)] = GpuUsage(float(mean) if isinstance(mean, (int, float)) else None,
                                  float(idle) if isinstance(idle, (int, float)) else 0.0, str(data.get("time", "")))
    return out


def describe_usage(usage: GpuUsage | None) -> tuple[str, str]:
    """The `devagent gpus` cells: mean utilisation over the last hour, and idle time.

    >>> describe_usage(GpuUsage(2.4, 5400.0, "t")), describe_usage(None)
    (('2%', '1h30m'), ('-', '-'))
    """
    if usage is None:
        return "-", "-"
    mean = "?" if usage.mean_utilization is None else f"{usage.mean_utilization:.0f}%"
    return mean, format_duration(usage.idle_seconds) if usage.idle_seconds > 0 else "0s"


def released_entry(*, when: datetime, name: str, uuids: Sequence[str], limit: float) -> str:
    """The notebook's line when the environment gives its GPUs back (NotebookWriter.append's form)."""
    from devagent.core.markdown import code_span, escape

    gpus = ", ".join(code_span(u) for u in uuids) or "its GPUs"
    return (f"\n## {when:%Y-%m-%d %H:%M} · GPUs given back\n\n"
            f"The GPUs were idle for {format_duration(limit)} with no ssh session open and no `devagent run` "
            f"running (idle limit {format_duration(limit)}): the container stopped and gave back {gpus}. "
            f"The workspace and the home stay; `devagent up {escape(name)}` takes GPUs anew.\n")
