"""Save detection for every editor: watchdog events in, records in the save journal out.

What counts as a save (watchdog 7.1 on Linux):

- a close-after-write of the path (``FileClosedEvent``): VS Code and most tools write in place;
- a move onto the path (``FileMovedEvent`` whose ``dest_path`` is it): JetBrains, ``sed -i`` and
  ``os.replace`` write a temporary file and rename it over the original; no event names the target as
  ``src_path``;
- a creation: a file written before inotify watched its new folder, or moved in from outside the tree;
- on the polling observer, which sees no close events: also a modification.

vim's default save renames the original to ``file~``, writes a new ``file`` and closes it: a close.
Editors' temporary names are ignored, events for one path within ``debounce`` seconds give one check at the
trailing edge, and the check is by content hash in the journal, so ``touch`` and ``python x.py`` (open
and close without writing) record nothing. The watcher only writes the journal, never the notebook.

What it costs, whatever the workspace holds: inotify watches only the folders that can hold a watched file
(agent/inotify.py: none in excluded folders such as ``data/`` or ``.venv``, none through links); polling
never lists excluded folders or follows links, and polls less often when one pass over the tree takes long; the
journal reads only regular files, without following links, with a size cap (agent/journal.py). A file it
will not read (``z.py -> /dev/zero``, a FIFO) is skipped with one log line, and other saves go on being recorded.

>>> from pathlib import Path; import tempfile
>>> from devagent.agent.journal import Journal
>>> ws = Path(tempfile.mkdtemp())
>>> watcher = start_watcher(ws, Journal(ws))
>>> watcher.mode
'inotify'
>>> watcher.stop()
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingEmitter

from devagent.agent.inotify import FileEvents, InotifyTree
from devagent.agent.journal import Journal
from devagent.core import layout
from devagent.core.globs import compile_glob
from devagent.core.notebook import SaveRecord
from devagent.nofollow.walk import PathRefused

logger = logging.getLogger("devagent.watcher")

DEFAULT_INCLUDE = ("**/*.py",)
DEFAULT_EXCLUDE_DIRS = (
    ".git",
    ".venv",
    "venv",
    "env",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    "node_modules",
    "data",
    "datasets",
    "checkpoints",
    "wandb",
    "runs",
    layout.WORKSPACE_STATE,
    layout.ASSETS,
)

# Editors' temporary and backup names. vim: swap files, `file~` backups and its write test `4913` (it
# counts up by 123 when that name is taken); emacs: `.#file` lock links; JetBrains: `file___jb_tmp___` and
# `___jb_old___`; kate: `.file.kate-swp`; GNU sed -i: `sedXXXXXX`; many tools: `*.tmp`.
TEMP_NAME_RE = re.compile(
    r"""( \.sw[a-p]$ | \.swx$ | ~$ | ^\d+$ | ^\.\# | \.tmp$ | ___jb_(tmp|old)___$ | ^\..*\.kate-swp$
        | ^sed[A-Za-z0-9]{6}$ )""",
    re.VERBOSE,
)


def is_temp_name(name: str) -> bool:
    """Whether NAME is an editor's temporary or backup file.

    >>> [is_temp_name(n) for n in ("train.py", "train.py~", ".x.py.swp", "4913", "sedA1b2C3", ".#train.py")]
    [False, True, True, True, True, True]
    """
    return bool(TEMP_NAME_RE.search(name))


def _local_now() -> datetime:
    return datetime.now().astimezone()


class SaveHandler(FileSystemEventHandler):
    """Turns watchdog events into save checks: filter, debounce per path, then ``journal.record_save``.

    Drive it with hand-made events and a fake clock, then ``run_due()``; or ``start()`` its worker thread,
    which runs each check at the trailing edge of a burst. ``polling=True`` also treats modifications as
    saves (the polling observer has no close events).

    >>> from watchdog.events import FileClosedEvent
    >>> h = SaveHandler(None, root=Path("/ws"), clock=lambda: 0.0)
    >>> h.dispatch(FileClosedEvent("/ws/train.py")); h.dispatch(FileClosedEvent("/ws/.git/x.py"))
    >>> sorted(h.due_paths(now=1.0))
    ['/ws/train.py']
    """

    def __init__(
        self,
        journal: Journal,
        *,
        root: Path,
        include_globs: Iterable[str] = DEFAULT_INCLUDE,
        exclude_dirs: Iterable[str] = DEFAULT_EXCLUDE_DIRS,
        debounce: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _local_now,
        polling: bool = False,
        on_save: Callable[[SaveRecord], None] | None = None,
    ) -> None:
        super().__init__()
        self.journal = journal
        self.root = os.path.abspath(root)
        # Linear in the path however the glob is written (core/globs.py): no glob can stall the watcher.
        self.include = [compile_glob(g) for g in include_globs]
        self.exclude_dirs = frozenset(exclude_dirs)
        self.debounce = debounce
        self.clock = clock
        self.now = now
        self.polling = polling
        self.on_save = on_save
        self._deadlines: dict[str, float] = {}  # path -> when to check it
        self._refused: dict[str, str] = {}  # path -> why it was last skipped (logged once, until that changes)
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopping = False

    # -- filtering -------------------------------------------------------------------------------------------

    def is_watched(self, path: str) -> bool:
        """Whether PATH (absolute) is a file we track: under the root, not in an excluded folder, not an
        editor's temporary name, and matching an include glob."""
        rel = os.path.relpath(path, self.root)
        if rel.startswith(os.pardir) or os.path.isabs(rel):
            return False
        parts = rel.split(os.sep)
        if any(part in self.exclude_dirs for part in parts[:-1]) or is_temp_name(parts[-1]):
            return False
        rel_posix = "/".join(parts)
        return any(glob.match(rel_posix) for glob in self.include)

    def save_candidate(self, event: FileSystemEvent) -> str | None:
        """The path EVENT may have saved, or None if it cannot be a save."""
        if event.is_directory:
            return None
        if isinstance(event, FileMovedEvent):
            path = event.dest_path
        elif isinstance(event, (FileClosedEvent, FileCreatedEvent)) or (
            self.polling and isinstance(event, FileModifiedEvent)
        ):
            # Creations too: a file written into a folder before inotify watched it (`mkdir pkg && cp x pkg/`)
            # or moved in from outside arrives only as a creation. Its close, if any, falls in the same burst.
            path = event.src_path
        else:
            return None  # opened, closed without writing, deleted, attrib; and modified on inotify
        path = os.fsdecode(path)
        return path if path and self.is_watched(path) else None

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = self.save_candidate(event)
        if path is None:
            return
        if (
            isinstance(event, FileMovedEvent)
            and event.src_path
            and self.is_watched(os.fsdecode(event.src_path))
        ):
            # `mv a.py b.py` or a renamed folder: same content under a new name is not a save.
            try:
                self.journal.move(Path(os.fsdecode(event.src_path)), Path(path))
            except (OSError, ValueError) as exc:
                logger.warning("could not follow the rename of %s: %s", os.fsdecode(event.src_path), exc)
        with self._cond:
            # Trailing edge: every event pushes the check back, so a burst gives one check after it ends.
            self._deadlines[path] = self.clock() + self.debounce
            self._cond.notify()

    @property
    def waiting(self) -> int:
        """How many paths wait for their quiet period to end."""
        with self._cond:
            return len(self._deadlines)

    # -- checking --------------------------------------------------------------------------------------------

    def due_paths(self, now: float | None = None) -> list[str]:
        """Take the paths whose quiet period is over (all of them when NOW is ``inf``)."""
        now = self.clock() if now is None else now
        with self._cond:
            due = [p for p, t in self._deadlines.items() if t <= now]
            for p in due:
                del self._deadlines[p]
        return due

    def run_due(self, now: float | None = None) -> list[SaveRecord]:
        """Check every path whose quiet period is over; return the saves recorded."""
        records = []
        for path in self.due_paths(now):
            record = self.check(path)
            if record is not None:
                records.append(record)
        return records

    def flush(self) -> list[SaveRecord]:
        """Check every waiting path now, without waiting for its quiet period."""
        return self.run_due(float("inf"))

    def check(self, path: str) -> SaveRecord | None:
        """Ask the journal whether PATH changed; never raises for a file or disk problem (it logs)."""
        try:
            record = self.journal.record_save(Path(path), self.now())
        except PathRefused as exc:  # z.py -> /dev/zero, a FIFO: one line, then on with the other saves
            reason = exc.strerror or str(exc)
            if self._refused.get(path) != reason:
                if len(self._refused) >= 1000:
                    self._refused.clear()
                self._refused[path] = reason
                logger.warning("save watcher: skipped %s: %s", path, reason)
            return None
        except (OSError, ValueError) as exc:
            logger.warning("could not record a save of %s: %s", path, exc)
            return None
        self._refused.pop(path, None)
        if record is not None:
            logger.debug("save: %s (+%d/−%d)", record.path, record.lines_added, record.lines_removed)
            if self.on_save is not None:
                self.on_save(record)
        return record

    # -- worker thread ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run checks on a daemon thread as their quiet periods end."""
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="devagent-save-checks", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker after checking what is still waiting."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._deadlines:
                        wait = min(self._deadlines.values()) - self.clock()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()  # idle: sleep until an event arrives, no periodic wake-ups
                stopping = self._stopping
            try:
                if stopping:
                    self.flush()
                    return
                self.run_due()
            except Exception:
                # A bug must not silently end save detection for the rest of the container's life.
                logger.exception("save check failed")


