"""`devagent run -- CMD ...`: run a training command as given and append its run section to the notebook.

The command's output streams through unchanged (process.py); on the side, a cleaned tail and the metrics in it are
kept. When it ends, everything the section shows is gathered — hyperparameters from the script's source and argv,
git state, saves since the previous run, metrics from the output, the helper's JSON lines and Lightning's
metrics.csv, GPU memory — and appended as one entry. The command's exit status is devagent's exit status.

The same finishing step serves runs nobody wrapped (observer.py): ``finish_run`` takes what is known.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from devagent.container.gitstate import git_state
from devagent.container.process import run_streaming
from devagent.container.runlog import RunLog
from devagent.core import layout
from devagent.core.notebook import SaveRecord
from devagent.core.runs.environment import allowed_env
from devagent.core.runs.exits import NAN_RE, classify_exit
from devagent.core.runs.hparams import argparse_defaults, overlay_argv
from devagent.core.runs.metrics import (
    MetricSeries,
    curve_values,
    parse_metric_line,
    read_lightning_csv,
    read_metrics_jsonl,
    sparkline,
    summarize_metrics,
)
from devagent.core.runs.output import LineCollector
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.section import RunReport, render_run
from devagent.errors import DevagentError, ExitStatus
from devagent.runtime import environment
from devagent.runtime.interpreter import find_user_python
from devagent.runtime.workspace_state import SaveLog

log = logging.getLogger("devagent.run")

# Folders never searched for Lightning's metrics.csv (the watcher skips the same kind).
_SKIP_DIRS = frozenset({".git", layout.WORKSPACE_STATE, ".venv", "venv", "env", "node_modules", "__pycache__", "data",
                        "datasets", "checkpoints", "wandb"})
_PLOT_TIMEOUT = 60.0
_PLOT_SCRIPT = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(sys.stdin)
fig, ax = plt.subplots(figsize=(6, 3), dpi=110)
ax.plot(range(1, len(d["values"]) + 1), d["values"], linewidth=1.4)
ax.set_xlabel("logged point"); ax.set_ylabel(d["name"]); ax.set_title(d["title"]); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig(d["out"])
"""


@dataclass(frozen=True)
class RunPlace:
    """Where a run's section goes: the workspace (journals, assets) and its notebook."""

    workspace: Path
    notebook: Path

    @property
    def assets(self) -> Path:
        return layout.assets_dir(self.notebook)

    def relative(self, path: Path) -> str:
        """PATH as the workspace-relative text the records keep (absolute when outside the workspace)."""
        try:
            return Path(os.path.abspath(path)).relative_to(self.workspace).as_posix()
        except ValueError:
            return str(path)


def locate(cwd: Path, notebook: Path | None = None, *, agent_notebook: Path | None = None) -> RunPlace:
    """The notebook for a run started in CWD.

    An explicit NOTEBOOK wins. Inside an environment, the notebook its agent writes (wherever CWD is: the
    environment has one notebook). Elsewhere, the nearest folder above CWD that already holds a lab notebook or
    a workspace state folder; else CWD itself (a new ``lab-notebook.md`` there).
    """
    cwd = Path(os.path.abspath(cwd))
    if notebook is not None:
        path = Path(os.path.abspath(notebook))
        return RunPlace(path.parent, path)
    agent_notebook = agent_notebook if agent_notebook is not None else _agent_notebook()
    if agent_notebook is not None:
        return RunPlace(agent_notebook.parent, agent_notebook)
    for folder in (cwd, *cwd.parents):
        if layout.default_notebook(folder).is_file() or layout.workspace_state(folder).is_dir():
            return RunPlace(folder, layout.default_notebook(folder))
    return RunPlace(cwd, layout.default_notebook(cwd))


def _agent_notebook() -> Path | None:
    if not environment.agent_record().is_file():
        return None
    return environment.running_notebook()


