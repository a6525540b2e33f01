"""The workspace state folder, ``WORKSPACE/.devagent`` (paths: devagent/core/layout.py): made with its
``.gitignore``, and the save journal in it read back.

The agent records saves (devagent/agent/journal.py, a ``SaveLog`` that also writes); run summaries read them
for "edits since the previous run". Both number and record runs in the same folder (devagent/runs/runlog.py).

The folder is devagent's only when it is a real folder (not a link) owned by this user and writable by nobody
else (``state_folder_problem``): a ``.devagent`` someone else made — a world-writable ``/tmp/.devagent`` — is
never adopted or written into, since its links could make devagent append to this user's own files. Every file in
it is opened without following links (devagent/nofollow/walk.py).

>>> from pathlib import Path; import tempfile
>>> ws = Path(tempfile.mkdtemp())
>>> prepare_workspace_state(ws).name, (ws / ".devagent" / ".gitignore").read_text().splitlines()[-1]
('.devagent', '*')
>>> len(SaveLog(ws))
0
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from datetime import datetime
from pathlib import Path

from devagent.core import layout
from devagent.core.notebook import SaveRecord
from devagent.nofollow.walk import PathRefused, make_dirs_beneath, open_beneath, write_beneath

logger = logging.getLogger("devagent.journal")


def prepare_workspace_state(workspace: Path) -> Path:
    """WORKSPACE/.devagent, made when missing, with a ``.gitignore`` that keeps it out of the user's repository.

    Raises ``PathRefused`` (an ``OSError``) when a ``.devagent`` that is not this user's own is in the way
    (see ``state_folder_problem``): nothing is written into it.
    """
    state = layout.workspace_state(workspace)
    problem = state_folder_problem(workspace)
    if problem is not None:
        raise problem
    make_dirs_beneath(workspace, state)  # no link followed; a folder another user owns is refused
    with contextlib.suppress(FileExistsError):  # there already (or something else stands there: left alone)
        write_beneath(workspace, layout.state_gitignore(workspace),
                      b"# devagent's own state (saves, snapshots, runs); not part of your project\n*\n",
                      exclusive=True)
    return state


def state_folder_problem(workspace: Path) -> PathRefused | None:
    """Why WORKSPACE/.devagent is not devagent's to use, or None when it is missing or is: a real folder (not a
    link) owned by this user, that neither group nor others may write to. Changes nothing.

    >>> import tempfile; ws = Path(tempfile.mkdtemp()); state_folder_problem(ws) is None
    True
    >>> (ws / ".devagent").mkdir(mode=0o777); os.chmod(ws / ".devagent", 0o777)
    >>> print(state_folder_problem(ws))  # doctest: +ELLIPSIS
    /.../.devagent is writable by other users: devagent keeps its state only in a folder of its own
    """
    state = layout.workspace_state(workspace)
    try:
        info = os.lstat(state)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return PathRefused(state, "is a symbolic link: devagent keeps its state only in a folder of its own",
                           f"remove the link {state} (devagent makes the folder again)")
    if not stat.S_ISDIR(info.st_mode):
        return PathRefused(state, "is not a folder", f"move {state} out of the way", errno.ENOTDIR,
                           kind="not-folder")
    if info.st_uid != os.geteuid():
        return PathRefused(state, f"belongs to another user (uid {info.st_uid}): devagent keeps its state "
                           "only in a folder of its own",
                           "run from a folder of your own, or name the notebook with --notebook", errno.EPERM,
                           kind="foreign")
    if info.st_mode & 0o022:
        return PathRefused(state, "is writable by other users: devagent keeps its state only in a folder of "
                           "its own", f"chmod go-w {state}", errno.EPERM, kind="foreign")
    return None


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
        if state_folder_problem(self.workspace) is not None:
            return  # not devagent's folder: nothing in it is believed
        try:
            with os.fdopen(open_beneath(self.workspace, self.path, os.O_RDONLY), "rb") as f:
                f.seek(self._read_offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:  # a link, a FIFO, an unreadable file: no saves to show, and say why
            logger.warning("save journal %s: not read (%s)", self.path, exc)
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
