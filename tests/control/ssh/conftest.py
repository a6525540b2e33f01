"""The fixtures the ssh config tests share: devagent's paths under the test's own home, and the ssh config."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.paths import Paths
from devagent.control.ssh.user_config import SshConfig


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    return Paths.from_environ()


@pytest.fixture
def sshconfig(paths: Paths) -> SshConfig:
    return SshConfig(paths)
