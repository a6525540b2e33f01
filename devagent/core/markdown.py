r"""Markdown building blocks for every renderer: escaping, code spans, fences, tables, folded blocks.

Pure: text in, text out. The target is GitHub-flavoured Markdown as VS Code's preview (markdown-it) and GitHub
render it. Values come from outside — paths, commands, GPU names, error text — and must show literally without
breaking the block around them:

- a line break ends a heading or a table row: ``one_line``/``squeeze`` keep a value on one line;
- in a table, a ``|`` ends the cell unless written ``\|``, which GFM honours even inside code spans (and then
  shows as ``|``): ``escape`` and ``code`` always write it so, and ``escape_pipes`` does it for any other cell;
- a backtick run as long as a code span's or a fence's own ends it early: ``code_span`` and ``fence`` make
  theirs one longer than any run inside (CommonMark's rule);
- a control character is an instruction to the terminal that shows the file (``cat lab-notebook.md``: ESC starts
  colour, cursor and clipboard sequences, BEL rings, CR overwrites the line): every helper here makes them
  visible with ``printable``, so no value devagent renders can reach a terminal as one.

>>> print(table(["name", "value"], [[code("a|b"), escape("*x*")]]))
| name | value |
|---|---|
| `a\|b` | \*x\* |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_MARKUP_RE = re.compile(r"([\\`*_\[\]<>|#!~])")
_HEADING_MARKUP_RE = re.compile(r"([\\`*<>\[\]#~])")
_LOOSE_UNDERSCORE_RE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_BACKTICKS_RE = re.compile(r"`+")
_BREAK_RE = re.compile(r"\r\n|\r|\n")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1


def _visible(match: re.Match[str]) -> str:
    c = ord(match.group())
    if c < 0x20:
        return chr(0x2400 + c)  # Unicode's Control Pictures: ESC shows as ␛, BEL as ␇, CR as ␍
    if c == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{c:02x}"  # C1 has no pictures: its escape, as Python writes it


def printable(text: str) -> str:
    r"""TEXT with every control character but tab and newline made visible: C0 and DEL as their Unicode Control
    Pictures (ESC → ␛), C1 as ``\x9b`` text. Nothing in the result is an instruction to a terminal.

    >>> printable("\x1b]52;c;ZXZpbA==\x07 ok\t\x9b2J\x7f\n")
    '␛]52;c;ZXZpbA==␇ ok\t\\x9b2J␡\n'
    """
    return _CONTROL_RE.sub(_visible, text)


def cell(text: str) -> str:
    r"""TEXT for one field of a table devagent prints on the terminal (`ls`, `gpus`): ``printable``, and tab and
    line breaks made visible too (as ␉ and ␊), so a value another user wrote (a container's label) can neither
    drive the terminal nor start a row of its own.

    >>> cell("bob\n0    GPU-x  free\t\x1b[2J\r")
    'bob␊0    GPU-x  free␉␛[2J␍'
    """
    return printable(text).replace("\t", "\u2409").replace("\n", "\u240a")


def one_line(text: str) -> str:
    r"""TEXT with each line break made a space (other whitespace kept as it is).

    >>> one_line("a\nb  c\r\n")
    'a b  c'
    """
    return printable(" ".join(text.splitlines())) if text else ""


def squeeze(text: str) -> str:
    r"""TEXT on one line, each run of whitespace made one space, none at the ends.

    >>> squeeze("  NVIDIA\n A100\t80GB ")
    'NVIDIA A100 80GB'
    """
    return printable(" ".join(text.split()))


def split_lines(text: str) -> list[str]:
    r"""TEXT cut where Markdown ends a line: ``\r\n``, ``\r`` or ``\n``.

    >>> split_lines("a\r\nb\rc\n")
    ['a', 'b', 'c', '']
    """
    return _BREAK_RE.split(text)


def escape(text: str) -> str:
    r"""TEXT on one line (see ``one_line``), shown literally wherever inline text goes, a table cell included.

    >>> escape("a|b *c* `d`")
    'a\\|b \\*c\\* \\`d\\`'
    """
    return _MARKUP_RE.sub(r"\\\1", one_line(text))


def escape_heading(text: str) -> str:
    r"""TEXT that shows literally in a heading: Markdown's markup characters escaped, except ``_`` inside a word
    (which GFM leaves alone), so paths stay readable in the raw file. ``|`` needs nothing outside a table.

    >>> escape_heading("my_model/[v2]*_draft_.py")
    'my_model/\\[v2\\]\\*\\_draft\\_.py'
    """
    return _LOOSE_UNDERSCORE_RE.sub(r"\\_", _HEADING_MARKUP_RE.sub(r"\\\1", printable(text)))


def escape_pipes(text: str) -> str:
    r"""Inline Markdown TEXT made safe inside a table cell: every ``|`` written ``\|``.

    >>> escape_pipes("`x | y` or z")
    '`x \\| y` or z'
    """
    return printable(text).replace("|", "\\|")


def code_span(text: str) -> str:
    """TEXT as an inline code span, whatever backticks it holds; ``""`` for empty TEXT (two backticks would show
    as themselves, not as an empty span). TEXT must be one line already; ``|`` stays as it is (see ``code``).

    The span's backtick run is one longer than the longest run inside. CommonMark strips one space from each
    side when both sides have one (and not everything is a space), and a backtick at either end would join
    the span's own: such TEXT is padded with a space on each side, so that stripping gives it back.

    >>> code_span("/usr/bin/python3"), code_span("a`b"), code_span("`x`"), code_span(" y ")
    ('`/usr/bin/python3`', '``a`b``', '`` `x` ``', '`  y  `')
    """
    if not text:
        return ""
    text = printable(text)
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    spaced = text.startswith(" ") and text.endswith(" ") and text.strip(" ")
    if text.startswith("`") or text.endswith("`") or spaced:
        text = f" {text} "
    return f"{ticks}{text}{ticks}"


def code(text: str) -> str:
    r"""TEXT on one line (see ``one_line``) as an inline code span that is safe in a table cell too.

    >>> code("echo `date` | wc")
    '``echo `date` \\| wc``'
    """
    return escape_pipes(code_span(one_line(text)))


def link_target(path: str) -> str:
    """PATH as a link's or an image's destination: in angle brackets when it holds spaces or parentheses.

    >>> link_target("run-3.svg"), link_target("my runs/run 3.svg")
    ('run-3.svg', '<my runs/run 3.svg>')
    """
    path = printable(path)
    return f"<{path}>" if re.search(r"[\s()<>]", path) else path


def fence(lines: Iterable[str], info: str = "text") -> str:
    """LINES verbatim in a fenced code block whose fence is longer than any backtick run inside, so nothing in
    them can close it early. Each of LINES must be one line (see ``split_lines``).

    >>> print(fence(["a ``` b"]))
    ````text
    a ``` b
    ````
    """
    lines = [printable(line) for line in lines]
    longest = max((len(run) for line in lines for run in _BACKTICKS_RE.findall(line)), default=0)
    ticks = "`" * max(3, longest + 1)
    return "\n".join([ticks + info, *lines, ticks])


def details(summary: str, body: str) -> str:
    """BODY folded under SUMMARY (HTML ``<details>``; the blank lines let the body be Markdown).

    >>> details("nvidia-smi", "x").splitlines()
    ['<details><summary>nvidia-smi</summary>', '', 'x', '', '</details>']
    """
    return f"<details><summary>{one_line(summary)}</summary>\n\n{body}\n\n</details>"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    r"""A GFM table: the HEADER row, the delimiter row, then ROWS. Cells are inline Markdown that is already safe
    in a cell — from ``escape`` or ``code``, or passed through ``escape_pipes``. Column names that are all empty
    give ``| | |``: a table of label and value rows.

    >>> print(table(["", ""], [["exit", "0"]]))
    | | |
    |---|---|
    | exit | 0 |
    """
    top = _row(header) if any(header) else "|" + " |" * len(header)
    return "\n".join([top, "|" + "---|" * len(header), *(_row(row) for row in rows)])


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
