"""The run section: everything a run's notebook entry shows, and its rendering as Markdown.

The run wrapper (``devagent run``, and the observer for runs nobody wrapped) gathers a ``RunReport``;
``render_run`` turns it into one entry.
"""

from __future__ import annotations

import math
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from devagent.core.gpu.check_report import gib
from devagent.core.markdown import (
    code,
    details,
    escape,
    escape_heading,
    fence,
    link_target,
    one_line,
    split_lines,
    table,
)
from devagent.core.notebook import SEPARATOR, SaveRecord, entry, heading, render_edits_since
from devagent.core.runs.distributed import EffectiveBatch, Launch
from devagent.core.runs.exits import ExitInfo
from devagent.core.runs.gpu_timeline import (
    IDLE_UTIL,
    SUMMARY_HEADER,
    DeviceTimeline,
    format_span,
    hints,
    summary_rows,
)
from devagent.core.runs.hparams import ArgDefault, effective_batch
from devagent.core.runs.metrics import (
    MAX_NAME_LENGTH,
    MAX_NAMES,
    MetricSummary,
    format_number,
    has_best,
    short_number,
)
from devagent.core.runs.output import shorten
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.reproduce_block import ReproduceFacts, render_reproduce
from devagent.core.runs.secrets import REDACTED


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
    metrics_left_out: int = 0  # metric names logged beyond the cap (MetricSeries.left_out)
    metric_files_cut: tuple[tuple[str, int, int], ...] = ()  # (source, bytes read from its end, its size)
    curve_range: tuple[float, float] | None = None  # the curve's lowest and highest finite value
    output_finals: Mapping[str, float] = field(default_factory=dict)  # the output's own last value of a metric
    #                                     that another source gave: an epoch line's mean beside a step's value
    memory_explained: bool = False  # the notebook already holds MEMORY_EXPLANATION: not again
    reproduce: ReproduceFacts | None = None  # what re-creates the run: the block at the section's end
    notebook_name: str = "lab-notebook.md"  # the notebook relative to the workspace, for `devagent reproduce`
    started_by: str | None = None  # who started it, by the key of their ssh login (None: not in an environment)
    output_lines_estimated: bool = False  # a flood: OUTPUT_LINES counts part of it, the rest is estimated
    gpu_timelines: tuple[DeviceTimeline, ...] = ()  # what each GPU the run used did over time (NVML)
    gpu_timeline_image: str | None = None  # their picture, relative to the notebook's folder
    cpu_share: float | None = None  # the run's CPU time over its duration × the cores it could use
    launch: Launch | None = None  # a distributed run's shape (None: one process, as far as devagent can tell)
    batch: EffectiveBatch | None = None  # its effective batch, or what is missing to compute it
    other_nodes: Mapping[int, int | None] = field(default_factory=dict)  # other nodes' runs: number → node rank


MEMORY_EXPLANATION = (
    "NVML counts everything the process holds on the device — the CUDA context (about 300–500 MiB) plus the "
    "pool PyTorch's caching allocator has reserved — while `max_memory_allocated` is what tensors actually "
    "used, and reserved − allocated is cache the allocator kept for reuse."
)
# The summary of the folded block that holds MEMORY_EXPLANATION: written once per notebook (the writer looks for
# it in the notebook, RunReport.memory_explained), under the first run that has both figures.
MEMORY_NOTE = "what NVML and PyTorch each count"
_MAX_FILES_LISTED = 20
_HEADING_COMMAND = 60
_HEADING_EXIT = 60  # a longer exit label is cut in the heading; the facts then show the whole detail
# A table cell cannot wrap inside a word: a word longer than this (a long path, a digest) would make the preview
# scroll sideways at 600 px, so such a fact goes in a fenced block below the table, a table value is cut.
MAX_CELL_WORD = 48
_TABLE_WORDS = 48  # characters of code a table row's value cells share: each of N columns gets 48 / N
_NAME_WORD = 32  # a metric's or hyperparameter's name in a table
_SUMMARY_METRICS = 3
_SUMMARY_HPARAMS = 3


