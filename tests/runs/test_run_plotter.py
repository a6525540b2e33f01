"""The interpreter that draws a run's loss curve starts with `devagent run`'s command (issue 22: its matplotlib
import, 0.3-1 s, used to follow the command's end, before the section), draws once the values are known, and is
gone when devagent is, with or without a curve to draw.

Real processes: `python -m devagent run` over a shell script, the user's interpreter a wrapper (DEVAGENT_PYTHON)
that says when it started and under which pid, then runs this test's Python (which has matplotlib).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# The command waits (up to a minute, for a loaded machine) for the plotting interpreter to have started.
TRAIN = textwrap.dedent("""\
    import os, sys, time
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(sys.argv[1]):
        sys.exit("the plotting interpreter did not start while the command ran")
    for step in range(int(sys.argv[2])):
        print(f"step={step} loss={1.0 / (step + 1):.4f}", flush=True)
""")


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str], Path, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train.py").write_text(TRAIN)
    started, pid = tmp_path / "plotter-started", tmp_path / "plotter-pid"
    python = tmp_path / "user-python"
    python.write_text(f'#!/bin/sh\necho $$ > "{pid}"\ntouch "{started}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN")}
    env["DEVAGENT_PYTHON"] = str(python)
    return ws, env, started, pid


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"  # reaped by now, or a zombie
    except OSError:
        return True


@pytest.mark.parametrize("steps", [5, 0])
def test_the_curves_interpreter_starts_with_the_command_and_ends_with_devagent(tmp_path: Path, steps: int) -> None:
    ws, env, started, pid = _workspace(tmp_path)
    # Not `python train.py`: the section's picture would be drawn by that interpreter, not the user's wrapper.
    done = subprocess.run([sys.executable, "-m", "devagent", "run", "--", "sh", "-c",
                           f'exec "{sys.executable}" train.py "{started}" {steps}'], cwd=ws, env=env,
                          capture_output=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr.decode()
    pngs = list((ws / "lab-notebook.assets").glob("run-1-*.png"))
    if steps:
        assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")
    else:  # nothing to draw: it was started all the same, and ended
        assert pngs == []
    assert _gone(int(pid.read_text()))


def test_the_curves_interpreter_gives_way_to_the_run(tmp_path: Path) -> None:
    """It imports matplotlib while the run runs; at normal priority that took a core from the run's own start on
    a small machine (a 2-process torchrun: ~0.2 s). It lowers its own priority first."""
    from devagent.runs.finish import Plotter

    plotter = Plotter(sys.executable)
    try:
        pid = plotter._process.pid  # type: ignore[union-attr]
        stat = Path(f"/proc/{pid}/stat")
        deadline = time.monotonic() + 60
        nice = 0
        while time.monotonic() < deadline:
            nice = int(stat.read_text().rsplit(")", 1)[1].split()[16])  # field 19: the nice value
            if nice:
                break
            time.sleep(0.02)
        assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 19)
        code, err = plotter.draw({"values": [1.0, 0.5], "name": "loss", "title": "run 1",
                                  "out": str(plotter.folder / "x.png")})
        assert (code, err) == (0, "")
        assert (plotter.folder / "x.png").stat().st_size > 0
    finally:
        plotter.close()
