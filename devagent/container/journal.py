"""The save journal: every real save of a watched file, kept under the workspace so it survives restarts.

Layout, inside the workspace::

    .devagent/saves.jsonl          one SaveRecord per line, append-only (flock, one write, fsync)
    .devagent/snapshots/<key>      the last content seen of each file (key: sha256 of its relative path),
                                   so the next save's +/− lines can be computed, also after a restart
    .devagent/.gitignore           "*": none of this belongs in the user's repository

A save counts only when the content changed since the last one recorded: ``touch`` and no-op saves give None.

>>> from pathlib import Path; import tempfile; from datetime import datetime
>>> ws = Path(tempfile.mkdtemp()); script = ws / "train.py"
>>> _ = script.write_text("lr = 1e-3\\n"); j = Journal(ws); j.baseline(script)
True
>>> _ = script.write_text("lr = 3e-4\\nepochs = 10\\n")
>>> j.record_save(script, datetime(2026, 11, 27, 14, 2))  # doctest: +ELLIPSIS
SaveRecord(time='2026-11-27T14:02:00.000', path='train.py', sha256='...', lines_added=2, lines_removed=1)
>>> j.record_save(script, datetime(2026, 11, 27, 14, 3)) is None   # same content again
True
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import threading
from datetime import datetime
from pathlib import Path, PurePosixPath

from devagent.core import layout
from devagent.core.notebook import SaveRecord
from devagent.runtime.append import locked_append
from devagent.runtime.beneath import make_dirs_beneath, write_beneath
from devagent.runtime.workspace_state import SaveLog, prepare_workspace_state

logger = logging.getLogger("devagent.journal")


class Journal(SaveLog):
    """Records saves of files under WORKSPACE; reads them back as any ``SaveLog`` does ("what was saved since").

    Thread-safe within a process. Other processes may read the journal at the same time (``saves_since`` picks
    up lines appended by anyone); only one agent per workspace should record.
    """

    def __init__(self, workspace: Path) -> None:
        self._last_hash: dict[str, str | None] = {}  # relative path -> sha256 of its snapshot (None: none yet)
        super().__init__(workspace)
        self.snapshots_dir = layout.snapshots_dir(self.workspace)

    def relative(self, path: Path) -> str:
        """PATH relative to the workspace, with ``/`` separators. Raises ``ValueError`` outside it."""
        rel = os.path.relpath(os.path.abspath(path), self.workspace)
        if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            raise ValueError(f"{path} is not inside the workspace {self.workspace}")
        return PurePosixPath(*Path(rel).parts).as_posix()

    def knows(self, path: Path) -> bool:
        """Whether a snapshot of PATH exists (it was saved or baselined before)."""
        with self._lock:
            return self._previous(self.relative(path))[0] is not None

    def baseline(self, path: Path) -> bool:
        """Remember PATH's current content without recording a save, if nothing is known about it yet,
        so that its first save counts only the lines that save changed. Returns True if it stored one."""
        with self._lock:
            rel = self.relative(path)
            # Existence only: on a restart this runs for every watched file, and reading them all is waste.
            if self._last_hash.get(rel) is not None or (self.snapshots_dir / _key(rel)).exists():
                return False
            try:
                content = Path(path).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                return False
            self._store_snapshot(rel, content, hashlib.sha256(content).hexdigest())
            return True

    def record_save(self, path: Path, now: datetime) -> SaveRecord | None:
        """Record a save of PATH at NOW if its content changed since the last one; return the record, or None
        (same content, or the file is gone). Raises ``OSError`` if the journal cannot be written."""
        with self._lock:
            rel = self.relative(path)
            try:
                content = Path(path).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                return None
            digest = hashlib.sha256(content).hexdigest()
            previous_hash, previous = self._previous(rel)
            if digest == previous_hash:
                return None
            added, removed = count_changed_lines(previous or b"", content)
            record = SaveRecord(
                time=now.isoformat(timespec="milliseconds"),
                path=rel,
                sha256=digest,
                lines_added=added,
                lines_removed=removed,
            )
            self.prepare()
            locked_append(self.path, (record.to_json() + "\n").encode("utf-8"), root=self.workspace)
            self._refresh()  # reads our line back, after any line another process appended before it
            # After the record: if the snapshot cannot be written, the next save diffs against an older one
            # (its +/− are too large) but no save is lost or counted twice.
            try:
                self._store_snapshot(rel, content, digest)
            except OSError as exc:
                self._last_hash[rel] = digest
                logger.warning("save journal: could not keep a snapshot of %s (%s)", rel, exc.strerror or exc)
            return record

    def move(self, src: Path, dest: Path) -> None:
        """Note that SRC was renamed to DEST: DEST's last content is SRC's, so a rename alone is not a save.

        Editors that save by rename move a temporary file onto the path; only moves between two watched paths
        (``mv a.py b.py``, a renamed folder) come here."""
        with self._lock:
            src_rel, dest_rel = self.relative(src), self.relative(dest)
            try:
                os.replace(self.snapshots_dir / _key(src_rel), self.snapshots_dir / _key(dest_rel))
            except FileNotFoundError:
                return
            self._last_hash[dest_rel] = self._last_hash.pop(src_rel, None)

    def prune_snapshots(self, keep: set[str], *, older_than: float) -> int:
        """Delete snapshots of files not in KEEP (relative paths) last written before OLDER_THAN (a
        ``time.time()`` value, so a snapshot being written right now survives). Returns how many went."""
        keys = {_key(rel) for rel in keep}
        removed = 0
        with self._lock:
            try:
                entries = list(os.scandir(self.snapshots_dir))
            except FileNotFoundError:
                return 0
            for item in entries:
                if item.name in keys or not item.is_file():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < older_than:
                        os.unlink(item.path)
                        removed += 1
            self._last_hash = {rel: h for rel, h in self._last_hash.items() if rel in keep}
        return removed

    def _previous(self, rel: str) -> tuple[str | None, bytes | None]:
        """The last content seen of REL and its hash, from the snapshot (which survives restarts)."""
        try:
            content = (self.snapshots_dir / _key(rel)).read_bytes()
        except FileNotFoundError:
            return self._last_hash.get(rel), None
        digest = self._last_hash.get(rel) or hashlib.sha256(content).hexdigest()
        return digest, content

    def _store_snapshot(self, rel: str, content: bytes, digest: str) -> None:
        self.prepare()
        target = self.snapshots_dir / _key(rel)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        write_beneath(self.workspace, tmp, content)  # no link followed (devagent/runtime/beneath.py)
        os.replace(tmp, target)  # whole or not at all; a link standing at TARGET is replaced, not followed
        self._last_hash[rel] = digest

    def prepare(self) -> None:
        """Create ``.devagent/`` (with a ``.gitignore``) and its snapshots folder if they are missing. Raises
        ``OSError`` (``UnsafePathError``) when ``.devagent`` is not this user's own or a link stands in the way."""
        prepare_workspace_state(self.workspace)
        make_dirs_beneath(self.workspace, self.snapshots_dir)


def count_changed_lines(before: bytes, after: bytes) -> tuple[int, int]:
    """Lines added and removed between two contents, as ``git diff --numstat`` counts them.

    >>> count_changed_lines(b"a\\nb\\nc\\n", b"a\\nB\\nc\\nd\\n")
    (2, 1)
    """
    old = before.decode("utf-8", errors="replace").splitlines()
    new = after.decode("utf-8", errors="replace").splitlines()
    # An edit is usually in one place: drop the common head and tail first, so that the matcher (quadratic on
    # repetitive text) sees only the changed middle.
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old, new = old[head : len(old) - tail], new[head : len(new) - tail]
    added = removed = 0
    # autojunk=False: the heuristic treats frequent lines (blank lines in code) as junk and overcounts.
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def _key(rel: str) -> str:
    # Hashed names: copies of .py files must not sit in the tree where pytest, ruff or grep would find them.
    return hashlib.sha256(rel.encode("utf-8", errors="surrogateescape")).hexdigest()