def format_duration(seconds: float) -> str:
    """A duration as people say it.

    >>> format_duration(0.84), format_duration(42.4), format_duration(252), format_duration(3720)
    ('0.8 s', '42 s', '4 min 12 s', '1 h 02 min')
    """
    return f"{seconds:.1f} s" if seconds < 10 else format_span(seconds)


def render_run(report: RunReport) -> str:
    """The run section: one notebook entry (starts with ``"\\n## "``, ends with exactly one ``"\\n"``)."""
    record = report.record
    run = f"run {record.number}" + (" (observed)" if record.observed else "")
    what = record.script or shorten(shell_join(record.argv), _HEADING_COMMAND) or "unknown command"
    label = shorten(report.exit.label, _HEADING_EXIT)
    title = heading(report.started_at, run, escape_heading(what), escape_heading(label))
    blocks = [
        summary_line(report),
        _facts(report),
        _hyperparameters(report),
        _code(report),
        _metrics(report),
        _gpu_memory(report.gpu, explained=report.memory_explained),
        gpu_activity(report.gpu_timelines, image=report.gpu_timeline_image, cpu_share=report.cpu_share),
        _environment(report.env),
        _output(report.output_tail, report.output_lines, estimated=report.output_lines_estimated),
        # The end of what devagent found, then the folded block that re-creates the run (issue 12).
        render_reproduce(report.reproduce, notebook=report.notebook_name) if report.reproduce else "",
        "**Observations:** \n\n**Next:** ",
    ]
    return entry(title, "\n\n".join(block for block in blocks if block))


def summary_line(report: RunReport) -> str:
    """The line under the heading, what a reader wants first: the final values of the main metrics (against the
    previous run of the same script), the duration, and the hyperparameters that changed (since the previous run;
    in a first run, from their defaults). ``""`` when there is nothing to say.

    >>> record = RunRecord(2, False, "t.py", ("python", "t.py", "--lr", "3e-3"), "/w", "", 11.2, 0, "success",
    ...                    {"lr": "3e-3", "epochs": "5"}, {})
    >>> before = RunRecord(1, False, "t.py", ("python", "t.py"), "/w", "", 14.0, 0, "success",
    ...                    {"lr": "1e-3", "epochs": "5"}, {"loss": 0.283, "acc": 0.8856})
    >>> metrics = [MetricSummary("loss", 0.37306, 0.23, 694, 1000), MetricSummary("acc", 0.8592, 0.8592, None, 5),
    ...            MetricSummary("epoch", 5, None, None, 5)]
    >>> print(summary_line(RunReport(record, datetime(2026, 11, 27), ExitInfo("success", 0, "", None), {}, before,
    ...       None, None, {}, metrics, (), None, None, None, None, [], 0)))
    loss 0.373 (run 1: 0.283) · acc 0.859 (0.886) · 11 s · lr 3e-3 (was 1e-3)
    """
    record, previous = report.record, report.previous
    parts: list[str] = []
    shown = [m for m in report.metrics if has_best(m.name)][:_SUMMARY_METRICS]
    named_run = False  # the first comparison names the previous run, the others follow it
    for m in shown:
        text = f"{escape(shorten(m.name, MAX_CELL_WORD))} {short_number(m.final)}"
        before = previous.metrics.get(m.name) if previous is not None else None
        if before is not None and previous is not None:
            text += f" ({short_number(before)})" if named_run else f" (run {previous.number}: {short_number(before)})"
            named_run = True
        parts.append(text)
    if record.duration_s is not None and math.isfinite(record.duration_s) and record.duration_s >= 0:
        parts.append(format_duration(record.duration_s))
    parts.extend(_changed_hparams(report))
    return SEPARATOR.join(parts)


