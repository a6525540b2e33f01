"""`devagent job-ended LINE` (cli/in_environment.py), which a Slurm job's holder runs in the still-running
container as the job ends: the end line goes into the notebook the agent writes, through its writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.cli import main
from devagent.errors import ExitStatus
from devagent.inside import locations

LINE = "2026-12-07T19:05:43Z job 12 on n1: environment exp ended: the job was cancelled (devagent down or scancel)"
ENTRY = ("\n## 2026-12-07 19:05:43 UTC · environment ended\n"
         "job 12 on n1: environment exp ended: the job was cancelled (devagent down or scancel)\n")


@pytest.fixture
def notebook(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DEVAGENT_WORKSPACE", raising=False)
    workspace = isolated_home / "workspace"
    path = workspace / "notes" / "lab.md"  # a --notebook of the user's: the one the agent recorded
    path.parent.mkdir(parents=True)
    path.write_text("# Lab notebook\n")
    locations.record_agent(workspace, path)
    return path


def test_the_end_line_is_appended_to_the_notebook_the_agent_writes(notebook: Path) -> None:
    assert main(["job-ended", LINE]) == 0
    assert notebook.read_text() == "# Lab notebook\n" + ENTRY


@pytest.mark.parametrize("line", [
    LINE + "\n## 2026-12-07 · forged entry",  # a second line
    "job 12 on n1: no stamp",
    LINE.replace("job 12", "job x"),
    LINE + "x" * 1000,  # over the bound
])
def test_anything_but_one_end_line_is_refused_and_nothing_written(notebook: Path, line: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job-ended", line]) == ExitStatus.USAGE
    assert capsys.readouterr().err.startswith("Error: not a Slurm job's end line: ")
    assert notebook.read_text() == "# Lab notebook\n"


def test_a_link_in_the_notebooks_place_is_not_followed(notebook: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.md"
    target.write_text("someone else's\n")
    notebook.unlink()
    notebook.symlink_to(target)
    assert main(["job-ended", LINE]) == ExitStatus.NOTEBOOK
    assert target.read_text() == "someone else's\n"
