r"""A command's output: raw bytes in, clean lines out — escape sequences and control characters gone, progress
bars reduced to their last state, lines cut to a bounded length.

>>> collector = LineCollector()
>>> collector.feed(b"\x1b[32mepoch 1\x1b[0m | loss=0.52\n 10%\r 50%\r100%\n")
['epoch 1 | loss=0.52', '100%']
"""

from __future__ import annotations

import codecs
import re
from collections import deque

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
        self._end_segment()
        if self._shown:
            lines.append(self._end_line())
        self._decoder.reset()
        return lines

    def _take(self, text: str) -> list[str]:
        lines: list[str] = []
        if not text:
            return lines
        start = 0
        for match in _BREAK_RE.finditer(text):
            self._append(text[start:match.start()])
            start = match.end()
            if match.group() == "\r":
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
            self._segment = shorten(self._segment, self._max_line)
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


def shorten(text: str, limit: int) -> str:
    """TEXT cut to LIMIT characters, the last being ``…`` when cut.

    >>> shorten("abcdef", 4), shorten("abc", 4)
    ('abc…', 'abc')
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
