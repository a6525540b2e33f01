"""A folder held open by a file descriptor, for devagent run as root in folders someone else controls: files
written and read in it, a copy of a whole tree, a tree given to another user; never through a link.

Everything here is built on ``walk.py``'s ``step`` and ``open_file`` (one walker) and raises its ``PathRefused``
(one error type), worded as the host side has always said it (``IN_WORKSPACE``); a command shows it with
``PathRefused.as_error()``, exit code USAGE.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
from collections.abc import Collection
from pathlib import Path

from devagent.nofollow.walk import (
    DIR_FLAGS,
    PathRefused,
    Voice,
    link_target,
    open_file,
    read_limited,
    refused_open,
    replace_file,
    step,
)

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20  # bytes per read when copying: the copy's memory, whatever the file's size
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device"}


def _q(path: str) -> str:
    return shlex.quote(path)


class _InWorkspace(Voice):
    """The words of refusals in a workspace the host side writes (``up --vscode``, a reproduction's copy)."""

    def link(self, path: str, target: str | None, *, folder: bool) -> PathRefused:
        to = f" to {target!r}" if target is not None else ""
        what = "a real folder" if folder else "a regular file"
        fix = f"rm {_q(path)}" + (f" && mkdir {_q(path)}" if folder else "")
        return PathRefused(path, f"is a symbolic link{to}; devagent does not write through links in a workspace",
                           f"replace it with {what} ({fix}), then run the command again", target=target)

    def not_regular(self, path: str, mode: int) -> PathRefused:
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        return PathRefused(path, f"is {kind}, not a regular file; devagent leaves it alone",
                           f"move it away (mv {_q(path)} {_q(path)}.old), then run the command again",
                           errno.EINVAL, kind="not-regular")

    def not_folder(self, path: str, exc: OSError) -> PathRefused:
        return PathRefused(path, "is not a folder",
                           f"move it away (mv {_q(path)} {_q(path)}.old), then run the command again",
                           errno.ENOTDIR, kind="not-folder")


IN_WORKSPACE = _InWorkspace()


class Folder:
    """A folder held open by a file descriptor; the files and folders in it are reached without following links.

    For folders someone else controls — a workspace owned by another user, written by devagent as root: a link
    planted there (``.vscode/tasks.json -> /etc/ld.so.preload``) would otherwise make devagent create, write or
    chown a file anywhere. Here every name is opened relative to the held folder with ``O_NOFOLLOW``, a link is
    refused with a ``PathRefused`` that names it, new files are made under a fresh temporary name with
    ``O_CREAT | O_EXCL``, given their owner with ``fchown`` on the open file, and renamed over the name inside
    the same folder: a link swapped in at any moment is at worst renamed over, never followed. Use it in a
    ``with`` block (it closes its descriptor)::

        with Folder.open(workspace) as ws, ws.folder(".vscode", create=True) as vscode:
            vscode.write("tasks.json", data, mode=0o644, owner=(uid, gid))
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Folder:
        """Hold the folder PATH, which must not itself be a link (its parents may be: the caller chose them)."""
        try:
            return cls(os.open(path, DIR_FLAGS), path)
        except OSError as exc:
            raise refused_open(exc, None, str(path), str(path), IN_WORKSPACE, folder=True) from None

    def folder(self, name: str, *, create: bool = False, mode: int = 0o755,
               owner: tuple[int, int] | None = None) -> Folder:
        """The folder NAME in this one; with CREATE, made (with MODE, given to OWNER) when missing."""
        _check_name(name)
        fd, made = step(self.fd, name, str(self.path / name), voice=IN_WORKSPACE, create=create, mode=mode)
        # The folder this descriptor holds, wherever its name has been moved meanwhile; and only if it is the one
        # made here (owned by us), not one someone put in its place between mkdir and open.
        if made and owner is not None and os.fstat(fd).st_uid == os.geteuid():
            os.fchown(fd, *owner)
        return Folder(fd, self.path / name)

    def read(self, name: str, *, limit: int) -> bytes | None:
        """The content of the regular file NAME, or None when there is none; refused when NAME is a link, not a
        regular file (a FIFO would block, a device never end) or larger than LIMIT bytes."""
        _check_name(name)
        try:
            fd = open_file(self.fd, name, str(self.path / name), os.O_RDONLY, voice=IN_WORKSPACE)
        except FileNotFoundError:
            return None
        try:
            return read_limited(fd, limit, str(self.path / name), IN_WORKSPACE)
        finally:
            os.close(fd)

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
                raise IN_WORKSPACE.link(str(self.path / name), link_target(self.fd, name), folder=False)
            if not stat.S_ISREG(st.st_mode):
                raise IN_WORKSPACE.not_regular(str(self.path / name), st.st_mode)
        replace_file(self.fd, name, data, mode=mode, owner=owner, sync=True)

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_tree(source: Path, into: Path, *, skip: Collection[str] = (), owner: tuple[int, int] | None = None
              ) -> None:
    """Copy the folder SOURCE (someone else's, maybe) to the new folder INTO, for OWNER (root gives it away).

    SOURCE is read without following a link anywhere below it: each folder opened with ``O_NOFOLLOW`` from the
    one before, each file with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` (a file swapped for a link
    or a FIFO meanwhile is refused, never followed or waited on), and read up to the size it had when opened (a
    file grown without end by its owner does not keep the copy going). A symbolic link is copied as a link (its
    text, never what it leads to: a repository's relative links stay links; ``-> /etc/shadow`` stays a link
    into the environment's own /etc). A FIFO, socket or device is refused (``PathRefused``): it is no code.
    SKIP: names left out (at any depth, as ``shutil.ignore_patterns`` did).

    What is made is safe at every moment: each file is created empty (``O_EXCL``, mode 0600) and given to OWNER
    (``fchown`` on its descriptor) before a byte goes in; its mode is the source's permission bits only, never
    set-uid, set-gid or sticky. Each folder is made 0700 for this process and given to OWNER with its own mode
    only once it is filled, so OWNER cannot change what is being written. INTO must not exist
    (``FileExistsError``); on any failure what was made of it is removed again and the error raised.
    """
    parent = os.open(into.parent, _ROOT_FLAGS)  # the folder the user chose, as named
    try:
        os.mkdir(into.name, 0o700, dir_fd=parent)
        try:
            top, _ = step(parent, into.name, str(into), voice=IN_WORKSPACE, own=True)
            try:
                src = os.open(source, _ROOT_FLAGS)
                try:
                    _copy_entries(src, top, str(source), frozenset(skip), owner)
                    _give(top, os.fstat(src), owner)
                finally:
                    os.close(src)
            finally:
                os.close(top)
        except BaseException:
            with contextlib.suppress(OSError):
                remove_tree(parent, into.name)
            raise
    finally:
        os.close(parent)


def give_tree(path: Path, owner: tuple[int, int]) -> None:
    """Give the folder PATH that this process made, and everything in it, to OWNER, without following a link.

    PATH itself is opened with ``O_NOFOLLOW`` and must belong to this process's uid (a folder someone put in its
    place is refused, not given away). Folders are entered with ``O_NOFOLLOW`` and given away after what is in
    them (until then OWNER cannot write in them); other entries are changed themselves (``lchown``), never
    what a link leads to."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError as exc:
        refused = refused_open(exc, None, str(path), str(path), IN_WORKSPACE, folder=True)
        raise (_replaced(path, "a symbolic link") if isinstance(refused, PathRefused) else refused) from None
    try:
        uid = os.fstat(fd).st_uid
        if uid != os.geteuid():
            raise _replaced(path, f"a folder of uid {uid}")
        _give_entries(fd, str(path), owner)
        os.fchown(fd, *owner)
    finally:
        os.close(fd)


def remove_tree(parent: int, name: str) -> None:
    """Remove the folder NAME in the folder PARENT (a descriptor) and all in it, entering folders with
    ``O_NOFOLLOW`` (a link is removed, never followed). ``shutil.rmtree`` takes ``dir_fd`` only from 3.11."""
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    try:
        with os.scandir(fd) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for child, is_dir in names:
            if is_dir:
                remove_tree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _copy_entries(src: int, dst: int, shown: str, skip: frozenset[str], owner: tuple[int, int] | None) -> None:
    with os.scandir(src) as entries:  # scandir works on a copy of the descriptor
        names = sorted(entry.name for entry in entries if entry.name not in skip)
    for name in names:
        path = os.path.join(shown, name)
        try:
            st_mode = os.stat(name, dir_fd=src, follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue  # removed meanwhile: not part of the copy
        if stat.S_ISDIR(st_mode):
            child_src, _ = step(src, name, path, voice=IN_WORKSPACE)
            try:
                os.mkdir(name, 0o700, dir_fd=dst)
                child_dst, _ = step(dst, name, path, voice=IN_WORKSPACE, own=True)
                try:
                    _copy_entries(child_src, child_dst, path, skip, owner)
                    _give(child_dst, os.fstat(child_src), owner)
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
        elif stat.S_ISLNK(st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            if owner is not None:
                os.chown(name, *owner, dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISREG(st_mode):
            _copy_file(src, dst, name, path, owner)
        else:
            raise _not_copied(path, st_mode)


def _copy_file(src: int, dst: int, name: str, path: str, owner: tuple[int, int] | None) -> None:
    try:
        fd = open_file(src, name, path, os.O_RDONLY, voice=IN_WORKSPACE)
    except PathRefused as exc:
        if exc.kind == "not-regular":  # swapped for a FIFO or device since the stat
            raise _not_copied(path, stat.S_IFIFO) from None
        raise
    try:
        st = os.fstat(fd)
        out = os.open(name, _NEW_FILE, 0o600, dir_fd=dst)
        try:
            if owner is not None:
                os.fchown(out, *owner)  # empty until here: never a moment with content and the wrong owner
            left = st.st_size
            while left > 0 and (chunk := os.read(fd, min(_CHUNK, left))):
                left -= len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            os.fchmod(out, stat.S_IMODE(st.st_mode) & 0o777)  # never set-uid, set-gid or sticky
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _give(fd: int, source: os.stat_result, owner: tuple[int, int] | None) -> None:
    """The copied folder FD gets the source folder's permission bits (no set-gid, no sticky) and OWNER."""
    if owner is not None:
        os.fchown(fd, *owner)
    os.fchmod(fd, stat.S_IMODE(source.st_mode) & 0o777)
    os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))


def _give_entries(folder: int, shown: str, owner: tuple[int, int]) -> None:
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        path = os.path.join(shown, name)
        try:
            st_mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st_mode):
            child, _ = step(folder, name, path, voice=IN_WORKSPACE)
            try:
                _give_entries(child, path, owner)
                os.fchown(child, *owner)
            finally:
                os.close(child)
        else:
            os.chown(name, *owner, dir_fd=folder, follow_symlinks=False)


def _replaced(path: Path, now: str) -> PathRefused:
    return PathRefused(path, f"was replaced while devagent made it (it is now {now}); nothing was changed through "
                       "it", f"someone else can write to {path.parent}: use a folder only you can write",
                       errno.EPERM, kind="foreign")


def _not_copied(path: str, mode: int) -> PathRefused:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return PathRefused(path, f"is {kind}, not a file, folder or link; devagent does not copy it",
                       f"move it out of the workspace (mv {_q(path)} ...), then run the command again",
                       errno.EINVAL, kind="not-regular")


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single file name: {name!r}")  # a bug in the caller, not the user's doing
