"""inotify for the save watcher, with watches only on the folders that can hold a watched file.

watchdog's recursive inotify observer adds a watch to every folder below the root, excluded ones included:
``data/`` with a folder per class, ``.venv``, ``node_modules``, ``.git``. Watches count against the uid's
``fs.inotify.max_user_watches``, which is shared by every process of that uid on the host (containers run with
the owner's uid): one workspace with a large dataset can use them all up, for the host's own tools too. This
observer walks the tree itself, never enters an excluded folder (by name, at any depth) or a link, adds watches
for new folders as they appear and removes those of folders that leave. It tells its sink about files (the
watcher turns these into the watchdog events the save handler understands); only the standard library here:

================================================  ==========================================================
kernel events                                     calls on the sink
================================================  ==========================================================
``IN_CLOSE_WRITE`` of a file                      ``closed(path)``
``IN_CREATE`` of a file                           ``created(path)``
``IN_MOVED_FROM`` + ``IN_MOVED_TO`` (one cookie)  ``moved(src, dest)``
``IN_MOVED_TO`` alone (moved in from outside)     ``moved("", dest)``
a folder created or moved in                      its watches added; ``created`` for each file in it
a folder renamed inside the tree                  its watches follow; ``moved`` for each file in it
a folder moved out, or renamed to an excluded     its watches removed
name
the kernel's queue overflowed                     watches re-added; ``created`` for every file (the journal
                                                  records only those whose content changed)
================================================  ==========================================================

>>> import tempfile
>>> root = tempfile.mkdtemp(); os.makedirs(f"{root}/src"); os.makedirs(f"{root}/data/cats")
>>> tree = InotifyTree(root, FileEvents(), exclude_dirs=frozenset({"data"})); tree.start()
>>> sorted(os.path.relpath(p, root) for p in tree.watched_folders())
['.', 'src']
>>> tree.stop(); tree.join()
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator

logger = logging.getLogger("devagent.watcher")

# <linux/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_CLOEXEC = os.O_CLOEXEC
IN_NONBLOCK = os.O_NONBLOCK

FOLDER_MASK = (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF
               | IN_EXCL_UNLINK | IN_ONLYDIR)
_EVENT = struct.Struct("iIII")
_READ_SIZE = 64 * 1024
MOVE_PAIRING_S = 0.05  # an IN_MOVED_FROM with no IN_MOVED_TO within this long was a move out of the tree


class FileEvents:
    """What an InotifyTree reports; this one ignores everything (override what you need)."""

    def closed(self, path: str) -> None:
        """PATH was closed after a write."""

    def created(self, path: str) -> None:
        """PATH appeared: created, or found in a folder that was created or moved in."""

    def moved(self, src: str, dest: str) -> None:
        """SRC was renamed to DEST; SRC is ``""`` when it came from outside the watched folders."""


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            self.init1 = libc.inotify_init1
            self.add_watch = libc.inotify_add_watch
            self.rm_watch = libc.inotify_rm_watch
        except AttributeError as exc:
            raise OSError(errno.ENOSYS, f"inotify unavailable: {exc}") from None
        self.init1.argtypes, self.init1.restype = [ctypes.c_int], ctypes.c_int
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch.argtypes, self.rm_watch.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int


@functools.cache
def _lib() -> _Libc:
    return _Libc()


def _error(what: str) -> OSError:
    err = ctypes.get_errno()
    if err == errno.ENOSPC:
        return OSError(errno.ENOSPC, "inotify watch limit reached")
    if err == errno.EMFILE:
        return OSError(errno.EMFILE, "inotify instance limit reached")
    return OSError(err, f"{what}: {os.strerror(err)}")


def add_watch(fd: int, path: str, mask: int) -> int:
    """``inotify_add_watch``; raises OSError. (A function of its own so that tests can make it fail.)"""
    wd = _lib().add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        raise _error(f"cannot watch {path}")
    return int(wd)


class InotifyTree:
    """Watches ROOT and every folder below it except those named in EXCLUDE_DIRS (and links), and reports file
    events to SINK on its own thread. ``start()`` raises OSError (``ENOSPC``, ``EMFILE``, ``ENOSYS``)
    when the watches cannot be placed, having released what it took; ``stop()`` and ``join()`` end it."""

    def __init__(self, root: str, sink: FileEvents, *, exclude_dirs: frozenset[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = os.path.abspath(root)
        self.sink = sink
        self.exclude_dirs = exclude_dirs
        self.clock = clock
        self._fd = -1
        self._wd_path: dict[int, str] = {}
        self._path_wd: dict[str, int] = {}
        self._pending: dict[int, tuple[str, bool, float]] = {}  # cookie -> (path, is a folder, when)
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the watch tables: the reader thread changes them, others may look
        self._warned_full = False

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        fd = _lib().init1(IN_CLOEXEC | IN_NONBLOCK)
        if fd < 0:
            raise _error("inotify_init1")
        self._fd = fd
        try:
            self._add_tree(self.root, strict=True)
            self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._run, name="devagent-inotify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop_w >= 0:
            with contextlib.suppress(OSError):  # already closed: the reader has ended
                os.write(self._stop_w, b"x")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def watched_folders(self) -> list[str]:
        """The folders watched now."""
        with self._lock:
            return list(self._path_wd)

    def _close(self) -> None:
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._stop_r = self._stop_w = -1
        self._wd_path.clear()
        self._path_wd.clear()

    # -- the reader thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while True:
                wait_ms = None if not self._pending else int(MOVE_PAIRING_S * 1000)
                ready = {fd for fd, _ in poller.poll(wait_ms)}
                if self._stop_r in ready:
                    return
                if self._fd in ready:
                    try:
                        data = os.read(self._fd, _READ_SIZE)
                    except BlockingIOError:
                        data = b""
                    for wd, mask, cookie, name in _parse(data):
                        try:
                            with self._lock:
                                self._handle(wd, mask, cookie, name)
                        except Exception:  # one odd event must not end save detection
                            logger.exception("inotify event for %r not handled", name)
                with self._lock:
                    self._expire_moves(all_of_them=not ready)
        except Exception:
            logger.exception("inotify watching stopped")
        finally:
            with self._lock:
                self._close()

    def _handle(self, wd: int, mask: int, cookie: int, raw_name: bytes) -> None:
        if mask & IN_Q_OVERFLOW:
            self._resync()
            return
        if mask & IN_IGNORED:  # the folder is gone, or its watch was removed
            self._forget(wd)
            return
        folder = self._wd_path.get(wd)
        if folder is None or not raw_name:  # a stale watch, or an event about the watched folder itself
            return
        path = os.path.join(folder, os.fsdecode(raw_name))
        is_dir = bool(mask & IN_ISDIR)
        if mask & IN_MOVED_FROM:
            self._pending[cookie] = (path, is_dir, self.clock())
        elif mask & IN_MOVED_TO:
            source = self._pending.pop(cookie, None)
            src = source[0] if source is not None else ""
            if is_dir:
                self._folder_moved(src, path)
            else:
                self.sink.moved(src, path)
        elif mask & IN_CREATE:
            if is_dir:
                self._folder_arrived(path)
            else:
                self.sink.created(path)
        elif mask & IN_CLOSE_WRITE and not is_dir:
            self.sink.closed(path)

    def _resync(self) -> None:
        logger.warning("inotify dropped events (queue overflow); checking every watched file again")
        self._pending.clear()
        for path in self._add_tree(self.root, collect=True):
            self.sink.created(path)

    def _forget(self, wd: int) -> None:
        folder = self._wd_path.pop(wd, None)
        if folder is not None and self._path_wd.get(folder) == wd:
            del self._path_wd[folder]

    def _folder_arrived(self, path: str) -> None:
        """A folder created in the tree or moved into it: watch it (unless excluded) and report its files, which
        may have been written before its watch existed (``mkdir pkg && cp x.py pkg/``)."""
        if os.path.basename(path) in self.exclude_dirs:
            return
        for file in self._add_tree(path, collect=True):
            self.sink.created(file)

    def _folder_moved(self, src: str, dest: str) -> None:
        if not src or src not in self._path_wd:  # from outside the tree, or from an excluded folder
            self._folder_arrived(dest)
            return
        if os.path.basename(dest) in self.exclude_dirs:
            self._unwatch(src)
            return
        prefix = src + os.sep
        for path in [p for p in self._path_wd if p == src or p.startswith(prefix)]:
            wd = self._path_wd.pop(path)
            new = dest + path[len(src):]
            self._path_wd[new] = wd
            self._wd_path[wd] = new
        for file in self._files_below(dest):
            self.sink.moved(src + file[len(dest):], file)

    def _expire_moves(self, *, all_of_them: bool) -> None:
        """Moves whose other half did not come: files moved out need nothing, folders moved out lose their
        watches (the kernel would go on reporting them from where they went)."""
        now = self.clock()
        for cookie, (path, is_dir, when) in list(self._pending.items()):
            if all_of_them or now - when >= MOVE_PAIRING_S:
                del self._pending[cookie]
                if is_dir:
                    self._unwatch(path)

    # -- watches ---------------------------------------------------------------------------------------------

    def _add_tree(self, top: str, *, strict: bool = False, collect: bool = False) -> list[str]:
        """Watch TOP and the folders below it that are neither excluded nor links; with COLLECT, return the
        files found in them. With STRICT (the first walk), any failure to watch raises; later, a folder that
        went away is skipped and a full watch table is logged once."""
        files: list[str] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            mask = FOLDER_MASK if folder == self.root else FOLDER_MASK | IN_DONT_FOLLOW
            try:
                wd = add_watch(self._fd, folder, mask)
            except OSError as exc:
                if strict:
                    raise
                if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                    self._warn_full(folder)
                    return files
                continue  # gone, or replaced by a file or a link meanwhile
            self._wd_path[wd] = folder
            self._path_wd[folder] = wd
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in self.exclude_dirs:
                                stack.append(entry.path)
                        elif collect:
                            files.append(entry.path)
            except OSError as exc:
                if strict and folder == self.root:
                    raise
                logger.debug("cannot list %s: %s", folder, exc)
        return files

    def _files_below(self, top: str) -> Iterator[str]:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in self.exclude_dirs]
            for name in files:
                yield os.path.join(folder, name)

    def _unwatch(self, top: str) -> None:
        prefix = top + os.sep
        for path in [p for p in self._path_wd if p == top or p.startswith(prefix)]:
            wd = self._path_wd.pop(path)
            self._wd_path.pop(wd, None)
            _lib().rm_watch(self._fd, wd)  # an error means the kernel already dropped it

    def _warn_full(self, folder: str) -> None:
        if not self._warned_full:
            self._warned_full = True
            logger.warning(
                "inotify watch limit reached: saves in %s (and other new folders) are not seen. Raise it on the "
                "host (sudo sysctl fs.inotify.max_user_watches=524288) or watch by polling (up --poll-saves)",
                folder)


def _parse(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, cookie, length = _EVENT.unpack_from(data, offset)
        start = offset + _EVENT.size
        yield wd, mask, cookie, data[start:start + length].rstrip(b"\0")
        offset = start + length
