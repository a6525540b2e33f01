"""A run's end, wrapped or observed: gather what its section shows, append the section, record the run.

What is gathered: hyperparameters from the script's source and argv, git state, saves since the previous run,
metrics from the helper's JSON lines, Lightning's metrics.csv and the output, GPU memory. devagent.core.runs
renders it; the notebook writer appends it as one entry. `devagent run` (wrapped.py) and the observer of runs
nobody wrapped (observer.py) both end here: ``finish_run`` takes what is known.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from devagent.core import layout
from devagent.core.notebook import LaunchContext, SaveRecord
from devagent.core.runs.distributed import effective_batch, parse_launch
from devagent.core.runs.exits import classify_exit, distributed_exit
from devagent.core.runs.gpu_timeline import DeviceTimeline, timeline_svg
from devagent.core.runs.hparams import ArgDefault, argparse_defaults, overlay_argv
from devagent.core.runs.metrics import (
    MetricSeries,
    curve_values,
    read_lightning_csv,
    read_metrics_jsonl,
    sparkline,
    summarize_metrics,
)
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.reproduce_block import ReproduceFacts
from devagent.core.runs.run_environment import allowed_env
from devagent.core.runs.secrets import REDACTED, looks_secret, redact_argv, redact_mapping, scrub, secrets_in
from devagent.core.runs.section import MEMORY_NOTE, RunReport, render_run
from devagent.inside import locations
from devagent.inside.interpreter import find_user_python
from devagent.inside.workspace_state import SaveLog
from devagent.nofollow.bounded import Lines, read_content
from devagent.nofollow.walk import open_regular, write_beneath
from devagent.runs.gitstate import GitSkipped, git_state
from devagent.runs.output_watch import RANK_LINES, OutputWatch
from devagent.runs.place import RunPlace
from devagent.runs.runlog import RunLog
from devagent.runs.script import find_script

log = logging.getLogger("devagent.run")

# Folders never searched for Lightning's metrics.csv (the watcher skips the same kind).
_SKIP_DIRS = frozenset({".git", layout.WORKSPACE_STATE, ".venv", "venv", "env", "node_modules", "__pycache__", "data",
                        "datasets", "checkpoints", "wandb"})
_PLOT_TIMEOUT = 60.0
LAUNCH_CONTEXT = Path(layout.LAUNCH_CONTEXT_PATH)  # how the environment was made (`up` puts it in); tests repoint it
METRIC_FILE_WINDOW = 32 << 20  # a lab.jsonl or metrics.csv is read from this many bytes before its end (~4 s)
MAX_METRIC_LINE = 64 << 10  # a longer line is skipped
MAX_SCRIPT_BYTES = 1 << 20  # a larger script is not read for its hyperparameters' defaults
_PLOT_SCRIPT = r"""
import json, os, sys
try:
    os.nice(19)  # it imports matplotlib while the run runs: the run's own processes come first
