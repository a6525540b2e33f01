"""Where a link keeps its private folder (control socket, forwarded engine socket, ssh log), and the sweep of
folders whose devagent died before it could remove them (each folder names its owner's pid and start time)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

FOLDER_PREFIX = "devagent-link-"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS; leave room for the names inside


def start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot) from /proc, so a reused pid is not taken for the owner;
    '' where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or start_time(pid) in ("", started)


def link_base(environ: Mapping[str, str]) -> Path:
    """Where link folders go: $XDG_RUNTIME_DIR when it is ours and short enough, else the temp folder."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and len(runtime) < _SOCKET_PATH_MAX - 40:
        with contextlib.suppress(OSError):
            st = os.stat(runtime)
            if st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700:
                return Path(runtime)
    base = Path(tempfile.gettempdir())
    # A long TMPDIR would leave no room for the socket names: the system's own temp folder then.
    return base if len(str(base)) < _SOCKET_PATH_MAX - 40 else Path("/tmp")  # noqa: S108 (a mkdtemp inside)


def sweep_stale(base: Path) -> list[Path]:
    """Remove link folders under BASE whose devagent is gone (killed before it could clean up). Returns them."""
    removed = []
    for folder in base.glob(f"{FOLDER_PREFIX}*"):
        try:
            st = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.getuid():
                continue
            owner = (folder / "owner").read_text().split()
        except FileNotFoundError:
            # Between mkdtemp and writing its owner, a folder has none for a moment; an old one never will.
            with contextlib.suppress(OSError):
                if time.time() - folder.lstat().st_mtime > 60:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:
            continue
        if len(owner) == 2 and owner[0].isdigit() and not _alive(int(owner[0]), owner[1]):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