def _changed_hparams(report: RunReport) -> list[str]:
    """``lr 3e-3 (was 1e-3)`` for each hyperparameter that changed since the previous run; without one, ``lr 3e-3
    (default 1e-3)`` for each that differs from its default; at most _SUMMARY_HPARAMS, then how many more."""
    current, previous = report.record.hparams, report.previous
    changed = []
    for name, value in current.items():
        if previous is not None:
            before = previous.hparams.get(name)
            if _same_value(value, before):
                continue
            note = f"was {_short_value(before)}" if before is not None else f"new in run {report.record.number}"
        else:
            default_arg = report.defaults.get(name)
            if default_arg is None or _same_value(value, default_arg.default):
                continue
            note = f"default {_short_value(default_arg.default)}"
        changed.append(f"{escape(shorten(name, MAX_CELL_WORD))} {_short_value(value)} ({note})")
    if len(changed) > _SUMMARY_HPARAMS:
        more = len(changed) - _SUMMARY_HPARAMS
        changed = [*changed[:_SUMMARY_HPARAMS], f"{more} more changed"]
    return changed


def _short_value(value: str | None) -> str:
    if value is None:
        return "None"
    return escape(shorten_middle(value, MAX_CELL_WORD)) if value else '""'


def shorten_middle(text: str, limit: int) -> str:
    """TEXT cut to LIMIT characters by taking out its middle (``…`` in its place): both ends of a path stay.

    >>> shorten_middle("/data/imagenet/train/n01440764", 20), shorten_middle("abc", 5)
    ('/data/imag…n01440764', 'abc')
    """
    if len(text) <= limit:
        return text
    head = limit // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def shell_join(argv: Sequence[str]) -> str:
    """ARGV as a shell command line (``shlex.join``), with ``‹redacted›`` left unquoted where a secret was taken
    out: it stands for a word, it is not one.

    >>> shell_join(["python", "t.py", "--token=‹redacted›", "--name", "my run", "‹redacted›"])
    "python t.py --token=‹redacted› --name 'my run' ‹redacted›"
    """
    return " ".join(REDACTED.join(shlex.quote(piece) if piece else "" for piece in word.split(REDACTED))
                    if REDACTED in word else shlex.quote(word) for word in argv)


def _facts(report: RunReport) -> str:
    """What ran, where, on what: a table whose first row is the command (the heading already says when it started
    and how it ended, the summary line how long it took). A value with a word too long for a cell (a long path)
    goes in a fenced block under its label below the table, where the preview can scroll it on its own."""
    record, exit_info = report.record, report.exit
    facts: list[tuple[str, str, str]] = []  # (label, plain value, value as a cell)
    if record.argv:
        command = shell_join(record.argv)
        facts.append(("command", command, code(command)))
    if report.started_by:
        facts.append(("started by", report.started_by, escape(report.started_by)))
    if record.cwd:
        facts.append(("folder", record.cwd, code(record.cwd)))
    gpus = gpu_fact(report.gpu)
    if gpus:
        facts.append(("GPUs", gpus, escape(gpus)))
    for name, value in distributed_facts(report):
        facts.append((name, value, escape(value)))
    label = shorten(exit_info.label, _HEADING_EXIT)
    if exit_info.detail and (exit_info.detail not in label or label != exit_info.label):
        name = "NaN in" if exit_info.kind == "nan" else "error"
        facts.append((name, exit_info.detail, code(exit_info.detail)))
    rows = [[label, cell] for label, plain, cell in facts if _longest_word(plain) <= MAX_CELL_WORD]
    below = [f"**{label}:**\n\n" + fence([one_line(plain)])
             for label, plain, _ in facts if _longest_word(plain) > MAX_CELL_WORD]
    blocks = [table(rows[0], rows[1:])] if rows else []
    return "\n\n".join(blocks + below)


