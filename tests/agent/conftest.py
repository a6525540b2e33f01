"""The fixtures of the save-watcher and journal tests: a workspace with one script, its journal, a hand-moved
clock and a handler on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.agent.watcher import SaveHandler
from tests.agent.watcher_support import NOW, CountingJournal, FakeClock


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "code"
    workspace.mkdir()
    (workspace / "train.py").write_text("import torch\nlr = 1e-3\n")
    return workspace


@pytest.fixture
def journal(ws: Path) -> CountingJournal:
    j = CountingJournal(ws)
    j.baseline(ws / "train.py")
    return j


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def handler(ws: Path, journal: CountingJournal, clock: FakeClock) -> SaveHandler:
    return SaveHandler(journal, root=ws, clock=clock, now=lambda: NOW)
