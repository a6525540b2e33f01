"""What the save-watcher and journal tests share: a clock they move by hand, a journal that counts its checks,
and a few small helpers (the fixtures built on them are in conftest.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from devagent.agent.journal import Journal
from devagent.agent.watcher import SaveHandler
from devagent.core.notebook import SaveRecord

NOW = datetime(2026, 11, 27, 14, 2, tzinfo=timezone.utc)
T = TypeVar("T")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CountingJournal(Journal):
    """A real journal that also counts how often it was asked to check a file."""

    def __init__(self, workspace: Path) -> None:
        super().__init__(workspace)
        self.checks: list[str] = []

    def record_save(self, path: Path, now: datetime) -> SaveRecord | None:
        self.checks.append(self.relative(path))
        return super().record_save(path, now)



def settle(handler: SaveHandler, clock: FakeClock) -> list[SaveRecord]:
    clock.advance(handler.debounce + 0.01)
    return handler.run_due()


def p(ws: Path, name: str) -> str:
    return str(ws / name)


def snapshot_bytes(journal: Journal) -> list[bytes]:
    return [f.read_bytes() for f in sorted(journal.snapshots_dir.iterdir()) if f.is_file() and not f.is_symlink()]
