"""`.vscode/` in the workspace: devagent's snippets and tasks, placed on request (`up --vscode`, devagent.toml).

The workspace is a host folder, so the host side writes these files. A user's own tasks.json is merged by label
or left alone with the reason said (core/vscode.py decides; this module only reads and writes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import devagent
from devagent.core.vscode import (
    DEVAGENT_TASKS,
    SNIPPET_FILES,
    SNIPPETS_PATH,
    TASKS_PATH,
    MergeResult,
    merge_snippets,
    merge_tasks,
    project_snippets,
)
from devagent.host.atomic import atomic_write

SNIPPETS_SOURCE = Path(devagent.__file__).parent / "snippets"  # the repository's vscode-snippets/


def place_vscode_files(workspace: Path) -> list[str]:
    """Write or merge the snippets and tasks into WORKSPACE/.vscode; returns one line per file saying what
    happened. Files are given to the workspace's owner (the login user inside), as the agent's files are."""
    snippets = project_snippets({name: (SNIPPETS_SOURCE / name).read_text(encoding="utf-8")
                                 for name in SNIPPET_FILES})
    return [
        _apply(workspace, SNIPPETS_PATH, lambda existing: merge_snippets(existing, snippets), "snippets"),
        _apply(workspace, TASKS_PATH, lambda existing: merge_tasks(existing, DEVAGENT_TASKS), "tasks"),
    ]


def _apply(workspace: Path, relative: str, decide: Callable[[str | None], MergeResult], what: str) -> str:
    path = workspace / relative
    try:
        existing: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    result = decide(existing)
    if result.text is None:
        return f"{relative}: {result.reason}" if result.reason else f"{relative}: {what} already in place"
    owner = workspace.stat()
    folder_existed = path.parent.is_dir()
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, result.text.encode(), mode=0o644)
    if os.geteuid() == 0:  # root on the host: hand the files to whoever owns the workspace
        if not folder_existed:
            os.chown(path.parent, owner.st_uid, owner.st_gid)
        os.chown(path, owner.st_uid, owner.st_gid)
    added = ", ".join(result.added)
    return f"{relative}: {'wrote' if existing is None else 'added'} {added}" + (
        f" (kept your {', '.join(result.kept)})" if result.kept else "")
