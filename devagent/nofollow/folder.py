"""A folder held open by a file descriptor, its files and folders reached without following links."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shlex
import stat
from pathlib import Path

from devagent.errors import DevagentError, ExitStatus

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