# Python's own options that take a value (python -W error -X dev script.py): the value is not the script.
_PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def find_script(argv: Sequence[str], cwd: Path) -> tuple[Path | None, list[str]]:
    """The training script in ARGV and the arguments after it.

    For ``python [options] SCRIPT.py args`` and ``python [options] -m pkg.mod args`` it is what Python itself runs
    (the module's file when it is under CWD: ``pkg/mod.py`` or ``pkg/mod/__main__.py``); a console script such as
    ``python /venv/bin/pytest tests/test_x.py`` has none. For any other launcher (torchrun, accelerate launch) it is
    the first ``*.py`` argument that is a file.

    >>> find_script(["python", "-u", "devagent/__main__.py", "--lr", "3e-4"], Path("."))
    (PosixPath('devagent/__main__.py'), ['--lr', '3e-4'])
    >>> find_script(["python", "-m", "devagent.cli", "--lr", "3e-4"], Path("."))
    (PosixPath('devagent/cli.py'), ['--lr', '3e-4'])
    >>> find_script(["python3", "/usr/bin/pytest", "devagent/cli.py"], Path("."))
    (None, [])
    >>> find_script(["torchrun", "--nproc-per-node", "2", "devagent/cli.py", "--lr", "1"], Path("."))
    (PosixPath('devagent/cli.py'), ['--lr', '1'])
    >>> find_script(["make", "train"], Path("."))
    (None, [])
    """
    if argv and Path(argv[0]).name.startswith("python"):
        return _python_target(list(argv[1:]), cwd)
    for i, arg in enumerate(argv):
        if arg.endswith(".py") and (cwd / arg).is_file():
            return Path(arg), list(argv[i + 1:])
    return None, []


def _python_target(args: list[str], cwd: Path) -> tuple[Path | None, list[str]]:
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "-m", "-c"):
        i += 2 if args[i] in _PYTHON_OPTIONS_WITH_VALUE else 1
    if i >= len(args) or args[i] in ("-", "-c"):
        return None, []
    if args[i] == "-m":
        if i + 1 >= len(args):
            return None, []
        module = Path(*args[i + 1].split("."))
        for candidate in (module.with_suffix(".py"), module / "__main__.py"):
            if (cwd / candidate).is_file():
                return candidate, args[i + 2:]
        return None, []
    script = args[i]
    if script.endswith(".py") and (cwd / script).is_file():
        return Path(script), args[i + 1:]
    return None, []


def check_command(argv: Sequence[str], cwd: Path, environ: Mapping[str, str]) -> None:
    """Refuse, before anything is numbered, a command that cannot start."""
    if not argv:
        raise DevagentError("no command to run", status=ExitStatus.USAGE,
                            hint="put the command after --: devagent run -- python train.py --lr 3e-4")
    program = argv[0]
    if "/" in program:
        found = (cwd / program).is_file() and os.access(cwd / program, os.X_OK)
    else:
        found = shutil.which(program, path=environ.get("PATH", os.defpath)) is not None
    if not found:
        raise DevagentError(f"command not found: {program}", status=ExitStatus.USAGE,
                            hint="check the spelling, or give the interpreter: devagent run -- python script.py")


# What reading the output for the notebook may cost the stream: a share of the run's wall time (after a first
# quarter second for free). A script that prints faster than that is still streamed in full; only its metrics are read
# from part of it, and the section says how much.
PARSE_BUDGET = 0.05
PARSE_FREE_S = 0.25
RAW_TAIL_BYTES = 256 * 1024  # the output's last bytes, raw: the tail is cleaned from these at the end


