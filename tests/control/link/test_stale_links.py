"""Where link folders go, and the folders a killed devagent leaves (control/link/stale_links.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from devagent.control.link.stale_links import FOLDER_PREFIX, link_base, sweep_stale


def test_link_folders_go_to_the_users_runtime_folder_when_it_is_private(tmp_path: Path) -> None:
    # A short one, as /run/user/UID is: pytest's own temp paths can be too long for a socket path already.
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    try:
        assert link_base({"XDG_RUNTIME_DIR": str(runtime)}) == runtime
        runtime.chmod(0o755)
        assert link_base({"XDG_RUNTIME_DIR": str(runtime)}) != runtime
    finally:
        runtime.rmdir()
    long = tmp_path / ("x" * 80)
    long.mkdir(mode=0o700)
    assert link_base({"XDG_RUNTIME_DIR": str(long)}) != long


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_folder_whose_devagent_is_gone_is_swept_and_a_living_ones_is_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{FOLDER_PREFIX}dead"
    dead.mkdir()
    (dead / "owner").write_text(f"{_dead_pid()} 1\n")
    alive = tmp_path / f"{FOLDER_PREFIX}alive"
    alive.mkdir()
    start = Path("/proc/self/stat").read_text().rsplit(")", 1)[-1].split()[19]
    (alive / "owner").write_text(f"{os.getpid()} {start}\n")
    reused = tmp_path / f"{FOLDER_PREFIX}reused"  # our pid, but another start time: a pid reused since
    reused.mkdir()
    (reused / "owner").write_text(f"{os.getpid()} 1\n")
    young = tmp_path / f"{FOLDER_PREFIX}young"  # being made right now: no owner yet
    young.mkdir()
    old = tmp_path / f"{FOLDER_PREFIX}old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / "not-a-link"
    other.mkdir()
    (other / "owner").write_text(f"{_dead_pid()} 1\n")
    assert sorted(p.name for p in sweep_stale(tmp_path)) == sorted([dead.name, reused.name, old.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, young.name, other.name])
