"""The one walker: a path below a folder opened one name at a time, never through a link, with one error type.

A workspace is the user's folder, but what is in it may come from anyone: a cloned repository can hold
``lab-notebook.md -> ~/.bashrc`` or ``.devagent/runs -> /etc``, a notebook's code can leave a FIFO named
``runs.jsonl``, and on a shared server the folder may be writable by a teammate while devagent runs as root. So
a path below the ROOT is walked one name at a time: each folder opened with ``O_NOFOLLOW | O_DIRECTORY``
relative to the one before (``openat``), the file itself with ``O_NOFOLLOW | O_NONBLOCK`` (opening a FIFO never
waits), and what was opened checked with ``fstat`` (what the descriptor holds, not what a name meant a moment
before). A symbolic link anywhere below ROOT stops the walk with ``PathRefused`` instead of being followed, and
nothing can swap a link in between a check and the open. ROOT itself is trusted (the workspace may well be a
link to a bigger disk).

The rules, and where callers choose (keyword arguments, never a second walker):

- links below ROOT: always refused; anything but a folder on the way or a regular file at the end: refused
  (a ``stat`` of the name first, so a device is not even opened: opening one can act);
- ``own=True``: a folder on the way owned by another uid is refused too (in a shared folder someone else could
  fill it with links); devagent's own state files ask for it;
- ``create=True``: missing folders are made (with ``mode``), relative to their parent's descriptor;
- a read limit: ``read_limited`` here, ``read_content`` and ``Lines`` in ``bounded.py``.

How a refusal is worded is the caller's ``Voice`` (the agent's reads say "not followed", devagent's state
writes say "devagent does not write through links"; the words users already know stay as they were).

>>> from pathlib import Path; import tempfile
>>> ws = Path(tempfile.mkdtemp())
>>> write_beneath(ws, ws / ".devagent" / "runs" / "3" / "section.md", b"hello\\n", make_parents=True)
>>> read_beneath(ws, ws / ".devagent" / "runs" / "3" / "section.md")
b'hello\\n'
>>> os.symlink("/etc", ws / "assets")
>>> write_beneath(ws, ws / "assets" / "run-3.patch", b"")
Traceback (most recent call last):
...
devagent.nofollow.walk.PathRefused: ...assets is a symbolic link: devagent does not write through links
>>> os.mkfifo(ws / "p.py"); open_below(ws, "p.py")
Traceback (most recent call last):
...
devagent.nofollow.walk.PathRefused: [Errno 22] a FIFO, not a regular file: 'p.py'
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from devagent.errors import DevagentError, ExitStatus

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer or reader (it changes nothing for a regular file);
# O_NOCTTY: a terminal opened by mistake never becomes this process's.
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # ROOT is the caller's: followed
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # what O_NOFOLLOW says of a link (EMLINK: some BSDs)
KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


class PathRefused(OSError):
    """A path devagent does not act on: a symbolic link, something that is not a regular file, a folder of
    another user where only one's own will do, a path outside the folder it must stay in, a file over a size
    limit. An ``OSError``, so every place that copes with a full or read-only disk (keep the entry, log why)
    copes with this too. ``strerror`` says what it is, ``filename`` which it is, ``hint`` names the fix,
    ``kind`` which rule refused it ("link", "not-regular", "foreign", "outside", "not-folder", "too-large"),
    ``target`` where a refused link leads (when known).

    ``str()`` is the path followed by the reason ("/ws/x is a symbolic link: …") when SENTENCE, else an
    ``OSError``'s own form ("[Errno 40] a symbolic link, not followed: 'x'"): reasons are worded either way.
    ``as_error()`` is the ``DevagentError`` the host side shows a user (exit code USAGE).
    """

    def __init__(self, path: Path | str, reason: str, hint: str = "", code: int = errno.ELOOP, *,
                 kind: str = "link", target: str | None = None, sentence: bool = True) -> None:
        super().__init__(code, reason, str(path))
        self.hint = hint
        self.kind = kind
        self.target = target
        self.sentence = sentence

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}" if self.sentence else super().__str__()

    def as_error(self, status: ExitStatus = ExitStatus.USAGE) -> DevagentError:
        """This refusal as the error a command ends with: the same words, the hint, STATUS."""
        return DevagentError(str(self), hint=self.hint or None, status=status)


class Voice:
    """How refusals are worded for one kind of caller; the rules are the same for all. Subclasses override."""

    def link(self, path: str, target: str | None, *, folder: bool) -> PathRefused:
        return PathRefused(path, "is a symbolic link: devagent does not write through links",
                           f"replace the link {path} with a real file or folder, or remove it", target=target)

    def not_regular(self, path: str, mode: int) -> OSError:
        return PathRefused(path, "is not a regular file: devagent writes only files it can append to",
                           f"move {path} out of the way", errno.EINVAL, kind="not-regular")

    def foreign(self, path: str, uid: int) -> PathRefused:
        return PathRefused(path, f"belongs to another user (uid {uid}): devagent writes only in its own folders",
                           f"remove {path}, or run as its owner", errno.EPERM, kind="foreign")

    def not_folder(self, path: str, exc: OSError) -> OSError:
        return named(exc, path)  # NotADirectoryError, as os.open says it

    def too_large(self, path: str, limit: int, *, grew: bool) -> PathRefused:
        if grew:
            return PathRefused(path, f"grew past {limit} bytes while devagent read it",
                               "run the command again once it no longer changes", errno.EFBIG, kind="too-large")
        return PathRefused(path, f"is larger than {limit} bytes; devagent does not read it",
                           f"shrink it or move it away: mv {shlex.quote(path)} ...", errno.EFBIG, kind="too-large")


WRITES = Voice()  # devagent's own state and notebook files in a workspace


class _Reads(Voice):
    """Files the agent and run summaries read because they were told of them or found them by name."""

    def link(self, path: str, target: str | None, *, folder: bool) -> PathRefused:
        return PathRefused(path, "a symbolic link, not followed", target=target, sentence=False)

    def not_regular(self, path: str, mode: int) -> OSError:
        if stat.S_ISDIR(mode):
            return IsADirectoryError(errno.EISDIR, "a folder", path)
        if stat.S_ISLNK(mode):
            return self.link(path, None, folder=False)
        kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
        return PathRefused(path, f"{kind}, not a regular file", "", errno.EINVAL, kind="not-regular",
                           sentence=False)

    def foreign(self, path: str, uid: int) -> PathRefused:
        return PathRefused(path, f"a folder of another user (uid {uid}), not entered", "", errno.EPERM,
                           kind="foreign", sentence=False)

    def too_large(self, path: str, limit: int, *, grew: bool) -> PathRefused:
        what = f"grew past {limit} bytes while being read" if grew else f"larger than {limit} bytes"
        return PathRefused(path, f"{what}, not read", "", errno.EFBIG, kind="too-large", sentence=False)


READS = _Reads()


def step(parent: int, name: str, shown: str, *, voice: Voice, create: bool = False, mode: int = 0o755,
         own: bool = False) -> tuple[int, bool]:
    """Open the folder NAME in the folder PARENT (a descriptor) without following a link: a descriptor of it,
    and whether it was made here (CREATE: made with MODE when missing). SHOWN: its path, for messages.
    OWN: refused when another uid owns it."""
    made = False
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError as exc:
        if not create:
            raise named(exc, shown) from None
        try:
            os.mkdir(name, mode, dir_fd=parent)
            made = True
        except FileExistsError:
            pass  # made by someone else meanwhile: open it, with the same checks
        except OSError as mkdir_exc:
            raise named(mkdir_exc, shown) from None
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        except OSError as again:
            raise refused_open(again, parent, name, shown, voice, folder=True) from None
    except OSError as exc:
        raise refused_open(exc, parent, name, shown, voice, folder=True) from None
    if own:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            os.close(fd)
            raise voice.foreign(shown, owner)
    return fd, made


def walk(root: Path | str, parts: Iterable[str], *, voice: Voice, shown: str | None = None, create: bool = False,
         mode: int = 0o755, own: bool = False) -> tuple[int, bool]:
    """A descriptor of the folder ROOT/PARTS…, each of PARTS opened with ``step`` from ROOT (which is opened as
    named, links and all); and whether the last was made here. SHOWN: ROOT as messages name it (None: paths
    are shown relative to ROOT). The caller closes the descriptor."""
    fd = os.open(root, _ROOT_FLAGS)
    made = False
    walked: str | None = shown
    try:
        for part in parts:
            walked = part if walked is None else os.path.join(walked, part)
            next_fd, made = step(fd, part, walked, voice=voice, create=create, mode=mode, own=own)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, made


def open_file(folder: int, name: str, shown: str, flags: int, mode: int = 0o644, *, voice: Voice) -> int:
    """Open the regular file NAME in the folder FOLDER (a descriptor) with FLAGS plus ``FILE_FLAGS``; refused
    (the voice's words) for a link or anything but a regular file, checked on the descriptor."""
    try:
        before = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        before = stat.S_IFREG  # nothing there yet: the open makes it (O_CREAT) or says it is missing
    if not (stat.S_ISREG(before) or stat.S_ISLNK(before) or stat.S_ISDIR(before)):
        raise voice.not_regular(shown, before)  # not even opened: a device's open can act
    try:
        fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=folder)
    except OSError as exc:
        raise refused_open(exc, folder, name, shown, voice, folder=False) from None
    st_mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        raise voice.not_regular(shown, st_mode)
    return fd