@dataclass
class OutputWatch:
    """What the wrapper keeps of the output on the side: the last bytes (for the tail), the metrics in it, and
    whether a loss went NaN. Never slows the stream by more than PARSE_BUDGET of the run's time; whatever was
    skipped at the very end is read from the last bytes at ``close()``, so final values are always the last."""

    clock: Callable[[], float] = time.monotonic
    series: MetricSeries = field(default_factory=MetricSeries)
    nan_seen: bool = False
    total_bytes: int = 0
    parsed_bytes: int = 0
    newlines: int = 0
    lines: LineCollector = field(default_factory=LineCollector)
    _raw: bytearray = field(default_factory=bytearray)
    _spent: float = 0.0
    _started: float | None = None
    _parsed_upto: int = 0  # total_bytes when the last parsed byte came in

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)
        self.newlines += data.count(b"\n")
        self._raw += data
        if len(self._raw) > RAW_TAIL_BYTES:
            del self._raw[:-RAW_TAIL_BYTES]
        now = self.clock()
        if self._started is None:
            self._started = now
        if self._spent > PARSE_FREE_S + PARSE_BUDGET * (now - self._started):
            return  # over budget: stream on, read metrics again when there is time
        if self._parsed_upto != self.total_bytes - len(data):  # after a gap: start again at a line boundary
            newline = data.find(b"\n")
            if newline < 0:
                return
            data = data[newline + 1:]
            self.lines = LineCollector()
        self._take(self.lines.feed(data))
        self.parsed_bytes += len(data)
        self._parsed_upto = self.total_bytes
        self._spent += self.clock() - now

    def close(self) -> None:
        missing = self.total_bytes - self._parsed_upto
        if missing:  # the end was skipped: read it from the last bytes, so the final values are the real ones
            if missing <= len(self._raw):
                rest = bytes(self._raw[-missing:])  # continues exactly where the last parsed chunk ended
            else:
                rest = bytes(self._raw)
                rest = rest[rest.find(b"\n") + 1:]
                self.lines = LineCollector()
            self._take(self.lines.feed(rest))
            self.parsed_bytes += len(rest)
        self._take(self.lines.close())

    @property
    def tail(self) -> list[str]:
        """The cleaned last lines, from the raw last bytes (complete even when metrics skipped a part)."""
        raw = bytes(self._raw)
        if self.total_bytes > len(raw):  # the first line kept is cut: leave it out
            raw = raw[raw.find(b"\n") + 1:] if b"\n" in raw else raw
        collector = LineCollector()
        collector.feed(raw)
        collector.close()
        return collector.tail

    @property
    def line_count(self) -> int:
        return self.newlines + (1 if self._raw and not self._raw.endswith(b"\n") else 0)

    @property
    def parsed_share(self) -> float:
        return 1.0 if not self.total_bytes else min(1.0, self.parsed_bytes / self.total_bytes)

    def _take(self, lines: list[str]) -> None:
        for line in lines:
            values = parse_metric_line(line)
            if values:
                self.series.add(values)
            if NAN_RE.search(line):
                self.nan_seen = True


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
    git: GitState | None = None
    python: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


def wrapped_run(argv: Sequence[str], *, cwd: Path, notebook: Path | None = None,
                environ: Mapping[str, str] | None = None) -> int:
    """`devagent run`: run ARGV in CWD, stream it, append its section. Returns the command's exit status."""
    environ = dict(os.environ if environ is None else environ)
    check_command(argv, cwd, environ)
    place = locate(cwd, notebook)
    runs = RunLog(place.workspace)
    started = _now()
    number = runs.reserve(started.isoformat(timespec="seconds"))
    lab_file = layout.run_lab_file(place.workspace, number)
    lab_file.parent.mkdir(parents=True, exist_ok=True)
    # The code as it was run, read beside the command's start rather than before it (git status in a big
    # repository takes a while, and the command should not wait for the notebook's sake).
    with ThreadPoolExecutor(max_workers=1) as pool:
        git = pool.submit(code_state, place, cwd, number=number)
        finished = _run(argv, cwd=cwd, environ=environ, number=number, started=started, lab_file=lab_file,
                        place=place)
        finished.git = git.result()
    finish_run(place, runs, finished)
    assert finished.exit_code is not None
    return finished.exit_code


def _run(argv: Sequence[str], *, cwd: Path, environ: Mapping[str, str], number: int, started: datetime,
         lab_file: Path, place: RunPlace) -> Finished:
    child_env = {**environ, "DEVAGENT_RUN": str(number), "DEVAGENT_LAB_FILE": str(lab_file)}
    output = OutputWatch()
    print(f"devagent: run {number} → {place.notebook}", file=sys.stderr, flush=True)
    outcome = run_streaming(list(argv), on_output=output.feed, env=child_env, cwd=str(cwd))
    output.close()
    finished = Finished(
        number=number, argv=list(argv), cwd=cwd, started=started, duration_s=outcome.duration_s,
        exit_code=outcome.returncode, oom_killed=outcome.oom_killed, output=output, lab_file=lab_file,
        gpu_peak=outcome.gpu_peak_bytes, gpu_total=outcome.gpu_total_bytes, gpus_used=outcome.gpus_used,
        python=_interpreter(argv, environ), environ=environ,
    )
    return finished


