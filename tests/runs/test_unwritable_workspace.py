"""`devagent run` on a disk that is full or read-only: the training runs all the same and keeps its exit status,
stderr says what was not recorded and why; and the runs journal gets over a torn line.

The disks are real: a 256 KiB tmpfs (the ``small_tmpfs`` fixture) remounted read-only, or filled to ENOSPC.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devagent.runs.runlog import RunLog
from tests.disks import fill_disk

TRAIN = "import sys\nprint('epoch=1 loss=0.5', flush=True)\nsys.exit(3)\n"


def devagent_run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_RUN", "DEVAGENT_LAB_FILE")}
    return subprocess.run([sys.executable, "-m", "devagent", "run", "--", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def ws(small_tmpfs: Path) -> Path:
    folder = small_tmpfs / "ws"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    return folder


def test_on_a_read_only_disk_the_training_runs_keeps_its_status_and_stderr_says_what_was_lost(
    ws: Path, small_tmpfs: Path,
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    try:
        result = devagent_run(ws, sys.executable, "train.py")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_tmpfs)], check=True)
    assert (result.returncode, result.stdout) == (3, "epoch=1 loss=0.5\n")
    assert result.stderr == (
        f"devagent: cannot number this run: {ws}/.devagent: Read-only file system; running it anyway, and trying "
        "again when it ends\n"
        f"devagent: run not recorded: {ws}/.devagent: Read-only file system; {ws}/lab-notebook.md has no section "
        "for it\n")
    assert sorted(p.name for p in ws.iterdir()) == ["train.py"]


def test_on_a_full_disk_the_training_runs_and_no_half_written_state_is_left(ws: Path, small_tmpfs: Path) -> None:
    fill_disk(small_tmpfs)
    result = devagent_run(ws, sys.executable, "train.py")
    assert (result.returncode, result.stdout) == (3, "epoch=1 loss=0.5\n")
    assert result.stderr == (
        f"devagent: cannot number this run: {ws}/.devagent/.gitignore: No space left on device; running it "
        "anyway, and trying again when it ends\n"
        f"devagent: run not recorded: {ws}/.devagent/.gitignore: No space left on device; {ws}/lab-notebook.md "
        "has no section for it\n")
    assert not (ws / ".devagent" / ".gitignore").exists()  # an empty one would let git see the state folder
    assert not (ws / "lab-notebook.md").exists()


def test_when_space_comes_back_during_the_run_its_section_is_written_at_the_end(
    ws: Path, small_tmpfs: Path, tmp_path: Path,
) -> None:
    filler = fill_disk(small_tmpfs)
    free = tmp_path / "free.py"  # the training frees the space itself (beside the disk, which has no room for it)
    free.write_text(f"import os\nos.unlink({str(filler)!r})\nprint('epoch=1 loss=0.25')\n")
    result = devagent_run(ws, sys.executable, str(free))
    assert (result.returncode, result.stdout) == (0, "epoch=1 loss=0.25\n")
    assert result.stderr.startswith(f"devagent: cannot number this run: {ws}/.devagent/.gitignore: No space left "
                                    "on device; running it anyway, and trying again when it ends\n")
    assert result.stderr.endswith(f"devagent: run 1 appended to {ws}/lab-notebook.md\n")
    assert [r.number for r in RunLog(ws).records()] == [1]
    assert "loss" in (ws / "lab-notebook.md").read_text()


def test_a_torn_line_in_the_runs_journal_is_skipped_with_a_warning_and_takes_no_record_with_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / ".devagent").mkdir(mode=0o755)
    journal = tmp_path / ".devagent" / "runs.jsonl"
    whole = {"number": 1, "observed": False, "script": "train.py", "argv": ["python", "train.py"], "cwd": "/w",
             "started": "2026-11-27T14:00:00+00:00", "duration_s": 1.0, "exit_code": 0, "exit_kind": "ok",
             "hparams": {}, "metrics": {}}
    torn = json.dumps({**whole, "number": 2})[:40]  # a crash mid-append, with no newline after it
    journal.write_text('{"reserve": 1}\n' + json.dumps(whole) + '\n{"reserve": 2}\n' + torn)
    assert devagent_run(tmp_path, sys.executable, "-c", "print('epoch=1 loss=0.5')").returncode == 0
    lines = journal.read_text().splitlines()
    assert lines[3] == torn  # left as it was: devagent never rewrites a byte
    assert json.loads(lines[4]) == {"reserve": 3, "started": json.loads(lines[4])["started"]}  # a line of its own
    with caplog.at_level(logging.WARNING, logger="devagent.run"):
        records = RunLog(tmp_path).records()
    assert [r.number for r in records] == [1, 3]
    assert caplog.messages == [f"runs journal {journal}: skipping line 4, which is not whole JSON: {torn!r}"]
