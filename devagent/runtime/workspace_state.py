"""The workspace state folder, ``WORKSPACE/.devagent`` (paths: devagent/core/layout.py): made with its
``.gitignore``, and the save journal in it read back.

The agent records saves (devagent/container/journal.py, a ``SaveLog`` that also writes); run summaries read them
for "edits since the previous run". Both number and record runs in the same folder (devagent/runs/runlog.py).

>>> from pathlib import Path; import tempfile
>>> ws = Path(tempfile.mkdtemp())
>>> prepare_workspace_state(ws).name, (ws / ".devagent" / ".gitignore").read_text().splitlines()[-1]
('.devagent', '*')
>>> len(SaveLog(ws))
0
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from devagent.core import layout
from devagent.core.notebook import SaveRecord

logger = logging.getLogger("devagent.journal")


def prepare_workspace_state(workspace: Path) -> Path:
    """WORKSPACE/.devagent, made when missing, with a ``.gitignore`` that keeps it out of the user's repository."""
    state = layout.workspace_state(workspace)
    state.mkdir(parents=True, exist_ok=True)
    ignore = layout.state_gitignore(workspace)
    if not ignore.exists():
        ignore.write_text("# devagent's own state (saves, snapshots, runs); not part of your project\n*\n")
    return state


class SaveLog:
    """The save journal of WORKSPACE, read: every save recorded in ``.devagent/saves.jsonl`` by anyone, picked up
    as the file grows (a reader never sees half a line). Thread-safe within a process."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(os.path.abspath(workspace))
        self.path = layout.saves_journal(self.workspace)
        self._lock = threading.RLock()
        self._records: list[SaveRecord] = []
        self._read_offset = 0  # bytes of saves.jsonl already parsed into _records
        self._refresh()

    def __len__(self) -> int:
        """How many saves are recorded; remember it and pass it to ``saves_since`` later."""
        with self._lock:
            self._refresh()
            return len(self._records)

    def saves_since(self, since: int | datetime | str = 0, *, until: datetime | None = None) -> list[SaveRecord]:
        """Saves after SINCE: an index into the journal (``len(journal)`` taken earlier), or a time
        (``datetime`` or ISO string; a naive time is taken as local time), exclusive; and not after UNTIL.
        For example ``mark = len(journal)`` when a run starts, ``journal.saves_since(mark)`` when it ends.
        """
        with self._lock:
            self._refresh()
            records = self._records[since:] if isinstance(since, int) else self._records
            if not isinstance(since, int):
                after = _as_aware(datetime.fromisoformat(since) if isinstance(since, str) else since)
                records = [r for r in records if _as_aware(datetime.fromisoformat(r.time)) > after]
            if until is not None:
                records = [r for r in records if _as_aware(datetime.fromisoformat(r.time)) <= _as_aware(until)]
            return records

    def _refresh(self) -> None:
        # Read only what was appended since last time, and only whole lines: a writer may be mid-append.
        try:
            with self.path.open("rb") as f:
                f.seek(self._read_offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                self._records.append(SaveRecord.from_json(line.decode("utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("save journal %s: skipping an unreadable line (%s)", self.path, exc)
        self._read_offset += end


def _as_aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.astimezone()
