"""What each GPU did over a run: a bounded timeline of samples, its summary, a plain-words hint, and the picture.

Pure: samples come in as numbers with their time, text and SVG go out. Memory is bounded whatever the run's
length: each GPU keeps at most BUCKETS buckets; when they are full, neighbours are merged in pairs and each bucket
then stands for twice as many samples (a week at 0.5 s is 1.2 million samples, still 512 buckets). The summary's
figures (mean, peak, time idle) are kept exactly beside the buckets, so they never depend on the merging.

>>> t = DeviceTimeline(0, buckets=4)
>>> for i in range(10):
...     t.add(float(i), util=100 if i < 5 else 0, mem_used=i << 30, mem_total=80 << 30, dt=1.0)
>>> len(t.buckets), t.span, t.idle_s, t.util_peak, t.mean_util
(3, 4, 5.0, 100, 50.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devagent.core.gpu.check_report import gib

BUCKETS = 512  # per GPU: ~40 bytes each, whatever the run's length
IDLE_UTIL = 5  # percent: below this a GPU counts as idle (NVML's utilisation of a GPU that waits is 0-2 %)
_BUSY_UTIL = 30  # mean percent above which a GPU counts as working, for the hints
_CPU_SATURATED = 0.8  # share of the cores available to the run


@dataclass
class Bucket:
    """Samples START..END merged: utilisation mean and peak, memory peak (None where NVML did not tell)."""

    start: float
    end: float
    samples: int = 0
    util_sum: float = 0.0
    util_n: int = 0
    util_max: int | None = None
    mem_max: int | None = None

    def add(self, t: float, util: int | None, mem_used: int | None) -> None:
        self.end = t
        self.samples += 1
        if util is not None:
            self.util_sum += util
            self.util_n += 1
            self.util_max = util if self.util_max is None else max(self.util_max, util)
        if mem_used is not None:
            self.mem_max = mem_used if self.mem_max is None else max(self.mem_max, mem_used)

    def merged(self, other: Bucket) -> Bucket:
        return Bucket(self.start, other.end, self.samples + other.samples, self.util_sum + other.util_sum,
                      self.util_n + other.util_n, _max(self.util_max, other.util_max),
                      _max(self.mem_max, other.mem_max))

    @property
    def util_mean(self) -> float | None:
        return self.util_sum / self.util_n if self.util_n else None


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class DeviceTimeline:
    """One GPU over a run: bounded buckets for the picture, exact figures for the summary."""

    def __init__(self, index: int, *, buckets: int = BUCKETS) -> None:
        if buckets < 2 or buckets % 2:
            raise ValueError("buckets must be an even number ≥ 2")
        self.index, self.buckets_max, self.span = index, buckets, 1  # span: samples per bucket, doubles
        self.buckets: list[Bucket] = []
        self.mem_total: int | None = None
        self.util_peak: int | None = None
        self.mem_peak: int | None = None
        self.temp_peak: int | None = None
        self.power_peak: float | None = None
        self.util_time = 0.0  # utilisation × seconds, over the seconds where it was known (util_s)
        self.util_s = self.idle_s = self.observed_s = 0.0

    def add(self, t: float, *, util: int | None, mem_used: int | None, mem_total: int | None = None,
            power_w: float | None = None, temp_c: int | None = None, dt: float) -> None:
        """One sample at T seconds from the run's start, standing for the DT seconds before it."""
        if mem_total is not None:
            self.mem_total = mem_total
        self.observed_s += dt
        if util is not None:
            self.util_time += util * dt
            self.util_s += dt
            self.idle_s += dt if util < IDLE_UTIL else 0.0
        self.util_peak = _max(self.util_peak, util)
        self.mem_peak = _max(self.mem_peak, mem_used)
        self.temp_peak = _max(self.temp_peak, temp_c)
        if power_w is not None:
            self.power_peak = power_w if self.power_peak is None else max(self.power_peak, power_w)
        if not self.buckets or self.buckets[-1].samples >= self.span:
            if len(self.buckets) == self.buckets_max:
                self.buckets = [a.merged(b) for a, b in zip(self.buckets[::2], self.buckets[1::2], strict=True)]
                self.span *= 2
            if not self.buckets or self.buckets[-1].samples >= self.span:
                self.buckets.append(Bucket(t - dt, t))
        self.buckets[-1].add(t, util, mem_used)

    @property
    def mean_util(self) -> float | None:
        return self.util_time / self.util_s if self.util_s else None

    @property
    def idle_share(self) -> float | None:
        return self.idle_s / self.util_s if self.util_s else None


def format_span(seconds: float) -> str:
    """A span of the run as people say it.

    >>> format_span(42), format_span(4000)
    ('42 s', '1 h 06 min')
    """
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def summary_rows(timelines: Sequence[DeviceTimeline]) -> list[list[str]]:
    """Per GPU: mean and peak utilisation, peak memory of total, time idle (and its share), peak power and
    temperature where the driver gives them; ``—`` where NVML did not tell."""
    rows = []
    for t in timelines:
        mean = "—" if t.mean_util is None else f"{t.mean_util:.0f} %"
        peak = "—" if t.util_peak is None else f"{t.util_peak} %"
        memory = "—" if t.mem_peak is None else gib(t.mem_peak) + (
            f" of {gib(t.mem_total)}" if t.mem_total else "")
        idle = "—" if t.idle_share is None else f"{format_span(t.idle_s)} ({t.idle_share:.0%})"
        extra = [f"{t.power_peak:.0f} W" if t.power_peak is not None else "—",
                 f"{t.temp_peak} °C" if t.temp_peak is not None else "—"]
        rows.append([f"GPU {t.index}", mean, peak, memory, idle, *extra])
    return rows


