"""Hyperparameters: the script's argparse defaults, read from its source (never imported), overlaid with the
command line the way argparse would read it.

>>> defaults = argparse_defaults("p.add_argument('--lr', default=1e-3)\\np.add_argument('--amp', action='store_true')")
>>> overlay_argv(defaults, ["--lr", "3e-4"])
{'lr': '3e-4', 'amp': 'False'}
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace


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
    return _ArgvReader(defaults, argv).read()


class _ArgvReader:
    """One pass over a script's arguments, as argparse reads them: the words, where reading has got to, what has
    been set so far. Each step reads one option (and the words it takes) and moves on; the positionals are
    handed out at the end, when it is known how many there are."""

    def __init__(self, defaults: Mapping[str, ArgDefault], argv: Sequence[str]) -> None:
        self._values: dict[str, str] = {
            arg.dest: arg.default if arg.default is not None else "None" for arg in defaults.values()
        }
        self._positional_args = [arg for arg in defaults.values() if arg.positional]
        self._positionals: list[tuple[int, str]] = []  # (index in argv, word) of each word that is no option
        self._words = list(argv)
        self._next = 0  # the index of the next word to read
        self._appended: set[str] = set()  # append/extend dests given once already: later values add to them
        self._by_flag = {flag: arg for arg in defaults.values() for flag in arg.flags if flag.startswith("-")}
        for arg in defaults.values():
            if (arg.action or "").endswith("BooleanOptionalAction"):
                self._by_flag.update({"--no-" + f[2:]: arg for f in arg.flags if f.startswith("--")})

    def read(self) -> dict[str, str]:
        """Read every word; return dest → value for every argument known or given."""
        while self._next < len(self._words):
            word = self._words[self._next]
            self._next += 1
            if word == "--":
                self._positionals += list(enumerate(self._words[self._next:], start=self._next))
                break
            if not _looks_like_flag(word):
                self._positionals.append((self._next - 1, word))
                continue
            flag, inline = word, None
            if "=" in word:
                flag, inline = word.split("=", 1)
            known = self._by_flag.get(flag)
            if known is None and flag.startswith("--"):
                matches = [(f, a) for f, a in self._by_flag.items() if f.startswith(flag)]
                if len({id(a) for _, a in matches}) == 1:  # a unique prefix, as argparse's allow_abbrev takes it
                    flag, known = matches[0]
            if known is not None:
                self._option(known, flag, inline)
            elif not word.startswith("--") and len(word) > 2 and word[:2] in self._by_flag:
                self._short_cluster(word)
            else:
                self._unknown_option(flag, inline)
        self._assign_positionals()
        return self._values

    def _option(self, arg: ArgDefault, flag: str, inline: str | None) -> None:
        """Set ARG's value as FLAG gives it, from INLINE (``--x=1``, ``-b32``) or the words that follow."""
        action = arg.action or "store"
        if action.endswith("BooleanOptionalAction"):
            self._values[arg.dest] = str(not flag.startswith("--no-"))
        elif action == "store_true":
            self._values[arg.dest] = "True"
        elif action == "store_false":
            self._values[arg.dest] = "False"
        elif action in ("store_const", "append_const"):
            self._values[arg.dest] = arg.const if arg.const is not None else "None"
        elif action == "count":
            previous = self._values[arg.dest]  # every known argument has a value from the start
            self._values[arg.dest] = str((int(previous) if previous.lstrip("-").isdigit() else 0) + 1)
        else:
            value = inline if inline is not None else self._take_values(arg)
            if value is None:
                return
            if action in ("append", "extend"):
                if arg.dest in self._appended:
                    value = self._values[arg.dest] + ", " + value
                self._appended.add(arg.dest)
            self._values[arg.dest] = value

    def _take_values(self, arg: ArgDefault) -> str | None:
        """The words ARG's ``nargs`` takes, joined by spaces; None (and nothing taken) when too few are left, where
        argparse would refuse the command line and the default stays."""
        nargs = (arg.nargs or "").strip("'\"")
        if nargs == "?":
            value = self._take_value_word()
            if value is not None:
                return value
            return arg.const if arg.const is not None else "None"
        if nargs in ("*", "+"):
            end = self._next
            while end < len(self._words) and not _looks_like_flag(self._words[end]):
                end += 1
        else:
            end = self._next + (int(nargs) if nargs.isdigit() else 1)
            if end > len(self._words):
                return None
        taken, self._next = self._words[self._next:end], end
        return " ".join(taken)

    def _take_value_word(self) -> str | None:
        """The next word when it is a value rather than a flag (and move past it), else None."""
        if self._next < len(self._words) and not _looks_like_flag(self._words[self._next]):
            self._next += 1
            return self._words[self._next - 1]
        return None

    def _short_cluster(self, word: str) -> None:
        """``-b32`` (a short flag with its value attached) or ``-vvq`` (short switches together)."""
        rest = word[1:]
        while rest:
            flag = "-" + rest[0]
            arg = self._by_flag.get(flag)
            if arg is None:
                self._values[rest.replace("-", "_")] = "True"
                return
            rest = rest[1:]
            if arg.action in _NO_VALUE_ACTIONS:
                self._option(arg, flag, None)
                continue
            self._option(arg, flag, rest or None)
            return

    def _assign_positionals(self) -> None:
        """The words that are no option, to the positional arguments in order (``nargs`` as argparse counts it,
        one word kept for each later positional); what is left over goes under ``argv[N]``."""
        k = 0
        for n, arg in enumerate(self._positional_args):
            left = len(self._positionals) - k
            later = len(self._positional_args) - n - 1  # one word kept for each later positional
            nargs = (arg.nargs or "").strip("'\"")
            if nargs in ("*", "+"):
                count = max(0, left - later)
            elif nargs == "?":
                count = 1 if left > later else 0
            else:
                count = int(nargs) if nargs.isdigit() else 1
            taken = self._positionals[k:k + count]
            k += len(taken)
            if taken:
                self._values[arg.dest] = " ".join(word for _, word in taken)
        for index, word in self._positionals[k:]:
            self._values[f"argv[{index}]"] = word

    def _unknown_option(self, flag: str, inline: str | None) -> None:
        """An option the script's source does not declare: its value is INLINE, else the next word unless that is
        a flag, else ``"True"``."""
        name = flag.lstrip("-").replace("-", "_") or flag
        value = inline if inline is not None else self._take_value_word()
        self._values[name] = value if value is not None else "True"


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
