"""Shared test setup. Tests never read or write the developer's own ~/.ssh: HOME, DEVAGENT_HOME and
DEVAGENT_SSH_CONFIG point into a temporary folder for every test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# `make mutation` (scripts/mutation.py) runs the same test functions many times in one process, once per mutant:
# the same examples every time (a mutant is killed or survives for a reason, not by luck), no example database
# shared between mutants, and no complaint that the test classes are new instances each time.
settings.register_profile("mutation", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.differing_executors])


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DEVAGENT_HOME", str(home / ".ssh" / "devagent"))
    monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(home / ".ssh" / "config"))
    return home


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, so the disk can really fill up; unmounted afterwards."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
