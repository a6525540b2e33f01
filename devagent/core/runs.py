"""Run summaries as plain data: output cleaning, exit classification, metrics, hyperparameters, the run section.

Pure: no I/O, no clock, no environment read, no subprocess. The wrapper (devagent/container/run.py) runs the
user's command, reads files and the environment, and hands the values in; this module turns them into one
lab-notebook entry.

>>> collector = LineCollector()
>>> collector.feed(b"\\x1b[32mepoch 1\\x1b[0m | loss=0.52\\n 10%\\r 50%\\r100%\\n")
['epoch 1 | loss=0.52', '100%']
>>> parse_metric_line("epoch 1 | loss=0.52")
{'loss': 0.52}
>>> classify_exit(1, tail=["Traceback (most recent call last):", '  File "train.py", line 3', "ValueError: bad"])
ExitInfo(kind='failure', code=1, label='❌ exit 1 · ValueError: bad', detail='ValueError: bad')
"""

from __future__ import annotations

import ast
import codecs
import csv
import json
import math
import posixpath
import re
import shlex
import signal
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from devagent.core.gpu import gib
from devagent.core.markdown import code, escape
from devagent.core.notebook import SaveRecord, entry, heading, render_edits_since

# ------------------------------------------------------------------------------------------------------------
# Output: raw bytes in, clean lines out.

