"""The save journal: every real save of a watched file, kept under the workspace so it survives restarts.

Layout, inside the workspace::

    .devagent/saves.jsonl          one SaveRecord per line, append-only (flock, one write, fsync)
    .devagent/snapshots/<key>      the last content seen of each file (key: sha256 of its relative path),
                                   so the next save's +/− lines can be computed, also after a restart
    .devagent/.gitignore           "*": none of this belongs in the user's repository

A save counts only when the content changed since the last one recorded: ``touch`` and no-op saves give None.

Files are read as devagent/nofollow reads them: regular files only, opened without blocking and
without following a link anywhere below the workspace (a link is refused, even to a file inside it: the file
it names is watched under its own name). A file over MAX_SNAPSHOT_BYTES is journaled by its size and the sha256
of its content, read in bounded chunks; no copy of it is kept and its lines are not counted. Anything else
(a FIFO, a device, a socket, a link) raises ``PathRefused``, without a byte read. Snapshots are read and written
the same way, so a link planted in ``.devagent/snapshots`` is neither followed nor written through.

>>> from pathlib import Path; import tempfile; from datetime import datetime
>>> ws = Path(tempfile.mkdtemp()); script = ws / "train.py"
>>> _ = script.write_text("lr = 1e-3\\n"); j = Journal(ws); j.baseline(script)
True
>>> _ = script.write_text("lr = 3e-4\\nepochs = 10\\n")
>>> j.record_save(script, datetime(2026, 11, 27, 14, 2))  # doctest: +ELLIPSIS
SaveRecord(time='2026-11-27T14:02:00.000', path='train.py', sha256='...', lines_added=2, lines_removed=1, size=None)
>>> j.record_save(script, datetime(2026, 11, 27, 14, 3)) is None   # same content again
True
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import stat
from collections import Counter
from datetime import datetime
from pathlib import Path, PurePosixPath

from devagent.core import layout
from devagent.core.notebook import SaveRecord
from devagent.inside.append import locked_append
from devagent.inside.workspace_state import SaveLog, prepare_workspace_state
from devagent.nofollow.bounded import Content, read_content
from devagent.nofollow.walk import PathRefused, open_below, open_folder_below, replace_file

logger = logging.getLogger("devagent.journal")

MAX_SNAPSHOT_BYTES = 1 << 20  # a watched file larger than this is journaled by size and hash, not copied
_LARGE = ".large"  # suffix of a snapshot's stand-in for a large file: "<sha256> <size>\n", not its content


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
        so that its first save counts only the lines that save changed. Returns True if it stored one.
        Raises ``PathRefused`` for a file that is not read (a link, a FIFO, a device)."""
        rel = self.relative(path)
        with self._lock:
            if self._known(rel):
                return False
        content = self._read(rel)  # outside the lock: a large file takes a while to hash
        if content is None:
            return False
        with self._lock:
            if self._known(rel):  # a save was recorded meanwhile: it is newer than what we read
                return False
            self._store_snapshot(rel, content)
            return True

    def record_save(self, path: Path, now: datetime) -> SaveRecord | None:
        """Record a save of PATH at NOW if its content changed since the last one; return the record, or None
        (same content, or the file is gone). Raises ``PathRefused`` for a file that is not read (a link, a FIFO, a
        device: nothing is recorded) and ``OSError`` if the journal cannot be written."""
        rel = self.relative(path)
        content = self._read(rel)  # outside the lock, which `move` and the baseline also take
        if content is None:
            return None
        with self._lock:
            digest = content.sha256
            previous_hash, previous = self._previous(rel)
            if digest == previous_hash:
                return None
            if content.data is None:  # too large to keep: neither copied nor diffed
                added = removed = 0
            else:
                added, removed = count_changed_lines(previous or b"", content.data)
            record = SaveRecord(
                time=now.isoformat(timespec="milliseconds"),
                path=rel,
                sha256=digest,
                lines_added=added,
                lines_removed=removed,
                size=content.size if content.data is None else None,
            )
            prepare_workspace_state(self.workspace)  # not the snapshots folder: a save is recorded without it
            locked_append(self.path, (record.to_json() + "\n").encode("utf-8"), root=self.workspace)
            self._refresh()  # reads our line back, after any line another process appended before it
            # After the record: if the snapshot cannot be written, the next save diffs against an older one
            # (its +/− are too large) but no save is lost or counted twice.
            try:
                self._store_snapshot(rel, content)
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
                folder = self._snapshots_fd()
            except FileNotFoundError:
                return
            try:
                moved = False
                for suffix, other in (("", _LARGE), (_LARGE, "")):
                    try:
                        os.replace(_key(src_rel) + suffix, _key(dest_rel) + suffix, src_dir_fd=folder,
                                   dst_dir_fd=folder)
                    except FileNotFoundError:
                        continue
                    with contextlib.suppress(FileNotFoundError):  # DEST's stand-in of the other kind is stale
                        os.unlink(_key(dest_rel) + other, dir_fd=folder)
                    moved = True
                    break
            finally:
                os.close(folder)
            if moved:
                self._last_hash[dest_rel] = self._last_hash.pop(src_rel, None)

    def prune_snapshots(self, keep: set[str], *, older_than: float) -> int:
        """Delete snapshots of files not in KEEP (relative paths) last written before OLDER_THAN (a
        ``time.time()`` value, so a snapshot being written right now survives). Returns how many went."""
        keys = {_key(rel) for rel in keep}
        removed = 0
        with self._lock:
            try:
                folder = self._snapshots_fd()
            except (FileNotFoundError, PathRefused):  # a planted link: nothing of ours to prune, nothing deleted
                return 0
            try:
                for name in os.listdir(folder):
                    if name.removesuffix(_LARGE) in keys:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode) and st.st_mtime < older_than:
                            os.unlink(name, dir_fd=folder)
                            removed += 1
            finally:
                os.close(folder)
            self._last_hash = {rel: h for rel, h in self._last_hash.items() if rel in keep}
        return removed

    def _read(self, rel: str) -> Content | None:
        """REL's content (only its size and hash when it is large), or None when there is no file at REL."""
        try:
            fd = open_below(self.workspace, rel)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            return read_content(fd, limit=MAX_SNAPSHOT_BYTES)
        finally:
            os.close(fd)

    def _known(self, rel: str) -> bool:
        # Existence only: on a restart the baseline asks this for every watched file, and reading them is waste.
        if self._last_hash.get(rel) is not None:
            return True
        return any(os.path.lexists(self.snapshots_dir / (_key(rel) + suffix)) for suffix in ("", _LARGE))

    def _previous(self, rel: str) -> tuple[str | None, bytes | None]:
        """The last content seen of REL and its hash, from the snapshot (which survives restarts); for a large
        file only its hash, from the snapshot's stand-in. A snapshot that is not what the journal writes (a
        link, a FIFO, too large) counts as none."""
        snapshot = self._read_snapshot(rel, "", MAX_SNAPSHOT_BYTES)
        if snapshot is not None:
            return self._last_hash.get(rel) or hashlib.sha256(snapshot).hexdigest(), snapshot
        stand_in = self._read_snapshot(rel, _LARGE, 200)
        if stand_in is not None:
            digest = stand_in.split(b" ", 1)[0].decode("ascii", errors="replace")
            return self._last_hash.get(rel) or digest, None
        return self._last_hash.get(rel), None

    def _read_snapshot(self, rel: str, suffix: str, limit: int) -> bytes | None:
        try:
            fd = open_below(self.workspace, f"{layout.SNAPSHOTS}/{_key(rel)}{suffix}")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (PathRefused, IsADirectoryError) as exc:
            logger.warning("save journal: ignoring the snapshot of %s: %s is %s", rel, exc.filename, exc.strerror)
            return None
        try:
            return read_content(fd, limit=limit).data
        finally:
            os.close(fd)

    def _store_snapshot(self, rel: str, content: Content) -> None:
        """Keep CONTENT as REL's last one: a copy, or for a large file a stand-in with its hash and size. Written
        under a fresh name (``O_EXCL``: never through a link planted there) and renamed over the old one."""
        name = _key(rel)
        keep, stale = (name, name + _LARGE) if content.data is not None else (name + _LARGE, name)
        data = content.data if content.data is not None else f"{content.sha256} {content.size}\n".encode()
        prepare_workspace_state(self.workspace)
        folder = self._snapshots_fd(create=True)
        try:
            replace_file(folder, keep, data)  # whole or not at all, never through a link
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale, dir_fd=folder)
        finally:
            os.close(folder)
        self._last_hash[rel] = content.sha256

    def _snapshots_fd(self, *, create: bool = False) -> int:
        return open_folder_below(self.workspace, layout.SNAPSHOTS, create=create)

    def prepare(self) -> None:
        """Create ``.devagent/`` (with a ``.gitignore``) and its snapshots folder if they are missing; a link in
        their place is refused (``PathRefused``), not followed."""
        prepare_workspace_state(self.workspace)
        os.close(self._snapshots_fd(create=True))


_MAX_MATCH_PAIRS = 500_000  # pairs of equal lines the matcher may compare: about a tenth of a second


def count_changed_lines(before: bytes, after: bytes) -> tuple[int, int]:
    """Lines added and removed between two contents, as ``git diff --numstat`` counts them (on very repetitive
    text, where that would take long, from how often each line occurs: a line that only moved is not counted).

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
    old_counts, new_counts = Counter(old), Counter(new)
    if sum(n * new_counts[line] for line, n in old_counts.items()) > _MAX_MATCH_PAIRS:
        # Repetitive text the matcher would take minutes on (its cost grows with the pairs of equal lines):
        # compare how often each line occurs instead, which misses only lines that moved.
        return sum((new_counts - old_counts).values()), sum((old_counts - new_counts).values())
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
