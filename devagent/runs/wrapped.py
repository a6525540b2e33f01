"""`devagent run -- CMD ...`: run a training command as given and append its run section to the notebook.

The command's output streams through unchanged (streaming.py); on the side, a cleaned tail and the metrics in it are
kept (output_watch.py). When it ends, its section is gathered and appended (finish.py). The command's exit status
is devagent's exit status.

The training matters more than its record: when the workspace cannot be written (a full disk, a read-only mount)
the command runs all the same, numbering is tried again when it ends, and stderr says what was not recorded and
why. Only what the user can fix before starting is refused up front (exit 13): a notebook that is a link out of
the workspace, a state folder that is not theirs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from devagent.core import layout
from devagent.core.runs.distributed import RANK_TEMPLATE, launcher_args, parse_launch
from devagent.errors import DevagentError, ExitStatus
from devagent.runs.output_watch import OutputWatch
from devagent.runs.place import RunPlace, check_place, locate
from devagent.runs.rank_logs import RankLogs
from devagent.runs.runlog import RunLog
from devagent.runs.streaming import run_streaming

if TYPE_CHECKING:  # imported once the command runs (_Beside): the command does not wait for them
    from devagent.core.runs.record import GitState
    from devagent.runs.finish import Finished, Plotter


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


def wrapped_run(argv: Sequence[str], *, cwd: Path, notebook: Path | None = None,
                environ: Mapping[str, str] | None = None) -> int:
    """`devagent run`: run ARGV in CWD, stream it, append its section. Returns the command's exit status."""
    environ = dict(os.environ if environ is None else environ)
    check_command(argv, cwd, environ)
    place = locate(cwd, notebook)
    check_place(place)
    runs = RunLog(place.workspace)
    started = _now()
    launch = parse_launch(argv, environ)
    if launch is not None and launch.launcher == "environment" and launch.rank not in (None, 0):
        # `srun devagent run -- python train.py`: every rank runs the wrapper; rank 0's section is the run's.
        print(f"devagent: rank {launch.rank} of {launch.world_size}: not recorded (rank 0 records the run)",
              file=sys.stderr, flush=True)
        return run_streaming(list(argv), on_output=lambda _: None, env={**environ, "DEVAGENT_RUN": ""},
                             cwd=str(cwd)).returncode
    node = (launch.rendezvous, launch.node_rank) if launch is not None and launch.rendezvous else None
    number, lab_file = _reserve(runs, started, node=node)
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = _run(argv, cwd=cwd, environ=environ, number=number, started=started, lab_file=lab_file,
                        place=place, pool=pool)
    assert finished.exit_code is not None
    from devagent.runs.finish import finish_run  # after the command, not before it
    try:
        if number is None:  # not numbered at the start: the disk may have come back
            number = _reserve_number(runs, started, retry=True, notebook=place.notebook, node=node)
            if number is None:
                return finished.exit_code
            finished.number = number
        try:
            finish_run(place, runs, finished)
        except OSError as exc:  # the section is appended, kept or reported by finish_run: this is the journal
            print(f"devagent: run {number} is not in the runs journal: {_reason(exc)}", file=sys.stderr)
    finally:
        if finished.plotter is not None:  # not used when the run was not recorded
            finished.plotter.close()
        if lab_file is not None and lab_file.name.startswith(_TEMPORARY_LAB):
            with contextlib.suppress(OSError):
                lab_file.unlink()
    return finished.exit_code


_TEMPORARY_LAB = "devagent-lab-"


def _reserve(runs: RunLog, started: datetime, *, node: tuple[str, int | None] | None = None,
             ) -> tuple[int | None, Path | None]:
    """The run's number (None when the runs journal cannot be written: said on stderr) and the file the lab
    helper writes: in the run's folder, else a temporary file read at the end (None when there is none)."""
    number = _reserve_number(runs, started, retry=False, notebook=None, node=node)
    if number is not None:
        try:
            runs.make_run_dir(number)
            return number, layout.run_lab_file(runs.workspace, number)
        except OSError as exc:
            print(f"devagent: run {number} has no folder of its own: {_reason(exc)}", file=sys.stderr)
    try:
        fd, name = tempfile.mkstemp(prefix=_TEMPORARY_LAB, suffix=".jsonl")
    except OSError:
        return number, None
    os.close(fd)
    return number, Path(name)


def _reserve_number(runs: RunLog, started: datetime, *, retry: bool, notebook: Path | None,
                    node: tuple[str, int | None] | None = None) -> int | None:
    try:
        return runs.reserve(started.isoformat(timespec="seconds"), node=node)
    except OSError as exc:
        if retry:
            print(f"devagent: run not recorded: {_reason(exc)}; {notebook} has no section for it",
                  file=sys.stderr)
        else:
            print(f"devagent: cannot number this run: {_reason(exc)}; running it anyway, and trying again "
                  "when it ends", file=sys.stderr, flush=True)
        return None


def _reason(exc: OSError) -> str:
    """EXC as one line that names the file: ``/ws/.devagent: Read-only file system``."""
    if exc.filename and not str(exc).startswith(str(exc.filename)):
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


