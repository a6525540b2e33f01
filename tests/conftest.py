"""Shared test setup. Tests never read or write the developer's own ~/.ssh: HOME, DEVAGENT_HOME and
DEVAGENT_SSH_CONFIG point into a temporary folder for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DEVAGENT_HOME", str(home / ".ssh" / "devagent"))
    monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(home / ".ssh" / "config"))
    return home
