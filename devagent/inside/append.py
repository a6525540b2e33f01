"""The one way devagent appends to a shared file: the notebook, the save journal and the runs journal.

Safe across processes, containers sharing the folder, and a full disk: an exclusive ``flock`` on the file itself,
the bytes built in memory and written with one ``os.write``, then ``fsync``; on any failure the file is truncated
back to its size before the write, so it always ends on a boundary (a whole entry, a whole line). The file is
opened without following a symbolic link (devagent/nofollow/walk.py): a planted link never makes devagent
append to the file it points at.

>>> from pathlib import Path; import tempfile
>>> path = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> locked_append(path, b'{"n": 1}\\n')
9
>>> locked_append(path, lambda existing: b'{"n": %d}\\n' % (existing.count(b"\\n") + 1))
9
>>> print(path.read_text(), end="")
{"n": 1}
{"n": 2}
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path

from devagent.nofollow.walk import named, open_beneath

logger = logging.getLogger("devagent.append")


def locked_append(path: Path, data: bytes | Callable[[bytes], bytes], *, header: bytes = b"",
                  mode: int = 0o644, root: Path | None = None) -> int:
    """Append DATA to PATH under an exclusive flock, in one write, then fsync; return the bytes written.

    DATA may be a function of the file's content, read under the lock, for an append that depends on what is
    already there (the next run number): no other writer can append between the read and the write.

    When PATH is missing or empty, HEADER goes first. When PATH does not end with a newline (someone typed
    without one), a newline goes first, so DATA starts on its own line. On any ``OSError`` the file is
    truncated back to its previous size and the error is raised again.

    The lock is on the file itself. If the file is deleted or replaced while we wait for the lock, the lock we
    got is on a file nobody sees any more: reopen and lock again, so two writers never both create a header.

    PATH is opened below ROOT (default: its own folder) without following a link anywhere below ROOT
    (``open_beneath``): a link raises ``PathRefused``, an ``OSError``, before a byte is written.
    """
    while True:
        fd = open_beneath(path.parent if root is None else root, path, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path, follow_symlinks=False)  # a link put there meanwhile is not our file
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
            buf = prefix + (data if isinstance(data, bytes) else data(_read_all(fd, size)))
            if not buf:
                return 0
            try:
                _write_all(fd, buf)
                os.fsync(fd)
            except OSError as exc:
                _truncate_back(fd, size, path)
                raise named(exc, path) from None
            return len(buf)
        finally:
            os.close(fd)  # also releases the flock


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


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
