"""Where a run's section goes: the workspace (its state folder, the notebook's assets folder) and the notebook.

Inside an environment that is the notebook the agent writes, wherever the command starts; elsewhere the nearest
folder above that already holds a notebook or a workspace state folder (devagent/core/layout.py names both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from devagent.core import layout
from devagent.runtime import environment


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
