"""Reading an open file someone else may have put there, at a bounded cost: what is kept in memory is capped.

The agent reads files because it is told about them (an event for ``z.py``) or finds them by name (``lab.jsonl``,
``metrics.csv``), in a workspace that everything in the environment, and its owner on the host, can write. Read
naively, ``z.py -> /dev/zero`` never ends and grows the reader until the OOM killer ends it, a FIFO named
``p.py`` blocks the reader forever and a 5 GB ``.py`` is read whole. So the file is opened by ``walk.py``
(``open_below``, ``open_regular``: regular files only, without blocking, links refused where they must be,
checked with ``fstat`` before a byte is read), and read here:

- ``read_content`` keeps at most a given number of bytes and hashes the rest in bounded chunks, never reading
  more than the file held when it was opened (plus the cap, for a file being appended to); ``Lines`` streams lines,
  skips those over a length and can read only a file's last bytes.

>>> import tempfile; from pathlib import Path; from devagent.nofollow.walk import open_below
>>> folder = Path(tempfile.mkdtemp()); _ = (folder / "a.py").write_text("x = 1\\n")
>>> fd = open_below(folder, "a.py"); content = read_content(fd, limit=4); os.close(fd)
>>> content.size, content.data, content.sha256[:12]
(6, None, '9e26bf369911')
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

CHUNK = 1 << 20  # bytes per read: what reading a file costs in memory beyond what is kept


@dataclass(frozen=True)
class Content:
    """What was read of a file: its SIZE and SHA256 (of every byte read), and its bytes when they were no more
    than the limit (``data`` is None for a larger file: hashed in chunks, not kept)."""

    size: int
    sha256: str
    data: bytes | None


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