except OSError:
    pass
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(sys.stdin)
fig, ax = plt.subplots(figsize=(6, 3), dpi=110)
ax.plot(range(1, len(d["values"]) + 1), d["values"], linewidth=1.4)
ax.set_xlabel("logged point"); ax.set_ylabel(d["name"]); ax.set_title(d["title"]); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig(d["out"])
"""


@dataclass
class Finished:
    """What is known about a run once it has ended (wrapped or observed)."""

    number: int
    argv: list[str]
    cwd: Path
    started: datetime
    duration_s: float | None
    exit_code: int | None
    observed: bool = False
    oom_killed: bool = False
    output: OutputWatch | None = None
    lab_file: Path | None = None
    gpu_peak: int | None = None
    gpu_total: int | None = None
    gpus_used: int = 0
    gpu_devices: tuple[int, ...] = ()  # NVML indices of the GPUs the run's processes were seen on
    gpu_timelines: tuple[DeviceTimeline, ...] = ()  # what each of those GPUs did over time
    cpu_share: float | None = None  # the run's CPU time over its duration × the cores it could use
    git: GitState | None = None
    python: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    started_by: str | None = None  # who, by the key of the ssh login above it (inside/sessions.py)
    plotter: Plotter | None = None  # started with the run (`devagent run`); else one is started to draw


def finish_run(place: RunPlace, runs: RunLog, run: Finished) -> RunRecord:
    """Gather what the section shows, append it to the notebook, record the run. Never raises for the notebook:
    a section that cannot be written is kept in the run's folder and the reason logged.

    Secrets never reach the notebook or the runs journal: the command line, the hyperparameters and their
    defaults are redacted (``core.runs.secrets``), and what was redacted — with every secret value of the
    environment — is scrubbed from the output tail too, where a script may have printed its arguments."""
    script, script_args = find_script(run.argv, run.cwd)
    script_text = _read(run.cwd / script) if script else None
    defaults = _redact_defaults(argparse_defaults(script_text) if script_text is not None else {})
    hparams = redact_mapping(overlay_argv(defaults, script_args)) if script else {}
    script_rel = place.relative(run.cwd / script) if script else None
    previous = runs.previous(script_rel, before=run.number)
    if previous is not None:  # recorded before devagent redacted: redact it now
        previous = replace(previous, argv=tuple(redact_argv(previous.argv)), hparams=redact_mapping(previous.hparams))

    series, sources, torch_memory, files_cut, output_finals = _metrics(run)
    secrets = secrets_in(run.argv, run.environ)
    tail = [scrub(line, secrets) for line in run.output.tail] if run.output else []
    nan_seen = (run.output.nan_seen if run.output else False) or any(
        not math.isfinite(v) for name, values in series.points.items() if "loss" in name for _, v in values)
    exit_info = classify_exit(run.exit_code, tail=tail, oom_killed=run.oom_killed, nan_seen=nan_seen)
    launch = parse_launch(run.argv, run.environ, script_args=script_args, script_source=script_text)
    if launch is not None and run.output is not None:  # which rank failed first, from torchrun's report
        exit_info = distributed_exit(exit_info, [scrub(line, secrets) for line in run.output.last_lines(RANK_LINES)])
    nodes = {n: r for n, r in runs.nodes(launch.rendezvous).items() if n != run.number} \
        if launch is not None and launch.rendezvous else {}
    summaries = summarize_metrics(series)
    curve = curve_values(series)
    curve_image = _plot(place, run, curve) if curve else None
    if run.plotter is not None:  # no curve: it is not needed
        run.plotter.close()

    record = RunRecord(
        number=run.number, observed=run.observed, script=script_rel, argv=tuple(redact_argv(run.argv)),
        cwd=str(run.cwd),
        started=run.started.isoformat(timespec="seconds"), duration_s=run.duration_s, exit_code=run.exit_code,
        exit_kind=exit_info.kind, hparams=hparams, metrics={m.name: m.final for m in summaries},
        distributed=launch.to_json() if launch is not None else None,
    )
    gpu = GpuMemory(nvml_peak=run.gpu_peak, nvml_total=run.gpu_total,
                    torch_allocated=torch_memory.get("max_memory_allocated"),
                    torch_reserved=torch_memory.get("max_memory_reserved"),
                    gpus=max(run.gpus_used, torch_memory.get("devices") or 0), devices=run.gpu_devices)
    report = RunReport(
        record=record, started_at=run.started, exit=exit_info, defaults=defaults, previous=previous, git=run.git,
        edits_since=_edits_since(place, previous, run.started), env=allowed_env(run.environ), metrics=summaries,
        metric_sources=sources, curve_name=curve[0] if curve else None, curve_image=curve_image,
        curve_sparkline=sparkline(curve[1]) if curve else None, curve_range=_finite_range(curve[1]) if curve else None,
        gpu=gpu, output_tail=tail, output_lines=run.output.line_count if run.output else 0,
        output_lines_estimated=run.output.line_count_estimated if run.output else False,
        metrics_left_out=series.left_out, metric_files_cut=files_cut, output_finals=output_finals,
        started_by=run.started_by, launch=launch, other_nodes=nodes,
        batch=effective_batch(hparams, launch.world_size) if launch is not None else None,
        # only a GPU run can need the note: a CPU run does not read the notebook for it
        memory_explained=gpu.gpus > 0 and notebook_holds(place.notebook, f"<summary>{MEMORY_NOTE}</summary>"),
        reproduce=_reproduce_facts(place, record, run, allowed_env(run.environ)),
        notebook_name=place.relative(place.notebook),
        gpu_timelines=run.gpu_timelines, gpu_timeline_image=_timeline_picture(place, run), cpu_share=run.cpu_share,
    )
    _append(place, runs, render_run(report), run.number)
    runs.record(record)
    return record


def _reproduce_facts(place: RunPlace, record: RunRecord, run: Finished, env: Mapping[str, str]) -> ReproduceFacts:
    """What re-creates the run: its environment from the launch record `up` put in (none outside devagent's
    containers), its code from the git state, its command as recorded (secrets redacted)."""
    launch = _launch_context()
    git = run.git
    return ReproduceFacts(
        number=record.number, env_name=launch.name if launch else "", image=launch.image if launch else None,
        pinned=launch.pinned_image if launch else None, base_image=launch.base_image if launch else None,
        up_args=launch.up_args if launch else (), commit=git.commit if git else None,
        patch=place.relative(place.notebook.parent / git.patch_asset) if git and git.patch_asset else None,
        argv=record.argv, cwd=record.cwd, env=dict(env),
        metrics={name: value for name, value in record.metrics.items() if math.isfinite(value)},
        dirty=bool(git and git.dirty), slurm=launch.slurm_args if launch else (),
    )


def _launch_context() -> LaunchContext | None:
    try:
        return LaunchContext.from_json(LAUNCH_CONTEXT.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        log.info("no launch record for the reproduce block: %s", exc)
        return None


def _redact_defaults(defaults: dict[str, ArgDefault]) -> dict[str, ArgDefault]:
    """The script's argparse defaults, a secret one (``default="hf_…"``, or any default of ``--token``) redacted."""
    return {dest: replace(arg, default=REDACTED) if arg.default is not None and looks_secret(dest, arg.default)
            else arg for dest, arg in defaults.items()}