class _Observer(Protocol):
    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class Watcher:
    """A running watcher: ``mode`` is ``"inotify"`` or ``"polling"``; ``stop()`` ends it."""

    def __init__(self, observer: _Observer, handler: SaveHandler, mode: str) -> None:
        self.observer = observer
        self.handler = handler
        self.mode = mode
        self.baseline_done = threading.Event()

    def stop(self) -> None:
        """Stop observing, then check what is still waiting for its quiet period."""
        self.observer.stop()
        self.observer.join()
        self.handler.stop()


def start_watcher(
    root: Path,
    journal: Journal,
    *,
    polling: bool | None = None,
    include_globs: Iterable[str] = DEFAULT_INCLUDE,
    exclude_dirs: Iterable[str] = DEFAULT_EXCLUDE_DIRS,
    debounce: float = 0.2,
    poll_interval: float = 1.0,
    baseline: bool = True,
    on_save: Callable[[SaveRecord], None] | None = None,
) -> Watcher:
    """Watch ROOT recursively and record saves in JOURNAL until ``stop()``.

    ``polling=None`` uses inotify and falls back to polling (logged) when inotify is unavailable or out of
    watches; ``True`` forces polling (network mounts, where inotify sees nothing); ``False`` forces inotify.
    Polling waits ``poll_interval`` between passes, or longer when a pass takes long (``poll_delay``).
    With ``baseline``, a background thread remembers the current content of every watched file the journal has
    not seen, so that a first save counts only the lines it changed (``Watcher.baseline_done`` is set after).
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        # Say so plainly: the inotify failure would otherwise read as "inotify unavailable".
        raise FileNotFoundError(errno.ENOENT, "the folder to watch does not exist", str(root))
    exclude = tuple(exclude_dirs)
    started = time.time()

    def make_handler(is_polling: bool) -> SaveHandler:
        return SaveHandler(
            journal,
            root=root,
            include_globs=include_globs,
            exclude_dirs=exclude,
            debounce=debounce,
            polling=is_polling,
            on_save=on_save,
        )

    try:
        # Before watching: creating it under a running recursive watch adds noise (and a watchdog warning).
        journal.prepare()
    except OSError as exc:
        logger.warning("save journal: cannot create %s (%s)", layout.workspace_state(journal.workspace),
                       exc.strerror or exc)
    watcher: Watcher | None = None
    if not polling:
        handler = make_handler(False)
        try:
            watcher = Watcher(_start_inotify(root, handler), handler, "inotify")
        except OSError as exc:
            if polling is False:
                raise
            logger.warning(
                "inotify is not available for %s (%s); watching by polling every %gs instead. %s",
                root,
                exc.strerror or exc,
                poll_interval,
                _inotify_hint(exc),
            )
    if watcher is None:
        handler = make_handler(True)
        # lstat: a link is looked at, never through (as the journal reads, and as inotify watches).
        emitter = partial(AdaptivePollingEmitter, stat=os.lstat, listdir=_scandir_without(frozenset(exclude)))
        observer = BaseObserver(emitter, timeout=poll_interval)  # type: ignore[arg-type]
        observer.schedule(handler, str(root), recursive=True)
        observer.start()
        watcher = Watcher(observer, handler, "polling")
    watcher.handler.start()
    logger.info("watching %s for saves (%s)", root, watcher.mode)
    if baseline:
        threading.Thread(
            target=_baseline, args=(watcher, journal, root, started), name="devagent-baseline", daemon=True
        ).start()
    else:
        watcher.baseline_done.set()
    return watcher


class _ToHandler(FileEvents):
    """InotifyTree's reports as the watchdog events SaveHandler takes (the ones watchdog's inotify would give)."""

    def __init__(self, handler: SaveHandler) -> None:
        self.handler = handler

    def closed(self, path: str) -> None:
        self.handler.dispatch(FileClosedEvent(path))

    def created(self, path: str) -> None:
        self.handler.dispatch(FileCreatedEvent(path))

    def moved(self, src: str, dest: str) -> None:
        self.handler.dispatch(FileMovedEvent(src, dest))


def _start_inotify(root: Path, handler: SaveHandler) -> InotifyTree:
    # A file moved in from outside the tree arrives as a move with an empty source (not a creation), so "moved
    # onto the path" covers it too. start() adds the watches, one per folder that is not excluded: ENOSPC when
    # the limit is reached (having closed what it opened).
    tree = InotifyTree(str(root), _ToHandler(handler), exclude_dirs=handler.exclude_dirs)
    tree.start()
    return tree


POLL_COST_SHARE = 0.05  # polling may keep one core busy for at most this share of the time
MAX_POLL_INTERVAL = 60.0


def poll_delay(interval: float, last_pass: float) -> float:
    """How long to wait before the next pass over the tree: INTERVAL, or longer when the last pass took
    LAST_PASS seconds, so that polling costs at most POLL_COST_SHARE of a core (up to MAX_POLL_INTERVAL).

    >>> poll_delay(1.0, 0.01), poll_delay(1.0, 0.2), poll_delay(1.0, 30.0)
    (1.0, 4.0, 60.0)
    """
    return max(interval, min(MAX_POLL_INTERVAL, last_pass / POLL_COST_SHARE))


class AdaptivePollingEmitter(PollingEmitter):
    """watchdog's polling emitter, waiting ``poll_delay`` between passes instead of a fixed interval (a large
    tree on a slow network mount would otherwise be walked back to back)."""

    last_pass = 0.0
    _said_slow = False

    @property
    def timeout(self) -> float:
        return poll_delay(float(super().timeout), self.last_pass)

    def queue_events(self, timeout: float) -> None:
        if self.stopped_event.wait(timeout):
            return
        started = time.monotonic()
        super().queue_events(0)  # the pass itself: the wait is done
        self.last_pass = time.monotonic() - started
        delay = self.timeout
        if delay > 2 * float(super().timeout) and not self._said_slow:
            self._said_slow = True
            logger.info("polling every %.0fs: one pass over %s takes %.1fs", delay, self.watch.path,
                        self.last_pass)


def _inotify_hint(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "To use inotify, raise the limit on the host: sudo sysctl fs.inotify.max_user_watches=524288"
    if exc.errno == errno.EMFILE:
        return "To use inotify, raise the limit on the host: sudo sysctl fs.inotify.max_user_instances=512"
    return ""


def _scandir_without(exclude: frozenset[str]) -> Callable[[str | None], Iterator[os.DirEntry[str]]]:
    """``os.scandir`` that hides excluded folders and links to folders, so the polling observer never walks
    .venv or data/ and, like inotify, does not follow links (a linked dataset would be walked each poll)."""

    def hidden(e: os.DirEntry[str]) -> bool:
        return e.is_dir() and (e.name in exclude or e.is_symlink())

    def scandir(path: str | None) -> Iterator[os.DirEntry[str]]:
        with os.scandir(path) as it:
            return iter([e for e in it if not hidden(e)])

    return scandir


def iter_watched_files(root: Path, handler: SaveHandler) -> Iterator[Path]:
    """Every file under ROOT the handler watches; excluded folders are skipped without entering them."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in handler.exclude_dirs]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if handler.is_watched(path):
                yield Path(path)


def _baseline(watcher: Watcher, journal: Journal, root: Path, started: float) -> None:
    try:
        seen: set[str] = set()
        stored = 0
        for path in iter_watched_files(root, watcher.handler):
            seen.add(journal.relative(path))
            try:
                # A file written since we started is the handler's to record: baselining it could swallow
                # that save (same hash afterwards). Links, FIFOs and devices are refused by the journal.
                if path.lstat().st_mtime < started and journal.baseline(path):
                    stored += 1
            except OSError as exc:
                logger.debug("baseline of %s skipped: %s", path, exc)
        pruned = journal.prune_snapshots(seen, older_than=started)
        logger.info(
            "save baseline: %d files, %d new snapshots, %d stale ones removed", len(seen), stored, pruned
        )
    except Exception:
        logger.exception("save baseline failed; first saves of unseen files will count all their lines")
    finally:
        watcher.baseline_done.set()
