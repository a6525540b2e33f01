"""A run's end reads files the run (or anyone who can write the workspace) left: a huge or hostile lab.jsonl,
metrics.csv or script must cost bounded memory and time, and the section says when a cap was hit."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devagent.core import layout
from devagent.core.runs.metrics import MAX_NAMES
from devagent.core.runs.record import RunRecord
from devagent.runs import finish as finish_module
from devagent.runs.finish import Finished, finish_run
from devagent.runs.place import RunPlace
from devagent.runs.runlog import RunLog

STARTED = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "train.py").write_text("import argparse\np = argparse.ArgumentParser()\n"
                                        "p.add_argument('--lr', default=0.1)\n")
    return workspace


def end_run(ws: Path, *, lab_file: Path | None = None, argv: tuple[str, ...] = ("python", "train.py"),
           timeout: float = 60.0) -> tuple[RunRecord, str]:
    """finish_run for run 1 of ARGV, on a thread that must end within TIMEOUT seconds; its record and section."""
    place = RunPlace(ws, ws / "lab-notebook.md")
    runs = RunLog(ws)
    number = runs.reserve(STARTED.isoformat(timespec="seconds"))
    run = Finished(number=number, argv=list(argv), cwd=ws, started=STARTED, duration_s=3.0, exit_code=0,
                   lab_file=lab_file, python="/nonexistent/python")  # no plot: the sparkline is enough here
    outcome: dict[str, RunRecord] = {}
    thread = threading.Thread(target=lambda: outcome.update(record=finish_run(place, runs, run)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"finish_run still running after {timeout}s"
    return outcome["record"], place.notebook.read_text()


def lab_line(**values: float) -> bytes:
    return json.dumps(values).encode() + b"\n"


def test_a_2_gb_lab_file_is_streamed_in_bounded_memory_and_the_section_says_what_was_read(ws: Path) -> None:
    lab = layout.run_lab_file(ws, 1)
    lab.parent.mkdir(parents=True)
    with lab.open("wb") as f:
        f.truncate(2 << 30)  # 2 GiB without a line end (sparse: no disk used) ...
        f.seek(0, os.SEEK_END)
        f.write(b"\n" + b"".join(lab_line(step=i, loss=1.0 / (i + 1)) for i in range(1000)))  # ... then the run's
    tracemalloc.start()
    try:
        record, text = end_run(ws, lab_file=lab)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
    assert record.metrics == {"loss": 0.001}
    assert "| `loss` | 0.001 (step 999) | 0.001 (step 999) |" in text
    assert ("Only the last 32 MiB of `lab.jsonl` (2.0 GiB) were read: final values are exact, best values and point "
            "counts cover that part.") in text


def test_a_lab_file_under_the_window_is_read_whole_and_gets_no_note(ws: Path) -> None:
    lab = layout.run_lab_file(ws, 1)
    lab.parent.mkdir(parents=True)
    lab.write_bytes(lab_line(step=1, loss=0.9) + b"x" * 100_000 + b"\n" + lab_line(step=2, loss=0.5))  # one too long
    record, text = end_run(ws, lab_file=lab)
    assert record.metrics == {"loss": 0.5}
    assert "| `loss` | 0.5 (step 2) | 0.5 (step 2) |" in text
    assert "were read" not in text and "not kept" not in text


def test_a_run_that_logs_a_thousand_metric_names_keeps_the_first_ones_and_says_how_many_were_left_out(
    ws: Path,
) -> None:
    lab = layout.run_lab_file(ws, 1)
    lab.parent.mkdir(parents=True)
    lab.write_bytes(b"".join(lab_line(step=step, **{f"m{i:04d}": float(step) for i in range(1000)})
                             for step in range(3)))
    record, text = end_run(ws, lab_file=lab)
    assert sorted(record.metrics) == [f"m{i:04d}" for i in range(MAX_NAMES)]
    assert text.count("\n| `m0") == MAX_NAMES
    assert (f"{1000 - MAX_NAMES} more metrics were logged but not kept: a run keeps the first {MAX_NAMES} names, "
            "none longer than 128 characters.") in text
    assert json.loads(RunLog(ws).path.read_text().splitlines()[-1])["metrics"] == record.metrics


def test_a_lightning_csv_over_the_window_keeps_its_header_and_is_read_from_its_end(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finish_module, "METRIC_FILE_WINDOW", 4096)
    logs = ws / "lightning_logs" / "version_0"
    logs.mkdir(parents=True)
    rows = "".join(f"0,{step},{1.0 / step}\n" for step in range(1, 2001))
    (logs / "metrics.csv").write_text("epoch,step,train_loss\n" + rows)
    size = (logs / "metrics.csv").stat().st_size
    record, text = end_run(ws)
    assert record.metrics["train_loss"] == 1.0 / 2000
    assert (f"Only the last 4 KiB of `lightning_logs/version_0/metrics.csv` ({size // 1024} KiB) were read") in text


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_a_lab_file_that_is_not_a_regular_file_is_skipped_and_the_section_written(
    ws: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    lab = layout.run_lab_file(ws, 1)
    lab.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(lab)  # opening it to read would wait for a writer forever
    else:
        os.symlink("/dev/zero", lab)  # reading it would never end
    record, text = end_run(ws, lab_file=lab, timeout=10)
    assert record.metrics == {}
    assert "### Metrics" not in text
    reason = "a FIFO, not a regular file" if kind == "fifo" else "a symbolic link, not followed"
    assert f"metrics: not reading {lab}: {reason}" in caplog.messages


def test_a_5_gb_script_is_not_read_for_its_defaults(ws: Path) -> None:
    with (ws / "train.py").open("r+b") as f:
        f.truncate(5 << 30)  # sparse: no disk used
    tracemalloc.start()
    try:
        record, _ = end_run(ws, argv=("python", "train.py", "--lr", "0.5"), timeout=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert record.hparams == {"lr": "0.5"}  # from the command line only


def test_the_section_ends_with_a_reproduce_block_from_the_launch_record_and_the_run(
        ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devagent.core.notebook import LaunchContext
    from devagent.core.runs.reproduce_block import find_run_section, read_facts

    pinned = "reg.local:5000/team/env:v1@sha256:" + "cd" * 32
    launch = tmp_path / "launch.json"
    launch.write_text(LaunchContext(
        name="exp", user="dev", image="reg.local:5000/team/env:v1", base_image="debian:12", base_digest=None,
        launch_command="devagent up exp --image reg.local:5000/team/env:v1", mounts=(), limits="", gpus="none",
        ssh_alias="exp", devagent_version="0", created="2026-11-27T14:00:00+00:00", pinned_image=pinned,
        up_args=("--gpus", "none", "--memory", "2g")).to_json())
    monkeypatch.setattr(finish_module, "LAUNCH_CONTEXT", launch)
    lab = layout.run_lab_file(ws, 1)
    lab.parent.mkdir(parents=True)
    lab.write_bytes(lab_line(step=1, loss=0.5))
    _, text = end_run(ws, lab_file=lab, argv=("python", "train.py", "--lr", "0.2"))
    section = find_run_section(text, 1)
    assert section is not None
    assert section.index("<details><summary>reproduce this run</summary>") > section.index("### ")
    assert section.rstrip().endswith("**Observations:** \n\n**Next:**")
    assert (f"devagent up exp-run1 --image {pinned} --gpus none --memory 2g --workspace ../exp-run1") in section
    facts = read_facts(section)
    assert facts is not None
    assert (facts.pinned, facts.argv, facts.metrics, facts.cwd) == (
        pinned, ("python", "train.py", "--lr", "0.2"), {"loss": 0.5}, str(ws))


def test_a_run_outside_a_devagent_environment_gets_a_block_that_says_its_image_is_unknown(
        ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finish_module, "LAUNCH_CONTEXT", tmp_path / "missing.json")
    _, text = end_run(ws)
    assert "⚠️ No launch record: this run was not in a devagent environment, so its image is unknown." in text
