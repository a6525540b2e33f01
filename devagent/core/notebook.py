"""The lab notebook as plain data, rendered to Markdown by pure functions.

Pure: no I/O, no clock, no environment read. Times come in as arguments.

A notebook is a header (how the environment was made) followed by entries. An *entry* is text that starts
with ``"\\n## "`` and ends with exactly one ``"\\n"``, so appending entries one after another always
leaves the file on an entry boundary, and each entry is separated from what came before by a blank line.

>>> e = entry(heading(datetime(2026, 11, 27, 14, 2), "GPU check", "✅ 2 × A100"), "driver 550.54")
>>> e
'\\n## 2026-11-27 14:02 · GPU check · ✅ 2 × A100\\ndriver 550.54\\n'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime
from typing import Any

from devagent.core.markdown import code, escape, one_line, table

SEPARATOR = " · "
ENTRY_PREFIX = "\n## "


@dataclass(frozen=True)
class LaunchContext:
    """How an environment was made: everything the notebook header records.

    ``mounts`` holds ``(host_path, container_path, mode)`` triples, mode being ``"rw"`` or ``"ro"``;
    ``created`` is an ISO-8601 time; ``base_digest`` is ``None`` for a local base image that has no digest.
    ``pinned_image`` is the image as ``REPOSITORY[:TAG]@sha256:…`` in a registry, ``None`` when it exists only on
    the engine that made it; ``up_args`` are the options of `devagent up` that make an environment like this one
    (GPUs, limits, user), for the reproduce block. Both came later: a launch.json without them reads as unknown.
    """

    name: str
    user: str
    image: str
    base_image: str
    base_digest: str | None
    launch_command: str  # the exact `devagent up ...` command line
    mounts: tuple[tuple[str, str, str], ...]
    limits: str
    gpus: str
    ssh_alias: str
    devagent_version: str
    created: str
    pinned_image: str | None = None
    up_args: tuple[str, ...] = ()
    people: str = ""  # who may log in when the environment was made: "me (owner), alice" (core/people.py who)
    # On a Slurm cluster: "cluster hpc-login · job 4812 · partition gpu · node gpu07 · GPUs 2,3 · time limit 8 h"
    slurm: str = ""
    # `up`'s options of that Slurm job (--slurm gpu --time 0-08:00:00 …): what `reproduce` asks Slurm for again
    slurm_args: tuple[str, ...] = ()

    def to_json(self) -> str:
        """One line of JSON; ``LaunchContext.from_json(ctx.to_json()) == ctx``."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LaunchContext:
        """Read what ``to_json`` wrote. Unknown keys are ignored (a newer devagent may add some);
        a missing key raises ``ValueError``."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("launch context: expected a JSON object")
        names = [f.name for f in fields(cls)]
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
        if missing:
            raise ValueError(f"launch context: missing {', '.join(missing)}")
        values: dict[str, Any] = {n: data[n] for n in names if n in data}
        values["mounts"] = tuple((str(h), str(c), str(m)) for h, c, m in values["mounts"])
        for key in ("up_args", "slurm_args"):
            if key in values:
                values[key] = tuple(str(a) for a in values[key])
        return cls(**values)


@dataclass(frozen=True)
class SaveRecord:
    """One save of a watched file, as the journal keeps it.

    ``path`` is relative to the workspace with ``/`` separators; ``time`` is ISO-8601;
    ``lines_added``/``lines_removed`` compare with the content at the previous save. ``size`` is set (in bytes)
    only for a file too large to keep a copy of: its lines were not counted (both are 0).
    """

    time: str
    path: str
    sha256: str
    lines_added: int
    lines_removed: int
    size: int | None = None

    def to_json(self) -> str:
        """One line of JSON without a newline (without ``size`` when it is not set)."""
        data = asdict(self)
        if self.size is None:
            del data["size"]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SaveRecord:
        data = json.loads(text)
        return cls(
            time=str(data["time"]),
            path=str(data["path"]),
            sha256=str(data["sha256"]),
            lines_added=int(data["lines_added"]),
            lines_removed=int(data["lines_removed"]),
            size=int(data["size"]) if data.get("size") is not None else None,
        )


def render_header(ctx: LaunchContext) -> str:
    """The notebook's first lines: a title and a table recording how the environment was made.

    Ends with exactly one newline, so the first entry follows after a blank line.

    >>> print(render_header(LaunchContext("dev", "dev", "devagent/dev:3f2a", "debian:12", None,
    ...     "devagent up dev", (("./code", "/workspace", "rw"),), "32g", "none", "dev", "0.1.0",
    ...     "2026-11-27T14:00:00+00:00")).splitlines()[0])
    # Lab notebook — dev
    """
    if ctx.base_digest:
        base = f"{code(ctx.base_image)} {code('@' + short_digest(ctx.base_digest))}"
    else:
        base = f"{code(ctx.base_image)} (local image, no registry digest)"
    mounts = (
        "<br>".join(
            f"{code(host)} → {code(container)} ({escape(mode)})"
            for host, container, mode in ctx.mounts
        )
        or "none"
    )
    if ctx.pinned_image and "@" in ctx.pinned_image:  # the name, then its registry digest shortened like the base's
        name, _, digest = ctx.pinned_image.rpartition("@")
        image = f"{code(name)} {code('@' + short_digest(digest))}"
    else:
        image = code(ctx.image)
    rows = [
        ["image", f"{image} · base {base}"],
        ["launched", code(ctx.launch_command)],
        ["mounts", mounts],
        ["limits", escape(ctx.limits)],
        ["GPUs", escape(ctx.gpus)],
        ["login", f"{code('ssh ' + ctx.ssh_alias)} as {escape(ctx.user)}"],
        *([["people", escape(ctx.people)]] if ctx.people else []),
        *([["Slurm", escape(ctx.slurm)]] if ctx.slurm else []),
        ["devagent", escape(ctx.devagent_version)],
        ["created", escape(ctx.created)],
    ]
    lines = [
        f"# Lab notebook — {escape(ctx.name)}",
        "",
        table(["environment", escape(ctx.name)], rows),
        "",
        "_devagent only appends below this line and never changes what is already here; "
        "write your own notes anywhere._",
    ]
    return "\n".join(lines) + "\n"


def short_digest(digest: str) -> str:
    """A digest (or image id) as the text shows it: the algorithm and the first 12 hex digits, as ``docker images``
    does. The whole digest makes a 600 px preview scroll sideways; it stays whole in launch.json and where a command
    must use it (the reproduce block).

    >>> short_digest("sha256:0d6b3e5fa1c24c0e9b8d7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2"), short_digest("abc")
    ('sha256:0d6b3e5fa1c2…', 'abc')
    """
    algorithm, _, value = digest.rpartition(":")
    if len(value) <= 12:
        return digest
    return f"{algorithm + ':' if algorithm else ''}{value[:12]}…"


def format_timestamp(dt: datetime) -> str:
    """The time in an entry heading, to the minute.

    >>> format_timestamp(datetime(2026, 11, 27, 14, 2, 59))
    '2026-11-27 14:02'
    """
    return dt.strftime("%Y-%m-%d %H:%M")


def heading(when: datetime, *parts: str) -> str:
    """An entry heading: the time, then PARTS, joined by `` · ``.

    >>> heading(datetime(2026, 11, 27, 14, 5), "run 3", "train.py", "✅ exit 0")
    '2026-11-27 14:05 · run 3 · train.py · ✅ exit 0'
    """
    return SEPARATOR.join([format_timestamp(when), *(one_line(p) for p in parts if p)])


def entry(heading: str, body: str) -> str:
    """One notebook entry: starts with ``"\\n## "``, ends with exactly one ``"\\n"``.

    The heading is kept to one line; blank lines around the body are dropped.

    >>> entry("2026-11-27 14:02 · note", "\\nsome text\\n\\n")
    '\\n## 2026-11-27 14:02 · note\\nsome text\\n'
    >>> entry("2026-11-27 14:02 · note", "")
    '\\n## 2026-11-27 14:02 · note\\n'
    """
    text = ENTRY_PREFIX + one_line(heading).strip() + "\n"
    body = body.strip("\n")
    if body:
        text += body + "\n"
    return text


def is_entry(text: str) -> bool:
    """Whether TEXT has the shape of an entry (what ``entry`` returns)."""
    return text.startswith(ENTRY_PREFIX) and text.endswith("\n") and not text.endswith("\n\n")


def render_edits_since(saves: Iterable[SaveRecord]) -> str:
    """Summarise saves per file, in the order files were first saved; +/− add up over the saves.

    >>> render_edits_since([SaveRecord("t1", "train.py", "a", 3, 1), SaveRecord("t2", "model.py", "b", 1, 0),
    ...                     SaveRecord("t3", "train.py", "c", 1, 1)])
    'train.py saved 2× (+4/−2), model.py saved 1× (+1/−0)'
    >>> render_edits_since([SaveRecord("t1", "data.py", "a", 0, 0, size=5 << 30)])
    'data.py saved 1× (too large to count lines)'
    >>> render_edits_since([])
    'no saves'
    """
    totals: dict[str, list[int]] = {}
    for save in saves:
        count_added_removed_large = totals.setdefault(save.path, [0, 0, 0, 0])
        count_added_removed_large[0] += 1
        count_added_removed_large[1] += save.lines_added
        count_added_removed_large[2] += save.lines_removed
        count_added_removed_large[3] += save.size is not None
    if not totals:
        return "no saves"
    return ", ".join(f"{path} saved {n}× ({_line_counts(n, added, removed, large)})"
                     for path, (n, added, removed, large) in totals.items())


def _line_counts(saves: int, added: int, removed: int, large: int) -> str:
    if large == saves:
        return "too large to count lines"
    counts = f"+{added}/−{removed}"
    return f"{counts}; {large} of them too large to count lines" if large else counts