def distributed_facts(report: RunReport) -> list[tuple[str, str]]:
    """A distributed run's rows: its shape, its node in a multi-node job, its effective batch.

    >>> launch = Launch("torchrun", nproc_per_node=2, nnodes=2, node_rank=1, rdzv_id="j7",
    ...                 rdzv_endpoint="127.0.0.1:29400", backend="gloo")
    >>> record = RunRecord(6, False, "t.py", (), "/w", "", 1.0, 0, "success", {}, {})
    >>> for row in distributed_facts(RunReport(record, datetime(2026, 12, 7), ExitInfo("success", 0, "", None),
    ...         {}, None, None, None, {}, [], (), None, None, None, None, [], 0, launch=launch, other_nodes={5: 0})):
    ...     print(row)
    ('distributed', 'torchrun · 2 processes per node × 2 nodes = world size 4 · backend gloo')
    ('node', 'node rank 1 of 2 · rendezvous j7@127.0.0.1:29400 · other nodes: run 5 (node 0)')
    """
    launch = report.launch
    if launch is None:
        return []
    shape = [launch.launcher] if launch.launcher != "environment" else []
    nodes = launch.nnodes or 1
    if launch.launcher == "environment":
        shape.append(f"WORLD_SIZE {launch.world_size} in its environment")
        if launch.rank is not None:
            shape.append(f"this is rank {launch.rank}")
    elif launch.nproc_per_node is not None and launch.world is None:
        shape.append(f"{launch.nproc_per_node} process{'es' if launch.nproc_per_node != 1 else ''} per node × "
                     f"{nodes} node{'s' if nodes != 1 else ''} = world size {launch.world_size}")
    elif launch.world_size is not None:
        shape.append(f"world size {launch.world_size}" + (f" on {nodes} nodes" if nodes > 1 else ""))
    else:
        shape.append("world size not known (processes per node chosen on the node)")
    shape.append(f"backend {launch.backend}" if launch.backend else "backend not named in the command or script")
    rows = [("distributed", SEPARATOR.join(shape))]
    if launch.multi_node:
        node = [f"node rank {launch.node_rank if launch.node_rank is not None else '?'} of {nodes}"]
        if launch.rendezvous:
            node.append(f"rendezvous {launch.rendezvous}")
        if report.other_nodes:
            node.append("other nodes: " + ", ".join(
                f"run {number} (node {rank if rank is not None else '?'})"
                for number, rank in sorted(report.other_nodes.items())))
        rows.append(("node", SEPARATOR.join(node)))
    if report.batch is not None:
        rows.append(("effective batch", report.batch.describe()))
    return rows


def gpu_fact(gpu: GpuMemory | None) -> str:
    """The GPUs a run used, as a fact: ``1 GPU: 0``, ``2 GPUs: 0, 1``, ``none (CPU run)``; ``""`` when unknown.

    >>> gpu_fact(GpuMemory(None, None, None, None, 1, (0,))), gpu_fact(GpuMemory(None, None, None, None, 2))
    ('1 GPU: 0', '2 GPUs')
    """
    if gpu is None:
        return ""
    if gpu.gpus <= 0:
        return "none (CPU run)"
    text = f"{gpu.gpus} GPU{'s' if gpu.gpus != 1 else ''}"
    if gpu.devices and len(gpu.devices) == gpu.gpus:
        text += ": " + ", ".join(str(d) for d in sorted(gpu.devices))
    return text


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def _script_args(argv: Sequence[str], script: str) -> list[str]:
    name = posixpath.basename(script)
    for i, arg in enumerate(argv):
        if posixpath.basename(arg) == name:
            return list(argv[i + 1:])
    return list(argv[1:])