def read_limited(fd: int, limit: int, shown: str, voice: Voice = READS) -> bytes:
    """The whole content of the open regular file FD, refused (kind "too-large") when it holds, or grows to,
    more than LIMIT bytes. Memory: LIMIT plus one byte.

    >>> import tempfile; f = tempfile.TemporaryFile(); _ = f.write(b"abcd"); _ = f.seek(0)
    >>> read_limited(os.dup(f.fileno()), 3, "f")
    Traceback (most recent call last):
    ...
    devagent.nofollow.walk.PathRefused: [Errno 27] larger than 3 bytes, not read: 'f'
    """
    if os.fstat(fd).st_size > limit:
        raise voice.too_large(shown, limit, grew=False)
    chunks, total = [], 0
    while total <= limit and (chunk := os.read(fd, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise voice.too_large(shown, limit, grew=True)
    return b"".join(chunks)


def read_tail(fd: int, limit: int) -> bytes:
    """The last LIMIT bytes at most of the open regular file FD, from the first line that starts in them (the
    whole file when it is no larger). Memory: LIMIT.

    >>> import tempfile; f = tempfile.TemporaryFile(); _ = f.write(b"one\\ntwo\\nthree\\n"); f.flush()
    >>> read_tail(f.fileno(), 8), read_tail(f.fileno(), 100)
    (b'three\\n', b'one\\ntwo\\nthree\\n')
    """
    size = os.fstat(fd).st_size
    start = max(0, size - limit)
    data = os.pread(fd, size - start, start) if size > start else b""
    while len(data) < size - start:  # a short read (it shrank meanwhile, or a slow filesystem)
        more = os.pread(fd, size - start - len(data), start + len(data))
        if not more:
            break
        data += more
    if start > 0:  # the first line began before START: not whole
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    return data


def replace_file(folder: int, name: str, data: bytes, *, mode: int = 0o600, owner: tuple[int, int] | None = None,
                 sync: bool = False) -> None:
    """Replace NAME in the folder FOLDER (a descriptor) with a new regular file holding DATA, whole or not at
    all: written under a fresh name made with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never through a link planted
    there), given OWNER (``fchown``, before a byte is in it) and MODE, then renamed over NAME, which is replaced
    whatever it is (a link there is replaced, never followed). SYNC: fsync the file and the folder."""
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)  # after fchown, which clears set-id bits
            f.write(data)
            f.flush()
            if sync:
                os.fsync(fd)
        # Renames the entry, never follows it: if NAME became a link meanwhile, the link is replaced.
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=folder)
        raise
    if sync:
        os.fsync(folder)