def finish_run(place: RunPlace, runs: RunLog, run: Finished) -> RunRecord:
    """Gather what the section shows, append it to the notebook, record the run. Never raises for the notebook:
    a section that cannot be written is kept in the run's folder and the reason logged."""
    script, script_args = find_script(run.argv, run.cwd)
    script_text = _read(run.cwd / script) if script else None
    defaults = argparse_defaults(script_text) if script_text is not None else {}
    hparams = overlay_argv(defaults, script_args) if script else {}
    script_rel = place.relative(run.cwd / script) if script else None
    previous = runs.previous(script_rel, before=run.number)

    series, sources, torch_memory = _metrics(run)
    tail = run.output.tail if run.output else []
    nan_seen = (run.output.nan_seen if run.output else False) or any(
        not math.isfinite(v) for name, values in series.points.items() if "loss" in name for _, v in values)
    exit_info = classify_exit(run.exit_code, tail=tail, oom_killed=run.oom_killed, nan_seen=nan_seen)
    summaries = summarize_metrics(series)
    curve = curve_values(series)
    curve_image = _plot(place, run, curve) if curve else None

    record = RunRecord(
        number=run.number, observed=run.observed, script=script_rel, argv=tuple(run.argv), cwd=str(run.cwd),
        started=run.started.isoformat(timespec="seconds"), duration_s=run.duration_s, exit_code=run.exit_code,
        exit_kind=exit_info.kind, hparams=hparams, metrics={m.name: m.final for m in summaries},
    )
    report = RunReport(
        record=record, started_at=run.started, exit=exit_info, defaults=defaults, previous=previous, git=run.git,
        edits_since=_edits_since(place, previous, run.started), env=allowed_env(run.environ), metrics=summaries,
        metric_sources=sources, curve_name=curve[0] if curve else None, curve_image=curve_image,
        curve_sparkline=sparkline(curve[1]) if curve else None,
        gpu=GpuMemory(nvml_peak=run.gpu_peak, nvml_total=run.gpu_total,
                      torch_allocated=torch_memory.get("max_memory_allocated"),
                      torch_reserved=torch_memory.get("max_memory_reserved"),
                      gpus=max(run.gpus_used, torch_memory.get("devices") or 0)),
        output_tail=tail, output_lines=run.output.line_count if run.output else 0,
    )
    _append(place, runs, render_run(report), run.number)
    runs.record(record)
    return record


def _metrics(run: Finished) -> tuple[MetricSeries, tuple[str, ...], dict[str, int]]:
    """The run's metrics. Sources in order of trust: the helper's JSON lines, Lightning's metrics.csv, the output.
    A metric comes from the first source that has it (most scripts that log also print: the curve must not count
    twice); a later source adds only the metrics the earlier ones lack (an ``acc`` printed beside a logged loss)."""
    torch_memory: dict[str, int] = {}
    found: list[tuple[str, MetricSeries]] = []
    if run.lab_file is not None and run.lab_file.is_file():
        text = _read(run.lab_file) or ""
        torch_memory = _torch_memory(text)
        found.append(("devagent.lab", read_metrics_jsonl(text)))
    csv_file = _lightning_csv(run.cwd, since=run.started.timestamp())
    if csv_file is not None:
        found.append((_display(csv_file, run.cwd), read_lightning_csv(_read(csv_file) or "")))
    if run.output is not None:
        share = run.output.parsed_share
        found.append(("output" if share >= 1.0 else f"output ({math.floor(share * 1000) / 10:g}% of it: the rest "
                      "came faster than devagent reads metrics)", run.output.series))
    series = MetricSeries({})
    sources: list[str] = []
    for source, candidate in found:
        new = {name: points for name, points in candidate.points.items() if name not in series.points}
        if new:
            series.merge(MetricSeries(new))
            sources.append(source)
    return series, tuple(sources), torch_memory


