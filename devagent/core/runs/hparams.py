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