# CSI (colours, cursor moves: ESC [ params intermediates final), OSC (titles, hyperlinks: ESC ] ... BEL or ST),
# and the short forms (ESC followed by intermediates and one final byte: ESC ( B, ESC 7, ESC c, ...). The short
# form leaves out "[" and "]" so that an unfinished CSI/OSC is never taken for a finished two-byte sequence.
ANSI_RE: re.Pattern[str] = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-Z\\^_`-~]"
)
# What may still become an escape sequence once more output arrives: held back at the end of a chunk.
_PARTIAL_ESC_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)\Z")
# Control characters (C0 but tab, DEL, C1) and the Unicode line/paragraph separators: dropped, so a cleaned
# line is one line for every reader (str.splitlines splits at \x1c-\x1e, \x85, \u2028 and \u2029 too).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_BREAK_RE = re.compile(r"\r\n|\n|\r")
_MAX_HELD_ESCAPE = 4096  # an "escape sequence" longer than this is junk, not something to wait for


def clean_text(text: str) -> str:
    r"""TEXT without escape sequences and control characters (tabs stay).

    >>> clean_text("\x1b[1;31mred\x1b[0m\tok\x00\x07")
    'red\tok'
    """
    return _CONTROL_RE.sub("", ANSI_RE.sub("", text))


class LineCollector:
    r"""Feed raw output bytes incrementally; get cleaned complete lines and a bounded tail.

    Lines are decoded as UTF-8 (bad bytes become U+FFFD, a character split between two feeds is joined),
    stripped of escape sequences and control characters, and cut to MAX_LINE characters (the last being
    ``…``). A carriage return starts the line over, as in a terminal, so a progress bar leaves only its last
    state; ``\r\n`` is a newline. Memory stays bounded whatever the output: at most MAX_LINE characters of a
    line and TAIL_LINES lines are kept.

    >>> c = LineCollector(tail_lines=2, max_line=8)
    >>> c.feed(b"a\rb\rc\nx" + "é".encode()[:1]), c.feed("é".encode()[1:] + b"\n0123456789\n"), c.close()
    (['c'], ['xé', '0123456…'], [])
    >>> c.tail, c.line_count
    (['xé', '0123456…'], 3)
    """

    def __init__(self, tail_lines: int = 40, max_line: int = 2000) -> None:
        if tail_lines < 0 or max_line < 2:
            raise ValueError("tail_lines must be ≥ 0 and max_line ≥ 2")
        self._max_line = max_line
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._count = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._segment = ""  # cleaned text since the last \r (or line start), at most max_line characters
        self._segment_cut = False  # the segment went over max_line: the rest of it is dropped
        self._held = ""  # raw text that may be the start of an escape sequence
        self._shown = ""  # the last non-blank segment of this line: what a terminal would still show
        self._pending_cr = False  # the text so far ended with \r: a newline if \n comes next

    @property
    def tail(self) -> list[str]:
        """The last TAIL_LINES non-empty lines."""
        return list(self._tail)

    @property
    def line_count(self) -> int:
        """How many lines have been completed so far (empty ones included)."""
        return self._count

    def feed(self, data: bytes) -> list[str]:
        """Take the next chunk of output; return the lines it completed."""
        return self._take(self._decoder.decode(data))

    def close(self) -> list[str]:
        """Flush: the last line when the output did not end with a newline (and was not blank)."""
        lines = self._take(self._decoder.decode(b"", final=True))
        if self._pending_cr:
            self._pending_cr = False
            self._end_segment()
        self._end_segment()
        if self._shown:
            lines.append(self._end_line())
        self._decoder.reset()
        return lines

    def _take(self, text: str) -> list[str]:
        lines: list[str] = []
        if not text:
            return lines
        if self._pending_cr:
            self._pending_cr = False
            if text.startswith("\n"):
                text = text[1:]
                lines.append(self._end_line())
            else:
                self._end_segment()
        start = 0
        for match in _BREAK_RE.finditer(text):
            self._append(text[start:match.start()])
            start = match.end()
            if match.group() == "\r":
                if start == len(text):  # maybe the first half of \r\n: decide with the next chunk
                    self._pending_cr = True
                else:
                    self._end_segment()
            else:
                lines.append(self._end_line())
        self._append(text[start:])
        return lines

    def _append(self, raw: str) -> None:
        if self._segment_cut or not (raw or self._held):
            return
        raw = self._held + raw
        self._held = ""
        partial = _PARTIAL_ESC_RE.search(raw)
        if partial and len(raw) - partial.start() <= _MAX_HELD_ESCAPE:
            self._held = raw[partial.start():]
            raw = raw[:partial.start()]
        self._segment += clean_text(raw)
        if len(self._segment) > self._max_line:
            self._segment = self._segment[: self._max_line - 1] + "…"
            self._segment_cut = True

    def _end_segment(self) -> None:
        self._held = ""  # an escape sequence cut off by \r or \n is junk
        if self._segment.strip():
            self._shown = self._segment
        self._segment, self._segment_cut = "", False

    def _end_line(self) -> str:
        self._end_segment()
        line, self._shown = self._shown.rstrip(), ""
        self._count += 1
        if line:
            self._tail.append(line)
        return line


# ------------------------------------------------------------------------------------------------------------
# How the command ended.

EXIT_KINDS = ("success", "failure", "interrupted", "killed", "cuda-oom", "nan", "unknown")
NAN_RE: re.Pattern[str] = re.compile(
    r"(?i)(?<![\w./-])['\"]?[\w./-]*loss[\w./-]*['\"]?\s*[=:]\s*(?:tensor\(\s*)?[-+]?(?:nan|inf(?:inity)?)\b"
)
_CUDA_OOM_RE = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
_EXCEPTION_RE = re.compile(r"^\w[\w.]*(?:Error|Exception|Interrupt|Exit)\b.*")
_USAGE_ERROR_RE = re.compile(r"^[\w./-]+: error: .+")  # argparse: "train.py: error: unrecognized arguments"
_RANK_PREFIX_RE = re.compile(r"^\[(?:rank|default)\d*\]:\s?")  # torchrun prefixes each worker's lines
_LABEL_DETAIL = 100


@dataclass(frozen=True)
class ExitInfo:
    """How a run ended: KIND (one of EXIT_KINDS), the shell-style exit CODE, a short LABEL for the heading and
    a DETAIL (e.g. the exception line) where there is one."""

    kind: str
    code: int | None
    label: str
    detail: str | None


def classify_exit(  # noqa: PLR0911 - one return per kind of ending reads as the table it is
    code: int | None, *, tail: Sequence[str], oom_killed: bool = False, nan_seen: bool = False
) -> ExitInfo:
    """Classify how a run ended from its exit status and the end of its output.

    CODE is shell style: a process killed by signal N gives 128+N (a negative code, as ``subprocess`` reports a
    signal, is taken as 128+N too). None means unknown (a run that was only observed).

    >>> classify_exit(0, tail=[]).label, classify_exit(137, tail=[], oom_killed=True).label
    ('✅ exit 0', '💀 killed (137) · out of memory killer?')
    >>> classify_exit(143, tail=[]).label, classify_exit(None, tail=[]).kind
    ('💀 killed (143) · SIGTERM', 'unknown')
    """
    if code is not None and code < 0:
        code = 128 - code
    exception = last_exception(tail)
    if code is None:
        return ExitInfo("unknown", None, "exit status unknown", exception)
    if code == 0:
        if nan_seen:
            nan_line = next((line for line in reversed(tail) if NAN_RE.search(line)), None)
            return ExitInfo("nan", 0, "⚠️ NaN loss", nan_line)
        return ExitInfo("success", 0, "✅ exit 0", None)
    if any(_CUDA_OOM_RE.search(line) for line in tail):
        oom_line = exception if exception and _CUDA_OOM_RE.search(exception) else None
        if oom_line is None:
            oom_line = next(line for line in reversed(tail) if _CUDA_OOM_RE.search(line))
        return ExitInfo("cuda-oom", code, "❌ CUDA out of memory", _RANK_PREFIX_RE.sub("", oom_line))
    if code == 128 + signal.SIGINT:
        return ExitInfo("interrupted", code, f"⛔ interrupted ({code})", None)
    if code == 128 + signal.SIGKILL and oom_killed:
        return ExitInfo("killed", code, f"💀 killed ({code}) · out of memory killer?", None)
    name = signal_name(code - 128) if code > 128 else None
    if name is not None:
        return ExitInfo("killed", code, f"💀 killed ({code}) · {name}", None)
    label = f"❌ exit {code}"
    if exception is None:
        exception = next((line for line in reversed(tail) if _USAGE_ERROR_RE.match(line)), None)
    if exception:
        label += " · " + shorten(exception, _LABEL_DETAIL)
    return ExitInfo("failure", code, label, exception)


def signal_name(number: int) -> str | None:
    """The name of signal NUMBER on this platform, or None.

    >>> signal_name(9), signal_name(1000)
    ('SIGKILL', None)
    """
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def last_exception(tail: Sequence[str]) -> str | None:
    """The exception line at the end of a traceback in TAIL: the last traceback's first unindented line after
    its frames, else the last line that looks like ``SomeError: message``.

    >>> last_exception(["Traceback (most recent call last):", '  File "t.py", line 1, in <module>',
    ...                 "    main()", "mypkg.Boom: it broke", "cleanup done"])
    'mypkg.Boom: it broke'
    >>> last_exception(["loss=0.3", "RuntimeError: shape mismatch", "exiting"])
    'RuntimeError: shape mismatch'
    """
    lines = [_RANK_PREFIX_RE.sub("", line) for line in tail]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        for line in lines[starts[-1] + 1:]:
            if line and not line[0].isspace() and not line.startswith("Traceback"):
                return line
    return next((line for line in reversed(lines) if _EXCEPTION_RE.match(line)), None)


def shorten(text: str, limit: int) -> str:
    """TEXT cut to LIMIT characters, the last being ``…`` when cut.

    >>> shorten("abcdef", 4), shorten("abc", 4)
    ('abc…', 'abc')
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------------------
# Metrics.

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
    """
    if (("(" in line or "{" in line) and _STRING_VALUE_RE.search(line)) or _KEYWORD_CALL_RE.search(line):
        return {}
    values: dict[str, float] = {}
    for match in _METRIC_RE.finditer(line):
        key = match.group("qkey") or match.group("key")
        if key.lower() in _LOG_LEVELS:
            continue
        values[key] = float(match.group("value"))
    return values


MAX_POINTS = 20_000  # per metric: beyond it a series is thinned (final, best and count stay exact)


@dataclass
class MetricSeries:
    """Metric values in the order seen: name → [(step or None, value), ...].

    A metric logged more than MAX_POINTS times is thinned to every other point, keeping its last point and its
    best one, so memory stays bounded for runs that log millions of steps; ``counts`` keeps the true number.
    """

    points: dict[str, list[tuple[int | None, float]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    max_points: int = MAX_POINTS

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
        """Append OTHER's points after this series' own, metric by metric."""
        for name, points in other.points.items():
            self._extend(name, points, count=other.count(name))

    def count(self, name: str) -> int:
        """How many values of NAME were logged (thinning does not change it)."""
        return self.counts.get(name, len(self.points.get(name, [])))

    def _extend(self, name: str, points: list[tuple[int | None, float]], *, count: int | None = None) -> None:
        self.counts[name] = self.count(name) + (len(points) if count is None else count)
        own = self.points.setdefault(name, [])
        own.extend(points)
        if len(own) > self.max_points:
            self.points[name] = _thin(name, own)


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


def read_metrics_jsonl(text: str) -> MetricSeries:
    """A series from JSON lines such as the helper's ``lab.jsonl``.

    Keys starting with ``_`` (the helper's own: ``_t``, ``_torch``), booleans, non-numbers and lines that are
    not JSON objects are skipped.

    >>> read_metrics_jsonl('{"step": 1, "loss": 0.5, "_t": 1.2, "ok": true}\\nnot json\\n{"loss": 0.4}').points
    {'loss': [(1, 0.5), (None, 0.4)]}
    """
    series = MetricSeries()
    for line in text.splitlines():
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


def read_lightning_csv(text: str) -> MetricSeries:
    """A series from PyTorch Lightning's ``CSVLogger`` ``metrics.csv`` (empty cells are metrics not logged then).

    >>> read_lightning_csv("epoch,step,train_loss,val_acc\\n0,49,0.9,\\n0,49,,0.71\\n").points
    {'epoch': [(49, 0.0), (49, 0.0)], 'train_loss': [(49, 0.9)], 'val_acc': [(49, 0.71)]}
    """
    rows = csv.reader(text.splitlines())
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
    """One metric over a run: its FINAL value, the BEST one and its step (None where best means nothing), and
    how many points were logged."""

    name: str
    final: float
    best: float | None
    best_step: int | None
    count: int


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
        if has_best(name):
            lower = lower_is_better(name)
            for step, value in points:
                if math.isfinite(value) and (best is None or (value < best if lower else value > best)):
                    best, best_step = value, step
        summaries.append(MetricSummary(name, points[-1][1], best, best_step, series.count(name)))
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


# ------------------------------------------------------------------------------------------------------------
# Hyperparameters: argparse defaults read from the script's source, overlaid with the command line.


@dataclass(frozen=True)
class ArgDefault:
    """One ``add_argument`` call as written in the script.

    ``default`` is the default's text (a string default without its quotes, other literals as written,
    other expressions as ``ast.unparse`` gives them), None when there is none; ``nargs`` and ``const`` are their
    source text, when given.
    """

    dest: str
    flags: tuple[str, ...]
    default: str | None
    action: str | None
    nargs: str | None = None
    const: str | None = None

    @property
    def positional(self) -> bool:
        return not any(flag.startswith("-") for flag in self.flags)


_NO_VALUE_ACTIONS = frozenset({"store_true", "store_false", "store_const", "append_const", "count"})
_SKIPPED_ACTIONS = frozenset({"help", "version"})


def argparse_defaults(source: str) -> dict[str, ArgDefault]:
    """Every ``*.add_argument(...)`` in SOURCE, by dest, in source order; read from the syntax tree only (the
    script is never imported). ``*.set_defaults(name=...)`` overrides a default, as in argparse. A source that
    does not parse gives ``{}``.

    >>> d = argparse_defaults("p.add_argument('--batch-size', '-b', type=int, default=64)\\n"
    ...                       "p.add_argument('--amp', action='store_true')")
    >>> d["batch_size"]
    ArgDefault(dest='batch_size', flags=('--batch-size', '-b'), default='64', action=None, nargs=None, const=None)
    >>> d["amp"].default
    'False'
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    calls = sorted(
        (node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
         and node.func.attr in ("add_argument", "set_defaults")),
        key=lambda node: (node.lineno, node.col_offset),
    )
    found: dict[str, ArgDefault] = {}
    overrides: dict[str, str | None] = {}
    for call in calls:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "set_defaults":
            overrides.update((kw.arg, _default_text(source, kw.value)) for kw in call.keywords if kw.arg)
            continue
        arg = _read_add_argument(source, call)
        if arg is not None and arg.dest not in found:
            found[arg.dest] = arg
    for dest, text in overrides.items():
        if dest in found:
            found[dest] = replace(found[dest], default=text)
    return found


def _read_add_argument(source: str, call: ast.Call) -> ArgDefault | None:
    flags: list[str] = []
    for arg in call.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value):
            return None
        flags.append(arg.value)
    if not flags:
        return None
    keywords = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    action = _action_text(keywords.get("action"))
    if action in _SKIPPED_ACTIONS:
        return None
    dest_node = keywords.get("dest")
    if isinstance(dest_node, ast.Constant) and isinstance(dest_node.value, str):
        dest = dest_node.value
    else:
        long_flags = [f for f in flags if f.startswith("--")]
        dest = (long_flags or flags)[0].lstrip("-").replace("-", "_")
        if not flags[0].startswith("-"):
            dest = flags[0]
    default_node = keywords.get("default")
    default = _default_text(source, default_node) if default_node is not None else None
    if default_node is None and action in ("store_true", "store_false"):
        default = str(action == "store_false")
    nargs = keywords.get("nargs")
    const = keywords.get("const")
    return ArgDefault(
        dest=dest, flags=tuple(flags), default=default, action=action,
        nargs=_default_text(source, nargs) if nargs is not None else None,
        const=_default_text(source, const) if const is not None else None,
    )


def _action_text(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)  # e.g. argparse.BooleanOptionalAction


def _default_text(source: str, node: ast.expr) -> str | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return " ".join(ast.unparse(node).split())
    if value is None:
        return None
    if isinstance(value, str):
        return value
    written = ast.get_source_segment(source, node) or ast.unparse(node)
    return " ".join(written.split())


_NEGATIVE_NUMBER_RE = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def _looks_like_flag(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _NEGATIVE_NUMBER_RE.match(word)


def overlay_argv(defaults: Mapping[str, ArgDefault], argv: Sequence[str]) -> dict[str, str]:
    """What the script's arguments come to: dest → value as text, for every known argument (its default's text
    where not given, ``"None"`` where it has none), then the unknown ones in the order given.

    ARGV is what follows the script path. Handled like argparse: ``--x=1``, ``--x 1``, ``-b32``, ``-b 32``,
    combined short switches, unique prefixes of long flags, ``--``, negative numbers as values, ``nargs``,
    ``store_true``/``store_false``/``store_const``/``count``/``append``, ``BooleanOptionalAction``'s
    ``--no-x``. Unknown flags are kept under their name (``--foo-bar 3`` → ``foo_bar: "3"``; a bare flag is
    ``"True"``); positionals go to positional arguments in order, extra ones under ``argv[N]``.

    >>> d = argparse_defaults("p.add_argument('data')\\np.add_argument('--lr', default=1e-3)\\n"
    ...                       "p.add_argument('--amp', action='store_true')")
    >>> overlay_argv(d, ["--amp", "data/", "--seed=3", "--lr", "3e-4", "more"])
    {'data': 'data/', 'lr': '3e-4', 'amp': 'True', 'seed': '3', 'argv[5]': 'more'}
    """
    result: dict[str, str] = {
        arg.dest: arg.default if arg.default is not None else "None" for arg in defaults.values()
    }
    by_flag = {flag: arg for arg in defaults.values() for flag in arg.flags if flag.startswith("-")}
    for arg in defaults.values():
        if (arg.action or "").endswith("BooleanOptionalAction"):
            by_flag.update({"--no-" + f[2:]: arg for f in arg.flags if f.startswith("--")})
    given_appends: set[str] = set()
    positionals: list[tuple[int, str]] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        word = tokens[i]
        i += 1
        if word == "--":
            positionals += list(enumerate(tokens[i:], start=i))
            break
        if not _looks_like_flag(word):
            positionals.append((i - 1, word))
            continue
        flag, inline = word, None
        if "=" in word:
            flag, inline = word.split("=", 1)
        known = by_flag.get(flag)
        if known is None and flag.startswith("--"):
            matches = [(f, a) for f, a in by_flag.items() if f.startswith(flag)]
            if len({id(a) for _, a in matches}) == 1:  # a unique prefix, as argparse's allow_abbrev takes it
                flag, known = matches[0]
        if known is not None:
            i = _apply(known, flag, inline, tokens, i, result, given_appends)
        elif not word.startswith("--") and len(word) > 2 and word[:2] in by_flag:
            i = _short_cluster(word, tokens, i, by_flag, result, given_appends)
        else:
            i = _unknown_flag(flag, inline, tokens, i, result)
    _assign_positionals(defaults, positionals, result)
    return result


def _unknown_flag(flag: str, inline: str | None, tokens: list[str], i: int, result: dict[str, str]) -> int:
    """An option the script's source does not declare: its value is INLINE, else the next word unless that is
    a flag, else ``"True"``."""
    name = flag.lstrip("-").replace("-", "_") or flag
    if inline is not None:
        result[name] = inline
    elif i < len(tokens) and not _looks_like_flag(tokens[i]):
        result[name] = tokens[i]
        return i + 1
    else:
        result[name] = "True"
    return i


def _short_cluster(word: str, tokens: list[str], i: int, by_flag: Mapping[str, ArgDefault],
                   result: dict[str, str], given_appends: set[str]) -> int:
    """``-b32`` (a short flag with its value attached) or ``-vvq`` (short switches together)."""
    rest = word[1:]
    while rest:
        flag = "-" + rest[0]
        arg = by_flag.get(flag)
        if arg is None:
            result[rest.replace("-", "_")] = "True"
            break
        rest = rest[1:]
        if arg.action in _NO_VALUE_ACTIONS:
            _apply(arg, flag, None, tokens, i, result, given_appends)
            continue
        return _apply(arg, flag, rest or None, tokens, i, result, given_appends)
    return i


def _apply(arg: ArgDefault, flag: str, inline: str | None, tokens: list[str], i: int,
           result: dict[str, str], given_appends: set[str]) -> int:
    """Set ARG's value from FLAG (and INLINE or the tokens from I on); return the index after what it used."""
    action = arg.action or "store"
    if action.endswith("BooleanOptionalAction"):
        result[arg.dest] = str(not flag.startswith("--no-"))
    elif action == "store_true":
        result[arg.dest] = "True"
    elif action == "store_false":
        result[arg.dest] = "False"
    elif action in ("store_const", "append_const"):
        result[arg.dest] = arg.const if arg.const is not None else "None"
    elif action == "count":
        previous = result.get(arg.dest, "0")
        result[arg.dest] = str((int(previous) if previous.lstrip("-").isdigit() else 0) + 1)
    else:
        values, i = _take_values(arg, inline, tokens, i)
        if values is None:
            return i
        if action in ("append", "extend"):
            joined = values if arg.dest not in given_appends else result[arg.dest] + ", " + values
            given_appends.add(arg.dest)
            result[arg.dest] = joined
        else:
            result[arg.dest] = values
    return i


def _take_values(arg: ArgDefault, inline: str | None, tokens: list[str], i: int) -> tuple[str | None, int]:
    if inline is not None:
        return inline, i
    nargs = (arg.nargs or "").strip("'\"")
    if nargs == "?":
        if i < len(tokens) and not _looks_like_flag(tokens[i]):
            return tokens[i], i + 1
        return (arg.const if arg.const is not None else "None"), i
    if nargs in ("*", "+"):
        end = i
        while end < len(tokens) and not _looks_like_flag(tokens[end]):
            end += 1
        return " ".join(tokens[i:end]), end
    count = int(nargs) if nargs.isdigit() else 1
    taken = tokens[i:i + count]
    if len(taken) < count:
        return None, i  # argparse would refuse the command line: keep the default
    return " ".join(taken), i + count


def _assign_positionals(defaults: Mapping[str, ArgDefault], positionals: list[tuple[int, str]],
                        result: dict[str, str]) -> None:
    wanted = [arg for arg in defaults.values() if arg.positional]
    k = 0
    for n, arg in enumerate(wanted):
        left = len(positionals) - k
        later = len(wanted) - n - 1  # one token kept for each later positional
        nargs = (arg.nargs or "").strip("'\"")
        if nargs in ("*", "+"):
            count = max(0, left - later)
        elif nargs == "?":
            count = 1 if left > later else 0
        else:
            count = int(nargs) if nargs.isdigit() else 1
        taken = positionals[k:k + count]
        k += len(taken)
        if taken:
            result[arg.dest] = " ".join(token for _, token in taken)
    for index, token in positionals[k:]:
        result[f"argv[{index}]"] = token


def _same_value(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _cell_value(value: str | None) -> str:
    if value is None:
        return "—"
    return code(value) if value else code('""')


def hparam_table(current: Mapping[str, str], *, defaults: Mapping[str, ArgDefault],
                 previous: Mapping[str, str] | None, previous_run: int | None) -> str:
    """The hyperparameters as a Markdown table: name, default, this run's value and, when there is a previous
    run, its value. This run's value is bold where it differs from the previous run's (without one: from the
    default); numbers compare by value (``3e-4`` equals ``0.0003``). Empty CURRENT gives ``""``.

    >>> print(hparam_table({"lr": "3e-4", "epochs": "10"}, defaults=argparse_defaults(
    ...     "p.add_argument('--lr', default=1e-3)\\np.add_argument('--epochs', default=10)"), previous=None,
    ...     previous_run=None))
    | hyperparameter | default | this run |
    |---|---|---|
    | `lr` | `1e-3` | **`3e-4`** |
    | `epochs` | `10` | `10` |
    """
    if not current:
        return ""
    names = [dest for dest in defaults if dest in current]
    names += [name for name in current if name not in defaults]
    if previous is not None:
        names += [name for name in previous if name not in current]
    header = ["hyperparameter", "default", "this run"]
    if previous is not None:
        header.append(f"run {previous_run}" if previous_run is not None else "previous run")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        default_arg = defaults.get(name)
        default = default_arg.default if default_arg is not None else None
        value = current.get(name)
        if previous is not None:
            changed = not _same_value(value, previous.get(name))
        else:
            changed = not _same_value(value, default if default is not None or default_arg is None else "None")
        shown = _cell_value(value)
        row = [code(name), _cell_value(default), f"**{shown}**" if changed else shown]
        if previous is not None:
            row.append(_cell_value(previous.get(name)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


_BATCH_NAMES = ("batch_size", "batch-size", "bs", "train_batch_size", "per_device_train_batch_size")


def effective_batch(hparams: Mapping[str, str], gpus: int) -> tuple[int, int, int] | None:
    """(batch size, GPUs, batch × GPUs) from the first batch-size hyperparameter that is a positive integer.

    >>> effective_batch({"bs": "x", "batch_size": "64"}, 2), effective_batch({"batch_size": "64"}, 0)
    ((64, 2, 128), None)
    """
    if gpus < 1:
        return None
    for name in _BATCH_NAMES:
        try:
            batch = int(hparams.get(name, "").strip())
        except ValueError:
            continue
        if batch > 0:
            return batch, gpus, batch * gpus
    return None


# ------------------------------------------------------------------------------------------------------------
# The environment a run saw: an allow-list, with secrets redacted.

ENV_ALLOW: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_ORDER", "CUDA_MODULE_LOADING",
    "NVIDIA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
    "NCCL_*", "TORCH_*", "PYTORCH_*", "CUDNN_*", "TORCHINDUCTOR_*", "TORCHELASTIC_*",
    "SEED", "*_SEED",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
    "MASTER_PORT",
    "WANDB_MODE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
)
"""Names a run section may show; ``*`` matches any run of characters (``NCCL_*``, ``*_SEED``)."""

REDACTED = "‹redacted›"
_SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "KEY", "KEYS",
    "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "AUTHORIZATION", "COOKIE", "COOKIES", "PRIVATE",
})
_KNOWN_TOKEN_RE = re.compile(r"(?i)(?:ghp_|gho_|ghs_|ghu_|github_pat_|hf_|sk-|xox[abp]-)[A-Za-z0-9_-]{16,}")
_LONG_TOKEN_RE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


def looks_secret(name: str, value: str) -> bool:
    """Whether an environment variable looks like it holds a secret, by its name or its value.

    >>> looks_secret("HF_TOKEN", "x"), looks_secret("MONKEY_COUNT", "3"), looks_secret("SEED", "hf_" + "a1" * 10)
    (True, False, True)
    >>> looks_secret("TORCH_HOME", "/home/Ana/Projects2024/MyModelCheckpoints/v1")
    False
    """
    if _SECRET_WORDS.intersection(name.upper().split("_")):
        return True
    return bool(_KNOWN_TOKEN_RE.search(value)) or any(
        _random_looking(m.group()) for m in _LONG_TOKEN_RE.finditer(value)
    )


def _random_looking(token: str) -> bool:
    """A long run of letters and digits that mixes upper case, lower case and digits (or is long hex): how API
    keys look. A path's pieces are judged one by one."""
    if token.startswith("/"):
        return any(len(piece) >= 32 and _random_looking(piece) for piece in token.split("/"))
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    has_digit = any(c.isdigit() for c in token)
    hexadecimal = re.fullmatch(r"[0-9a-fA-F]+", token) is not None and has_digit
    return (has_upper and has_lower and has_digit) or hexadecimal


def allowed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ENVIRON, sorted by name, with secret-looking values replaced by ``‹redacted›``.

    >>> allowed_env({"HOME": "/root", "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_AUTH_TOKEN": "x", "SEED": "3"})
    {'CUDA_VISIBLE_DEVICES': '0,1', 'NCCL_AUTH_TOKEN': '‹redacted›', 'SEED': '3'}
    """
    return {
        name: REDACTED if looks_secret(name, value) else value
        for name, value in sorted(environ.items())
        if any(fnmatchcase(name, pattern) for pattern in ENV_ALLOW)
    }


# ------------------------------------------------------------------------------------------------------------
# The run record (the runs journal) and the report (what the section shows).


@dataclass(frozen=True)
class GitState:
    """The code as it was run: COMMIT and BRANCH (None when unknown or detached), whether the tree was DIRTY,
    the uncommitted FILES as (path, added, removed), and where the uncommitted diff was saved (relative to the
    notebook's folder)."""

    commit: str | None
    branch: str | None
    dirty: bool
    files: tuple[tuple[str, int, int], ...]
    patch_asset: str | None


@dataclass(frozen=True)
class GpuMemory:
    """GPU memory over a run, in bytes: NVML's peak over the run's processes and the GPUs' total, torch's own
    peaks (from the helper), and how many GPUs the run saw (0: a CPU run)."""

    nvml_peak: int | None
    nvml_total: int | None
    torch_allocated: int | None
    torch_reserved: int | None
    gpus: int


@dataclass(frozen=True)
class RunRecord:
    """What the runs journal keeps per run (one JSON line each) — used for run numbering and the previous-run
    comparison. Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` so that
    each line is standard JSON."""

    number: int
    observed: bool
    script: str | None
    argv: tuple[str, ...]
    cwd: str
    started: str
    duration_s: float | None
    exit_code: int | None
    exit_kind: str
    hparams: dict[str, str]
    metrics: dict[str, float]

    def to_json(self) -> str:
        """One line of JSON, no newline; ``RunRecord.from_json(r.to_json()) == r`` (NaN aside, NaN != NaN)."""
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["duration_s"] = _float_out(self.duration_s) if self.duration_s is not None else None
        data["metrics"] = {name: _float_out(value) for name, value in self.metrics.items()}
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Read what ``to_json`` wrote; unknown keys are ignored, anything missing or mistyped raises ValueError."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("run record: expected a JSON object")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"run record: missing {', '.join(missing)}")
        argv, hparams, metrics = data["argv"], data["hparams"], data["metrics"]
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise ValueError("run record: argv must be a list of strings")
        if not (isinstance(hparams, dict) and all(isinstance(v, str) for v in hparams.values())):
            raise ValueError("run record: hparams must map names to strings")
        if not isinstance(metrics, dict):
            raise ValueError("run record: metrics must be an object")
        return cls(
            number=_typed(data, "number", int),
            observed=_typed(data, "observed", bool),
            script=_typed(data, "script", str, optional=True),
            argv=tuple(argv),
            cwd=_typed(data, "cwd", str),
            started=_typed(data, "started", str),
            duration_s=_float_in(data["duration_s"], "duration_s") if data["duration_s"] is not None else None,
            exit_code=_typed(data, "exit_code", int, optional=True),
            exit_kind=_typed(data, "exit_kind", str),
            hparams=dict(hparams),
            metrics={str(name): _float_in(value, f"metrics.{name}") for name, value in metrics.items()},
        )


def _typed(data: Mapping[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    value = data[key]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"run record: {key} must be {kind.__name__}")
    return value


_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float_out(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _float_in(value: object, key: str) -> float:
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"run record: {key} must be a number")


@dataclass(frozen=True)
class RunReport:
    """Everything the run section shows (built by the wrapper)."""

    record: RunRecord
    started_at: datetime
    exit: ExitInfo
    defaults: dict[str, ArgDefault]
    previous: RunRecord | None
    git: GitState | None
    edits_since: list[SaveRecord] | None
    env: dict[str, str]
    metrics: list[MetricSummary]
    metric_sources: tuple[str, ...]
    curve_name: str | None
    curve_image: str | None
    curve_sparkline: str | None
    gpu: GpuMemory | None
    output_tail: list[str]
    output_lines: int


MEMORY_EXPLANATION = (
    "NVML counts everything the process holds on the device — the CUDA context (about 300–500 MiB) plus the "
    "pool PyTorch's caching allocator has reserved — while `max_memory_allocated` is what tensors actually "
    "used, and reserved − allocated is cache the allocator kept for reuse."
)
_MAX_FILES_LISTED = 20
_HEADING_COMMAND = 60


def format_duration(seconds: float) -> str:
    """A duration as people say it.

    >>> format_duration(0.84), format_duration(42.4), format_duration(252), format_duration(3720)
    ('0.8 s', '42 s', '4 min 12 s', '1 h 02 min')
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def render_run(report: RunReport) -> str:
    """The run section: one notebook entry (starts with ``"\\n## "``, ends with exactly one ``"\\n"``)."""
    record = report.record
    run = f"run {record.number}" + (" (observed)" if record.observed else "")
    what = record.script or shorten(shlex.join(record.argv), _HEADING_COMMAND) or "unknown command"
    title = heading(report.started_at, run, _heading_safe(what), _heading_safe(report.exit.label))
    blocks = [
        _facts(report),
        _hyperparameters(report),
        _code(report),
        _metrics(report),
        _gpu_memory(report.gpu),
        _environment(report.env),
        _output(report.output_tail, report.output_lines),
        "**Observations:** \n\n**Next:** ",
    ]
    return entry(title, "\n\n".join(block for block in blocks if block))


