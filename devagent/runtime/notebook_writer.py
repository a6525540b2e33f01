"""Append-only writes to the lab notebook, safe across processes, containers and a full disk.

Every write is one ``locked_append`` (devagent/runtime/append.py): build the bytes in memory, take an exclusive
``flock`` on the file, one ``os.write`` at the end, ``fsync``. If anything fails on the way (ENOSPC, EROFS, EIO,
...) the file is truncated back to its size before the write, so it always ends on an entry boundary, and the
entry waits in memory until the next append or ``flush_pending()``. Existing bytes are never rewritten or
reordered: the user may edit the file freely.

Every entry and the header are written with their control characters made visible
(``devagent.core.markdown.printable``): devagent's text can never carry a terminal escape into the file.

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
import logging
import threading
from pathlib import Path

from devagent.core.markdown import printable
from devagent.runtime.append import locked_append

logger = logging.getLogger("devagent.notebook")


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
        # A lone surrogate (an undecodable file name) must not make the agent crash: show it as U+FFFD. The
        # renderers already make control characters visible (core/markdown.py); this is the net under them.
        return printable(text).encode("utf-8", errors="replace")
