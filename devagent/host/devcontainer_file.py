"""The workspace's devcontainer.json, found and read as `up` needs it.

The checkout is the user's (a cloned repository may hold anything): the candidates are looked at and the file is
read through devagent/nofollow, never through a link, never waiting on a FIFO, at a bounded cost.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devagent.core.devcontainer import CANDIDATES, Plan, choose_config, map_config, read_configuration
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow.walk import PathRefused, open_below, open_folder_below, read_limited

_LIMIT = 1 << 20  # a devcontainer.json larger than this is not one: not read


@dataclass(frozen=True)
class DevcontainerFile:
    """The file `up` uses: its path relative to the workspace, the SHA-256 of its content, what it maps to."""

    path: str
    sha256: str
    plan: Plan


def _present(workspace: Path) -> list[str]:
    """Which of the specification's candidates exist below WORKSPACE (a link counts as present, and is refused
    when read)."""
    found = [c for c in CANDIDATES if os.path.lexists(workspace / c)]
    try:
        fd = open_folder_below(workspace, ".devcontainer")
    except (FileNotFoundError, NotADirectoryError, PathRefused):
        return found
    try:
        for name in sorted(os.listdir(fd)):
            rel = f".devcontainer/{name}/devcontainer.json"
            if name != "devcontainer.json" and os.path.lexists(workspace / rel):
                found.append(rel)
    finally:
        os.close(fd)
    return found


def find_devcontainer(workspace: Path, *, choice: str | None, container_workspace: str,
                      env: Mapping[str, str]) -> DevcontainerFile | None:
    """The devcontainer.json of WORKSPACE (CHOICE: --devcontainer), read, substituted and mapped; None when the
    workspace has none. CONTAINER_WORKSPACE is the workspace's place in the container, ENV the caller's
    environment (``${localEnv:…}``)."""
    rel = choose_config(_present(workspace), choice)
    if rel is None:
        return None
    try:
        fd = open_below(workspace, rel)
        try:
            data = read_limited(fd, _LIMIT, rel)
        finally:
            os.close(fd)
    except (PathRefused, IsADirectoryError) as exc:  # a link, a FIFO, a folder, too large: not read
        raise DevagentError(f"{rel}: {exc.strerror}; devagent did not read it", status=ExitStatus.USAGE,
                            hint="make it a regular file in the workspace (a link may lead anywhere on the "
                            "machine)") from None
    text = data.decode("utf-8", errors="replace")
    config = read_configuration(text, source=rel, local_workspace=str(workspace),
                                container_workspace=container_workspace, env=env)
    return DevcontainerFile(path=rel, sha256=hashlib.sha256(data).hexdigest(), plan=map_config(config, source=rel))
