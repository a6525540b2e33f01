"""Crash-safe file replacement and a cross-process lock for the files devagent shares with the user; writes into
folders someone else controls (a workspace) without following a link out of them."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shlex
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


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NoFollowFolder:
    """A folder held open by a file descriptor; the files and folders in it are reached without following links.

    For folders someone else controls — a workspace owned by another user, written by devagent as root: a link
    planted there (``.vscode/tasks.json -> /etc/ld.so.preload``) would otherwise make devagent create, write or
    chown a file anywhere. Here every name is opened relative to the held folder with ``O_NOFOLLOW``, a link is
    refused with a DevagentError that names it, new files are made under a fresh temporary name with
    ``O_CREAT | O_EXCL``, given their owner with ``fchown`` on the open file, and renamed over the name inside
    the same folder: a link swapped in at any moment is at worst renamed over, never followed. Use it in a
    ``with`` block (it closes its descriptor)::

        with NoFollowFolder.open(workspace) as ws, ws.folder(".vscode", create=True) as vscode:
            vscode.write("tasks.json", data, mode=0o644, owner=(uid, gid))
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, path: Path) -> NoFollowFolder:
        """Hold the folder PATH, which must not itself be a link (its parents may be: the caller chose them)."""
        try:
            return cls(os.open(path, _NOFOLLOW_DIR), path)
        except OSError as exc:
            raise _refusal(exc, path, None, str(path), folder=True) from None

    def folder(self, name: str, *, create: bool = False, mode: int = 0o755,
               owner: tuple[int, int] | None = None) -> NoFollowFolder:
        """The folder NAME in this one; with CREATE, made (with MODE, given to OWNER) when missing."""
        _check_name(name)
        made = False
        if create:
            try:
                os.mkdir(name, mode, dir_fd=self.fd)
                made = True
            except FileExistsError:
                pass
        try:
            fd = os.open(name, _NOFOLLOW_DIR, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self.path / name, self.fd, name, folder=True) from None
        # The folder this descriptor holds, wherever its name has been moved meanwhile; and only if it is the one
        # made here (owned by us), not one someone put in its place between mkdir and open.
        if made and owner is not None and os.fstat(fd).st_uid == os.geteuid():
            os.fchown(fd, *owner)
        return NoFollowFolder(fd, self.path / name)

    def read(self, name: str, *, limit: int) -> bytes | None:
        """The content of the regular file NAME, or None when there is none; refused when NAME is a link, not a
        regular file (a FIFO would block, a device never end) or larger than LIMIT bytes."""
        _check_name(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise _not_regular(self.path / name, st.st_mode)  # not even opened: a device's open acts
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refusal(exc, self.path / name, self.fd, name, folder=False) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(self.path / name, st.st_mode)
            if st.st_size > limit:
                raise DevagentError(f"{self.path / name} is larger than {limit} bytes; devagent does not read it",
                                    hint=f"shrink it or move it away: mv {_q(self.path / name)} ...",
                                    status=ExitStatus.USAGE)
            data = f.read(limit + 1)
        if len(data) > limit:  # it grew while being read
            raise DevagentError(f"{self.path / name} grew past {limit} bytes while devagent read it",
                                hint="run the command again once it no longer changes", status=ExitStatus.USAGE)
        return data

    def write(self, name: str, data: bytes, *, mode: int, owner: tuple[int, int] | None = None) -> None:
        """Replace NAME in this folder with DATA, atomically, as a new regular file with MODE and OWNER. A link
        or anything but a regular file at NAME is refused (and left as it is)."""
        _check_name(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(st.st_mode):
                raise _link(self.path / name, self.fd, name, folder=False)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(self.path / name, st.st_mode)
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as f:
                if owner is not None:
                    os.fchown(fd, *owner)
                os.fchmod(fd, mode)  # after fchown, which clears set-id bits
                f.write(data)
                f.flush()
                os.fsync(fd)
            # Renames the entry, never follows it: if NAME became a link since the check, the link is replaced.
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
        os.fsync(self.fd)

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> NoFollowFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single file name: {name!r}")  # a bug in the caller, not the user's doing


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _refusal(exc: OSError, path: Path, dir_fd: int | None, name: str, *, folder: bool) -> BaseException:
    """The DevagentError for an O_NOFOLLOW open of NAME (PATH) that failed, or EXC itself when it was not refused.
    A link gives ELOOP, or ENOTDIR when a folder was asked for."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = exc.errno == errno.ELOOP
        if is_link:
            return _link(path, dir_fd, name, folder=folder)
        if folder:
            return DevagentError(f"{path} is not a folder", status=ExitStatus.USAGE,
                                 hint=f"move it away (mv {_q(path)} {_q(path)}.old), then run the command again")
    if exc.errno == errno.ENXIO:  # a socket: open() cannot open one
        return _not_regular(path, stat.S_IFSOCK)
    return exc


def _link(path: Path, dir_fd: int | None, name: str, *, folder: bool) -> DevagentError:
    try:
        target = f" to {os.readlink(name, dir_fd=dir_fd)!r}"
    except OSError:  # gone or changed meanwhile
        target = ""
    what = "a real folder" if folder else "a regular file"
    fix = f"rm {_q(path)}" + (f" && mkdir {_q(path)}" if folder else "")
    return DevagentError(
        f"{path} is a symbolic link{target}; devagent does not write through links in a workspace",
        hint=f"replace it with {what} ({fix}), then run the command again",
        status=ExitStatus.USAGE,
    )


def _not_regular(path: Path, mode: int) -> DevagentError:
    kinds = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
             stat.S_IFBLK: "a device"}
    kind = kinds.get(stat.S_IFMT(mode), "not a regular file")
    return DevagentError(f"{path} is {kind}, not a regular file; devagent leaves it alone",
                         hint=f"move it away (mv {_q(path)} {_q(path)}.old), then run the command again",
                         status=ExitStatus.USAGE)


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