def _torch_memory(text: str) -> dict[str, int]:
    """The helper's last ``_torch`` line: torch's own peak memory figures."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        if '"_torch"' not in line:
            continue
        try:
            data = json.loads(line).get("_torch")
        except (ValueError, AttributeError):
            continue
        if isinstance(data, dict):
            found = {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
    return found


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
                mtime = (here / "metrics.csv").stat().st_mtime
            except OSError:
                continue
            if mtime >= since - 1 and (best is None or mtime > best[0]):
                best = (mtime, here / "metrics.csv")
    return best[1] if best else None


def _plot(place: RunPlace, run: Finished, curve: tuple[str, list[float]]) -> str | None:
    """A PNG of the curve made by the user's interpreter when it has matplotlib; None otherwise (the section
    then shows a sparkline)."""
    name, values = curve
    out = place.assets / f"run-{run.number}-{_slug(name)}.png"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [run.python or find_user_python(), "-c", _PLOT_SCRIPT],
            input=json.dumps({"values": [v if math.isfinite(v) else None for v in values],
                              "name": name, "title": f"run {run.number}", "out": str(out)}),
            capture_output=True, text=True, timeout=_PLOT_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("no plot for run %d: %s", run.number, exc)
        return None
    if result.returncode != 0 or not out.is_file():
        log.info("no plot for run %d (matplotlib missing?): %s", run.number, result.stderr.strip()[-200:])
        return None
    return out.relative_to(place.notebook.parent).as_posix()


def code_state(place: RunPlace, cwd: Path, *, number: int | None) -> GitState | None:
    """The git state of CWD, without the notebook and its assets; with NUMBER, the uncommitted diff is saved as the
    run's patch asset (an observed run's number is not known when it is read: it gets no patch)."""
    info = git_state(cwd, exclude=(place.notebook, place.assets))  # the notebook is not the code
    if info is None:
        return None
    patch_asset = None
    if info.patch and number is not None:
        patch = place.assets / f"run-{number}.patch"
        try:
            patch.parent.mkdir(parents=True, exist_ok=True)
            patch.write_bytes(info.patch)
            patch_asset = patch.relative_to(place.notebook.parent).as_posix()
        except OSError as exc:
            log.warning("could not save the uncommitted diff: %s", exc)
    return GitState(commit=info.commit, branch=info.branch, dirty=info.dirty, files=info.files,
                    patch_asset=patch_asset)


def _edits_since(place: RunPlace, previous: RunRecord | None, started: datetime) -> list[SaveRecord] | None:
    """Saves the agent journaled between the previous run's start and this one's (all saves before a first run);
    None when no agent keeps a journal here."""
    saves = SaveLog(place.workspace)
    if not saves.path.is_file():
        return None
    return saves.saves_since(previous.started if previous else 0, until=started)


def _append(place: RunPlace, runs: RunLog, section: str, number: int) -> None:
    writer = environment.open_notebook(place.notebook, outside_ok=True)
    try:
        writer.append(section)
    except OSError as exc:  # the writer keeps the entry; we are about to exit, so keep it on disk instead
        log.error("could not write %s: %s", place.notebook, exc)
    if writer.pending:
        kept = layout.kept_section(place.workspace, number)
        try:
            kept.write_text(section)
            where = f"kept in {kept}"
        except OSError:
            where = "lost"
        print(f"devagent: could not append run {number} to {place.notebook}; its section is {where}",
              file=sys.stderr)
    else:
        print(f"devagent: run {number} appended to {place.notebook}", file=sys.stderr)


def _interpreter(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The Python the command runs under, when it is one (the plot is drawn with it)."""
    if argv and Path(argv[0]).name.startswith("python"):
        return shutil.which(argv[0], path=environ.get("PATH", os.defpath))
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _display(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-") or "metric"


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()