def _metrics(run: Finished) -> tuple[MetricSeries, tuple[str, ...], dict[str, int], tuple[tuple[str, int, int], ...],
                                     dict[str, float]]:
    """The run's metrics. Sources in order of trust: the helper's JSON lines, Lightning's metrics.csv, the output.
    A metric comes from the first source that has it (most scripts that log also print: the curve must not count
    twice); a later source adds only the metrics the earlier ones lack (an ``acc`` printed beside a logged loss).
    The output's own last value of each metric another source gave comes back too: the section says when it
    differs (an epoch's mean printed beside per-step values).

    The files are streamed line by line, at most their last METRIC_FILE_WINDOW bytes (the last part holds the
    final values): a 2 GB ``lab.jsonl`` costs a chunk and the kept series in memory, and is reported as cut."""
    torch_memory: dict[str, int] = {}
    found: list[tuple[str, MetricSeries]] = []
    cut: list[tuple[str, int, int]] = []
    if run.lab_file is not None:
        lab = _metric_lines(run.lab_file, keep_first=False)
        if lab is not None:
            with lab:
                found.append(("devagent.lab", read_metrics_jsonl(_with_torch_memory(lab, torch_memory))))
            if lab.skipped:
                cut.append((run.lab_file.name, lab.size - lab.skipped, lab.size))
    csv_file = _lightning_csv(run.cwd, since=run.started.timestamp())
    if csv_file is not None:
        rows = _metric_lines(csv_file, keep_first=True)  # the header, then the last rows
        if rows is not None:
            with rows:
                found.append((_display(csv_file, run.cwd), read_lightning_csv(_decoded(rows))))
            if rows.skipped:
                cut.append((_display(csv_file, run.cwd), rows.size - rows.skipped, rows.size))
    if run.output is not None:
        share = run.output.parsed_share
        found.append(("output" if share >= 1.0 else f"output ({math.floor(share * 1000) / 10:g}% of it: the rest "
                      "came faster than devagent reads metrics)", run.output.series))
    series = MetricSeries({})
    sources: list[str] = []
    output_finals: dict[str, float] = {}
    for source, candidate in found:
        if source.startswith("output"):
            output_finals = {name: points[-1][1] for name, points in candidate.points.items()
                             if points and name in series.points}
        if series.merge_missing(candidate):
            sources.append(source)
    return series, tuple(sources), torch_memory, tuple(cut), output_finals


def _finite_range(values: list[float]) -> tuple[float, float] | None:
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else None


def notebook_holds(notebook: Path, text: str, *, chunk: int = 1 << 20) -> bool:
    """Whether the NOTEBOOK (a regular file; a missing or unreadable one holds nothing) contains TEXT, read in
    chunks: a notebook of many runs is not loaded whole."""
    try:
        fd = open_regular(notebook)
    except OSError:
        return False
    needle = text.encode()
    try:
        with os.fdopen(fd, "rb", closefd=True) as file:
            tail = b""
            while block := file.read(chunk):
                if needle in tail + block:
                    return True
                tail = (tail + block)[-len(needle):]
    except OSError:
        return False
    return False