# -- devagent's own files in a workspace (the WRITES voice; folders on the way must be this user's) --


def open_beneath(root: Path, path: Path, flags: int, mode: int = 0o644, *, make_parents: bool = False,
                 dir_mode: int = 0o755) -> int:
    """Open PATH, which must lie below ROOT, with FLAGS, never following a link below ROOT and entering only
    folders of this user; return the file descriptor. MAKE_PARENTS: create missing folders (with DIR_MODE).

    Raises ``PathRefused`` for a link, a foreign folder, a path outside ROOT or an entry that is not a regular
    file; other ``OSError``s as ``os.open`` raises them (``FileNotFoundError``, ``FileExistsError`` with
    ``O_EXCL``, ``EROFS``...).
    """
    folder, name = _walk_to(root, path, make_parents=make_parents, dir_mode=dir_mode)
    try:
        return open_file(folder, name, str(path), flags, mode, voice=WRITES)
    finally:
        os.close(folder)


def make_dirs_beneath(root: Path, path: Path, *, dir_mode: int = 0o755) -> None:
    """Create the folder PATH below ROOT and any missing folder on the way, following no link (see
    ``open_beneath``). An existing folder is fine."""
    folder, name = _walk_to(root, path, make_parents=True, dir_mode=dir_mode)
    try:
        os.close(step(folder, name, str(path), voice=WRITES, create=True, mode=dir_mode, own=True)[0])
    finally:
        os.close(folder)


