"""Shared test setup. Tests never read or write the developer's own ~/.ssh: HOME, DEVAGENT_HOME and
DEVAGENT_SSH_CONFIG point into a temporary folder for every test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# `make mutation` (scripts/mutation.py) runs the same test functions many times in one process, once per mutant:
# the same examples every time (a mutant is killed or survives for a reason, not by luck), no example database
# shared between mutants, and no complaint that the test classes are new instances each time.
settings.register_profile("mutation", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.differing_executors])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `torch` run a script that imports torch in this interpreter (make venv installs it; the test
    extra does not): where it cannot, they are skipped saying so, instead of failing on a ModuleNotFoundError. In CI
    torch is installed and they run. Asked once, in a child (as the tests do), and only when such a test is
    selected: importing torch takes seconds."""
    marked = [item for item in items if item.get_closest_marker("torch")]
    if not marked:
        return
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, timeout=300,
                           check=False)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["?"])[-1]
        skip = pytest.mark.skip(reason=f"needs torch, which {sys.executable} cannot import ({why}): make venv")
        for item in marked:
            item.add_marker(skip)


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