class _Beside:
    """What only the section needs, done once the command has started rather than before (the imports alone are
    ~60 ms): who started the run, the interpreter that draws its loss curve (importing matplotlib while the
    command runs), and the code as it was run (git status in a big repository takes a while: in POOL)."""

    def __init__(self, pool: ThreadPoolExecutor, place: RunPlace, cwd: Path, number: int | None,
                 python: str | None) -> None:
        self._pool, self._place, self._cwd, self._number, self._python = pool, place, cwd, number, python
        self.who: str | None = None
        self.plotter: Plotter | None = None
        self._git: Future[GitState | None] | None = None

    def __call__(self) -> None:
        from devagent.inside.interpreter import find_user_python  # see the class
        from devagent.inside.sessions import started_by
        from devagent.runs.finish import Plotter, code_state

        self._git = self._pool.submit(code_state, self._place, self._cwd, number=self._number)
        self.who = started_by(os.getpid())  # by the ssh login above this process, never by its environment
        try:
            self.plotter = Plotter(self._python or find_user_python())
        except OSError:
            self.plotter = None  # the section says why, as without it

    def git(self) -> GitState | None:
        if self._git is None:  # it did not run (the command ended first, or it failed): now, then
            from devagent.runs.finish import code_state
            return code_state(self._place, self._cwd, number=self._number)
        return self._git.result()


def _run(argv: Sequence[str], *, cwd: Path, environ: Mapping[str, str], number: int | None, started: datetime,
         lab_file: Path | None, place: RunPlace, pool: ThreadPoolExecutor) -> Finished:
    child_env = {**environ, "DEVAGENT_RUN": "" if number is None else str(number)}
    if lab_file is not None:
        child_env["DEVAGENT_LAB_FILE"] = str(lab_file)
    distributed = parse_launch(argv, environ) is not None  # the shape itself is read again when it ends
    rank_logs = RankLogs.create() if distributed and tags_rank_files(argv, environ) else None
    if distributed:
        child_env.update(rank_tagging(argv, environ, log_dir=rank_logs.root if rank_logs is not None else None))
    output = OutputWatch(ranks=distributed)
    if number is not None:
        print(f"devagent: run {number} → {place.notebook}", file=sys.stderr, flush=True)
    python = _interpreter(argv, environ)
    beside = _Beside(pool, place, cwd, number, python)
    try:
        outcome = run_streaming(list(argv), on_output=output.feed, env=child_env, cwd=str(cwd), side=rank_logs,
                                on_start=beside)
    except BaseException:
        if beside.plotter is not None:
            beside.plotter.close()
        raise
    finally:
        if rank_logs is not None:
            rank_logs.remove()
    output.close()
    from devagent.runs.finish import Finished  # imported by _Beside already
    finished = Finished(
        number=number or 0, argv=list(argv), cwd=cwd, started=started, duration_s=outcome.duration_s,
        exit_code=outcome.returncode, oom_killed=outcome.oom_killed, output=output, lab_file=lab_file,
        gpu_peak=outcome.gpu_peak_bytes, gpu_total=outcome.gpu_total_bytes, gpus_used=outcome.gpus_used,
        gpu_devices=outcome.gpu_devices, gpu_timelines=outcome.gpu_timelines, cpu_share=outcome.cpu_share,
        python=python, environ=environ, started_by=beside.who, plotter=beside.plotter,
    )
    finished.git = beside.git()
    return finished


def rank_tagging(argv: Sequence[str], environ: Mapping[str, str], *, log_dir: Path | None = None,
                 ) -> dict[str, str]:
    """What makes torchrun's workers' lines reach the output whole and tagged with their rank
    (``[rank1]:step 3``). Workers writing to one shared pipe can run two lines together, so each writes to files
    of its own: in LOG_DIR, which devagent tails itself (rank_logs.py; where ``tags_rank_files`` says it can),
    else through torchrun's own ``--tee 3`` (PET_TEE) with a rank prefix. Nothing when the command chose its own
    --tee, --redirects or rank filter: its choice stands."""
    options = _torchrun_options(argv)
    if options is None:
        return {}
    if any(word.split("=")[0] in _OWN_OUTPUT for word in options) or "PET_TEE" in environ \
            or "PET_REDIRECTS" in environ:
        return {}
    if log_dir is not None and tags_rank_files(argv, environ):
        return {"PET_REDIRECTS": "3", "PET_LOG_DIR": str(log_dir)}
    return {"PET_TEE": "3",
            "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": environ.get("TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE",
                                                                 RANK_TEMPLATE)}


_OWN_OUTPUT = {"--tee", "-t", "--redirects", "-r", "--local-ranks-filter", "--local_ranks_filter"}
_OWN_FILES = {"--log-dir", "--log_dir", "--logs-specs", "--logs_specs"}


def tags_rank_files(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether devagent can tag the ranks itself from their files: a one-node torchrun (a rank's file is named
    by its local rank, its rank only on one node) that chose neither its log folder nor a prefix of its own."""
    options = _torchrun_options(argv)
    launch = parse_launch(argv, environ)
    if options is None or launch is None or launch.multi_node:
        return False
    chosen = {word.split("=")[0] for word in options}
    return not chosen & (_OWN_OUTPUT | _OWN_FILES) and not any(
        name in environ for name in ("PET_TEE", "PET_REDIRECTS", "PET_LOG_DIR", "PET_LOGS_SPECS",
                                     "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"))


def _torchrun_options(argv: Sequence[str]) -> list[str] | None:
    """torchrun's own words in ARGV (those before the script), or None when ARGV is not a torchrun."""
    found = launcher_args(argv)
    if found is None or found[0] != "torchrun":
        return None
    words = found[1]
    return words[:next((i for i, w in enumerate(words) if w.endswith(".py")), len(words))]


def _interpreter(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The Python the command runs under, when it is one (the plot is drawn with it)."""
    if argv and Path(argv[0]).name.startswith("python"):
        return shutil.which(argv[0], path=environ.get("PATH", os.defpath))
    return None


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()