def _same_value(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _cell_value(value: str | None, limit: int = MAX_CELL_WORD) -> str:
    """A value in a table cell; a word longer than LIMIT is cut in its middle (the command shows it whole)."""
    if value is None:
        return "—"
    if _longest_word(value) > limit:
        value = " ".join(shorten_middle(word, limit) for word in value.split())
    return code(value) if value else code('""')


def hparam_table(current: Mapping[str, str], *, defaults: Mapping[str, ArgDefault],
                 previous: Mapping[str, str] | None, previous_run: int | None) -> str:
    """The hyperparameters as a Markdown table: name, default, this run's value and, when there is a previous
    run, its value. This run's value is bold where it differs from the previous run's (without one: from the
    default); numbers compare by value (``3e-4`` equals ``0.0003``). Empty CURRENT gives ``""``.

    >>> from devagent.core.runs.hparams import argparse_defaults
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
    limit = _TABLE_WORDS // (len(header) - 1)  # the value columns share the width a 600 px preview has
    rows = []
    for name in names:
        default_arg = defaults.get(name)
        default = default_arg.default if default_arg is not None else None
        value = current.get(name)
        if previous is not None:
            changed = not _same_value(value, previous.get(name))
        else:
            changed = not _same_value(value, default if default is not None or default_arg is None else "None")
        shown = _cell_value(value, limit)
        row = [code(shorten_middle(name, _NAME_WORD)), _cell_value(default, limit),
               f"**{shown}**" if changed else shown]
        if previous is not None:
            row.append(_cell_value(previous.get(name), limit))
        rows.append(row)
    return table(header, rows)


def _hyperparameters(report: RunReport) -> str:
    record = report.record
    parts: list[str] = []
    previous = report.previous
    hparams = hparam_table(
        record.hparams, defaults=report.defaults, previous=previous.hparams if previous else None,
        previous_run=previous.number if previous else None,
    )
    if hparams:
        parts.append(hparams)
    if not report.defaults and record.script is not None:
        args = _script_args(record.argv, record.script)
        if args:
            parts.append(f"argv: {code(shell_join(args))}")
    gpus = report.gpu.gpus if report.gpu is not None else 0
    batch = effective_batch(record.hparams, gpus) if gpus > 1 and report.launch is None else None
    if batch is not None:
        size, count, total = batch
        parts.append(f"batch size {size} × {count} GPUs = effective batch {total} "
                     "(if each GPU runs its own batch, as with DDP)")
    if not parts:
        return ""
    return "### Hyperparameters\n\n" + "\n\n".join(parts)


def _code(report: RunReport) -> str:
    parts: list[str] = []
    git = report.git
    if git is not None and git.skipped:
        parts.append("git state skipped: " + escape(git.skipped))
    elif git is not None:
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
                line += f" — [patch]({link_target(git.patch_asset)})"
        else:
            line += ", clean"
        parts.append(line)
        if git.dirty and git.files:
            marks = {**dict.fromkeys(git.left_out, " · not in the patch: too big"),
                     **dict.fromkeys(git.withheld, " · not in the patch: looks like a secret")}
            listed = [f"- {code(path)} +{a}/−{r}{marks.get(path, '')}" for path, a, r in git.files[:_MAX_FILES_LISTED]]
            if len(git.files) > _MAX_FILES_LISTED:
                listed.append(f"- … and {len(git.files) - _MAX_FILES_LISTED} more")
            parts.append("\n".join(listed))
        parts.extend(_patch_notes(git))
    if report.edits_since:
        since = f"edits since run {report.previous.number}" if report.previous else "edits before this run"
        parts.append(f"{since}: {escape(render_edits_since(report.edits_since))}")
    if not parts:
        return ""
    return "### Code\n\n" + "\n\n".join(parts)


def _patch_notes(git: GitState) -> list[str]:
    """What the patch leaves out, and why: files that look like secrets (listed, never copied), files too big for
    it, untracked files beyond the number read.

    >>> print("\\n".join(_patch_notes(GitState("abc", None, True, (), "p", withheld=(".env", "id_rsa"),
    ...                                        left_out=("w.bin",), omitted=3))))
    withheld from the patch, as they look like secrets: `.env`, `id_rsa`
    left out of the patch, as they are too big for it: `w.bin`
    3 more untracked files neither listed nor in the patch
    """
    notes = []
    if git.withheld:
        notes.append("withheld from the patch, as they look like secrets: " + _names(git.withheld))
    if git.left_out:
        notes.append("left out of the patch, as they are too big for it: " + _names(git.left_out))
    if git.omitted:
        notes.append(f"{git.omitted} more untracked file{'s' if git.omitted != 1 else ''} neither listed nor in the "
                     "patch")
    return notes


def _names(paths: Sequence[str], shown: int = 10) -> str:
    names = ", ".join(code(path) for path in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def format_size(n: int) -> str:
    """A file size as people say it.

    >>> format_size(512), format_size(32 << 20), format_size(5 << 30)
    ('512 bytes', '32 MiB', '5.0 GiB')
    """
    if n < 1 << 20:
        return f"{n} bytes" if n < 1024 else f"{n // 1024} KiB"
    return f"{n >> 20} MiB" if n < 1 << 30 else f"{n / (1 << 30):.1f} GiB"


def _metric_caps(report: RunReport) -> list[str]:
    """What the metrics leave out because a cap was hit, said where they are shown."""
    notes = []
    if report.metrics_left_out:
        n = report.metrics_left_out
        notes.append(f"{n} more metric{'s were' if n != 1 else ' was'} logged but not kept: a run keeps the first "
                     f"{MAX_NAMES} names, none longer than {MAX_NAME_LENGTH} characters.")
    for source, read, size in report.metric_files_cut:
        notes.append(f"Only the last {format_size(read)} of {code(source)} ({format_size(size)}) were read: "
                     "final values are exact, best values and point counts cover that part.")
    return notes


def _metrics(report: RunReport) -> str:
    if not report.metrics:
        notes = _metric_caps(report)
        return "\n\n".join(["### Metrics", *notes]) if notes else ""
    previous = report.previous
    compare = previous is not None and any(m.name in previous.metrics for m in report.metrics)
    header = ["metric", "final (step)", "best (step)"]
    if previous is not None and compare:
        header.append(f"run {previous.number}")
    rows = []
    for m in report.metrics:
        row = [code(shorten_middle(m.name, _NAME_WORD)), _at(m.final, m.final_step, None, m.count),
               "—" if m.best is None else _at(m.best, m.best_step, m.best_point, m.count)]
        if previous is not None and compare:
            before = previous.metrics.get(m.name)
            row.append(format_number(before) if before is not None else "—")
        rows.append(row)
    parts = ["### Metrics", table(header, rows), _metrics_note(report)]
    if report.curve_name and report.curve_image:
        parts.append(f"![{escape(report.curve_name)} curve]({link_target(report.curve_image)})")
    elif report.curve_name and report.curve_sparkline:
        parts.append(_sparkline_line(report))
    parts.extend(_metric_caps(report))
    return "\n\n".join(part for part in parts if part)


def _at(value: float, step: int | None, point: int | None, count: int) -> str:
    """A value and where it was logged: ``0.23 (step 694)``, or by its place among the values logged without a
    step: ``0.886 (value 5 of 5)``."""
    if step is not None:
        return f"{format_number(value)} (step {step})"
    if point is not None:
        return f"{format_number(value)} (value {point} of {count})"
    return format_number(value)


def _metrics_note(report: RunReport) -> str:
    """Under the table: where the values come from, and what *final* is — the last value logged, which is not
    always what the output's own last line printed (an epoch's mean, printed beside per-step values)."""
    sentences = []
    if report.metric_sources:
        sources = ", ".join("the " + escape(s) if s.startswith("output") else code(s) for s in report.metric_sources)
        sentences.append(f"Sources: {sources}.")
    final = "*final* is the last value logged"
    known = {m.name: m for m in report.metrics}
    differ = [(name, value) for name, value in report.output_finals.items()
              if name in known and not _same_number(value, known[name].final)]
    if differ:
        said = ", ".join(f"{code(shorten_middle(name, MAX_CELL_WORD))} {format_number(value)}"
                         for name, value in differ[:_SUMMARY_METRICS])
        final += f"; the output's own last line printed {said}"
    sentences.append(final + ".")
    return " ".join(sentences)


def _same_number(a: float, b: float) -> bool:
    """Whether A and B read the same in the table (equal numbers, and two NaNs, always do)."""
    return format_number(a) == format_number(b)


def _sparkline_line(report: RunReport) -> str:
    """The curve as a sparkline, with what a reader cannot see in it: how many points each bar stands for, the
    lowest, highest and last value.

    >>> m = MetricSummary("loss", 1.5, 1.4, 144, 150)
    >>> print(_sparkline_line(RunReport(RunRecord(1, False, None, (), "", "", None, None, "", {}, {}), datetime(2026,
    ...       1, 1), ExitInfo("success", 0, "", None), {}, None, None, None, {}, [m], (), "loss", None, "█▄▁", None,
    ...       [], 0, curve_range=(1.4, 2.36))))
    `loss` █▄▁ — 150 points in 3 bars · min 1.4 · max 2.36 · last 1.5
    """
    name, bars = report.curve_name or "", report.curve_sparkline or ""
    summary = next((m for m in report.metrics if m.name == name), None)
    text = f"{code(shorten_middle(name, MAX_CELL_WORD))} {bars}"
    facts = []
    if summary is not None:
        facts.append(f"{summary.count} points" + (f" in {len(bars)} bars" if summary.count > len(bars) else ""))
    if report.curve_range is not None:
        low, high = report.curve_range
        facts += [f"min {format_number(low)}", f"max {format_number(high)}"]
    if summary is not None:
        facts.append(f"last {format_number(summary.final)}")
    return text + (" — " + SEPARATOR.join(facts) if facts else "")


def _gpu_memory(gpu: GpuMemory | None, *, explained: bool) -> str:
    """Peak GPU memory as NVML and PyTorch saw it; nothing for a CPU run (the facts say so). What the two figures
    count is explained once per notebook, folded: under the first run that has both, unless EXPLAINED already."""
    if gpu is None or gpu.gpus <= 0:
        return ""
    where = f"on GPU {gpu.devices[0]}" if len(gpu.devices) == 1 == gpu.gpus else (
        "on the GPU" if gpu.gpus == 1 else f"on the {gpu.gpus} GPUs")
    sentences = []
    if gpu.nvml_peak is not None:
        of = f" of {gib(gpu.nvml_total)}" if gpu.nvml_total is not None else ""
        sentences.append(f"{gib(gpu.nvml_peak)}{of} peak {where}, sampled by NVML over the run's processes.")
    torch_parts = []
    if gpu.torch_allocated is not None:
        torch_parts.append(f"max allocated {gib(gpu.torch_allocated)}")
    if gpu.torch_reserved is not None:
        torch_parts.append(f"max reserved {gib(gpu.torch_reserved)}")
    if torch_parts:
        sentences.append("PyTorch: " + ", ".join(torch_parts) + ".")
    if not sentences:
        sentences.append(f"{gpu_fact(gpu)} used; memory not measured.")
    parts = ["### GPU memory", " ".join(sentences)]
    known = sum(v is not None for v in (gpu.nvml_peak, gpu.torch_allocated, gpu.torch_reserved))
    if known >= 2 and not explained:
        parts.append(details(MEMORY_NOTE, MEMORY_EXPLANATION + " The PyTorch figures are "
                             "`torch.cuda.max_memory_allocated` and `max_memory_reserved`, from `devagent.lab`."))
    return "\n\n".join(parts)


def gpu_activity(timelines: Sequence[DeviceTimeline], *, image: str | None, cpu_share: float | None) -> str:
    """What each GPU did over the run: a summary row per GPU, a hint where the figures point at a cause, the
    picture. ``""`` for a CPU run (the facts say ``none (CPU run)``; there is no empty picture)."""
    if not timelines:
        return ""
    parts = ["### GPU activity", table(SUMMARY_HEADER, summary_rows(timelines)),
             f"Sampled through NVML every 0.5 s; idle is under {IDLE_UTIL} % utilisation."]
    parts += [f"**Hint:** {hint}" for hint in hints(timelines, cpu_share=cpu_share)]
    if image:
        parts.append(f"![GPU utilisation and memory over the run]({link_target(image)})")
    return "\n\n".join(parts)


def _environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    return "### Environment\n\n" + " ".join(code(f"{name}={value}") for name, value in env.items())


def _output(tail: Sequence[str], total: int, *, estimated: bool) -> str:
    """The output's tail, folded; an ESTIMATED total (a flood, counted in part) is said to be one.

    >>> print(_output(["done"], 2_400_000, estimated=True).splitlines()[0])
    <details><summary>output (last 1 of about 2,400,000 lines)</summary>
    """
    if not tail:
        return ""
    lines = [" ".join(split_lines(line)) for line in tail]  # a tail from elsewhere may hold a line break
    of = f"about {max(total, len(lines)):,}" if estimated else f"{max(total, len(lines))}"
    return details(f"output (last {len(lines)} of {of} lines)", fence(lines))