def _metric_lines(path: Path, *, keep_first: bool) -> Lines | None:
    """PATH's lines, streamed (its last METRIC_FILE_WINDOW bytes); None when it is missing or not a regular file
    (a link, a FIFO: never followed or opened for reading, logged)."""
    try:
        fd = open_regular(path, follow_links=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("metrics: not reading %s: %s", path, exc.strerror or exc)
        return None
    return Lines(fd, max_line=MAX_METRIC_LINE, window=METRIC_FILE_WINDOW, keep_first=keep_first)


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    for line in lines:
        yield line.decode("utf-8", errors="replace")


def _with_torch_memory(lines: Iterable[bytes], found: dict[str, int]) -> Iterator[str]:
    """LINES decoded, passed on; the helper's last ``_torch`` line (torch's own peak memory figures) lands in
    FOUND on the way."""
    for line in _decoded(lines):
        if '"_torch"' in line:
            try:
                data = json.loads(line).get("_torch")
            except (ValueError, AttributeError):
                data = None
            if isinstance(data, dict):
                found.clear()
                found.update({k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)})
        yield line


def _lightning_csv(cwd: Path, *, since: float, max_depth: int = 4) -> Path | None:
    """The newest ``metrics.csv`` under a ``lightning_logs`` folder below CWD written since SINCE."""
    best: tuple[float, Path] | None = None
    root_depth = len(cwd.parts)
    for folder, dirs, files in os.walk(cwd):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")
                   and len(here.parts) - root_depth < max_depth]
        if "metrics.csv" in files and "lightning_logs" in here.parts[root_depth:]:
            try:
                mtime = (here / "metrics.csv").lstat().st_mtime  # a link is not followed (nor read, later)
            except OSError:
                continue
            if mtime >= since - 1 and (best is None or mtime > best[0]):
                best = (mtime, here / "metrics.csv")
    return best[1] if best else None


class Plotter:
    """The user's interpreter drawing a run's loss curve. `devagent run` starts it with the command, so that its
    matplotlib import (0.3-1 s) happens while the command runs instead of after it; it then waits on its stdin
    for the values, at the lowest priority (nice 19: the run's own processes come first on a small machine). In a
    session of its own: a Ctrl-C at the terminal, meant for the command, does not reach it.
    Should devagent die, its stdin closes and it exits. It draws into a private folder of its own."""

    def __init__(self, python: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="devagent-plot-"))
        self._process: subprocess.Popen[str] | None = None
        try:
            self._process = subprocess.Popen([python, "-c", _PLOT_SCRIPT], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             start_new_session=True)
        except OSError:
            self.close()
            raise

    def draw(self, payload: Mapping[str, object]) -> tuple[int, str]:
        """Hand PAYLOAD over (the script's JSON); its exit status and stderr once it is done. ``close`` after
        reading what it drew."""
        if self._process is None:
            raise OSError("the plotting interpreter was closed")
        _, err = self._process.communicate(json.dumps(payload), timeout=_PLOT_TIMEOUT)
        return self._process.returncode, err

    def close(self) -> None:
        """End it, drawn or not (a run with no curve), and remove its folder."""
        if self._process is not None and self._process.returncode is None:
            if self._process.poll() is None:
                self._process.kill()
            with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
                self._process.communicate(timeout=_PLOT_TIMEOUT)
        shutil.rmtree(self.folder, ignore_errors=True)


def _plot(place: RunPlace, run: Finished, curve: tuple[str, list[float]]) -> str | None:
    """A PNG of the curve made by the user's interpreter when it has matplotlib (RUN's plotter, started with
    the run, else one started now); None otherwise (the section then shows a sparkline). devagent copies the
    picture into the assets folder itself, so that nothing writes there through a link."""
    name, values = curve
    out = place.assets / f"run-{run.number}-{_slug(name)}.png"
    try:
        plotter = run.plotter or Plotter(run.python or find_user_python())
        try:
            drawn = plotter.folder / out.name
            code, err = plotter.draw({"values": [v if math.isfinite(v) else None for v in values],
                                      "name": name, "title": f"run {run.number}", "out": str(drawn)})
            if code != 0 or not drawn.is_file():
                log.info("no plot for run %d (matplotlib missing?): %s", run.number, err.strip()[-200:])
                return None
            write_beneath(place.workspace, out, drawn.read_bytes(), mode=asset_mode(place.notebook),
                          exact_mode=True, make_parents=True)
        finally:
            plotter.close()
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("no plot for run %d: %s", run.number, exc)
        return None
    return out.relative_to(place.notebook.parent).as_posix()


