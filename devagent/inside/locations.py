"""Where things are for this process, inside an environment (or on any machine): its home, its workspace, the
notebook the running agent writes, the ready flag, the last GPU check, the launch context.

The paths are spelled in devagent/core/layout.py; this module adds what only a running process knows: ``$HOME``,
``$DEVAGENT_WORKSPACE`` and what the agent recorded when it started.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from devagent.core import layout

# The agent records itself here before it starts sshd, and every `up` waits for sshd: what only the notebook and
# the GPU check need is imported where they are used.
if TYPE_CHECKING:
    from devagent.core.gpu.check_report import GpuCheck
    from devagent.inside.notebook_writer import NotebookWriter

log = logging.getLogger("devagent.agent")


def agent_home() -> Path:
    """The agent's own small state, in the container's home (it outlives restarts, not --recreate)."""
    return layout.agent_home(Path.home())


def agent_record() -> Path:
    """The running agent's record of its workspace and notebook (it writes it at start)."""
    return layout.agent_record(Path.home())


def default_workspace() -> Path:
    """$DEVAGENT_WORKSPACE (set in the image and handed to ssh sessions), else ~/workspace."""
    return Path(os.environ.get(layout.WORKSPACE_ENV) or layout.default_workspace(Path.home()))


def record_agent(workspace: Path, notebook: Path) -> None:
    """Tell commands started over ssh which workspace and notebook the agent keeps."""
    agent_home().mkdir(parents=True, exist_ok=True)
    agent_record().write_text(json.dumps({"workspace": str(workspace), "notebook": str(notebook)}))


def running_notebook() -> Path:
    """The notebook the running agent writes (it records it at start), for commands run over ssh."""
    try:
        return Path(json.loads(agent_record().read_text())["notebook"])
    except (FileNotFoundError, KeyError, ValueError):
        return layout.default_notebook(default_workspace())


def ready_flag() -> Path:
    """Exists once `devagent up` has proven the login through the alias (control/lifecycle/provision.py
    READY_COMMAND)."""
    return layout.ready_flag(Path.home())


def save_gpu_check(check: GpuCheck, now: datetime) -> None:
    """Keep CHECK, taken at NOW, as JSON in the agent's home, for people and tools (nothing in devagent reads it
    back: run summaries do not probe GPUs, they sample GPU memory while the run runs)."""
    from devagent.core.gpu.check_report import summary_line

    path = layout.gpu_check_file(Path.home())
    data = {"time": now.isoformat(timespec="seconds"), "summary": summary_line(check),
            "check": dataclasses.asdict(check)}
    tmp = path.with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def open_notebook(path: Path, launch_context: Path = Path(layout.LAUNCH_CONTEXT_PATH), *,
                  outside_ok: bool = False, workspace: Path | None = None) -> NotebookWriter:
    """The notebook writer, with the header rendered from the launch context `up` put into the container.
    OUTSIDE_OK: no launch context is expected (`devagent run` on a machine that is not an environment).
    WORKSPACE: where a link at PATH may lead (default: PATH's folder)."""
    from devagent.core.notebook import LaunchContext, render_header
    from devagent.inside.notebook_writer import NotebookWriter

    try:
        header = render_header(LaunchContext.from_json(launch_context.read_text()))
    except FileNotFoundError:
        if not outside_ok:
            log.warning("no launch context at %s: the notebook header will be minimal", launch_context)
        header = "# Lab notebook\n"
    return NotebookWriter(path, header, workspace=workspace)