def _heading_safe(text: str) -> str:
    """TEXT that shows literally in a heading: Markdown's markup characters escaped, except ``_`` inside a word
    (which GFM leaves alone), so paths stay readable in the raw file."""
    text = re.sub(r"([\\`*<>\[\]#~])", r"\\\1", text)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def _facts(report: RunReport) -> str:
    record, exit_info = report.record, report.exit
    rows: list[tuple[str, str]] = []
    if record.argv:
        rows.append(("command", code(shlex.join(record.argv))))
    if record.started:
        rows.append(("started", escape(record.started)))
    if record.duration_s is not None and math.isfinite(record.duration_s) and record.duration_s >= 0:
        rows.append(("duration", format_duration(record.duration_s)))
    exit_text = escape(exit_info.label)
    if exit_info.detail and exit_info.detail not in exit_info.label:
        exit_text += " — " + code(exit_info.detail)
    rows.append(("exit", exit_text))
    if record.cwd:
        rows.append(("cwd", code(record.cwd)))
    if report.gpu is not None:
        rows.append(("GPUs", str(report.gpu.gpus) if report.gpu.gpus > 0 else "none (CPU)"))
    return "\n".join(["| | |", "|---|---|", *(f"| {label} | {value} |" for label, value in rows)])


def _script_args(argv: Sequence[str], script: str) -> list[str]:
    name = posixpath.basename(script)
    for i, arg in enumerate(argv):
        if posixpath.basename(arg) == name:
            return list(argv[i + 1:])
    return list(argv[1:])