def _timeline_picture(place: RunPlace, run: Finished) -> str | None:
    """The GPU timeline as an SVG beside the notebook (drawn by devagent itself: no matplotlib needed); None for a
    CPU run, or when it cannot be written (logged)."""
    if not run.gpu_timelines:
        return None
    out = place.assets / f"run-{run.number}-gpus.svg"
    svg = timeline_svg(run.gpu_timelines, duration_s=run.duration_s or 0.0, title=f"run {run.number}: GPU activity")
    try:
        write_beneath(place.workspace, out, svg.encode(), mode=asset_mode(place.notebook), exact_mode=True,
                      make_parents=True)
    except OSError as exc:
        log.info("no GPU timeline picture for run %d: %s", run.number, exc)
        return None
    return out.relative_to(place.notebook.parent).as_posix()


def code_state(place: RunPlace, cwd: Path, *, number: int | None) -> GitState | None:
    """The git state of CWD, without the notebook and its assets; with NUMBER, the uncommitted diff is saved as the
    run's patch asset (an observed run's number is not known when it is read: it gets no patch)."""
    info = git_state(cwd, exclude=(place.notebook, place.assets))  # the notebook is not the code
    if info is None:
        return None
    if isinstance(info, GitSkipped):
        log.warning("git state skipped: %s", info.reason)
        return GitState(commit=None, branch=None, dirty=False, files=(), patch_asset=None, skipped=info.reason)
    patch_asset = None
    if info.patch and number is not None:
        patch = place.assets / f"run-{number}.patch"
        try:
            write_beneath(place.workspace, patch, info.patch, mode=asset_mode(place.notebook), exact_mode=True,
                          make_parents=True)  # no link followed
            patch_asset = patch.relative_to(place.notebook.parent).as_posix()
        except OSError as exc:
            log.warning("could not save the uncommitted diff: %s", exc)
    return GitState(commit=info.commit, branch=info.branch, dirty=info.dirty, files=info.files,
                    patch_asset=patch_asset, withheld=info.withheld, left_out=info.left_out,
                    omitted=info.untracked_omitted)


def asset_mode(notebook: Path) -> int:
    """The mode of a run's files beside the notebook (patch, plot, a kept section): 0600, or the notebook's own
    permissions where they are wider — what the notebook lets others read, its assets let them read too; never
    more. A notebook not yet written counts as 0600."""
    try:
        return (os.stat(notebook).st_mode & 0o666) | 0o600
    except OSError:
        return 0o600


def _edits_since(place: RunPlace, previous: RunRecord | None, started: datetime) -> list[SaveRecord] | None:
    """Saves the agent journaled between the previous run's start and this one's (all saves before a first run);
    None when no agent keeps a journal here."""
    saves = SaveLog(place.workspace)
    if not saves.path.is_file():
        return None
    return saves.saves_since(previous.started if previous else 0, until=started)


def _append(place: RunPlace, runs: RunLog, section: str, number: int) -> None:
    writer = locations.open_notebook(place.notebook, outside_ok=True, workspace=place.workspace)
    try:
        writer.append(section)
    except OSError as exc:  # the writer keeps the entry; we are about to exit, so keep it on disk instead
        log.error("could not write %s: %s", place.notebook, exc)
    if writer.pending:
        kept = layout.kept_section(place.workspace, number)
        try:
            runs.make_run_dir(number)
            write_beneath(place.workspace, kept, section.encode("utf-8", errors="replace"),
                          mode=asset_mode(place.notebook), exact_mode=True)
            where = f"kept in {kept}"
        except OSError as exc:
            where = f"lost ({exc})"
        print(f"devagent: could not append run {number} to {place.notebook}; its section is {where}",
              file=sys.stderr)
    else:
        print(f"devagent: run {number} appended to {place.notebook}", file=sys.stderr)


def _read(path: Path) -> str | None:
    """The text of the script at PATH (a link to a regular file is fine), or None: missing, not a regular file
    (a FIFO would block, /dev/zero never end) or larger than MAX_SCRIPT_BYTES."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size > MAX_SCRIPT_BYTES:
            log.info("not reading %s for its defaults: larger than %d bytes", path, MAX_SCRIPT_BYTES)
            return None
        data = read_content(fd, limit=MAX_SCRIPT_BYTES).data
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace") if data is not None else None


def _display(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-") or "metric"
