"""Opening a file inside a folder without ever leaving it: every state file devagent writes in a workspace.

A workspace is the user's folder, but what is in it may come from anyone: a cloned repository can hold
``lab-notebook.md -> ~/.bashrc`` or ``.devagent/runs -> /etc``, and outside an environment the nearest folder may
be a shared one such as ``/tmp``. So a path below the ROOT (the workspace) is walked one name at a time, each
folder opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before (``openat``), and the file itself with
``O_NOFOLLOW``: a symbolic link anywhere below ROOT stops the walk with ``UnsafePathError`` instead of being
followed, and nothing can swap a link in between a check and the open. ROOT itself is trusted (the workspace may
well be a link to a bigger disk). A folder on the way owned by another user is refused too (in a shared folder,
someone else could fill it with links), and so is a final entry that is not a regular file (a FIFO would block,
a device would read forever).

>>> from pathlib import Path; import os, tempfile
>>> ws = Path(tempfile.mkdtemp())
>>> write_beneath(ws, ws / ".devagent" / "runs" / "3" / "section.md", b"hello\\n", make_parents=True)
>>> (ws / ".devagent" / "runs" / "3" / "section.md").read_text()
'hello\\n'
>>> os.symlink("/etc", ws / "assets")
>>> write_beneath(ws, ws / "assets" / "run-3.patch", b"")
Traceback (most recent call last):
...
devagent.nofollow.beneath.UnsafePathError: ...assets is a symbolic link: devagent does not write through links
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer or reader; it changes nothing for a regular file.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class UnsafePathError(OSError):
    """A path devagent will not write through: a symbolic link, a folder another user owns, a path that leaves
    the folder it must stay in, or something that is not a regular file. An ``OSError``, so every place that
    copes with a full or read-only disk (keep the entry, log why) copes with this too; ``hint`` names the fix."""

    def __init__(self, path: Path | str, reason: str, hint: str, code: int = errno.ELOOP) -> None:
        super().__init__(code, reason, str(path))
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


def open_beneath(root: Path, path: Path, flags: int, mode: int = 0o644, *, make_parents: bool = False,
                 dir_mode: int = 0o755) -> int:
    """Open PATH, which must lie below ROOT, with FLAGS (``O_NOFOLLOW`` added), never following a link below
    ROOT; return the file descriptor. MAKE_PARENTS: create missing folders on the way (with DIR_MODE).

    Raises ``UnsafePathError`` for a link, a foreign folder, a path outside ROOT or an entry that is not a
    regular file; other ``OSError``s as ``os.open`` raises them (``FileNotFoundError``, ``FileExistsError``
    with ``O_EXCL``, ``EROFS``...).
    """
    folder, name = _walk(root, path, make_parents=make_parents, dir_mode=dir_mode)
    try:
        return _open_file(folder, name, path, flags, mode)
    finally:
        os.close(folder)


def make_dirs_beneath(root: Path, path: Path, *, dir_mode: int = 0o755) -> None:
    """Create the folder PATH below ROOT and any missing folder on the way, following no link (see
    ``open_beneath``). An existing folder is fine."""
    folder, name = _walk(root, path, make_parents=True, dir_mode=dir_mode)
    try:
        os.close(_open_dir(folder, name, Path(path), create=True, dir_mode=dir_mode))
    finally:
        os.close(folder)


def write_beneath(root: Path, path: Path, data: bytes, *, mode: int = 0o644, exact_mode: bool = False,
                  make_parents: bool = False, exclusive: bool = False) -> None:
    """Write DATA as the whole content of the file PATH below ROOT (created with MODE, else truncated), following
    no link (see ``open_beneath``). EXACT_MODE: the file gets exactly MODE, whatever the umask or its mode before
    (fchmod on the opened file). EXCLUSIVE: the file must not exist yet (``FileExistsError`` otherwise, also when a
    link stands there)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    folder, name = _walk(root, path, make_parents=make_parents, dir_mode=0o755)
    try:
        fd = _open_file(folder, name, path, flags, mode)
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            if exclusive:  # a file we made and could not fill (a full disk) must not look whole later
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=folder)
            raise named(exc, path) from None
        except BaseException:
            if exclusive:  # a file we made and could not fill (a full disk) must not look whole later
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=folder)
            raise
        finally:
            os.close(fd)
    finally:
        os.close(folder)


def read_beneath(root: Path, path: Path) -> bytes:
    """The content of the regular file PATH below ROOT, read without following a link (see ``open_beneath``)."""
    fd = open_beneath(root, path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def named(exc: OSError, path: Path | str) -> OSError:
    """EXC with PATH as its file name when it has none, or only a name relative to a folder descriptor (what
    ``os.write`` and ``openat`` report): the message then says which file, as ``open`` would.

    >>> str(named(OSError(28, "No space left on device"), "/ws/.devagent/runs.jsonl"))
    "[Errno 28] No space left on device: '/ws/.devagent/runs.jsonl'"
    """
    if isinstance(exc, UnsafePathError) or (exc.filename is not None and os.path.isabs(str(exc.filename))):
        return exc
    renamed = OSError(exc.errno, exc.strerror, str(path))  # the subclass errno picks (FileNotFoundError...)
    renamed.__cause__ = exc
    return renamed


def inside(root: Path, path: Path) -> bool:
    """Whether PATH is ROOT or below it, by their text (resolve both first to compare where they lead).

    >>> inside(Path("/w"), Path("/w/a/b")), inside(Path("/w"), Path("/w/../x")), inside(Path("/w"), Path("/wx"))
    (True, False, False)
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return rel != os.pardir and not rel.startswith(os.pardir + os.sep)


def _walk(root: Path, path: Path, *, make_parents: bool, dir_mode: int) -> tuple[int, str]:
    """An open descriptor of PATH's folder, reached from ROOT without following a link, and PATH's last name."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if not inside(root, path) or rel == os.curdir:
        raise UnsafePathError(path, f"is not inside {root}", f"keep devagent's files inside {root}", errno.EXDEV)
    *folders, name = rel.split(os.sep)
    fd = os.open(os.path.abspath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = Path(os.path.abspath(root))
    try:
        for part in folders:
            walked = walked / part
            next_fd = _open_dir(fd, part, walked, create=make_parents, dir_mode=dir_mode)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _open_file(folder: int, name: str, path: Path, flags: int, mode: int) -> int:
    try:
        fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a link (EMLINK on some BSDs)
            raise _link(path) from None
        raise named(exc, path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(path, "is not a regular file: devagent writes only files it can append to",
                              f"move {path} out of the way", errno.EINVAL)
    return fd


def _open_dir(parent: int, name: str, shown: Path, *, create: bool, dir_mode: int) -> int:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError as exc:
        if not create:
            raise named(exc, shown) from None
        try:
            os.mkdir(name, dir_mode, dir_fd=parent)
        except FileExistsError:
            pass  # made by someone else meanwhile: open it, with the same checks
        except OSError as mkdir_exc:
            raise named(mkdir_exc, shown) from None
        return _open_dir(parent, name, shown, create=False, dir_mode=dir_mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and _is_link(parent, name):
            raise _link(shown) from None
        raise named(exc, shown) from None
    owner = os.fstat(fd).st_uid
    if owner != os.geteuid():
        os.close(fd)
        raise UnsafePathError(shown, f"belongs to another user (uid {owner}): devagent writes only in its own "
                              "folders", f"remove {shown}, or run as its owner", errno.EPERM)
    return fd


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _link(path: Path | str) -> UnsafePathError:
    return UnsafePathError(path, "is a symbolic link: devagent does not write through links",
                           f"replace the link {path} with a real file or folder, or remove it")
