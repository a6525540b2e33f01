"""The run section: everything a run's notebook entry shows, and its rendering as Markdown.

The run wrapper (``devagent run``, and the observer for runs nobody wrapped) gathers a ``RunReport``;
``render_run`` turns it into one entry.
"""

from __future__ import annotations

import math
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devagent.core.gpu import gib
from devagent.core.markdown import code, details, escape, escape_heading, fence, link_target, split_lines, table
from devagent.core.notebook import SaveRecord, entry, heading, render_edits_since
from devagent.core.runs.exits import ExitInfo
from devagent.core.runs.hparams import ArgDefault, effective_batch
from devagent.core.runs.metrics import MAX_NAME_LENGTH, MAX_NAMES, MetricSummary, format_number
from devagent.core.runs.output import shorten
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
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


MEMORY_EXPLANATION = (
    "NVML counts everything the process holds on the device — the CUDA context (about 300–500 MiB) plus the "
    "pool PyTorch's caching allocator has reserved — while `max_memory_allocated` is what tensors actually "
    "used, and reserved − allocated is cache the allocator kept for reuse."
)
_MAX_FILES_LISTED = 20
_HEADING_COMMAND = 60


def format_duration(seconds: float) -> str:
    """A duration as people say it.

    >>> format_duration(0.84), format_duration(42.4), format_duration(252), format_duration(3720)
    ('0.8 s', '42 s', '4 min 12 s', '1 h 02 min')
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def render_run(report: RunReport) -> str:
    """The run section: one notebook entry (starts with ``"\\n## "``, ends with exactly one ``"\\n"``)."""
    record = report.record
    run = f"run {record.number}" + (" (observed)" if record.observed else "")
    what = record.script or shorten(shell_join(record.argv), _HEADING_COMMAND) or "unknown command"
    title = heading(report.started_at, run, escape_heading(what), escape_heading(report.exit.label))
    blocks = [
        _facts(report),
        _hyperparameters(report),
        _code(report),
        _metrics(report),
        _gpu_memory(report.gpu),
        _environment(report.env),
        _output(report.output_tail, report.output_lines),
        "**Observations:** \n\n**Next:** ",
    ]
    return entry(title, "\n\n".join(block for block in blocks if block))


def shell_join(argv: Sequence[str]) -> str:
    """ARGV as a shell command line (``shlex.join``), with ``‹redacted›`` left unquoted where a secret was taken
    out: it stands for a word, it is not one.

    >>> shell_join(["python", "t.py", "--token=‹redacted›", "--name", "my run", "‹redacted›"])
    "python t.py --token=‹redacted› --name 'my run' ‹redacted›"
    """
    return " ".join(REDACTED.join(shlex.quote(piece) if piece else "" for piece in word.split(REDACTED))
                    if REDACTED in word else shlex.quote(word) for word in argv)


def _facts(report: RunReport) -> str:
    record, exit_info = report.record, report.exit
    rows: list[list[str]] = []
    if record.argv:
        rows.append(["command", code(shell_join(record.argv))])
    if record.started:
        rows.append(["started", escape(record.started)])
    if record.duration_s is not None and math.isfinite(record.duration_s) and record.duration_s >= 0:
        rows.append(["duration", format_duration(record.duration_s)])
    exit_text = escape(exit_info.label)
    if exit_info.detail and exit_info.detail not in exit_info.label:
        exit_text += " — " + code(exit_info.detail)
    rows.append(["exit", exit_text])
    if record.cwd:
        rows.append(["cwd", code(record.cwd)])
    if report.gpu is not None:
        rows.append(["GPUs", str(report.gpu.gpus) if report.gpu.gpus > 0 else "none (CPU)"])
    return table(["", ""], rows)


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


def _cell_value(value: str | None) -> str:
    if value is None:
        return "—"
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
    rows = []
    for name in names:
        default_arg = defaults.get(name)
        default = default_arg.default if default_arg is not None else None
        value = current.get(name)
        if previous is not None:
            changed = not _same_value(value, previous.get(name))
        else:
            changed = not _same_value(value, default if default is not None or default_arg is None else "None")
        shown = _cell_value(value)
        row = [code(name), _cell_value(default), f"**{shown}**" if changed else shown]
        if previous is not None:
            row.append(_cell_value(previous.get(name)))
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
        parts.append(f"argv: {code(shell_join(args))}" if args else "no arguments")
    gpus = report.gpu.gpus if report.gpu is not None else 0
    batch = effective_batch(record.hparams, gpus) if gpus > 1 else None
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
    if report.edits_since is not None:
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
    header = ["metric", "final", "best (step)"]
    if previous is not None and compare:
        header.append(f"run {previous.number}")
    rows = []
    for m in report.metrics:
        if m.best is None:
            best = "—"
        else:
            best = format_number(m.best) + (f" (step {m.best_step})" if m.best_step is not None else "")
        row = [code(m.name), format_number(m.final), best]
        if previous is not None and compare:
            before = previous.metrics.get(m.name)
            row.append(format_number(before) if before is not None else "—")
        rows.append(row)
    parts = ["### Metrics", table(header, rows)]
    if report.metric_sources:
        sources = ", ".join("the " + escape(s) if s.startswith("output") else code(s)
                            for s in report.metric_sources)
        parts.append(f"from {sources}")
    if report.curve_name and report.curve_image:
        parts.append(f"![{escape(report.curve_name)} curve]({link_target(report.curve_image)})")
    elif report.curve_name and report.curve_sparkline:
        count = next((m.count for m in report.metrics if m.name == report.curve_name), None)
        points = f" ({count} points)" if count is not None else ""
        parts.append(f"{code(report.curve_name)} {report.curve_sparkline}{points}")
    parts.extend(_metric_caps(report))
    return "\n\n".join(parts)


def _gpu_memory(gpu: GpuMemory | None) -> str:
    if gpu is None:
        return ""
    if gpu.gpus == 0:
        return "### GPU memory\n\nno GPU used (CPU run)"
    where = "on the GPU" if gpu.gpus == 1 else f"on the {gpu.gpus} GPUs"
    lines = []
    if gpu.nvml_peak is not None:
        of = f" of {gib(gpu.nvml_total)}" if gpu.nvml_total is not None else ""
        lines.append(f"{gib(gpu.nvml_peak)}{of} peak {where}, sampled by NVML over the run's processes.")
    torch_parts = []
    if gpu.torch_allocated is not None:
        torch_parts.append(f"max allocated {gib(gpu.torch_allocated)}")
    if gpu.torch_reserved is not None:
        torch_parts.append(f"max reserved {gib(gpu.torch_reserved)}")
    if torch_parts:
        lines.append("PyTorch: " + ", ".join(torch_parts)
                     + " (`torch.cuda.max_memory_allocated` / `max_memory_reserved`).")
    known = sum(v is not None for v in (gpu.nvml_peak, gpu.torch_allocated, gpu.torch_reserved))
    if known >= 2:
        lines.append(MEMORY_EXPLANATION)
    if not lines:
        lines.append(f"{gpu.gpus} GPU{'s' if gpu.gpus != 1 else ''} visible; memory not measured.")
    return "### GPU memory\n\n" + "\n".join(lines)


def _environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    return "### Environment\n\n" + " ".join(code(f"{name}={value}") for name, value in env.items())


def _output(tail: Sequence[str], total: int) -> str:
    if not tail:
        return ""
    lines = [" ".join(split_lines(line)) for line in tail]  # a tail from elsewhere may hold a line break
    return details(f"output (last {len(lines)} of {max(total, len(lines))} lines)", fence(lines))
