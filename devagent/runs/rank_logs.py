"""A one-node `torchrun`'s ranks, tagged by devagent: torchrun writes each rank's output to files in a folder
devagent owns (``PET_REDIRECTS=3``, ``PET_LOG_DIR``), and a thread here reads them back, whole lines tagged with
the rank (``[rank1]:step 3``), into the same stream as torchrun's own output (the user's terminal and the output
watch). The folder goes when the run ends.

Why not torchrun's own ``--tee``, which does the same: its tail threads poll each file every 0.1 s with a sleep
that its shutdown waits out, once for stdout and once more for stderr — ~0.15-0.2 s added to every launch,
measured (docs/explanation/performance.md). Here the wait is an Event's: stopping drains what is left at once.

Only on one node: a rank's folder is named by its local rank, which is its rank only where there is one node.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

PREFIX = "devagent-ranks-"
INTERVAL_S = 0.05  # how often the files are read while the run lasts: a line reaches the terminal within this
READ_BYTES = 1 << 20
PARTIAL_BYTES = 64 * 1024  # a line longer than this without an end is passed on as it is, not held
# <log_dir>/<rdzv run id>_<random>/attempt_<restart>/<local rank>/{stdout,stderr}.log (torch's DefaultLogsSpecs)
_FILE_RE = re.compile(r"^attempt_\d+$")
_STREAMS = ("stdout.log", "stderr.log")


class RankLogs:
    """The folder torchrun writes its ranks' output to, and the thread that tails it."""

    def __init__(self, root: Path, *, interval: float = INTERVAL_S) -> None:
        self.root = root
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write: Callable[[bytes], None] | None = None
        self._files: dict[Path, _Tailed] = {}

    @classmethod
    def create(cls) -> RankLogs | None:
        """A fresh folder in the temporary directory; None where none can be made (torchrun's tee then)."""
        try:
            return cls(Path(tempfile.mkdtemp(prefix=PREFIX)))
        except OSError:
            return None

    def env(self) -> dict[str, str]:
        """What makes torchrun write every rank's stdout and stderr to files under the folder."""
        return {"PET_REDIRECTS": "3", "PET_LOG_DIR": str(self.root)}

    def start(self, write: Callable[[bytes], None]) -> None:
        """Tail the folder into WRITE (called from this object's thread, with whole tagged lines)."""
        self._write = write
        self._thread = threading.Thread(target=self._loop, name="devagent-rank-logs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Read what is left, at once (the run has ended: nothing more comes), lines without an end included."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._write is not None:
            self._poll(final=True)
        for tailed in self._files.values():
            with contextlib.suppress(OSError):
                os.close(tailed.fd)
        self._files.clear()

    def remove(self) -> None:
        """The folder and what torchrun wrote in it (its ranks' output and error files)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._poll(final=False)

    def _poll(self, *, final: bool) -> None:
        """Pass on what the files hold now, a read per file at a time (a rank that floods its output is passed on
        in pieces, not held whole in memory)."""
        self._discover()
        more = True
        while more:
            out = bytearray()
            more = False
            for tailed in self._files.values():
                data, exhausted = tailed.read(final=final)
                out += data
                more = more or not exhausted
            if out and self._write is not None:
                self._write(bytes(out))

    def _discover(self) -> None:
        """Open the rank files that appeared since the last look (a restart makes a new attempt's)."""
        for run_dir in _subdirs(self.root):
            for attempt in _subdirs(run_dir):
                if not _FILE_RE.match(attempt.name):
                    continue
                for rank_dir in _subdirs(attempt):
                    if not rank_dir.name.isdigit():
                        continue
                    for name in _STREAMS:
                        path = rank_dir / name
                        if path in self._files:
                            continue
                        try:
                            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                        except OSError:
                            continue  # not there yet
                        self._files[path] = _Tailed(fd, f"[rank{int(rank_dir.name)}]:".encode())


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


_LINE_END = re.compile(rb"\r\n|[\r\n]")


class _Tailed:
    """One rank file: what was read of it, and the start of a line whose end has not come yet."""

    def __init__(self, fd: int, prefix: bytes) -> None:
        self.fd = fd
        self.prefix = prefix
        self.partial = b""

    def read(self, *, final: bool) -> tuple[bytes, bool]:
        """The whole lines of the next read (at most READ_BYTES), each tagged, and whether the file's end was
        reached; at the run's end (FINAL) also a last line without an end. A ``\r`` ends a piece too (a progress
        bar redrawn in place gets its tag back on every redraw)."""
        try:
            data = os.read(self.fd, READ_BYTES)
        except OSError:
            data = b""
        exhausted = len(data) < READ_BYTES
        data = self.partial + data
        closing = final and exhausted
        held = b""
        if not closing and data.endswith(b"\r"):  # its \n may be next: hold it, not to tag an empty line
            data, held = data[:-1], b"\r"
        pieces = _LINE_END.split(data)
        ends = _LINE_END.findall(data)
        rest = pieces.pop()
        if len(rest) > PARTIAL_BYTES or (closing and rest):
            pieces.append(rest)
            ends.append(b"\n" if closing else b"")
            rest = b""
        self.partial = rest + held
        return b"".join(self.prefix + piece + end for piece, end in zip(pieces, ends, strict=True)), exhausted