SUMMARY_HEADER = ["GPU", "mean util.", "peak util.", "peak memory", "idle", "peak power", "peak temp."]


def hints(timelines: Sequence[DeviceTimeline], *, cpu_share: float | None) -> list[str]:
    """Plain words where the figures point at a cause; none where they do not. CPU_SHARE is the run's CPU time
    over its duration × the cores it could use (None: unknown).

    >>> a, b = DeviceTimeline(0), DeviceTimeline(1)
    >>> for i in range(10):
    ...     a.add(i, util=90, mem_used=1, dt=1.0); b.add(i, util=0, mem_used=1, dt=1.0)
    >>> print(hints([a, b], cpu_share=None)[0])
    GPU 1 was idle 100% of the run while GPU 0 worked (mean 90 %): does every process get its own GPU and its \
share of the work (`LOCAL_RANK` → `torch.cuda.set_device`, the sampler's shards)?
    """
    known = [t for t in timelines if t.mean_util is not None and t.idle_share is not None]
    if not known:
        return []
    busy = [t for t in known if (t.mean_util or 0) >= _BUSY_UTIL]
    idle = [t for t in known if (t.idle_share or 0) >= 0.5]
    out = []
    if busy and idle:
        names = ", ".join(f"GPU {t.index}" for t in idle)
        shares = ", ".join(f"{t.idle_share:.0%}" for t in idle)
        workers = ", ".join(f"GPU {t.index}" for t in busy)
        mean = sum(t.mean_util or 0 for t in busy) / len(busy)
        out.append(f"{names} {'was' if len(idle) == 1 else 'were'} idle {shares} of the run while {workers} "
                   f"worked (mean {mean:.0f} %): does every process get its own GPU and its share of the work "
                   "(`LOCAL_RANK` → `torch.cuda.set_device`, the sampler's shards)?")
    elif not busy and cpu_share is not None and cpu_share >= _CPU_SATURATED:
        out.append(f"Utilisation was low on every GPU (mean at most {max(t.mean_util or 0 for t in known):.0f} %) "
                   f"while the CPU was saturated ({cpu_share:.0%} of the cores the run could use): the input "
                   "pipeline is the likely bottleneck — more `DataLoader` workers, `pin_memory=True`, lighter "
                   "decoding or augmentation on the CPU.")
    elif not busy and len(idle) == len(known):
        share = min(t.idle_share or 0 for t in known)
        out.append(f"The GPU{'s were' if len(known) > 1 else ' was'} idle at least {share:.0%} of the run: the "
                   "run spent most of its time elsewhere (data loading, evaluation on the CPU, waiting).")
    return out


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_W, _LEFT, _RIGHT, _PANEL, _GAP, _TOP = 560, 44, 10, 90, 40, 40


def timeline_svg(timelines: Sequence[DeviceTimeline], *, duration_s: float, title: str) -> str:
    """The picture: utilisation (top) and memory as a share of total (bottom) per GPU against the run's time,
    560 px wide (readable in a 600 px preview). Only numbers and fixed words go in: nothing from outside."""
    end = max(duration_s, max((b.end for t in timelines for b in t.buckets), default=0.0), 1e-9)
    plot_w = _W - _LEFT - _RIGHT
    height = _TOP + 2 * _PANEL + _GAP + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
           f'viewBox="0 0 {_W} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{_W}" height="{height}" fill="white"/>',
           f'<text x="{_LEFT}" y="16" font-size="13">{_xml(title)}</text>']
    for panel, label in ((0, "utilisation %"), (1, "memory % of total")):
        top = _TOP + panel * (_PANEL + _GAP)
        out.append(f'<rect x="{_LEFT}" y="{top}" width="{plot_w}" height="{_PANEL}" fill="none" stroke="#999"/>')
        for pct in (0, 50, 100):
            y = top + _PANEL * (1 - pct / 100)
            out.append(f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{pct}</text>')
        out.append(f'<text x="{_LEFT}" y="{top - 6}" fill="#555">{label}</text>')
        for n, t in enumerate(timelines):
            points = []
            for b in t.buckets:
                value = b.util_mean if panel == 0 else (
                    100 * b.mem_max / t.mem_total if b.mem_max is not None and t.mem_total else None)
                if value is None:
                    continue
                x = _LEFT + plot_w * ((b.start + b.end) / 2) / end
                points.append(f"{x:.1f},{top + _PANEL * (1 - min(max(value, 0), 100) / 100):.1f}")
            if points:
                out.append(f'<polyline fill="none" stroke="{_COLOURS[n % len(_COLOURS)]}" stroke-width="1.4" '
                           f'points="{" ".join(points)}"/>')
    axis_y = _TOP + 2 * _PANEL + _GAP + 12
    for i in range(5):
        x = _LEFT + plot_w * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"  # the ends stay inside the picture
        out.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="{anchor}">{format_span(end * i / 4)}</text>')
    legend_x = _LEFT
    for n, t in enumerate(timelines[:8]):
        colour = _COLOURS[n % len(_COLOURS)]
        out.append(f'<text x="{legend_x}" y="{axis_y + 16}" fill="{colour}">■ GPU {t.index}</text>')
        legend_x += 60
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
