"""Where a run's section goes: the workspace (its state folder, the notebook's assets folder) and the notebook.

Inside an environment that is the notebook the agent writes, wherever the command starts; elsewhere the nearest
folder above that already holds a notebook or a workspace state folder of this user's own (devagent/core/layout.py
names both). A folder someone else could have prepared — another user's ``.devagent``, or one anybody may write
to, as in ``/tmp`` — is passed by (devagent/inside/workspace_state.py says when a state folder is devagent's).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus
from devagent.inside import locations
from devagent.inside.notebook_writer import notebook_target
from devagent.inside.workspace_state import state_folder_problem
from devagent.nofollow.walk import PathRefused

log = logging.getLogger("devagent.run")


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
    environment has one notebook). Elsewhere, the nearest folder above CWD that already holds this user's lab
    notebook or workspace state folder, and no state folder that is not theirs; else CWD itself (a new
    ``lab-notebook.md`` there).
    """
    cwd = Path(os.path.abspath(cwd))
    if notebook is not None:
        path = Path(os.path.abspath(notebook))
        return RunPlace(path.parent, path)
    agent_notebook = agent_notebook if agent_notebook is not None else _agent_notebook()
    if agent_notebook is not None:
        return RunPlace(agent_notebook.parent, agent_notebook)
    for folder in (cwd, *cwd.parents):
        if _adoptable(folder):
            return RunPlace(folder, layout.default_notebook(folder))
    return RunPlace(cwd, layout.default_notebook(cwd))


def check_place(place: RunPlace) -> None:
    """Refuse, before the command starts, a place devagent would not write to: a notebook that is a link out of
    the workspace, or a state folder that is not this user's (devagent/inside/workspace_state.py)."""
    try:
        notebook_target(place.notebook, place.workspace)
        problem = state_folder_problem(place.workspace)
        if problem is not None:
            raise problem
    except PathRefused as exc:
        raise DevagentError(f"cannot keep this run in {place.notebook}: {exc}", hint=exc.hint,
                            status=ExitStatus.NOTEBOOK) from None


def _adoptable(folder: Path) -> bool:
    """Whether FOLDER is a workspace of this user's: their notebook or state folder is there, and no state
    folder that is not theirs."""
    state = layout.workspace_state(folder)
    problem = state_folder_problem(folder)
    if problem is not None:
        log.warning("devagent: not using %s: %s", state, problem.strerror)
        return False
    if os.path.lexists(state):
        return True
    try:
        return os.lstat(layout.default_notebook(folder)).st_uid == os.geteuid()
    except OSError:
        return False


def _agent_notebook() -> Path | None:
    if not locations.agent_record().is_file():
        return None
    return locations.running_notebook()
