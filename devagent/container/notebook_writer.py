"""Append-only writes to the lab notebook, safe across processes, containers and a full disk.

Every write is: build the bytes in memory, take an exclusive ``flock`` on the file, one ``os.write`` at
the end, ``fsync``. If anything fails on the way (ENOSPC, EROFS, EIO, ...) the file is truncated back to its
size before the write, so it always ends on an entry boundary, and the entry waits in memory until the next
append or ``flush_pending()``. Existing bytes are never rewritten or reordered: the user may edit the file
freely.

>>> from pathlib import Path; import tempfile
>>> nb = NotebookWriter(Path(tempfile.mkdtemp()) / "lab-notebook.md", "# Lab notebook — demo\\n")
>>> nb.append("\\n## 2026-11-27 14:02 · note\\nhello\\n")
>>> print(nb.path.read_text(), end="")
# Lab notebook — demo
<BLANKLINE>
## 2026-11-27 14:02 · note
hello
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger("devagent.notebook")


def locked_append(path: Path, data: bytes, *, header: bytes = b"", mode: int = 0o644) -> int:
    """Append DATA to PATH under an exclusive flock, in one write, then fsync; return the bytes written.

    When PATH is missing or empty, HEADER goes first. When PATH does not end with a newline (someone typed
    without one), a newline goes first, so DATA starts on its own line. On any ``OSError`` the file is
    truncated back to its previous size and the error is raised again.

    The lock is on the file itself. If the file is deleted or replaced while we wait for the lock, the lock we
    got is on a file nobody sees any more: reopen and lock again, so two writers never both create a header.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # deleted while we waited: lock the new one
            before = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (before.st_dev, before.st_ino):
                continue  # replaced while we waited
            size = before.st_size
            if size == 0:
                prefix = header
            elif os.pread(fd, 1, size - 1) != b"\n":
                prefix = b"\n"
            else:
                prefix = b""
            buf = prefix + data
            if not buf:
                return 0
            try:
                _write_all(fd, buf)
                os.fsync(fd)
            except OSError:
                _truncate_back(fd, size, path)
                raise
            return len(buf)
        finally:
            os.close(fd)  # also releases the flock


def _write_all(fd: int, buf: bytes) -> None:
    # One write in the normal case; a regular file only returns short when the disk fills up mid-write,
    # and then the next write raises ENOSPC, which sends us to the truncate.
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[n:]


def _truncate_back(fd: int, size: int, path: Path) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        logger.error(
            "could not truncate %s back to %d bytes after a failed write (%s): the file may end "
            "with a partial entry",
            path,
            size,
            exc.strerror or exc,
        )


class NotebookWriter:
    """Appends entries to one notebook file; keeps entries that could not be written, retries them in order.

    ``header`` is written first whenever the file is missing or empty (the user may delete the notebook: the
    next entry starts a new one). Entries must have the shape ``devagent.core.notebook.entry`` gives them.
    Thread-safe; safe across processes and containers sharing the folder (the lock is ``flock`` on the file).
    """

    def __init__(self, path: Path, header: str) -> None:
        self.path = Path(path)
        self.header = header if header.endswith("\n") or not header else header + "\n"
        self._pending: list[str] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """How many entries wait in memory because the last write failed."""
        with self._lock:
            return len(self._pending)

    @property
    def assets_dir(self) -> Path:
        """Where figures for this notebook go: ``lab-notebook.md`` → ``lab-notebook.assets/`` beside it."""
        return self.path.with_name(self.path.stem + ".assets")

    def ensure_header(self) -> bool:
        """Write the header if the file is missing or empty; return False if that failed (it is logged)."""
        try:
            locked_append(self.path, b"", header=self._encode(self.header))
        except OSError as exc:
            self._warn(exc, "the header")
            return False
        return True

    def append(self, entry: str) -> None:
        """Append ENTRY after any pending entries. Never raises for a write failure: it logs a warning and
        keeps the entry pending (see ``pending``, ``flush_pending``).

        Raises ``ValueError`` if ENTRY does not start with ``"\\n## "`` and end with a newline (a bug).
        """
        if not (entry.startswith("\n## ") and entry.endswith("\n")):
            raise ValueError(
                f"not a notebook entry (must start with '\\n## ' and end with a newline): {entry!r}"
            )
        with self._lock:
            self._pending.append(entry)
            self._flush_locked()

    def flush_pending(self) -> bool:
        """Try again to write the pending entries, in order; return True when none are left."""
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        if not self._pending:
            return True
        # All pending entries in one write: each is whole, so the batch is whole; a failure undoes all of it.
        data = self._encode("".join(self._pending))
        try:
            locked_append(self.path, data, header=self._encode(self.header))
        except OSError as exc:
            self._warn(exc, f"{len(self._pending)} entr{'y' if len(self._pending) == 1 else 'ies'}")
            return False
        if len(self._pending) > 1:
            logger.info(
                "lab notebook %s: wrote %d entries that had been waiting", self.path, len(self._pending)
            )
        self._pending.clear()
        return True

    def _warn(self, exc: OSError, what: str) -> None:
        reason = exc.strerror or str(exc)
        hint = {
            errno.ENOSPC: "free some disk space",
            errno.EDQUOT: "free some space within your disk quota",
            errno.EROFS: "the folder is mounted read-only; remount it read-write",
            errno.ENOENT: f"the folder {self.path.parent} does not exist",
            errno.EACCES: f"let this user write to {self.path.parent}",
            errno.EPERM: f"let this user write to {self.path.parent}",
        }.get(exc.errno or 0, "check the disk")
        logger.warning(
            "lab notebook %s: could not write %s (%s); kept in memory and retried at the next entry — %s",
            self.path,
            what,
            reason,
            hint,
        )

    @staticmethod
    def _encode(text: str) -> bytes:
        # A lone surrogate (an undecodable file name) must not make the agent crash: show it as U+FFFD.
        return text.encode("utf-8", errors="replace")