def write_beneath(root: Path, path: Path, data: bytes, *, mode: int = 0o644, exact_mode: bool = False,
                  make_parents: bool = False, exclusive: bool = False) -> None:
    """Write DATA as the whole content of the file PATH below ROOT (created with MODE, else truncated), following
    no link (see ``open_beneath``). EXACT_MODE: the file gets exactly MODE, whatever the umask or its mode before
    (fchmod on the opened file). EXCLUSIVE: the file must not exist yet (``FileExistsError`` otherwise, also when a
    link stands there)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    folder, name = _walk_to(root, path, make_parents=make_parents, dir_mode=0o755)
    try:
        fd = open_file(folder, name, str(path), flags, mode, voice=WRITES)
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException as exc:
            if exclusive:  # a file we made and could not fill (a full disk) must not look whole later
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=folder)
            if isinstance(exc, OSError):
                raise named(exc, path) from None
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


# -- files someone else may have put there, read by the agent (the READS voice; no owner rule) --


def open_below(root: Path | str, rel: str) -> int:
    """A descriptor of the regular file REL (``/``-separated, below ROOT), opened for reading without blocking
    and without following a link anywhere below ROOT. ROOT itself is taken as given. Raises
    ``FileNotFoundError`` when there is nothing there, ``IsADirectoryError`` for a folder, ``PathRefused`` for
    a link anywhere in REL or anything else that is not a regular file.
    """
    *folders, name = _parts(rel)
    dir_fd, _ = walk(root, folders, voice=READS)
    try:
        return open_file(dir_fd, name, rel, os.O_RDONLY, voice=READS)
    finally:
        os.close(dir_fd)


def open_folder_below(root: Path | str, rel: str, *, create: bool = False, mode: int = 0o755) -> int:
    """A descriptor of the folder REL below ROOT, reached without following a link (each missing folder made
    with MODE when CREATE); the caller closes it. A link on the way is ``PathRefused``."""
    return walk(root, _parts(rel), voice=READS, create=create, mode=mode)[0]


def open_regular(path: Path | str, *, follow_links: bool = True, voice: Voice = READS) -> int:
    """A descriptor of the regular file PATH, opened for reading without blocking; the caller closes it. Not a
    walk: PATH's folders are taken as they are (for files devagent was told of by their path).

    With ``follow_links=False`` a link at PATH itself is refused. Raises ``FileNotFoundError`` when there is
    nothing at PATH, ``IsADirectoryError`` for a folder and ``PathRefused`` for anything else.
    """
    name = os.fspath(path)
    st_mode = os.stat(name, follow_symlinks=follow_links).st_mode
    if not stat.S_ISREG(st_mode):
        raise voice.not_regular(name, st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:  # it became a link since the stat
            raise voice.link(name, None, folder=False) from None
        raise
    st_mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        raise voice.not_regular(name, st_mode)
    return fd


def named(exc: OSError, path: Path | str) -> OSError:
    """EXC with PATH as its file name when it has none, or only a name relative to a folder descriptor (what
    ``os.write`` and ``openat`` report): the message then says which file, as ``open`` would.

    >>> str(named(OSError(28, "No space left on device"), "/ws/.devagent/runs.jsonl"))
    "[Errno 28] No space left on device: '/ws/.devagent/runs.jsonl'"
    """
    if isinstance(exc, PathRefused) or (exc.filename is not None and os.path.isabs(str(exc.filename))):
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


def link_target(parent: int | None, name: str) -> str | None:
    """Where the link NAME (in the folder PARENT) leads, or None when it is not a link (any more)."""
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError:
        return None


def _walk_to(root: Path, path: Path, *, make_parents: bool, dir_mode: int) -> tuple[int, str]:
    """An open descriptor of PATH's folder, reached from ROOT (WRITES rules), and PATH's last name."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if not inside(root, path) or rel == os.curdir:
        raise PathRefused(path, f"is not inside {root}", f"keep devagent's files inside {root}", errno.EXDEV,
                          kind="outside")
    *folders, name = rel.split(os.sep)
    fd, _ = walk(os.path.abspath(root), folders, voice=WRITES, shown=os.path.abspath(root), create=make_parents,
                 mode=dir_mode, own=True)
    return fd, name


def refused_open(exc: OSError, parent: int | None, name: str, shown: str, voice: Voice, *,
                 folder: bool) -> OSError:
    """The refusal for an ``O_NOFOLLOW`` open of NAME that failed, or EXC (named) when it was not refused: a
    link gives ELOOP, or ENOTDIR when a folder was asked for; a socket gives ENXIO."""
    if exc.errno in _LINK_ERRNOS:
        target = link_target(parent, name)
        if target is not None:
            return voice.link(shown, target, folder=folder)
        if exc.errno == errno.ELOOP and not folder:
            return voice.link(shown, None, folder=folder)
    if folder and exc.errno == errno.ENOTDIR:
        return voice.not_folder(shown, exc)
    if exc.errno == errno.ENXIO:  # a socket: open() cannot open one
        return voice.not_regular(shown, stat.S_IFSOCK)
    return named(exc, shown)


def _parts(rel: str) -> tuple[str, ...]:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a path below the root: {rel!r}")  # a bug in the caller, not the user's doing
    return parts
