"""Reading files that someone else may have put there, at a bounded cost: regular files only, opened without
blocking, never through a link where links are refused, with a cap on what is kept in memory.

The agent reads files because it is told about them (an event for ``z.py``) or finds them by name (``lab.jsonl``,
``metrics.csv``), in a workspace that everything in the environment, and its owner on the host, can write. Read
naively, ``z.py -> /dev/zero`` never ends and grows the reader until the OOM killer ends it, a FIFO named
``p.py`` blocks the reader forever and a 5 GB ``.py`` is read whole. Here:

- a file is opened with ``O_NONBLOCK`` (opening a FIFO never waits for a writer) and ``O_NOCTTY``; where links are
  refused, with ``O_NOFOLLOW`` on the file and on every folder below the root (``open_below``);
- the descriptor is checked with ``fstat`` (what was opened, not what a name meant a moment before): anything but
  a regular file is refused (``Refused``) before a byte is read. A ``stat`` of the name comes first only so that a
  FIFO or a device is not even opened in the usual case (opening a device can act); it decides nothing;
- ``read_content`` keeps at most a given number of bytes and hashes the rest in bounded chunks, never reading
  more than the file held when it was opened (plus the cap, for a file being appended to); ``Lines`` streams lines,
  skips those over a length and can read only a file's last bytes.

>>> import tempfile; folder = Path(tempfile.mkdtemp()); _ = (folder / "a.py").write_text("x = 1\\n")
>>> fd = open_below(folder, "a.py"); content = read_content(fd, limit=4); os.close(fd)
>>> content.size, content.data, content.sha256[:12]
(6, None, '9e26bf369911')
>>> os.mkfifo(folder / "p.py"); open_below(folder, "p.py")
Traceback (most recent call last):
...
devagent.nofollow.bounded.Refused: [Errno 22] a FIFO, not a regular file: 'p.py'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20  # bytes per read: what reading a file costs in memory beyond what is kept

_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


class Refused(OSError):
    """A file devagent does not read: a link where links are refused, or not a regular file. ``strerror`` says
    what it is, ``filename`` which it is."""


@dataclass(frozen=True)
class Content:
    """What was read of a file: its SIZE and SHA256 (of every byte read), and its bytes when they were no more
    than the limit (``data`` is None for a larger file: hashed in chunks, not kept)."""

    size: int
    sha256: str
    data: bytes | None


def open_regular(path: Path | str, *, follow_links: bool = True) -> int:
    """A descriptor of the regular file PATH, opened for reading without blocking; the caller closes it.

    With ``follow_links=False`` a link at PATH itself is refused (its folders are taken as they are). Raises
    ``FileNotFoundError`` when there is nothing at PATH, ``IsADirectoryError`` for a folder and ``Refused`` for
    anything else that is not a regular file.
    """
    name = os.fspath(path)
    _check_mode(os.stat(name, follow_symlinks=follow_links).st_mode, name)
    try:
        fd = os.open(name, _FILE_FLAGS | (0 if follow_links else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:  # it became a link since the stat
            raise Refused(errno.ELOOP, "a symbolic link, not followed", name) from None
        raise
    return _checked(fd, name)


def open_below(root: Path | str, rel: str) -> int:
    """A descriptor of the regular file REL (``/``-separated, below ROOT), opened for reading without blocking
    and without following a link anywhere below ROOT: every folder of REL is opened with ``O_NOFOLLOW`` relative
    to the one before, so a link swapped in at any moment is refused, never followed. ROOT itself is taken as
    given. Raises as ``open_regular`` does; a link anywhere in REL is ``Refused``.
    """
    parts = _parts(rel)
    dir_fd = os.open(root, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts[:-1]):
            next_fd = _open_folder(dir_fd, part, "/".join(parts[: i + 1]))
            os.close(dir_fd)
            dir_fd = next_fd
        name = parts[-1]
        _check_mode(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode, rel)
        try:
            fd = os.open(name, _FILE_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused(errno.ELOOP, "a symbolic link, not followed", rel) from None
            raise
    finally:
        os.close(dir_fd)
    return _checked(fd, rel)


def open_folder_below(root: Path | str, rel: str, *, create: bool = False, mode: int = 0o755) -> int:
    """A descriptor of the folder REL below ROOT, reached without following a link (each missing folder made
    with MODE when CREATE); the caller closes it. A link on the way is ``Refused``."""
    parts = _parts(rel)
    dir_fd = os.open(root, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=dir_fd)
            next_fd = _open_folder(dir_fd, part, "/".join(parts[: i + 1]))
            os.close(dir_fd)
            dir_fd = next_fd
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def read_content(fd: int, *, limit: int) -> Content:
    """Read the open regular file FD to its end: its bytes when they are no more than LIMIT, else only its hash.

    Memory: LIMIT plus one CHUNK. A file being appended to is read up to the size it had when this started plus
    LIMIT bytes, so a writer faster than the reader cannot keep it reading.

    >>> import tempfile; f = tempfile.TemporaryFile(); _ = f.write(b"abc"); _ = f.seek(0)
    >>> read_content(f.fileno(), limit=3).data, read_content(os.dup(f.fileno()), limit=3).data
    (b'abc', b'')
    """
    start = os.fstat(fd).st_size
    digest = hashlib.sha256()
    kept: bytearray | None = bytearray() if start <= limit else None
    budget = start + limit
    total = 0
    while total < budget:
        chunk = os.read(fd, min(CHUNK, budget - total))
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
        if kept is not None:
            if len(kept) + len(chunk) <= limit:
                kept += chunk
            else:
                kept = None
    return Content(total, digest.hexdigest(), bytes(kept) if kept is not None else None)


class Lines:
    """The lines of an open regular file (without their line ends), streamed in CHUNKs: memory is one chunk plus
    one line, whatever the file's size.

    A line longer than MAX_LINE bytes is skipped (counted in ``long_lines``). With WINDOW, a file larger than it
    is read from WINDOW bytes before its end (from the first line that starts there): ``skipped`` is how many
    bytes were left unread, and with ``keep_first`` its first line (a CSV header) is read first and yielded
    first. Closes FD when iterated to the end or closed.

    >>> import tempfile; f = tempfile.TemporaryFile(); _ = f.write(b"h\\n" + b"x" * 50 + b"\\n1\\n2\\n3"); _ = f.seek(0)
    >>> lines = Lines(os.dup(f.fileno()), max_line=10, window=4, keep_first=True)
    >>> list(lines), lines.skipped, lines.long_lines
    ([b'h', b'2', b'3'], 54, 0)
    >>> _ = f.seek(0); lines = Lines(f.fileno(), max_line=10); list(lines), lines.long_lines
    ([b'h', b'1', b'2', b'3'], 1)
    """

    def __init__(self, fd: int, *, max_line: int, window: int | None = None, keep_first: bool = False) -> None:
        self.fd = fd
        self.max_line = max_line
        self.window = window
        self.keep_first = keep_first
        self.size = os.fstat(fd).st_size
        self.skipped = 0
        self.long_lines = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self.window is None or self.size <= self.window:
                yield from self._lines(self.size)
                return
            start = self.size - self.window
            if self.keep_first:
                for line in self._lines(start):
                    yield line
                    break
            self.skipped = start
            os.lseek(self.fd, start - 1, os.SEEK_SET)  # from the byte before: a line starting at START is whole
            yield from self._lines(self.size - start + 1 + self.max_line, skip_first=True)
        finally:
            self.close()

    def _lines(self, budget: int, *, skip_first: bool = False) -> Iterator[bytes]:
        """Lines from the current offset, reading at most BUDGET bytes; with SKIP_FIRST, the text up to the first
        line end is dropped (the end of a line that started before the offset)."""
        pending = bytearray()
        dropping = skip_first  # inside a line that is not yielded (cut, or too long)
        read = 0
        while read < budget:
            chunk = os.read(self.fd, min(CHUNK, budget - read))
            if not chunk:
                break
            read += len(chunk)
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    if not dropping:
                        pending += chunk[start:]
                        if len(pending) > self.max_line:
                            pending.clear()
                            dropping = True
                            self.long_lines += 1
                    break
                if dropping:
                    dropping = False
                else:
                    pending += chunk[start:end]
                    if len(pending) > self.max_line:
                        self.long_lines += 1
                    else:
                        yield bytes(pending)
                pending.clear()
                start = end + 1
        if pending and not dropping:
            yield bytes(pending)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parts(rel: str) -> tuple[str, ...]:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a path below the root: {rel!r}")  # a bug in the caller, not the user's doing
    return parts


def _open_folder(dir_fd: int, name: str, display: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise Refused(errno.ELOOP, "a symbolic link, not followed", display) from None
        raise


def _check_mode(mode: int, name: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a folder", name)
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    if stat.S_ISLNK(mode):
        raise Refused(errno.ELOOP, f"{kind}, not followed", name)
    raise Refused(errno.EINVAL, f"{kind}, not a regular file", name)


def _checked(fd: int, name: str) -> int:
    try:
        _check_mode(os.fstat(fd).st_mode, name)
    except BaseException:
        os.close(fd)
        raise
    return fd
