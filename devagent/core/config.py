"""The workspace's ``devagent.toml``: `devagent up`'s options, committed with the code so a team shares them.

Pure: text in, values out. Every value is checked by the function `up` uses for the same option (so the file
accepts exactly what the command line accepts) and kept in the command line's form, so ``merge`` can lay the
options a user typed over the file's and `up` parses the result once. Every rejection is a
DevagentError(status=USAGE) whose message names the file and the line.

>>> config = parse_config('memory = "32g"\\n[agent]\\nwatch = ["src/**/*.py"]\\n')
>>> config.memory, config.watch, config.gpus
('32g', ('src/**/*.py',), None)
>>> merge(config, {"memory": "64g", "gpus": None})["memory"]
'64g'
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time

from devagent.core import globs, layout, spec
from devagent.core.dockerfile import parse_image_ref
from devagent.core.ssh.destination import parse_server
from devagent.core.ssh.sshd import PROFILES
from devagent.errors import DevagentError, ExitStatus

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

CONFIG_FILE = "devagent.toml"


@dataclass(frozen=True)
class SlurmSettings:
    """devagent.toml's [slurm] table: the allocation a bare `devagent up` asks the cluster for (the login node is
    `host`). Values as `up`'s options take them, already validated; None: not set."""

    partition: str | None = None
    gpus: int | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    wait_timeout: str | None = None  # a duration ("30m"): how long `up` waits for the job to start


@dataclass(frozen=True)
class UpConfig:
    """What a devagent.toml sets; ``None``: not set. Values are in the form `up`'s options take them
    (``memory="32g"``, ``cpus="8"``, ``gpus="0,1"``), already validated."""

    name: str | None = None
    host: str | None = None
    base_image: str | None = None
    image: str | None = None
    user: str | None = None
    gpus: str | None = None
    memory: str | None = None
    cpus: str | None = None
    shm_size: str | None = None
    pids: str | None = None
    sshd_profile: str | None = None
    vscode: bool | None = None
    idle_release: str | None = None  # a duration ("2h"); `up` checks it against the shortest limit
    # [agent]
    notebook: str | None = None
    watch: tuple[str, ...] | None = None
    poll_saves: bool | None = None
    # [slurm]
    slurm: SlurmSettings | None = None  # [slurm]: the environment lives in a Slurm job on the host's cluster


# -- the keys ------------------------------------------------------------------------------------------------------

_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a float"), (list, "an array"),
    (dict, "a table"), (datetime, "a date-time"), (date, "a date"), (time, "a time"),
)


def _type_name(value: object) -> str:
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__)