def _hyperparameters(report: RunReport) -> str:
    record = report.record
    parts: list[str] = []
    previous = report.previous
    table = hparam_table(
        record.hparams, defaults=report.defaults, previous=previous.hparams if previous else None,
        previous_run=previous.number if previous else None,
    )
    if table:
        parts.append(table)
    if not report.defaults and record.script is not None:
        args = _script_args(record.argv, record.script)
        parts.append(f"argv: {code(shlex.join(args))}" if args else "no arguments")
    gpus = report.gpu.gpus if report.gpu is not None else 0
    batch = effective_batch(record.hparams, gpus) if gpus > 1 else None
    if batch is not None:
        size, count, total = batch
        parts.append(f"batch size {size} × {count} GPUs = effective batch {total} "
                     "(if each GPU runs its own batch, as with DDP)")
    if not parts:
        return ""
    return "### Hyperparameters\n\n" + "\n\n".join(parts)


def _link_target(path: str) -> str:
    return f"<{path}>" if re.search(r"[\s()<>]", path) else path


def _code(report: RunReport) -> str:
    parts: list[str] = []
    git = report.git
    if git is not None:
        line = "git " + (code(git.commit[:7]) if git.commit else "(no commit yet)")
        if git.branch:
            line += " on " + code(git.branch)
        if git.dirty:
            line += ", dirty"
            if git.files:
                added = sum(a for _, a, _ in git.files)
                removed = sum(r for _, _, r in git.files)
                count = len(git.files)
                line += f": {count} file{'s' if count != 1 else ''} (+{added}/−{removed})"
            if git.patch_asset:
                line += f" — [patch]({_link_target(git.patch_asset)})"
        else:
            line += ", clean"
        parts.append(line)
        if git.dirty and git.files:
            listed = [f"- {code(path)} +{a}/−{r}" for path, a, r in git.files[:_MAX_FILES_LISTED]]
            if len(git.files) > _MAX_FILES_LISTED:
                listed.append(f"- … and {len(git.files) - _MAX_FILES_LISTED} more")
            parts.append("\n".join(listed))
    if report.edits_since is not None:
        since = f"edits since run {report.previous.number}" if report.previous else "edits before this run"
        parts.append(f"{since}: {escape(render_edits_since(report.edits_since))}")
    if not parts:
        return ""
    return "### Code\n\n" + "\n\n".join(parts)


