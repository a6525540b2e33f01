"""The console and Markdown blocks of the docs, and matching what they show against real output.

A doc shows a command's output with the parts that vary from run to run left out: `…` stands for any text within
a line, a line that is only `…` for any number of lines (none included). Both sides are masked before they are
compared: ports, hashes, times, numbers and sparklines (MASKS). Used by tests/test_docs.py (the blocks and the
matcher) and tests/integration/test_docs_tutorial.py (the blocks run against real output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ELLIPSIS = "…"
_FENCE = re.compile(r"^(`{3,})(\w*)\s*$")

# (pattern, replacement), applied in order to the doc's lines and the real ones alike.
MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?"), "TIME"),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:PORT"),
    (re.compile(r"\b[0-9a-f]{7,64}\b"), "HASH"),
    (re.compile(r"[▁▂▃▄▅▆▇█]+"), "SPARK"),
    (re.compile(r"\d+(\.\d+)?"), "0"),
)


@dataclass(frozen=True)
class Block:
    """A fenced block: its info string (console, markdown, …), the line of its opening fence, its lines."""

    kind: str
    line: int
    lines: tuple[str, ...]

    @property
    def prompt(self) -> str:
        """A console block's first line: the prompt and the command."""
        return self.lines[0] if self.lines else ""

    @property
    def output(self) -> tuple[str, ...]:
        return self.lines[1:]


def blocks(path: Path, kind: str | None = None) -> list[Block]:
    """The fenced blocks of the Markdown file PATH (of KIND only, when given), outermost fences only."""
    found: list[Block] = []
    fence: str | None = None
    info, start, body = "", 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fence is None:
            m = _FENCE.match(line)
            if m:
                fence, info, start, body = m.group(1), m.group(2), number, []
        elif line.rstrip() == fence:
            if kind is None or info == kind:
                found.append(Block(info, start, tuple(body)))
            fence = None
        else:
            body.append(line)
    return found


def mask(line: str) -> str:
    """LINE with what varies between runs replaced (MASKS); trailing spaces dropped."""
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def _line_pattern(doc_line: str) -> re.Pattern[str]:
    parts = [re.escape(mask(part)) for part in doc_line.split(ELLIPSIS)]
    return re.compile(".*?".join(parts) + r"\Z", re.DOTALL)


def mismatch(doc: list[str] | tuple[str, ...], real: list[str] | tuple[str, ...]) -> str | None:
    """None when the real lines are what the doc's lines show; else where they part, for the failure message.

    >>> mismatch(["✔ image devagent/env:… (built)", "…", "done in 3 s"],
    ...          ["✔ image devagent/env:4f2a99c1d0e4 (built)", "a", "b", "done in 12 s"]) is None
    True
    >>> mismatch(["a", "b"], ["a", "c"])
    "doc line 2 'b' does not match real line 2 'c'"
    """
    def match(i: int, j: int) -> bool:
        if i == len(doc):
            return j == len(real)
        if doc[i].strip() == ELLIPSIS:
            return any(match(i + 1, k) for k in range(j, len(real) + 1))
        return j < len(real) and _line_pattern(doc[i]).match(mask(real[j])) is not None and match(i + 1, j + 1)

    if match(0, 0):
        return None
    # Where they part: the first doc line (outside `…` lines) with no real line to match in order.
    j = 0
    for i, line in enumerate(doc):
        if line.strip() == ELLIPSIS:
            continue
        while j < len(real) and _line_pattern(line).match(mask(real[j])) is None:
            j += 1
        if j == len(real):
            got = real[min(i, len(real) - 1)] if real else ""
            return f"doc line {i + 1} {line!r} does not match real line {min(i, len(real) - 1) + 1} {got!r}"
        j += 1
    return f"the real output has {len(real)} lines where the doc shows {len(doc)}: {list(real)!r}"
