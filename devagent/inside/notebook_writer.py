"""Append-only writes to the lab notebook, safe across processes, containers and a full disk.

Every write is one ``locked_append`` (devagent/inside/append.py): build the bytes in memory, take an exclusive
``flock`` on the file, one ``os.write`` at the end, ``fsync``. If anything fails on the way (ENOSPC, EROFS, EIO,
...) the file is truncated back to its size before the write, so it always ends on an entry boundary, and the
entry waits in memory until the next append or ``flush_pending()``. Existing bytes are never rewritten or
reordered: the user may edit the file freely.

The notebook may be a symbolic link, but only to a regular file inside its workspace (``notebook_target``): a
link that leads out of it (``lab-notebook.md -> ~/.bashrc``) is never written through; the entry is kept back
and the reason logged. Every entry and the header are written with their control characters made visible
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
import os
import threading
from pathlib import Path

from devagent.core.markdown import printable
from devagent.inside.append import locked_append
from devagent.nofollow.walk import PathRefused, inside

logger = logging.getLogger("devagent.notebook")


class NotebookWriter:
    """Appends entries to one notebook file; keeps entries that could not be written, retries them in order.

    ``header`` is written first whenever the file is missing or empty (the user may delete the notebook: the
    next entry starts a new one). Entries must have the shape ``devagent.core.notebook.entry`` gives them.
    Thread-safe; safe across processes and containers sharing the folder (the lock is ``flock`` on the file).
    WORKSPACE (default: the notebook's folder) is where a symbolic link at PATH may lead.
    """

    def __init__(self, path: Path, header: str, *, workspace: Path | None = None) -> None:
        self.path = Path(path)
        self.workspace = Path(workspace) if workspace is not None else self.path.parent
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
            self._append(b"")
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
            self._append(data)
        except OSError as exc:
            self._warn(exc, f"{len(self._pending)} entr{'y' if len(self._pending) == 1 else 'ies'}")
            return False
        if len(self._pending) > 1:
            logger.info(
                "lab notebook %s: wrote %d entries that had been waiting", self.path, len(self._pending)
            )
        self._pending.clear()
        return True

    def _append(self, data: bytes) -> None:
        target, root = notebook_target(self.path, self.workspace)
        locked_append(target, data, header=self._encode(self.header), root=root)

    def _warn(self, exc: OSError, what: str) -> None:
        if isinstance(exc, PathRefused):
            logger.warning("lab notebook %s: could not write %s: %s; kept in memory — %s", self.path, what, exc,
                           exc.hint)
            return
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


def notebook_target(path: Path, workspace: Path) -> tuple[Path, Path]:
    """Where appending to the notebook PATH really writes, and the folder it must stay in: (the file PATH leads
    to, the workspace), both resolved. A link is fine while it leads to a file inside WORKSPACE; one that leads
    out raises ``PathRefused`` (nothing is written). The file is then opened from the workspace down without
    following anything (devagent/nofollow/walk.py), so no link can be swapped in after this check.

    >>> import tempfile; ws = Path(os.path.realpath(tempfile.mkdtemp()))
    >>> (ws / "notes.md").touch(); (ws / "lab-notebook.md").symlink_to("notes.md")
    >>> notebook_target(ws / "lab-notebook.md", ws) == (ws / "notes.md", ws)
    True
    """
    root = Path(os.path.realpath(workspace))
    target = Path(os.path.realpath(path))
    if not inside(root, target) or target == root:
        raise PathRefused(path, f"leads to {target}, outside the workspace {root}: devagent does not write "
                          "through it", f"make {path} a regular file (or a link to one inside {root})",
                          kind="outside")
    return target, root
