"""`devagent run -- CMD ...`: run a training command as given and append its run section to the notebook.

The command's output streams through unchanged (streaming.py); on the side, a cleaned tail and the metrics in it are
kept (output_watch.py). When it ends, its section is gathered and appended (finish.py). The command's exit status
is devagent's exit status.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus
from devagent.runs.finish import Finished, code_state, finish_run
from devagent.runs.output_watch import OutputWatch
from devagent.runs.place import RunPlace, check_place, locate
from devagent.runs.runlog import RunLog
from devagent.runs.streaming import run_streaming


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
    number = runs.reserve(started.isoformat(timespec="seconds"))
    runs.make_run_dir(number)
    lab_file = layout.run_lab_file(place.workspace, number)
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


def _interpreter(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The Python the command runs under, when it is one (the plot is drawn with it)."""
    if argv and Path(argv[0]).name.startswith("python"):
        return shutil.which(argv[0], path=environ.get("PATH", os.defpath))
    return None


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()
