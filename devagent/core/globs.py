"""The watch globs (``--watch``, devagent.toml's ``watch``): checked when the configuration is read, matched in
time linear in the path on the container side.

The syntax is the watcher's since its first version: ``*`` and ``?`` stay within one name, ``**/`` is any number
of folders (none included), ``**`` elsewhere is any text, ``/`` included; every other character stands for itself
(there are no ``[classes]``). A glob matches a whole ``/``-separated path relative to the workspace.

A glob compiled to a backtracking regular expression (``(?:.*/)?`` per ``**/``) takes time exponential in the
number of ``**``: ``"**/" * 10 + "z.py"`` took 38 s on a 30-folder-deep path. Here the glob is a small
nondeterministic automaton whose set of live states is one integer, so each character of the path costs a few
integer operations however the glob is written.

>>> g = compile_glob("src/**/*.py")
>>> [g.match(p) for p in ("src/train.py", "src/m/n/model.py", "train.py", "src/notes.md")]
[True, True, False, False]
>>> check_glob("**/" * 10 + "z.py")
Traceback (most recent call last):
...
devagent.errors.DevagentError: --watch: the glob '**/**/**/**/**/**/**/**/**/**/z.py' has 10 '**'; at most 4 are \
allowed
  hint: one '**/' already stands for any number of folders: write '**/z.py'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from devagent.errors import DevagentError, ExitStatus

MAX_GLOB_LENGTH = 256  # characters; a path of 4096 bytes has more, but nobody types such a glob
MAX_DOUBLE_STARS = 4  # `src/**/models/**/*.py` needs two
MAX_GLOBS = 64
_MAX_ROWS = 1024  # remembered sets of live states per glob
_MAX_ROW = 256  # remembered characters per set


class _Kind(enum.Enum):
    LITERAL = "c"
    ONE = "?"  # one character of a name
    STAR = "*"  # any text within one name
    ANY = "**"  # any text, across folders
    DIRS = "**/"  # nothing, or any text that ends with a slash


def _tokens(pattern: str) -> list[tuple[_Kind, str]]:
    """The glob as tokens, read left to right, longest first: ``***`` is ``**`` then ``*``."""
    out: list[tuple[_Kind, str]] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append((_Kind.DIRS, ""))
            i += 3
        elif pattern.startswith("**", i):
            out.append((_Kind.ANY, ""))
            i += 2
        elif pattern[i] == "*":
            out.append((_Kind.STAR, ""))
            i += 1
        elif pattern[i] == "?":
            out.append((_Kind.ONE, ""))
            i += 1
        else:
            out.append((_Kind.LITERAL, pattern[i]))
            i += 1
    return out


_WILD = (_Kind.STAR, _Kind.ANY, _Kind.DIRS)


def _collapse(tokens: list[tuple[_Kind, str]]) -> list[tuple[_Kind, str]]:
    """Neighbouring wildcards that mean one: ``**`` next to any wildcard is ``**``, ``**/**/`` is ``**/``.

    >>> [k.value for k, _ in _collapse(_tokens("**/**/a/***"))]
    ['**/', 'c', 'c', '**']
    """
    out: list[tuple[_Kind, str]] = []
    for kind, char in tokens:
        if out and kind in _WILD and out[-1][0] in _WILD:
            previous = out[-1][0]
            if _Kind.ANY in (previous, kind):
                out[-1] = (_Kind.ANY, "")
                continue
            if previous is kind:
                continue
        out.append((kind, char))
    return out


class Glob:
    """A compiled glob; ``match(path)`` tells whether it matches the whole relative PATH.

    State ``i`` means "the first i steps of the glob are matched"; the live states are the bits of one integer.
    ``**/`` is three: an entry that consumes nothing and leads on to any text then a slash, or past both (the
    text's own state loops, so it cannot be the one that skips). Safe to share between
    threads (the memo is a cache: a lost update only costs a recomputation).
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        steps: list[tuple[_Kind, str]] = []
        entries = 0  # the states that enter a `**/`: on to its text, or past it without a character
        for kind, char in _collapse(_tokens(pattern)):
            if kind is _Kind.DIRS:
                entries |= 1 << len(steps)
                steps += [(_Kind.DIRS, ""), (_Kind.ANY, ""), (_Kind.LITERAL, "/")]
            else:
                steps.append((kind, char))
        self._accept = 1 << len(steps)
        self._literal: dict[str, int] = {}  # character -> states that consume it and advance
        self._one = self._star = self._any = 0
        for i, (kind, char) in enumerate(steps):
            bit = 1 << i
            if kind is _Kind.LITERAL:
                self._literal[char] = self._literal.get(char, 0) | bit
            elif kind is _Kind.ONE:
                self._one |= bit
            elif kind is _Kind.STAR:
                self._star |= bit
            elif kind is _Kind.ANY:
                self._any |= bit
        self._skip_one = self._star | self._any | entries  # a wildcard may match nothing
        self._skip_three = entries
        self._start = self._closure(1)
        # Steps already taken, as a lazily built DFA: live states -> character -> live states. Paths share most
        # of their characters, so a match mostly costs one lookup per character. Bounded: past the bounds a step
        # is computed and not kept.
        self._rows: dict[int, dict[str, int]] = {}

    def _closure(self, states: int) -> int:
        # A collapsed glob has at most `**/` then `*` as skippable steps in a row: this loops a few times at most.
        while True:
            more = states | (states & self._skip_one) << 1 | (states & self._skip_three) << 3
            if more == states:
                return states
            states = more

    def match(self, path: str) -> bool:
        """Whether the glob matches all of PATH (``/``-separated, relative)."""
        states = self._start
        rows = self._rows
        for char in path:
            row = rows.get(states)
            if row is None:
                row = {} if len(rows) >= _MAX_ROWS else rows.setdefault(states, {})
            following = row.get(char)
            if following is None:
                following = self._step(states, char)
                if len(row) < _MAX_ROW:
                    row[char] = following
            if not following:
                return False
            states = following
        return bool(states & self._accept)

    def _step(self, states: int, char: str) -> int:
        if char == "/":
            advance = self._literal.get(char, 0)
            stay = self._any
        else:
            advance = self._literal.get(char, 0) | self._one
            stay = self._any | self._star
        return self._closure((states & advance) << 1 | states & stay)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def compile_glob(pattern: str) -> Glob:
    """Compile PATTERN without checking it (the agent takes what the host checked)."""
    return Glob(pattern)


def check_glob(pattern: str, *, option: str = "--watch") -> str:
    """PATTERN if it is a glob worth watching; a DevagentError(USAGE) naming OPTION if it is absurd: too long, too
    many ``**``, or one that can match no file path (absolute, ``//``, a ``.`` or ``..`` folder, a trailing
    slash).

    >>> check_glob("src/**/*.py")
    'src/**/*.py'
    >>> check_glob("/src/*.py")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: --watch: the glob '/src/*.py' starts with '/' and can never match
      hint: globs are relative to the workspace: write 'src/*.py'
    """
    def refuse(problem: str, hint: str) -> DevagentError:
        return DevagentError(f"{option}: the glob {pattern!r} {problem}", hint=hint, status=ExitStatus.USAGE)

    if not pattern.strip():
        raise DevagentError(f"{option}: a glob is empty", hint="e.g. --watch '**/*.py'", status=ExitStatus.USAGE)
    if len(pattern) > MAX_GLOB_LENGTH:
        raise refuse(f"is {len(pattern)} characters long; at most {MAX_GLOB_LENGTH} are allowed",
                     "match by folder and suffix instead, e.g. 'src/**/*.py'")
    stars = sum(kind in (_Kind.ANY, _Kind.DIRS) for kind, _ in _tokens(pattern))
    if stars > MAX_DOUBLE_STARS:
        collapsed = "".join(char or kind.value for kind, char in _collapse(_tokens(pattern)))
        raise refuse(f"has {stars} '**'; at most {MAX_DOUBLE_STARS} are allowed",
                     f"one '**/' already stands for any number of folders: write {collapsed!r}")
    if "\0" in pattern:
        raise refuse("contains a NUL character, which no file name has", "remove it")
    if pattern.startswith("/"):
        raise refuse("starts with '/' and can never match",
                     f"globs are relative to the workspace: write {pattern.lstrip('/')!r}")
    if pattern.endswith("/"):
        raise refuse("ends with '/' and can never match: the watcher sees files, not folders",
                     f"for every file below that folder write {pattern + '**'!r}")
    if "//" in pattern:
        raise refuse("has an empty folder name ('//') and can never match", "write a single '/'")
    if any(part in (".", "..") for part in pattern.split("/")):
        raise refuse("has a '.' or '..' folder and can never match: watched paths are inside the workspace, "
                     "without '.' or '..'", "write the path from the workspace's top folder, e.g. 'src/*.py'")
    return pattern


def check_globs(patterns: Iterable[str], *, option: str = "--watch") -> tuple[str, ...]:
    """Every glob checked (``check_glob``), and no more than MAX_GLOBS of them."""
    checked = tuple(check_glob(p, option=option) for p in patterns)
    if len(checked) > MAX_GLOBS:
        raise DevagentError(f"{option}: {len(checked)} globs; at most {MAX_GLOBS} are allowed",
                            hint="use '**' to cover several folders with one glob", status=ExitStatus.USAGE)
    return checked
