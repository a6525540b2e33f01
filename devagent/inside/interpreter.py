"""The user's own Python: the interpreter they train with, not the one devagent runs in.

The GPU check probes torch in it, and run summaries draw their loss curve with its matplotlib; neither imports
torch or matplotlib into devagent's own process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def find_user_python(*, environ: Mapping[str, str] | None = None, own_prefix: str | None = None,
                     own_executable: str | None = None) -> str:
    """The interpreter the user trains with: DEVAGENT_PYTHON, else the first `python3`, then `python`, on
    PATH that is not inside the agent's own virtual environment; the agent's own interpreter when none is.

    OWN_PREFIX is that environment (default: sys.prefix when the agent runs in a venv; outside a venv nothing
    is excluded, since the agent then shares the system interpreter with the user).

    >>> find_user_python(environ={"DEVAGENT_PYTHON": "/opt/conda/bin/python"})
    '/opt/conda/bin/python'
    """
    env = os.environ if environ is None else environ
    if env.get("DEVAGENT_PYTHON"):
        return env["DEVAGENT_PYTHON"]
    if own_prefix is None and sys.prefix != sys.base_prefix:
        own_prefix = sys.prefix
    excluded = Path(os.path.abspath(own_prefix)) if own_prefix else None
    directories = [d for d in env.get("PATH", "").split(os.pathsep) if d]
    for name in ("python3", "python"):
        for directory in directories:
            # abspath, not resolve: a venv's bin/python is a symlink out of the venv, yet it is the venv's.
            candidate = Path(os.path.abspath(os.path.join(directory, name)))
            if excluded is not None and candidate.is_relative_to(excluded):
                continue
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return own_executable or sys.executable
