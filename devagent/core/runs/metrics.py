"""Metrics: ``key=value`` pairs parsed from output lines, series read from JSON lines and Lightning's CSV, each
metric's final and best value, the loss curve as a sparkline.

>>> parse_metric_line("epoch 1 | loss=0.52")
{'loss': 0.52}
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?))"
_KEY = r"[A-Za-z_][\w./-]*"
_METRIC_RE = re.compile(
    r"(?<![^\s,|{])"  # at the start or after a separator
    rf"(?:(?P<quote>['\"])(?P<qkey>{_KEY})(?P=quote)\s*:\s*"  # 'loss': 0.5 (dict reprs, JSON)
    rf"|(?P<key>{_KEY})(?:[ \t]*=[ \t]*|:[ \t]+))"  # loss=0.5, loss = 0.5, loss: 0.5
    rf"(?P<value>{_NUMBER})%?"
    r"(?![^\s,|}])"  # then the end or a separator
)
# key='text' or "key": "text" inside a repr: a printed config (args Namespace, a dict), not metrics.
_STRING_VALUE_RE = re.compile(rf"(?<![\w./-])['\"]?{_KEY}['\"]?\s*[=:]\s*['\"]")
# Namespace(lr=0.1, ...), Config(epochs=3): a repr with keyword arguments.
_KEYWORD_CALL_RE = re.compile(r"\b[A-Za-z_]\w*\([^()]*?\b[A-Za-z_]\w*=")
_LOG_LEVELS = frozenset({"debug", "info", "warn", "warning", "error", "critical", "fatal", "trace", "note"})
STEP_KEYS = ("step", "global_step", "iter", "iteration")
# "step 3 loss 0.42 acc 0.9": name–number pairs without = or :, read only when the line is nothing else and
# starts with a step or epoch (the form torch's own DDP examples print); "epoch 3 of 10" is not one.
_PAIR = rf"(?:{_KEY})[ \t]+{_NUMBER}"
_BARE_PAIRS_RE = re.compile(rf"\s*(?:{'|'.join(STEP_KEYS)}|epoch)[ \t]+\d+(?:[ \t]*[,|]?[ \t]*{_PAIR})+\s*")
_BARE_PAIR_RE = re.compile(rf"(?P<key>{_KEY})[ \t]+(?P<value>{_NUMBER})")
_NOT_NAMES = frozenset({"of", "in", "at", "to", "for", "and", "per", "from", "after", "took", "is"})


def parse_metric_line(line: str) -> dict[str, float]:
    """The ``key=value`` and ``key: value`` pairs in one line of output.

    Pairs are separated by spaces, commas, ``|`` or tabs; a value is a number (``nan``/``inf`` too), a trailing
    ``%`` is dropped. ``key:value`` without a space is not a pair (``localhost:8080``, ``cuda:0``), nor is
    anything followed by more text (``12:30:01``, ``3.2s``). A repr with keyword arguments
    (``Namespace(lr=0.1, bs=64)``) or one that holds quoted strings (``{'opt': 'adam', 'lr': 0.1}``) is a printed
    config and gives nothing.

    >>> parse_metric_line("epoch 3 | loss=0.4213 acc: 91.2%")
    {'loss': 0.4213, 'acc': 91.2}
    >>> parse_metric_line("{'loss': 0.69, 'learning_rate': 5e-05, 'epoch': 0.1}")
    {'loss': 0.69, 'learning_rate': 5e-05, 'epoch': 0.1}
    >>> parse_metric_line("INFO: 3 workers at http://localhost:8080 12:30:01")
    {}
    >>> parse_metric_line("step 3 loss 0.42 acc 0.9"), parse_metric_line("epoch 3 of 10")
    ({'step': 3.0, 'loss': 0.42, 'acc': 0.9}, {})
    """
    if (("(" in line or "{" in line) and _STRING_VALUE_RE.search(line)) or _KEYWORD_CALL_RE.search(line):
        return {}
    if _BARE_PAIRS_RE.fullmatch(line):
        pairs = {m.group("key"): float(m.group("value")) for m in _BARE_PAIR_RE.finditer(line)}
        if not _NOT_NAMES.intersection(name.lower() for name in pairs):
            return pairs
    values: dict[str, float] = {}
    for match in _METRIC_RE.finditer(line):
        key = match.group("qkey") or match.group("key")
        if key.lower() in _LOG_LEVELS:
            continue
        values[key] = float(match.group("value"))
    return values


MAX_POINTS = 20_000  # per metric: beyond it a series is thinned (final, best and count stay exact)
MAX_NAMES = 64  # metric names kept per run: the first ones seen; later ones are counted, not kept
MAX_NAME_LENGTH = 128  # a longer "name" is not kept either (counted with the others left out)
MAX_TOTAL_POINTS = 200_000  # over all metrics: with many metrics, each is thinned sooner (down to MIN_POINTS)
MIN_POINTS = 1_000
_MAX_LEFT_OUT_TRACKED = 100_000  # distinct names left out that are told apart (a count, not the names)


@dataclass
class MetricSeries:
    """Metric values in the order seen: name → [(step or None, value), ...].

    A metric logged more than MAX_POINTS times (fewer when there are many metrics: MAX_TOTAL_POINTS over all of
    them) is thinned to every other point, keeping its last point and its best one, so memory stays bounded for
    runs that log millions of steps; ``counts`` keeps the true number. At most MAX_NAMES metrics are kept, the
    first ones seen; ``left_out`` counts the names logged beyond them (a script that logs a new name per step
    would otherwise grow without bound).

    >>> s = MetricSeries(max_names=2); s.add({"loss": 1.0, "acc": 0.5, "lr": 0.1}); s.add({"f1": 0.2, "loss": 0.9})
    >>> sorted(s.points), s.left_out
    (['acc', 'loss'], 2)
    """

    points: dict[str, list[tuple[int | None, float]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    max_points: int = MAX_POINTS
    max_names: int = MAX_NAMES
    _left_out: set[int] = field(default_factory=set, repr=False, compare=False)  # hashes of the names left out

    @property
    def left_out(self) -> int:
        """How many distinct metric names were logged but not kept (over the cap, or too long)."""
        return len(self._left_out - {hash(name) for name in self.points})

    def add(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Add one logged set of VALUES.

        A ``step``/``global_step``/``iter``/``iteration`` key is the step (used when STEP is not given) and not a
        metric; every other key is a metric.

        >>> s = MetricSeries()
        >>> s.add({"step": 10, "loss": 0.5, "lr": 3e-4}); s.add({"loss": 0.4}, step=20)
        >>> s.points
        {'loss': [(10, 0.5), (20, 0.4)], 'lr': [(10, 0.0003)]}
        """
        if step is None:
            step = next((_as_step(values[k]) for k in STEP_KEYS if k in values and _as_step(values[k]) is not None),
                        None)
        for name, value in values.items():
            if name not in STEP_KEYS:
                self._extend(name, [(step, float(value))])

    def merge(self, other: MetricSeries) -> None:
        """Append OTHER's points after this series' own, metric by metric (names over the cap are left out)."""
        for name, points in other.points.items():
            self._extend(name, points, count=other.count(name))
        self._note_left_out(other._left_out)

    def merge_missing(self, other: MetricSeries) -> bool:
        """Add OTHER's metrics that this series does not have yet (with their true counts, and the names OTHER
        left out); return whether any was added.

        >>> s = MetricSeries({"loss": [(1, 1.0)]})
        >>> s.merge_missing(MetricSeries({"loss": [(1, 9.0)], "acc": [(1, 0.5)]}))
        True
        >>> s.points
        {'loss': [(1, 1.0)], 'acc': [(1, 0.5)]}
        """
        before = len(self.points)
        for name, points in other.points.items():
            if name not in self.points:
                self._extend(name, points, count=other.count(name))
        self._note_left_out(other._left_out)
        return len(self.points) > before

    def count(self, name: str) -> int:
        """How many values of NAME were logged (thinning does not change it)."""
        return self.counts.get(name, len(self.points.get(name, [])))

    def _extend(self, name: str, points: list[tuple[int | None, float]], *, count: int | None = None) -> None:
        if name not in self.points and (len(self.points) >= self.max_names or len(name) > MAX_NAME_LENGTH):
            self._note_left_out({hash(name)})
            return
        self.counts[name] = self.count(name) + (len(points) if count is None else count)
        own = self.points.setdefault(name, [])
        own.extend(points)
        limit = min(self.max_points, max(MIN_POINTS, MAX_TOTAL_POINTS // len(self.points)))
        if len(own) > limit:
            self.points[name] = _thin(name, own)

    def _note_left_out(self, hashes: set[int]) -> None:
        room = _MAX_LEFT_OUT_TRACKED - len(self._left_out)
        if room > 0:
            self._left_out.update(hashes if len(hashes) <= room else list(hashes)[:room])


def _thin(name: str, points: list[tuple[int | None, float]]) -> list[tuple[int | None, float]]:
    """Every other point, plus the last and the best one (so final and best survive any number of thinnings).

    >>> _thin("loss", [(1, 3.0), (2, 0.5), (3, 2.0), (4, 1.0), (5, 1.5)])
    [(1, 3.0), (2, 0.5), (3, 2.0), (5, 1.5)]
    """
    keep = set(range(0, len(points), 2)) | {len(points) - 1}
    if has_best(name):
        lower = lower_is_better(name)
        finite = [i for i, (_, v) in enumerate(points) if math.isfinite(v)]
        if finite:
            keep.add(min(finite, key=lambda i: points[i][1]) if lower else max(finite, key=lambda i: points[i][1]))
    return [points[i] for i in sorted(keep)]


def _as_step(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None


def read_metrics_jsonl(text: str | Iterable[str]) -> MetricSeries:
    """A series from JSON lines such as the helper's ``lab.jsonl`` (the text, or its lines one by one).

    Keys starting with ``_`` (the helper's own: ``_t``, ``_torch``), booleans, non-numbers and lines that are
    not JSON objects are skipped.

    >>> read_metrics_jsonl('{"step": 1, "loss": 0.5, "_t": 1.2, "ok": true}\\nnot json\\n{"loss": 0.4}').points
    {'loss': [(1, 0.5), (None, 0.4)]}
    """
    series = MetricSeries()
    for line in text.splitlines() if isinstance(text, str) else text:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        values = {
            str(key): float(value)
            for key, value in data.items()
            if not str(key).startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if values:
            series.add(values)
    return series


def read_lightning_csv(text: str | Iterable[str]) -> MetricSeries:
    """A series from PyTorch Lightning's ``CSVLogger`` ``metrics.csv`` (the text, or its lines one by one, the
    header first); empty cells are metrics not logged then.

    >>> read_lightning_csv("epoch,step,train_loss,val_acc\\n0,49,0.9,\\n0,49,,0.71\\n").points
    {'epoch': [(49, 0.0), (49, 0.0)], 'train_loss': [(49, 0.9)], 'val_acc': [(49, 0.71)]}
    """
    rows = _csv_rows(text.splitlines() if isinstance(text, str) else text)
    header = next(rows, None)
    series = MetricSeries()
    if not header:
        return series
    names = [name.strip() for name in header]
    for row in rows:
        values: dict[str, float] = {}
        for name, cell in zip(names, row, strict=False):
            try:
                if name and cell.strip():
                    values[name] = float(cell)
            except ValueError:
                continue
        if values:
            series.add(values)
    return series


def _csv_rows(lines: Iterable[str]) -> Iterator[list[str]]:
    """CSV rows; a row the csv module refuses (an unclosed quote that ran past its field size limit) is skipped.

    >>> list(_csv_rows(['a,b', '"' + 'x' * 200_000, '1,2']))
    [['a', 'b'], ['1', '2']]
    """
    reader = csv.reader(lines)
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            continue


_LOWER_BETTER = frozenset({
    "loss", "err", "error", "errors", "perplexity", "ppl", "mse", "mae", "rmse", "nll", "time", "duration",
    "latency", "wer", "cer",
})
_NO_BEST = frozenset({"lr", "epoch"})


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric NAME is better (losses, errors, perplexity, times).

    >>> lower_is_better("val/loss"), lower_is_better("top1_err"), lower_is_better("val_acc"), lower_is_better("lr")
    (True, True, False, False)
    """
    words = _words(name)
    return any(word in _LOWER_BETTER or word.endswith("loss") for word in words)


def has_best(name: str) -> bool:
    """Whether a best value of NAME means anything (not for a learning rate or the epoch).

    >>> has_best("loss"), has_best("learning_rate"), has_best("lr-Adam"), has_best("epoch")
    (True, False, False, False)
    """
    words = _words(name)
    return not (any(word in _NO_BEST for word in words) or "learning_rate" in "_".join(words))


@dataclass(frozen=True)
class MetricSummary:
    """One metric over a run: its FINAL value (the last one logged), the BEST one and its step (None where best
    means nothing), and how many points were logged. FINAL_STEP is the last point's step; BEST_POINT counts where
    the best one was logged (1 for the first value), for values logged without a step (None where the series was
    thinned, and the count lost)."""

    name: str
    final: float
    best: float | None
    best_step: int | None
    count: int
    final_step: int | None = None
    best_point: int | None = None


def summarize_metrics(series: MetricSeries) -> list[MetricSummary]:
    """One summary per metric, loss-like ones first, then by name. Best is the minimum for metrics where lower
    is better, else the maximum; NaN and infinities never count as best.

    >>> s = MetricSeries({"acc": [(1, 0.5), (2, 0.9), (3, 0.8)], "loss": [(1, 2.0), (2, 1.0), (3, 1.5)]})
    >>> [(m.name, m.final, m.best, m.best_step) for m in summarize_metrics(s)]
    [('loss', 1.5, 1.0, 2), ('acc', 0.8, 0.9, 2)]
    """
    summaries = []
    for name, points in series.points.items():
        if not points:
            continue
        best: float | None = None
        best_step: int | None = None
        best_point: int | None = None
        if has_best(name):
            lower = lower_is_better(name)
            for index, (step, value) in enumerate(points, start=1):
                if math.isfinite(value) and (best is None or (value < best if lower else value > best)):
                    best, best_step, best_point = value, step, index
        count = series.count(name)
        summaries.append(MetricSummary(name, points[-1][1], best, best_step, count, final_step=points[-1][0],
                                       best_point=best_point if count == len(points) else None))
    return sorted(summaries, key=lambda m: ("loss" not in m.name.lower(), m.name.lower(), m.name))


def curve_values(series: MetricSeries) -> tuple[str, list[float]] | None:
    """The loss curve to plot: ``loss``, else ``train_loss``/``train/loss``, else the first metric with "loss" in
    its name; only one with at least two points.

    >>> curve_values(MetricSeries({"val_loss": [(1, 0.9), (2, 0.8)], "loss": [(1, 1.0)]}))
    ('val_loss', [0.9, 0.8])
    """
    preferred = ["loss", "train_loss", "train/loss"]
    candidates = preferred + [name for name in series.points if "loss" in name.lower() and name not in preferred]
    for name in candidates:
        points = series.points.get(name, [])
        if len(points) >= 2:
            return name, [value for _, value in points]
    return None


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """VALUES as a line of bars, averaged down to at most WIDTH buckets; NaN/inf (or a bucket holding one) is ``·``.

    >>> sparkline([3, 2, 1.5, 1, float("nan"), 0.5]), sparkline([2, 2]), sparkline([])
    ('█▅▄▂·▁', '▄▄', '')
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    n = len(values)
    if n > width:
        buckets = [values[i * n // width:(i + 1) * n // width] for i in range(width)]
        values = [math.fsum(b) / len(b) if all(math.isfinite(v) for v in b) else math.nan for b in buckets]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "·" * len(values)
    low, high = min(finite), max(finite)
    span = high / 2 - low / 2  # halves: high - low itself may overflow
    bars = []
    for v in values:
        if not math.isfinite(v):
            bars.append("·")
        elif span == 0:
            bars.append("▄")
        else:
            bars.append(_BARS[min(7, max(0, round((v / 2 - low / 2) / span * 7)))])
    return "".join(bars)


def format_number(value: float) -> str:
    """A metric value for a table: six significant digits, integers without a point.

    >>> format_number(0.42133712), format_number(3e-4), format_number(12.0), format_number(float("nan"))
    ('0.421337', '0.0003', '12', 'NaN')
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def short_number(value: float) -> str:
    """A metric value for a run's summary line: three significant digits (whole numbers from 100 on).

    >>> short_number(0.37306), short_number(2.27052), short_number(1234.56), short_number(3e-4), short_number(5.0)
    ('0.373', '2.27', '1235', '0.0003', '5')
    """
    if not math.isfinite(value) or (value == int(value) and abs(value) < 1e15):
        return format_number(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