class _WrongType(Exception):
    """The value has the wrong TOML type; the message says what was expected."""


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _WrongType("a string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _WrongType("true or false")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _WrongType("a whole number")
    return value


def _number(value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _WrongType("a number")
    return value


def _size(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _WrongType('a size such as "8g"')
    return str(value)


def _name(value: object) -> str:
    return spec.validate_new_name(_string(value))


def _host(value: object) -> str:
    return parse_server(_string(value)).text


def _base_image(value: object) -> str:
    image = _string(value).strip()
    if not image:
        raise DevagentError("the base image must not be empty", hint=f'e.g. base_image = "{spec.DEFAULT_BASE_IMAGE}"',
                            status=ExitStatus.USAGE)
    return image


def _image(value: object) -> str:
    return str(parse_image_ref(_string(value), option="image"))


def _user(value: object) -> str:
    return spec.validate_user(_string(value))


def _gpus(value: object) -> str:
    if isinstance(value, list):
        _each(value, lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a GPU index or UUID",
              example="gpus = [0, 1]")
        text = ",".join(str(v) for v in value) if value else "none"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise _WrongType('a string such as "all" or "0,1", or an array such as [0, 1]')
    return spec.parse_gpus(text).describe()


def _memory(value: object) -> str:
    text = _size(value)
    spec.parse_size(text, option="--memory", minimum=spec.MIN_MEMORY)
    return text


def _shm_size(value: object) -> str:
    text = _size(value)
    spec.parse_size(text, option="--shm-size", minimum=spec.MIN_SHM_SIZE)
    return text


def _idle_release(value: object) -> str:
    if not isinstance(value, str):
        raise DevagentError(f"{_toml(value)} is not a duration", hint='e.g. "2h"', status=ExitStatus.USAGE)
    from devagent.core.gpu.idle_rule import parse_duration

    parse_duration(value, option="idle_release", minimum=0.0)
    return value


def _cpus(value: object) -> str:
    text = str(_number(value))
    spec.parse_cpus(text)
    return text


def _pids(value: object) -> str:
    text = str(_integer(value))
    spec.parse_pids(text)
    return text


def _sshd_profile(value: object) -> str:
    profile = _string(value)
    if profile not in PROFILES:
        raise DevagentError(f"unknown sshd profile {profile!r}", hint=f"use one of: {', '.join(PROFILES)}",
                            status=ExitStatus.USAGE)
    return profile


def _notebook(value: object) -> str:
    return spec.validate_notebook_path(_string(value))


def _watch(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _WrongType('an array of globs such as ["**/*.py"]')
    _each(value, lambda v: isinstance(v, str), "a glob in quotes", example='watch = ["**/*.py"]')
    if any(not v.strip() for v in value):
        raise DevagentError("a glob is empty", hint='e.g. watch = ["**/*.py"]', status=ExitStatus.USAGE)
    return globs.check_globs(value)  # the same check as --watch: too long, too many **, never matching


def _slurm_name(what: str, option: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        from devagent.core.slurm.request import check_name

        return check_name(_string(value), what=what, option=option)
    return check


def _slurm_gpus(value: object) -> int:
    from devagent.core.slurm.request import MAX_GPUS

    count = _integer(value)
    if not 0 <= count <= MAX_GPUS:
        raise DevagentError(f"--gpus: {count} is not a GPU count from 0 to {MAX_GPUS}", hint="e.g. --gpus 2",
                            status=ExitStatus.USAGE)
    return count


def _slurm_time(value: object) -> str:
    from devagent.core.slurm.request import parse_time

    parse_time(_string(value))
    return str(value)


def _slurm_constraint(value: object) -> str:
    from devagent.core.slurm.request import CONSTRAINT_RE

    text = _string(value)
    if not CONSTRAINT_RE.fullmatch(text):
        raise DevagentError(f"--constraint: invalid Slurm constraint {text!r}", hint="e.g. --constraint a100",
                            status=ExitStatus.USAGE)
    return text


def _wait_timeout(value: object) -> str:
    from devagent.core.gpu.idle_rule import parse_duration

    parse_duration(_string(value), option="wait_timeout", minimum=0.0)
    return str(value)


def _each(items: list[object], ok: Callable[[object], bool], what: str, *, example: str) -> None:
    for item in items:
        if not ok(item):
            raise DevagentError(f"{_toml(item)} is not {what}", hint=f"e.g. {example}", status=ExitStatus.USAGE)


# key → (convert-and-validate, an example value as TOML). The dataclass field has the key's name.
_TOP_KEYS: dict[str, tuple[Callable[[object], object], str]] = {
    "name": (_name, '"pytorch-dev"'),
    "host": (_host, '"gpu-server"'),
    "base_image": (_base_image, f'"{spec.DEFAULT_BASE_IMAGE}"'),
    "image": (_image, '"lab.example:5000/pytorch-cuda:v2.8-cu121"'),
    "user": (_user, '"dev"'),
    "gpus": (_gpus, '"all"'),
    "memory": (_memory, '"32g"'),
    "cpus": (_cpus, "8"),
    "shm_size": (_shm_size, '"8g"'),
    "pids": (_pids, "4096"),
    "sshd_profile": (_sshd_profile, '"strict"'),
    "vscode": (_boolean, "true"),
    "idle_release": (_idle_release, '"2h"'),
}
AGENT_TABLE = "agent"
_AGENT_KEYS: dict[str, tuple[Callable[[object], object], str]] = {
    "notebook": (_notebook, f'"{layout.NOTEBOOK}"'),
    "watch": (_watch, '["**/*.py"]'),
    "poll_saves": (_boolean, "false"),
}
SLURM_TABLE = "slurm"
_SLURM_KEYS: dict[str, tuple[Callable[[object], object], str]] = {
    "partition": (_slurm_name("partition", "--slurm"), '"gpu"'),
    "gpus": (_slurm_gpus, "2"),
    "time": (_slurm_time, '"8:00:00"'),
    "account": (_slurm_name("account", "--account"), '"lab"'),
    "qos": (_slurm_name("QOS", "--qos"), '"normal"'),
    "constraint": (_slurm_constraint, '"a100"'),
    "wait_timeout": (_wait_timeout, '"30m"'),
}
# `up` options that are deliberately not settings: they belong to one person or one invocation, not the team.
_NOT_SETTINGS = {
    "identity": "your key is yours, not the team's: pass --identity on the command line",
    "recreate": "replacing the container is a one-off: pass --recreate on the command line",
    "share_gpus": "sharing GPUs others hold is a decision made each time: pass --share-gpus on the command line",
    "workspace": "the workspace is the folder this file is in",
}


# -- parsing -------------------------------------------------------------------------------------------------------


def parse_config(text: str, *, source: str = CONFIG_FILE) -> UpConfig:
    """Read the text of a devagent.toml; SOURCE names it in messages.

    >>> parse_config('cpus = 8\\npids = 8192\\n')
    UpConfig(name=None, host=None, base_image=None, image=None, user=None, gpus=None, memory=None, cpus='8', \
shm_size=None, \
pids='8192', sshd_profile=None, vscode=None, idle_release=None, notebook=None, watch=None, poll_saves=None, \
slurm=None)
    >>> parse_config('memroy = "32g"\\n')
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: devagent.toml line 1: unknown key "memroy"
      hint: did you mean "memory"? The keys are: name, host, base_image, image, user, gpus, memory, cpus, \
shm_size, pids, sshd_profile, vscode, idle_release, and the [agent] and [slurm] tables
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line N, column M)"
        raise DevagentError(f"{source}: {exc}", hint="the file is TOML (https://toml.io): key = value lines, "
                            'strings in "quotes"', status=ExitStatus.USAGE) from None
    lines = _key_lines(text)
    values: dict[str, object] = {}
    for key, value in data.items():
        if key == AGENT_TABLE:
            if not isinstance(value, dict):
                raise _error(source, lines, (key,), f"{key} = {_toml(value)}: expected a table",
                             hint="write it as a table: a line [agent] followed by its keys")
            for agent_key, agent_value in value.items():
                values[agent_key] = _convert(source, lines, (AGENT_TABLE, agent_key), agent_value)
        elif key == SLURM_TABLE:
            if not isinstance(value, dict):
                raise _error(source, lines, (key,), f"{key} = {_toml(value)}: expected a table",
                             hint='write it as a table: slurm = { partition = "gpu", gpus = 2, time = "8:00:00" }')
            slurm = {k: _convert(source, lines, (SLURM_TABLE, k), v) for k, v in value.items()}
            if slurm and "partition" not in slurm:
                raise _error(source, lines, (key,), "the [slurm] table names no partition",
                             hint='name the partition the environment runs on: partition = "gpu"')
            values[key] = SlurmSettings(**slurm) if slurm else None  # type: ignore[arg-type]
        else:
            values[key] = _convert(source, lines, (key,), value)
    return UpConfig(**values)  # type: ignore[arg-type]  # each converter returns its field's type


def merge(config: UpConfig, flags: Mapping[str, object | None]) -> dict[str, object]:
    """Lay the options the user gave on the command line over the file's settings.

    FLAGS is keyed by UpConfig's field names (``user``, not click's ``login_user``); ``None`` or an empty
    tuple (click's value for a repeatable option not given) means not given, so pass ``None`` for every option
    left at its default. Keys UpConfig does not have (``identity``, ``recreate``, ``workspace``) pass through.
    The result has every UpConfig field (``None`` where neither sets it) and every flag.

    >>> merge(UpConfig(memory="32g", gpus="all"), {"gpus": "0", "memory": None, "recreate": True})["gpus"]
    '0'
    """
    merged: dict[str, object] = {f.name: getattr(config, f.name) for f in fields(config)}
    for key, value in flags.items():
        if value is None or (isinstance(value, (tuple, list)) and not value):
            merged.setdefault(key, None)
        else:
            merged[key] = value
    return merged


def _convert(source: str, lines: Mapping[tuple[str, ...], int], path: tuple[str, ...], value: object) -> object:
    """Check one key and its value; the value in its UpConfig form."""
    key = path[-1]
    keys = (_SLURM_KEYS if path[0] == SLURM_TABLE else _AGENT_KEYS) if len(path) > 1 else _TOP_KEYS
    if key not in keys:
        if len(path) > 1 and path[0] == SLURM_TABLE:
            raise _error(source, lines, path, f'unknown key "{key}" in [{SLURM_TABLE}]',
                         hint=f"The [{SLURM_TABLE}] keys are: {', '.join(_SLURM_KEYS)}")
        where = f' in [{AGENT_TABLE}]' if len(path) > 1 else ""
        raise _error(source, lines, path, f'unknown key "{key}"{where}', hint=_unknown_key_hint(path))
    converter, example = keys[key]
    try:
        return converter(value)
    except _WrongType as exc:
        raise _error(source, lines, path, f"{key} = {_toml(value)}: expected {exc}, not {_type_name(value)}",
                     hint=f"e.g. {key} = {example}") from None
    except DevagentError as exc:
        # The validators speak of the command-line option ("--memory: cannot read size '32x'", "e.g. --memory 8g"):
        # here the key says which option, and the example is a line of this file.
        message = _OPTION_PREFIX.sub("", exc.message)
        hint = exc.hint and _OPTION_EXAMPLE.sub(lambda m: _as_setting(m, key, quoted=example.startswith('"')),
                                                exc.hint)
        raise _error(source, lines, path, f"{key} = {_toml(value)}: {message}", hint=hint) from None


_OPTION_PREFIX = re.compile(r"^--[a-z-]+:?\s+")
# "--memory 8g" is an example; "--account takes 1-64 letters" (a sentence about the option) is not.
_OPTION_EXAMPLE = re.compile(r"--([a-z-]+) (?!takes )([^\s,;]+)")


def _as_setting(m: re.Match[str], key: str, *, quoted: bool) -> str:
    """``--memory 8g`` → ``memory = "8g"`` when it is KEY's option; else unchanged."""
    if m.group(1).replace("-", "_") != key:
        return m.group(0)
    return f'{key} = "{m.group(2)}"' if quoted else f"{key} = {m.group(2)}"


def _unknown_key_hint(path: tuple[str, ...]) -> str:
    key = path[-1]
    in_agent = len(path) > 1
    if key in _NOT_SETTINGS:
        return _NOT_SETTINGS[key]
    if in_agent and key in _TOP_KEYS:
        return f'"{key}" is not an [{AGENT_TABLE}] setting: move it above the [{AGENT_TABLE}] line (every key ' \
            "after a [table] line belongs to that table)"
    if not in_agent and key in _AGENT_KEYS:
        return f'"{key}" belongs in the [{AGENT_TABLE}] table: move it below the [{AGENT_TABLE}] line'
    if in_agent:
        known = list(_AGENT_KEYS)
        listing = f"The [{AGENT_TABLE}] keys are: {', '.join(known)}"
    else:
        known = [*_TOP_KEYS, AGENT_TABLE, SLURM_TABLE]
        listing = f"The keys are: {', '.join(_TOP_KEYS)}, and the [{AGENT_TABLE}] and [{SLURM_TABLE}] tables"
    close = difflib.get_close_matches(key.replace("-", "_").lower(), known, n=1)
    return f'did you mean "{close[0]}"? {listing}' if close else listing


def _error(source: str, lines: Mapping[tuple[str, ...], int], path: tuple[str, ...], message: str, *,
           hint: str | None) -> DevagentError:
    line = _line_of(lines, path)
    where = f"{source} line {line}" if line is not None else source
    return DevagentError(f"{where}: {message}", hint=hint, status=ExitStatus.USAGE)


def _toml(value: object) -> str:
    """VALUE the way it would be written in TOML, for messages.

    >>> _toml(["a", 1, True]), _toml({"x": 1.5})
    ('["a", 1, true]', '{ x = 1.5 }')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return value.isoformat() if isinstance(value, (datetime, date, time)) else str(value)


# -- where a key is ------------------------------------------------------------------------------------------------
#
# tomllib gives values but no positions, so the lines are found by scanning the text: a `[table]` line opens a
# table, a `key =` / `dotted.key =` line defines a key in the current table. Good enough for a config file, with
# known limits: a key inside an inline table (`agent = { watch = [...] }`) is reported at the line of `agent`;
# multi-line strings are skipped by counting their quotes, so an odd line (a `"""` inside a '''string''') can
# confuse the scan; then a message names a wrong line or none, never a wrong key.

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_TABLE_LINE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PARTS = re.compile(_KEY_PART)


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in _PARTS.findall(dotted))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The 1-based line of each key path (tables too) as far as a line scan can tell.

    >>> _key_lines('a = 1\\n[agent]\\n  watch = [\\n"x = 1",\\n]\\n"b".c = 2\\n')
    {('a',): 1, ('agent',): 2, ('agent', 'watch'): 3, ('agent', 'b', 'c'): 6, ('agent', 'b'): 6}
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    open_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        if m := _TABLE_LINE.match(line):
            table = _split_key(m.group(1))
            found.setdefault(table, number)
        elif m := _KEY_LINE.match(line):
            path = table + _split_key(m.group(1))
            for end in range(len(path), len(table), -1):
                found.setdefault(path[:end], number)
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2 == 1:
                open_string = quotes
                break
    return found


def _line_of(lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of PATH, or of the nearest table around it that the scan found."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


# -- `devagent init` -----------------------------------------------------------------------------------------------

_LIMITS = spec.Limits()

INIT_TEMPLATE = f"""\
# devagent.toml — the environment this code wants, committed with it.
# `devagent up` reads it from the workspace; an option given on the command line overrides the same setting here.
# Every setting is optional: remove the "#" in front of one to set it. The values shown are the defaults.

# The environment's name, which is also its ssh alias (ssh NAME; VS Code: Remote-SSH → Connect to Host → NAME).
# With a name here, `devagent up` needs no NAME.
#name = "pytorch-dev"

# The GPU server the environment lives on, as you reach it with ssh: an alias from your ssh config, user@host[:port]
# or ssh://user@host:port. Unset: this machine's Docker Engine. --host and DEVAGENT_HOST win over it.
#host = "gpu-server"

# The base image: Debian- or Ubuntu-based, with python3. devagent derives an image with sshd and the login user.
#base_image = "{spec.DEFAULT_BASE_IMAGE}"

# Or, instead of base_image, a team image that `devagent image build --tag REGISTRY/REPO:VERSION --push` made:
# it is started as it is (pulled when missing, never rebuilt); @sha256:… pins exactly that image. No default.
#image = "lab.example:5000/pytorch-cuda:v2.8-cu121"

# The login user inside the container (never root).
#user = "dev"

# GPUs: "none", "all", "any:2" (two free GPUs, the ones with the most free memory), indexes "0,1" (or [0, 1]),
# or UUIDs from `devagent gpus` ("GPU-5c3f…,GPU-…"). A GPU another environment or container holds is refused.
#gpus = "none"

# Memory limit, with no swap beyond it: a number and its unit b, k, m or g (at least 6m).
#memory = "{spec.format_size(_LIMITS.memory)}"

# CPU limit; fractions allowed. Default: {spec.DEFAULT_CPUS}, or all the engine has when it has fewer.
#cpus = {spec.DEFAULT_CPUS}

# Size of /dev/shm: DataLoader workers hand batches over through it.
#shm_size = "{spec.format_size(_LIMITS.shm_size)}"

# Process limit (at least 64): every DataLoader worker is a process.
#pids = {_LIMITS.pids}

# sshd's key exchange: "strict" is post-quantum only and needs OpenSSH 8.5 or newer on your machine; "compat"
# adds curve25519. Default: strict when your ssh is 8.5 or newer, else compat.
#sshd_profile = "strict"

# Put devagent's VS Code snippets and tasks in the workspace's .vscode/ (as `devagent up --vscode` does).
#vscode = true

# Give the GPUs back once they were idle this long with no ssh session open and no `devagent run` running (at
# least 5m): the container stops, the workspace and its home stay, and `devagent up` again takes GPUs anew.
#idle_release = "2h"

# On a Slurm cluster (host is then its login node): the environment lives in a job of yours on the partition,
# with that many GPUs (Slurm picks the node and which GPUs) for that time; account, qos and constraint as the
# cluster requires; wait_timeout: how long `up` waits for the job to start before it cancels it. Unset: no Slurm.
#slurm = {{ partition = "gpu", gpus = 2, time = "8:00:00" }}

# Not settings, on purpose: --identity (your own key) and --recreate stay on the command line, and the workspace
# is the folder this file is in.

# Every key after the [agent] line belongs to the agent: keep the settings above at the top.
[agent]

# The lab notebook, relative to the workspace.
#notebook = "{layout.NOTEBOOK}"

# Training scripts whose saves are journaled in the notebook: globs relative to the workspace.
#watch = ["**/*.py"]

# Detect saves by polling, for workspaces on network mounts where inotify does not fire.
#poll_saves = false
"""


def init_text(covered: Sequence[str] = (), source: str = "") -> str:
    """INIT_TEMPLATE, less what a devcontainer.json (SOURCE) already says: each of COVERED (devagent.toml's keys)
    keeps its explanation, and its commented default becomes a line naming the file, so devagent.toml only adds
    what the JSON does not say (and a value put there still wins over it).

    >>> text = init_text(["memory"], ".devcontainer/devcontainer.json")
    >>> "#memory =" in text, "# memory: set by .devcontainer/devcontainer.json (a value here overrides it)" in text
    (False, True)
    """
    lines = []
    for line in INIT_TEMPLATE.splitlines(keepends=True):
        key = line[1:].split(" =", 1)[0] if line.startswith("#") and " = " in line else None
        lines.append(f"# {key}: set by {source} (a value here overrides it)\n" if key in covered else line)
    return "".join(lines)
