"""What `devagent run` keeps of a command's output on the side, while every byte streams through unchanged: the
last bytes (for the section's tail), the metrics printed in them, whether a loss went NaN, how many lines — within
a time budget.

Everything that looks at each byte in Python is inside that budget: parsing costs about 7 µs a line, and even
counting newlines (``bytes.count``, about 0.3 ms a MiB) costs more than a pipe to ``cat`` moves the same MiB on a
fast machine. Under a flood the stream keeps its speed; the parts read give the metrics, and the line count of the
parts skipped is estimated from the newlines per byte of the parts read (``line_count_estimated``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devagent.core.runs.distributed import REPORT_LINE_RE, merge_rank_lines, split_rank
from devagent.core.runs.exits import NAN_RE
from devagent.core.runs.metrics import MetricSeries, parse_metric_line
from devagent.core.runs.output import LineCollector

# What reading the output for the notebook may cost the stream: a share of the run's wall time (after a first
# allowance). A script that prints faster than that is still streamed in full; only its metrics are read from part
# of it, and the section says how much. The allowance was a quarter second: under a flood that is a quarter second
# of stream stalled per run, which alone kept the wrapper under half a pipe to `cat` (docs/explanation/performance.md).
# 20 ms still reads a script's first few thousand lines (a model summary, a config dump) whole.
PARSE_BUDGET = 0.05
PARSE_FREE_S = 0.02
PARSE_SLICE = 64 * 1024  # bytes parsed between two looks at the clock: a 1 MiB read of short lines is ~70 ms
RAW_TAIL_BYTES = 256 * 1024  # the output's last bytes, raw: the tail is cleaned from these at the end
TAIL_LINES = 40
RANK_LINES = 400  # a distributed run's last lines merged into its tail: every rank prints the same ones


@dataclass
class OutputWatch:
    """What the wrapper keeps of the output on the side: the last bytes (for the tail), the metrics in it, and
    whether a loss went NaN. Never slows the stream by more than PARSE_BUDGET of the run's time; whatever was
    skipped at the very end is read from the last bytes at ``close()``, so final values are always the last."""

    clock: Callable[[], float] = time.monotonic
    series: MetricSeries = field(default_factory=MetricSeries)
    nan_seen: bool = False
    total_bytes: int = 0
    parsed_bytes: int = 0
    newlines: int = 0  # in the bytes counted
    counted_bytes: int = 0  # bytes whose newlines were counted (all, unless the budget ran out)
    lines: LineCollector = field(default_factory=LineCollector)
    # A distributed run: lines carry their rank (``[rank1]:``); metrics come from rank 0 only, the launcher's own
    # lines (its error report: ``rank : 1 (local_rank: 1)``) are never metrics, the tail shows each line once.
    ranks: bool = False
    rank_seen: bool = False
    _raw: bytearray = field(default_factory=bytearray)
    _spent: float = 0.0
    _started: float | None = None
    _parsed_upto: int = 0  # total_bytes when the last parsed byte came in
    _counted_upto: int = 0  # the same for the last counted byte

    def feed(self, data: bytes) -> None:
        start = self.total_bytes
        self.total_bytes += len(data)
        if len(data) >= RAW_TAIL_BYTES:  # a big read replaces the tail: copy only its end
            self._raw = bytearray(data[-RAW_TAIL_BYTES:])
        else:
            self._raw += data
            if len(self._raw) > RAW_TAIL_BYTES:
                del self._raw[:-RAW_TAIL_BYTES]
        now = self.clock()
        if self._started is None:
            self._started = now
        offset = 0
        while offset < len(data):
            if self._spent > PARSE_FREE_S + PARSE_BUDGET * (now - self._started):
                break  # over budget: stream on, read again when there is time
            piece = data[offset:offset + PARSE_SLICE]
            self._read(piece, at=start + offset)
            offset += len(piece)
            later = self.clock()
            self._spent += later - now
            now = later

    def _read(self, piece: bytes, *, at: int) -> None:
        """Count and parse PIECE, which starts at byte AT of the output."""
        self.counted_bytes += len(piece)
        self.newlines += piece.count(b"\n")
        end = self._counted_upto = at + len(piece)
        if self._parsed_upto != at:  # after a gap: start again at a line boundary
            newline = piece.find(b"\n")
            if newline < 0:
                return
            piece = piece[newline + 1:]
            self.lines = LineCollector()
        self._take(self.lines.feed(piece))
        self.parsed_bytes += len(piece)
        self._parsed_upto = end

    def close(self) -> None:
        uncounted = self.total_bytes - self._counted_upto  # the end, past the last byte counted
        if uncounted:
            end = self._raw[-uncounted:] if uncounted <= len(self._raw) else self._raw
            self.counted_bytes += len(end)
            self.newlines += end.count(b"\n")
        missing = self.total_bytes - self._parsed_upto
        if missing:  # the end was skipped: read it from the last bytes, so the final values are the real ones
            if missing <= len(self._raw):
                rest = bytes(self._raw[-missing:])  # continues exactly where the last parsed chunk ended
            else:
                rest = bytes(self._raw)
                rest = rest[rest.find(b"\n") + 1:]
                self.lines = LineCollector()
            self._take(self.lines.feed(rest))
            self.parsed_bytes += len(rest)
        self._take(self.lines.close())

    @property
    def tail(self) -> list[str]:
        """The cleaned last lines, from the raw last bytes (complete even when metrics skipped a part); for a
        distributed run, with each line every rank printed alike once (core.runs.distributed.merge_rank_lines)."""
        if self.ranks:
            return merge_rank_lines(self.last_lines(RANK_LINES))[-TAIL_LINES:]
        return self.last_lines(TAIL_LINES)

    def last_lines(self, count: int) -> list[str]:
        """The last COUNT cleaned lines, as printed (rank prefixes kept)."""
        raw = bytes(self._raw)
        if self.total_bytes > len(raw):  # the first line kept is cut: leave it out
            raw = raw[raw.find(b"\n") + 1:] if b"\n" in raw else raw
        collector = LineCollector(tail_lines=count)
        collector.feed(raw)
        collector.close()
        return collector.tail

    @property
    def line_count(self) -> int:
        """Lines in the output: exact when every byte was counted, else the newlines counted plus those of the
        skipped bytes at the density of the counted ones (``line_count_estimated``)."""
        newlines = self.newlines
        if self.line_count_estimated:
            newlines += round((self.total_bytes - self.counted_bytes) * self.newlines / self.counted_bytes)
        return newlines + (1 if self._raw and not self._raw.endswith(b"\n") else 0)

    @property
    def line_count_estimated(self) -> bool:
        return 0 < self.counted_bytes < self.total_bytes

    @property
    def parsed_share(self) -> float:
        return 1.0 if not self.total_bytes else min(1.0, self.parsed_bytes / self.total_bytes)

    def _take(self, lines: list[str]) -> None:
        for printed in lines:
            line = printed
            if self.ranks:
                rank, line = split_rank(printed)
                self.rank_seen = self.rank_seen or rank is not None
                if NAN_RE.search(line):
                    self.nan_seen = True
                if rank not in (0, None) or (rank is None and self.rank_seen) or REPORT_LINE_RE.match(line):
                    continue  # another rank's, or the launcher's own
            values = parse_metric_line(line)
            if values:
                self.series.add(values)
            if NAN_RE.search(line):
                self.nan_seen = True
