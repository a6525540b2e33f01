"""Crash-safe file replacement and a cross-process lock for devagent's own files (its home, the ssh config).

Files in folders someone else controls (a workspace) are written through devagent/nofollow instead."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from devagent.errors import DevagentError, ExitStatus


def ensure_private_dir(path: Path) -> None:
    """Create PATH and its missing parents with mode 0700; leave existing folders as they are."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another devagent made it meanwhile
            folder.mkdir(mode=0o700)
            folder.chmod(0o700)  # mkdir's mode is cut by the umask


def atomic_write(path: Path | str, data: bytes, *, mode: int | None = None) -> Path:
    """Replace the file at PATH with DATA so a reader sees the old or the new bytes, never a mix.

    A symlink is followed to its final target and the target is replaced (the link stays a link). The file
    keeps its mode; a new file gets 0600 (or MODE when given). Returns the path actually written.
    """
    target = Path(os.path.realpath(path))
    folder = target.parent
    if mode is None:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # The rename is only durable once the folder's entry is on disk.
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


class FileLock:
    """An exclusive `flock` on PATH for a `with` block; waits up to TIMEOUT seconds for another devagent.

    The kernel drops the lock when its holder exits, so a crashed devagent never leaves a stale lock behind.
    The holder may `discard()` the lock file: it is unlinked while still locked, and a waiter that then wins the
    lock on the unlinked file notices (the path no longer names its inode) and locks the path anew.
    Not re-entrant: do not nest two FileLocks on one path in one process.
    """

    def __init__(self, path: Path, *, timeout: float = 30.0, purpose: str = "the ssh config",
                 status: ExitStatus = ExitStatus.SSH_CONFIG, on_wait: Callable[[], object] | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self.purpose = purpose
        self.status = status
        self.on_wait = on_wait  # called once, when the lock is held by another process
        self._fd: int | None = None
        self._discard = False

    def __enter__(self) -> FileLock:
        ensure_private_dir(self.path.parent)
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if self._lock(fd, deadline) and self._still_the_path(fd):
                self._fd = fd
                return self
            os.close(fd)  # locked a file its holder discarded: open the path again

    def _lock(self, fd: int, deadline: float) -> bool:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if self.on_wait is not None:
                    self.on_wait()
                    self.on_wait = None
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DevagentError(
                        f"another devagent has been changing {self.purpose} for more than {self.timeout:g} s "
                        f"(it holds {self.path})",
                        hint="wait for the other devagent command to finish, then run this one again",
                        status=self.status,
                    ) from None
                time.sleep(0.05)

    def _still_the_path(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def discard(self) -> None:
        """Remove the lock file when the block ends (the state it guarded is gone)."""
        self._discard = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            if self._discard:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
