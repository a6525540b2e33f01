"""The observer of runs nobody wrapped, against this machine's real /proc and real Python processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devagent.agent.watcher import SaveHandler
from devagent.runs.observer import RunObserver
from devagent.runs.place import RunPlace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "tests").mkdir(parents=True)
    (ws / "train.py").write_text(
        "import argparse, time\n"
        "p = argparse.ArgumentParser(); p.add_argument('--lr', type=float, default=0.1); a = p.parse_args()\n"
        "time.sleep(1.5)\n"
    )
    (ws / "tests" / "test_x.py").write_text("def test(): pass\n")
    (ws / "tool").write_text("import time\ntime.sleep(1.5)\n")  # a console script: python tool tests/test_x.py
    return ws


def env_without_run() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_RUN", "DEVAGENT_LAB_FILE")}


def observe_until_done(observer: RunObserver, procs: list[subprocess.Popen[bytes]]) -> list[int]:
    finished: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished += observer.scan()
        if all(p.poll() is not None for p in procs) and not observer.following:
            break
        time.sleep(0.2)
    for p in procs:
        p.wait(timeout=5)
    return finished + observer.scan()


def test_a_python_run_of_a_watched_script_gets_an_observed_section(workspace: Path) -> None:
    place = RunPlace(workspace, workspace / "lab-notebook.md")
    observer = RunObserver(place, is_watched=SaveHandler(None, root=workspace).is_watched)  # type: ignore[arg-type]
    run = subprocess.Popen([sys.executable, "-u", "train.py", "--lr", "0.5"], cwd=workspace, env=env_without_run())
    # Not runs: a console script whose argument is a .py file, and a script started by `devagent run`.
    tool = subprocess.Popen([sys.executable, "tool", "tests/test_x.py"], cwd=workspace, env=env_without_run())
    wrapped = subprocess.Popen([sys.executable, "train.py"], cwd=workspace,
                               env={**env_without_run(), "DEVAGENT_RUN": "9"})
    assert observe_until_done(observer, [run, tool, wrapped]) == [1]
    text = place.notebook.read_text()
    assert text.count("\n## ") == 1
    heading = text.split("\n## ", 1)[1].splitlines()[0]
    assert heading.endswith("· run 1 (observed) · train.py · exit status unknown"), heading
    assert "| `lr` | `0.1` | **`0.5`** |" in text
    summary = text.split("\n## ", 1)[1].splitlines()[1]  # the duration, then what differs from the defaults
    assert re.fullmatch(r"[12]\.\d s · lr 0\.5 \(default 0\.1\)", summary), summary  # about the 1.5 s it slept


def test_an_observed_run_records_no_secret_of_its_command_line_environment_or_files(
        workspace: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"  # noqa: S105 - a made-up token, to be kept out
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=workspace, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=workspace, check=True)
    (workspace / ".env").write_text("WANDB_API_KEY=0123456789abcdef0123\n")
    place = RunPlace(workspace, workspace / "lab-notebook.md")
    observer = RunObserver(place, is_watched=SaveHandler(None, root=workspace).is_watched)  # type: ignore[arg-type]
    caplog.set_level("INFO", logger="devagent.observer")
    run = subprocess.Popen([sys.executable, "train.py", f"--token={token}", "--lr", "0.5"], cwd=workspace,
                           env={**env_without_run(), "TORCH_DB_PWD": "db-pwd-value"})
    assert observe_until_done(observer, [run]) == [1]
    text = place.notebook.read_text()
    assert "--token=‹redacted›" in text and "`TORCH_DB_PWD=‹redacted›`" in text
    assert "- `.env` +1/−0 · not in the patch: looks like a secret" in text
    journal = (workspace / ".devagent" / "runs.jsonl").read_text()
    for secret in (token, "db-pwd-value"):
        assert secret not in text and secret not in journal and secret not in caplog.text
    assert "--token=‹redacted›" in caplog.text  # the agent's log names the run without its secrets
