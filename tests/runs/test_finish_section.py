"""What finish_run hands the section beyond the series itself: the output's own last values, the curve's range,
the GPUs' indices, and whether the notebook already explains the GPU memory figures (issue 12 item 5)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from devagent.core import layout
from devagent.core.runs.section import MEMORY_EXPLANATION, MEMORY_NOTE
from devagent.runs.finish import Finished, finish_run, notebook_holds
from devagent.runs.output_watch import OutputWatch
from devagent.runs.place import RunPlace
from devagent.runs.runlog import RunLog

STARTED = datetime(2026, 11, 27, 4, 29, tzinfo=timezone.utc)
MIB = 1 << 20


def gpu_run(ws: Path, lr: str) -> str:
    """A finished GPU run of train.py as `devagent run` hands it over (NVML's figures and the helper's JSON lines
    made up, as no GPU is here); the notebook's new section."""
    runs = RunLog(ws)
    number = runs.reserve(STARTED.isoformat(timespec="seconds"))
    lab = layout.run_lab_file(ws, number)
    lab.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"step": step, "loss": 2.0 / step} for step in range(1, 91)]
    lines.append({"_torch": {"max_memory_allocated": 110 * MIB, "max_memory_reserved": 128 * MIB, "devices": 1}})
    lab.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output = OutputWatch()
    output.feed(b"epoch=1 loss=0.9 acc=0.6\nepoch=2 loss=0.05 acc=0.8\n")
    output.close()
    notebook = ws / "lab-notebook.md"
    before = notebook.read_text() if notebook.exists() else ""
    finish_run(RunPlace(ws, notebook), runs, Finished(
        number=number, argv=["python3", "train.py", "--lr", lr], cwd=ws, started=STARTED, duration_s=11.2,
        exit_code=0, output=output, lab_file=lab, gpu_peak=819 * MIB, gpu_total=81559 * MIB, gpus_used=1,
        gpu_devices=(0,), python="/nonexistent/python"))  # no plot: the sparkline
    return notebook.read_text()[len(before):]


def test_two_gpu_runs_explain_the_memory_figures_once_and_say_what_final_is(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import argparse\np = argparse.ArgumentParser()\n"
                                       "p.add_argument('--lr', default=1e-3)\n")
    first = gpu_run(tmp_path, "1e-3")
    second = gpu_run(tmp_path, "3e-3")
    assert first.count(MEMORY_EXPLANATION) == 1 and f"<details><summary>{MEMORY_NOTE}</summary>" in first
    assert MEMORY_EXPLANATION not in second and MEMORY_NOTE not in second
    for section in (first, second):
        assert "| GPUs | 1 GPU: 0 |" in section
        assert "0.8 GiB of 79.6 GiB peak on GPU 0" in section
        assert ("Sources: `devagent.lab`, the output. *final* is the last value logged; the output's own last line "
                "printed `loss` 0.05.") in section
        assert "`loss` " in section and " — 90 points in 40 bars · min 0.0222222 · max 2 · last 0.0222222" in section
        assert "| `acc` | 0.8 | 0.8 (value 2 of 2) |" in section
    assert second.splitlines()[2] == "loss 0.0222 (run 1: 0.0222) · acc 0.8 (0.8) · 11 s · lr 3e-3 (was 1e-3)"


def test_a_notebook_is_searched_in_chunks_across_their_edges(tmp_path: Path) -> None:
    notebook = tmp_path / "lab-notebook.md"
    notebook.write_text("x" * 10 + "needle" + "y" * 10)
    assert notebook_holds(notebook, "needle", chunk=12)  # split over the first two chunks
    assert notebook_holds(notebook, "needle", chunk=3)
    assert not notebook_holds(notebook, "needles", chunk=4)
    assert not notebook_holds(tmp_path / "missing.md", "needle")