def _metrics(report: RunReport) -> str:
    if not report.metrics:
        return ""
    previous = report.previous
    compare = previous is not None and any(m.name in previous.metrics for m in report.metrics)
    header = ["metric", "final", "best (step)"]
    if previous is not None and compare:
        header.append(f"run {previous.number}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in report.metrics:
        if m.best is None:
            best = "—"
        else:
            best = format_number(m.best) + (f" (step {m.best_step})" if m.best_step is not None else "")
        row = [code(m.name), format_number(m.final), best]
        if previous is not None and compare:
            before = previous.metrics.get(m.name)
            row.append(format_number(before) if before is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    parts = ["### Metrics", "\n".join(lines)]
    if report.metric_sources:
        sources = ", ".join("the " + escape(s) if s.startswith("output") else code(s)
                            for s in report.metric_sources)
        parts.append(f"from {sources}")
    if report.curve_name and report.curve_image:
        parts.append(f"![{escape(report.curve_name)} curve]({_link_target(report.curve_image)})")
    elif report.curve_name and report.curve_sparkline:
        count = next((m.count for m in report.metrics if m.name == report.curve_name), None)
        points = f" ({count} points)" if count is not None else ""
        parts.append(f"{code(report.curve_name)} {report.curve_sparkline}{points}")
    return "\n\n".join(parts)


def _gpu_memory(gpu: GpuMemory | None) -> str:
    if gpu is None:
        return ""
    if gpu.gpus == 0:
        return "### GPU memory\n\nno GPU used (CPU run)"
    where = "on the GPU" if gpu.gpus == 1 else f"on the {gpu.gpus} GPUs"
    lines = []
    if gpu.nvml_peak is not None:
        of = f" of {gib(gpu.nvml_total)}" if gpu.nvml_total is not None else ""
        lines.append(f"{gib(gpu.nvml_peak)}{of} peak {where}, sampled by NVML over the run's processes.")
    torch_parts = []
    if gpu.torch_allocated is not None:
        torch_parts.append(f"max allocated {gib(gpu.torch_allocated)}")
    if gpu.torch_reserved is not None:
        torch_parts.append(f"max reserved {gib(gpu.torch_reserved)}")
    if torch_parts:
        lines.append("PyTorch: " + ", ".join(torch_parts)
                     + " (`torch.cuda.max_memory_allocated` / `max_memory_reserved`).")
    known = sum(v is not None for v in (gpu.nvml_peak, gpu.torch_allocated, gpu.torch_reserved))
    if known >= 2:
        lines.append(MEMORY_EXPLANATION)
    if not lines:
        lines.append(f"{gpu.gpus} GPU{'s' if gpu.gpus != 1 else ''} visible; memory not measured.")
    return "### GPU memory\n\n" + "\n".join(lines)


def _environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    return "### Environment\n\n" + " ".join(code(f"{name}={value}") for name, value in env.items())


def fenced(lines: Iterable[str], info: str = "text") -> str:
    """LINES in a fenced code block whose fence is longer than any backtick run inside.

    >>> print(fenced(["a ``` b"]))
    ````text
    a ``` b
    ````
    """
    lines = list(lines)
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence + info, *lines, fence])


def _output(tail: Sequence[str], total: int) -> str:
    if not tail:
        return ""
    lines = [" ".join(_BREAK_RE.split(line)) for line in tail]  # a tail from elsewhere may hold a line break
    summary = f"output (last {len(lines)} of {max(total, len(lines))} lines)"
    return f"<details><summary>{summary}</summary>\n\n{fenced(lines)}\n\n</details>"
