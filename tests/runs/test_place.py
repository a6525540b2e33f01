"""Where a run's section goes: an explicit notebook, the environment's, the nearest above, or a new one here."""

from __future__ import annotations

from pathlib import Path

from devagent.runs.place import locate


def test_which_notebook_a_run_goes_to(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / "lab-notebook.md").write_text("# Lab notebook\n")
    deep = project / "src" / "deep"
    assert locate(deep, agent_notebook=None).notebook == project / "lab-notebook.md"  # the nearest above
    assert locate(tmp_path, agent_notebook=None).notebook == tmp_path / "lab-notebook.md"  # else a new one here
    environment = tmp_path / "ws" / "lab-notebook.md"
    assert locate(deep, agent_notebook=environment).notebook == environment  # an environment has one notebook
    mine = tmp_path / "mine.md"
    assert locate(deep, mine, agent_notebook=environment).notebook == mine  # --notebook wins
