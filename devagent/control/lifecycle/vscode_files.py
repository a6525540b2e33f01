"""`.vscode/` in the workspace: devagent's snippets and tasks, placed on request (`up --vscode`, devagent.toml).

The workspace is a host folder, so the host side writes these files. A user's own tasks.json is merged by label
or left alone with the reason said (core/vscode.py decides; this module only reads and writes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import devagent
from devagent.core.vscode import (
    DEVAGENT_TASKS,
    SNIPPET_FILES,
    SNIPPETS_PATH,
    TASKS_PATH,
    MergeResult,
    merge_keys,
    merge_snippets,
    merge_tasks,
    project_snippets,
)
from devagent.nofollow.folder import Folder
from devagent.nofollow.walk import PathRefused

SNIPPETS_SOURCE = Path(devagent.__file__).parent / "snippets"  # the repository's vscode-snippets/
MAX_READ = 1024 * 1024  # a tasks.json is a few KiB; a bigger one is not read (into a root process's memory)


def place_vscode_files(workspace: Path) -> Iterator[str]:
    """Write or merge the snippets and tasks into WORKSPACE/.vscode; yields one line per file, once it is done,
    saying what happened. Files are given to the workspace's owner (the login user inside), as the agent's files are.

    The workspace may belong to someone else while devagent runs as root: nothing is read, written or chowned
    through a link (devagent/nofollow/folder.py); a link at .vscode or at either file is refused with a
    DevagentError that names it."""
    snippets = project_snippets({name: (SNIPPETS_SOURCE / name).read_text(encoding="utf-8")
                                 for name in SNIPPET_FILES})
    try:
        with Folder.open(workspace) as root:
            st = root.stat()
            # root: the files are handed to the workspace's owner
            owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
            yield _apply(root, SNIPPETS_PATH, lambda old: merge_snippets(old, snippets), "snippets", owner)
            yield _apply(root, TASKS_PATH, lambda old: merge_tasks(old, DEVAGENT_TASKS), "tasks", owner)
    except PathRefused as exc:
        raise exc.as_error() from None


EXTENSIONS_PATH = ".vscode/extensions.json"
SETTINGS_PATH = ".vscode/settings.json"


def place_editor_files(workspace: Path, extensions: Sequence[str], settings: Mapping[str, object]
                       ) -> Iterator[str]:
    """A devcontainer.json's customizations.vscode into WORKSPACE/.vscode: EXTENSIONS as extensions.json
    recommendations (Remote-SSH offers to install them), SETTINGS as settings.json keys; what the user's files
    already say is kept. One line per file, as ``place_vscode_files``; the same no-link rules."""
    try:
        with Folder.open(workspace) as root:
            st = root.stat()
            owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
            if extensions:
                wanted = {e: e for e in extensions}
                yield _apply(root, EXTENSIONS_PATH, lambda old: merge_keys(old, EXTENSIONS_PATH, wanted,
                                                                           list_key="recommendations"),
                             "recommendations", owner)
            if settings:
                yield _apply(root, SETTINGS_PATH, lambda old: merge_keys(old, SETTINGS_PATH, settings),
                             "settings", owner)
    except PathRefused as exc:
        raise exc.as_error() from None


def _apply(root: Folder, relative: str, decide: Callable[[str | None], MergeResult], what: str,
           owner: tuple[int, int] | None) -> str:
    folder_name, name = relative.split("/")
    try:
        with root.folder(folder_name) as folder:
            data = folder.read(name, limit=MAX_READ)
    except FileNotFoundError:  # no .vscode yet
        data = None
    try:
        existing = None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return f"{relative}: left as is: it is not UTF-8 text"
    result = decide(existing)
    if result.text is None:
        return f"{relative}: {result.reason}" if result.reason else f"{relative}: {what} already in place"
    with root.folder(folder_name, create=True, owner=owner) as folder:
        folder.write(name, result.text.encode(), mode=0o644, owner=owner)
    added = ", ".join(result.added)
    return f"{relative}: {'wrote' if existing is None else 'added'} {added}" + (
        f" (kept your {', '.join(result.kept)})" if result.kept else "")
