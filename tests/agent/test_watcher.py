"""Save detection: handlers driven by hand-made watchdog events, then real observers with real editors."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from watchdog.events import (
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from devagent.agent import inotify as inotify_module
from devagent.agent import watcher as watcher_module
from devagent.agent.journal import Journal, count_changed_lines
from devagent.agent.watcher import SaveHandler, Watcher, is_temp_name, start_watcher
from devagent.core.globs import compile_glob
from devagent.core.notebook import SaveRecord, render_edits_since

NOW = datetime(2026, 11, 27, 14, 2, tzinfo=timezone.utc)
T = TypeVar("T")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CountingJournal(Journal):
    """A real journal that also counts how often it was asked to check a file."""

    def __init__(self, workspace: Path) -> None:
        super().__init__(workspace)
        self.checks: list[str] = []

    def record_save(self, path: Path, now: datetime) -> SaveRecord | None:
        self.checks.append(self.relative(path))
        return super().record_save(path, now)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "code"
    workspace.mkdir()
    (workspace / "train.py").write_text("import torch\nlr = 1e-3\n")
    return workspace


@pytest.fixture
def journal(ws: Path) -> CountingJournal:
    j = CountingJournal(ws)
    j.baseline(ws / "train.py")
    return j


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def handler(ws: Path, journal: CountingJournal, clock: FakeClock) -> SaveHandler:
    return SaveHandler(journal, root=ws, clock=clock, now=lambda: NOW)


def settle(handler: SaveHandler, clock: FakeClock) -> list[SaveRecord]:
    clock.advance(handler.debounce + 0.01)
    return handler.run_due()


def p(ws: Path, name: str) -> str:
    return str(ws / name)


class TestHandlerWithHandMadeEvents:
    def test_an_in_place_save_is_a_modified_then_closed_event_and_records_one_save(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "train.py").write_text("import torch\nlr = 3e-4\nepochs = 10\n")
        handler.dispatch(FileOpenedEvent(p(ws, "train.py")))
        handler.dispatch(FileModifiedEvent(p(ws, "train.py")))
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        assert settle(handler, clock) == [
            SaveRecord(NOW.isoformat(timespec="milliseconds"), "train.py", journal.saves_since(0)[0].sha256, 2, 1)
        ]

    def test_a_rename_save_is_a_move_onto_the_path_and_records_one_save(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "train.py___jb_tmp___").write_text("import torch\nlr = 3e-4\n")
        for event in (
            FileCreatedEvent(p(ws, "train.py___jb_tmp___")),
            FileClosedEvent(p(ws, "train.py___jb_tmp___")),
            FileMovedEvent(p(ws, "train.py"), p(ws, "train.py___jb_old___")),
        ):
            handler.dispatch(event)
        os.replace(ws / "train.py___jb_tmp___", ws / "train.py")
        handler.dispatch(FileMovedEvent(p(ws, "train.py___jb_tmp___"), p(ws, "train.py")))
        assert [(r.path, r.lines_added, r.lines_removed) for r in settle(handler, clock)] == [("train.py", 1, 1)]
        assert journal.checks == ["train.py"]

    def test_vims_full_save_sequence_records_exactly_one_save(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        os.replace(ws / "train.py", ws / "train.py~")
        (ws / "train.py").write_text("import torch\nlr = 1e-3\nwarmup = 100\n")
        for event in (
            FileCreatedEvent(p(ws, "4913")),
            FileClosedEvent(p(ws, "4913")),
            FileDeletedEvent(p(ws, "4913")),
            FileMovedEvent(p(ws, "train.py"), p(ws, "train.py~")),
            FileCreatedEvent(p(ws, "train.py")),
            FileModifiedEvent(p(ws, "train.py")),
            FileClosedEvent(p(ws, "train.py")),
            FileDeletedEvent(p(ws, "train.py~")),
            DirModifiedEvent(str(ws)),
        ):
            handler.dispatch(event)
        (ws / "train.py~").unlink()
        assert [(r.path, r.lines_added, r.lines_removed) for r in settle(handler, clock)] == [("train.py", 1, 0)]
        assert journal.checks == ["train.py"]

    def test_touch_is_checked_but_records_nothing_because_the_content_is_unchanged(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        os.utime(ws / "train.py")
        handler.dispatch(FileOpenedEvent(p(ws, "train.py")))
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        assert settle(handler, clock) == []
        assert journal.checks == ["train.py"]
        assert len(journal) == 0

    def test_running_a_script_opens_and_closes_it_without_writing_and_is_not_even_checked(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        handler.dispatch(FileOpenedEvent(p(ws, "train.py")))
        handler.dispatch(FileClosedNoWriteEvent(p(ws, "train.py")))
        assert settle(handler, clock) == []
        assert journal.checks == []

    @pytest.mark.parametrize(
        "name",
        [
            "train.py~",
            ".train.py.swp",
            ".train.py.swx",
            "4913",
            ".#train.py",
            "train.py.tmp",
            "train.py___jb_tmp___",
            "train.py___jb_old___",
            ".train.py.kate-swp",
            "sedX1y2Z3",
        ],
    )
    def test_editors_temporary_files_are_ignored(
        self, ws: Path, journal: CountingJournal, clock: FakeClock, name: str
    ) -> None:
        # Include everything, so only the temp-name rule can keep these out.
        handler = SaveHandler(journal, root=ws, clock=clock, include_globs=("**",))
        (ws / name).write_text("x = 1\n")
        handler.dispatch(FileClosedEvent(p(ws, name)))
        handler.dispatch(FileMovedEvent(p(ws, "other"), p(ws, name)))
        assert is_temp_name(name)
        assert settle(handler, clock) == []
        assert journal.checks == []

    @pytest.mark.parametrize(
        "folder",
        [
            ".git",
            ".venv",
            "node_modules",
            "data",
            "checkpoints",
            "wandb",
            ".devagent",
            "lab-notebook.assets",
            "src/__pycache__",
            "pkg/.venv/lib",
        ],
    )
    def test_files_in_excluded_folders_are_ignored_at_any_depth(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock, folder: str
    ) -> None:
        (ws / folder).mkdir(parents=True, exist_ok=True)
        (ws / folder / "mod.py").write_text("x = 1\n")
        handler.dispatch(FileClosedEvent(str(ws / folder / "mod.py")))
        assert settle(handler, clock) == []
        assert journal.checks == []

    def test_files_that_match_no_include_glob_are_ignored(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "notes.md").write_text("hi\n")
        handler.dispatch(FileClosedEvent(p(ws, "notes.md")))
        assert settle(handler, clock) == []
        assert journal.checks == []

    def test_directory_events_and_files_outside_the_root_are_ignored(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock, tmp_path: Path
    ) -> None:
        (tmp_path / "elsewhere.py").write_text("x = 1\n")
        handler.dispatch(DirMovedEvent(p(ws, "old"), p(ws, "pkg.py")))
        handler.dispatch(FileClosedEvent(str(tmp_path / "elsewhere.py")))
        handler.dispatch(FileMovedEvent(p(ws, "train.py"), ""))  # moved out of the tree
        assert settle(handler, clock) == []
        assert journal.checks == []

    def test_a_modification_without_a_close_is_not_a_save_on_inotify_but_is_on_polling(
        self, ws: Path, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "train.py").write_text("import torch\nlr = 5e-4\n")
        inotify = SaveHandler(journal, root=ws, clock=clock)
        inotify.dispatch(FileModifiedEvent(p(ws, "train.py")))
        assert settle(inotify, clock) == []
        polling = SaveHandler(journal, root=ws, clock=clock, polling=True)
        polling.dispatch(FileModifiedEvent(p(ws, "train.py")))
        assert [r.path for r in settle(polling, clock)] == ["train.py"]

    def test_a_creation_alone_is_checked_because_a_file_in_a_new_folder_may_be_written_before_it_is_watched(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "pkg").mkdir()
        (ws / "pkg" / "util.py").write_text("def f():\n    return 1\n")
        handler.dispatch(FileCreatedEvent(p(ws, "pkg/util.py")))
        assert [(r.path, r.lines_added, r.lines_removed) for r in settle(handler, clock)] == [("pkg/util.py", 2, 0)]

    def test_renaming_a_watched_file_is_not_a_save_and_its_next_save_diffs_against_the_old_name(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        os.rename(ws / "train.py", ws / "main.py")
        handler.dispatch(FileMovedEvent(p(ws, "train.py"), p(ws, "main.py")))
        assert settle(handler, clock) == []
        assert journal.checks == ["main.py"]
        with (ws / "main.py").open("a") as f:
            f.write("epochs = 3\n")
        handler.dispatch(FileClosedEvent(p(ws, "main.py")))
        assert [(r.path, r.lines_added, r.lines_removed) for r in settle(handler, clock)] == [("main.py", 1, 0)]

    def test_a_burst_of_events_gives_one_check_at_its_trailing_edge(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        for i in range(10):
            (ws / "train.py").write_text(f"import torch\nlr = {i}\n")
            handler.dispatch(FileClosedEvent(p(ws, "train.py")))
            clock.advance(0.05)  # each event inside the quiet period of the one before
            assert handler.run_due() == []
        clock.advance(handler.debounce - 0.05 - 0.001)
        assert handler.run_due() == []  # still within 0.2 s of the last event
        clock.advance(0.002)
        assert [(r.path, r.lines_added, r.lines_removed) for r in handler.run_due()] == [("train.py", 1, 1)]
        assert journal.checks == ["train.py"]
        assert (ws / "train.py").read_bytes() == (ws / ".devagent" / "snapshots").joinpath(
            next(iter(os.listdir(ws / ".devagent" / "snapshots")))
        ).read_bytes()

    def test_debounce_is_per_path(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        (ws / "model.py").write_text("class Net: ...\n")
        handler.dispatch(FileClosedEvent(p(ws, "model.py")))
        clock.advance(0.15)
        (ws / "train.py").write_text("import torch\n")
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        clock.advance(0.1)
        assert [r.path for r in handler.run_due()] == ["model.py"]
        clock.advance(0.15)
        assert [r.path for r in handler.run_due()] == ["train.py"]

    def test_a_file_deleted_before_its_check_records_nothing(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        (ws / "train.py").unlink()
        assert settle(handler, clock) == []
        assert journal.checks == ["train.py"]

    def test_a_journal_that_cannot_be_written_is_logged_and_the_handler_carries_on(
        self,
        ws: Path,
        handler: SaveHandler,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def full_disk(*args: object, **kwargs: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("devagent.agent.journal.locked_append", full_disk)
        (ws / "train.py").write_text("changed\n")
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        with caplog.at_level(logging.WARNING, logger="devagent.watcher"):
            assert settle(handler, clock) == []
        assert caplog.messages == [f"could not record a save of {ws / 'train.py'}: [Errno 28] No space left on device"]
        monkeypatch.undo()  # space freed: the next save of the file is recorded
        (ws / "train.py").write_text("changed again\n")
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        assert [r.path for r in settle(handler, clock)] == ["train.py"]

    def test_globs_match_from_the_workspace_root(self) -> None:
        rx = compile_glob("**/*.py")
        assert [bool(rx.match(s)) for s in ("a.py", "a/b/c.py", "a.pyc", "a/b.py/c")] == [
            True,
            True,
            False,
            False,
        ]
        assert bool(compile_glob("configs/*.yaml").match("configs/a.yaml"))
        assert not compile_glob("configs/*.yaml").match("configs/x/a.yaml")


# --- files the journal does not read (issue 10, item 2) ---------------------------------------------------


def promptly(call: Callable[[], T], timeout: float = 10.0) -> T:
    """CALL's result, run on a daemon thread: fails if it has not returned within TIMEOUT seconds (a reader
    blocked on a FIFO, or reading /dev/zero, never returns)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout}s"
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])


def next_save_is_recorded(ws: Path, handler: SaveHandler, clock: FakeClock) -> None:
    (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
    handler.dispatch(FileClosedEvent(p(ws, "train.py")))
    assert [(r.path, r.lines_added, r.lines_removed) for r in promptly(lambda: settle(handler, clock))] == [
        ("train.py", 1, 1)
    ]


def snapshot_bytes(journal: Journal) -> list[bytes]:
    return [f.read_bytes() for f in sorted(journal.snapshots_dir.iterdir()) if f.is_file() and not f.is_symlink()]


class TestFilesTheJournalDoesNotRead:
    """A workspace anyone in the environment can write: a link to /dev/zero, a FIFO, a 5 GB file or a link out of
    the workspace must neither hang nor grow the agent, and the saves after it are still recorded."""

    def test_a_link_to_dev_zero_is_skipped_with_one_log_line_and_the_next_save_is_recorded(
        self, ws: Path, handler: SaveHandler, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        os.symlink("/dev/zero", ws / "z.py")
        with caplog.at_level(logging.WARNING, logger="devagent.watcher"):
            for event in (FileCreatedEvent(p(ws, "z.py")), FileClosedEvent(p(ws, "z.py"))):
                handler.dispatch(event)
                assert promptly(lambda: settle(handler, clock)) == []
        assert caplog.messages == [f"save watcher: skipped {ws}/z.py: a symbolic link, not followed"]
        next_save_is_recorded(ws, handler, clock)

    def test_a_fifo_is_never_opened_and_the_next_save_is_recorded(
        self, ws: Path, handler: SaveHandler, clock: FakeClock, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch
    ) -> None:
        os.mkfifo(ws / "p.py")
        opened: list[str] = []
        real_open = os.open

        def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            opened.append(os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", spy)
        handler.dispatch(FileClosedEvent(p(ws, "p.py")))
        with caplog.at_level(logging.WARNING, logger="devagent.watcher"):
            assert promptly(lambda: settle(handler, clock)) == []
        assert not [name for name in opened if name.endswith("p.py")]
        assert caplog.messages == [f"save watcher: skipped {ws}/p.py: a FIFO, not a regular file"]
        next_save_is_recorded(ws, handler, clock)

    def test_a_file_over_the_cap_is_journaled_by_size_and_hash_in_bounded_memory_and_not_copied(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock
    ) -> None:
        big = ws / "big.py"
        with big.open("wb") as f:  # sparse: no disk used
            f.write(b"x = 1\n")
            f.truncate(64 << 20)
        expected = hashlib.sha256()
        with big.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                expected.update(chunk)
        handler.dispatch(FileClosedEvent(str(big)))
        tracemalloc.start()
        try:
            records = promptly(lambda: settle(handler, clock))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [(r.path, r.sha256, r.size, r.lines_added, r.lines_removed) for r in records] == [
            ("big.py", expected.hexdigest(), 64 << 20, 0, 0)
        ]
        assert peak < 4 << 20  # one chunk at a time, not the file
        assert max(len(b) for b in snapshot_bytes(journal)) < 1 << 20  # a stand-in with its hash, not a copy
        handler.dispatch(FileClosedEvent(str(big)))  # touched: same content, also for a journal started anew
        assert promptly(lambda: settle(handler, clock)) == []
        assert Journal(ws).record_save(big, NOW) is None
        assert "big.py saved 1× (too large to count lines)" in render_edits_since(journal.saves_since(0))
        next_save_is_recorded(ws, handler, clock)

    def test_links_out_of_the_workspace_are_not_followed_and_nothing_of_their_target_is_copied(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock, tmp_path: Path,
        caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / "secret.py").write_text("token = 'hf_abc'\n")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "x.py").write_text("token = 'hf_abc'\n")
        os.symlink(tmp_path / "secret.py", ws / "link.py")
        os.symlink(tmp_path / "elsewhere", ws / "lib")
        os.symlink("train.py", ws / "alias.py")  # inside the workspace: refused too (train.py is watched itself)
        for name in ("link.py", "lib/x.py", "alias.py"):
            handler.dispatch(FileClosedEvent(p(ws, name)))
        with caplog.at_level(logging.WARNING, logger="devagent.watcher"):
            assert promptly(lambda: settle(handler, clock)) == []
        assert sorted(caplog.messages) == [
            f"save watcher: skipped {ws}/{name}: a symbolic link, not followed"
            for name in ("alias.py", "lib/x.py", "link.py")
        ]
        assert not [b for b in snapshot_bytes(journal) if b"hf_abc" in b]
        next_save_is_recorded(ws, handler, clock)

    def test_a_planted_snapshot_link_is_neither_read_written_through_nor_pruned_through(
        self, ws: Path, handler: SaveHandler, journal: CountingJournal, clock: FakeClock, tmp_path: Path
    ) -> None:
        (snapshot,) = journal.snapshots_dir.iterdir()  # train.py's, from the fixture's baseline
        snapshot.unlink()
        os.symlink("/dev/zero", snapshot)
        (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        (record,) = promptly(lambda: settle(handler, clock))
        assert (record.lines_added, record.lines_removed) == (2, 0)  # no previous content: all of it new

        precious = tmp_path / "precious"
        precious.mkdir()
        (precious / "thesis.tex").write_text("years of work\n")
        os.utime(precious / "thesis.tex", (0, 0))
        shutil.rmtree(journal.snapshots_dir)
        os.symlink(precious, journal.snapshots_dir)
        (ws / "train.py").write_text("import torch\nlr = 1e-2\n")
        handler.dispatch(FileClosedEvent(p(ws, "train.py")))
        assert [r.path for r in promptly(lambda: settle(handler, clock))] == ["train.py"]  # recorded all the same
        assert journal.prune_snapshots(set(), older_than=time.time() + 1) == 0
        assert sorted(os.listdir(precious)) == ["thesis.tex"]  # no snapshot written there, nothing deleted


# --- real observers -----------------------------------------------------------------------------------------


def inotify_instances() -> list[str]:
    """This process's inotify descriptors."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                fds.append(fd)
    return sorted(fds)


def inotify_watches(fd: int | str) -> int:
    """How many watches the inotify descriptor FD of this process holds: one ``inotify wd:`` line each."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return sum(line.startswith("inotify wd:") for line in f)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll CONDITION until it holds; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def running(ws: Path) -> Iterator[tuple[Watcher, CountingJournal]]:
    journal = CountingJournal(ws)
    w = start_watcher(ws, journal, debounce=0.05)
    assert w.baseline_done.wait(10)
    try:
        yield w, journal
    finally:
        w.stop()


def quiet_for(journal: Journal, count: int, seconds: float = 0.3) -> None:
    """Nothing more than COUNT saves shows up within SECONDS (a check that extra saves do not appear)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(journal) <= count
        time.sleep(0.02)


def vim(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["vim", "-u", "NONE", "-N", "-n", "-es", *args],
        cwd=cwd,
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


needs_vim = pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")


class TestRealObserver:
    def test_the_first_save_after_start_counts_only_the_lines_it_changed(
        self, ws: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        w, journal = running
        assert w.mode == "inotify"
        with (ws / "train.py").open("a") as f:
            f.write("epochs = 10\n")
        wait_for(lambda: len(journal) == 1)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [("train.py", 1, 0)]

    def test_in_place_writes_are_recorded(self, ws: Path, running: tuple[Watcher, CountingJournal]) -> None:
        _, journal = running
        (ws / "src").mkdir()
        (ws / "src" / "model.py").write_text("class Net: ...\n")
        wait_for(lambda: len(journal) == 1)
        (ws / "src" / "model.py").write_text("class Net:\n    pass\n")
        wait_for(lambda: len(journal) == 2)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [
            ("src/model.py", 1, 0),
            ("src/model.py", 2, 1),
        ]

    def test_os_replace_rename_saves_are_recorded(self, ws: Path, running: tuple[Watcher, CountingJournal]) -> None:
        _, journal = running
        (ws / ".train.py.tmp").write_text("import torch\nlr = 3e-4\n")
        os.replace(ws / ".train.py.tmp", ws / "train.py")
        wait_for(lambda: len(journal) == 1)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [("train.py", 1, 1)]

    def test_a_file_moved_in_from_outside_the_workspace_is_recorded(
        self, ws: Path, tmp_path: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        _, journal = running
        (tmp_path / "eval.py").write_text("print('eval')\n")
        os.replace(tmp_path / "eval.py", ws / "eval.py")
        wait_for(lambda: len(journal) == 1)
        assert journal.saves_since(0)[0].path == "eval.py"

    def test_a_folder_moved_in_from_outside_records_each_of_its_files(
        self, ws: Path, tmp_path: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        _, journal = running
        (tmp_path / "pkg" / "sub").mkdir(parents=True)
        (tmp_path / "pkg" / "a.py").write_text("a = 1\n")
        (tmp_path / "pkg" / "sub" / "b.py").write_text("b = 2\n")
        os.replace(tmp_path / "pkg", ws / "pkg")
        wait_for(lambda: len(journal) == 2)
        assert sorted(r.path for r in journal.saves_since(0)) == ["pkg/a.py", "pkg/sub/b.py"]

    def test_renaming_a_folder_inside_the_workspace_records_nothing(
        self, ws: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        _, journal = running
        (ws / "pkg").mkdir()
        (ws / "pkg" / "a.py").write_text("a = 1\n")
        wait_for(lambda: len(journal) == 1)
        os.rename(ws / "pkg", ws / "lib")
        wait_for(lambda: journal.checks[-1:] == ["lib/a.py"])
        (ws / "marker.py").write_text("x = 1\n")  # once this is recorded, everything before it was handled
        wait_for(lambda: len(journal) == 2)
        assert [r.path for r in journal.saves_since(0)] == ["pkg/a.py", "marker.py"]

    def test_sed_in_place_is_recorded_once(self, ws: Path, running: tuple[Watcher, CountingJournal]) -> None:
        _, journal = running
        subprocess.run(["sed", "-i", "s/1e-3/3e-4/", "train.py"], cwd=ws, check=True)
        wait_for(lambda: len(journal) == 1)
        quiet_for(journal, 1)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [("train.py", 1, 1)]
        assert journal.checks == ["train.py"]

    @needs_vim
    def test_vim_writing_in_place_is_recorded_once(self, ws: Path, running: tuple[Watcher, CountingJournal]) -> None:
        _, journal = running
        # Under /tmp vim skips its backup ('backupskip') and writes in place.
        vim(["-c", "normal Goepochs = 10", "-c", "wq", "train.py"], ws)
        wait_for(lambda: len(journal) == 1)
        quiet_for(journal, 1)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [("train.py", 1, 0)]

    @needs_vim
    @pytest.mark.parametrize("options", ["backupskip=", "backupskip= backupcopy=no writebackup"])
    def test_vims_rename_save_through_a_backup_file_is_recorded_once(
        self, ws: Path, running: tuple[Watcher, CountingJournal], options: str
    ) -> None:
        _, journal = running
        inode = (ws / "train.py").stat().st_ino
        vim(["-c", f"set {options}", "-c", "normal Goepochs = 10", "-c", "wq", "train.py"], ws)
        assert (ws / "train.py").stat().st_ino != inode  # vim really wrote a new file
        wait_for(lambda: len(journal) == 1)
        quiet_for(journal, 1)
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [("train.py", 1, 0)]
        assert journal.checks == ["train.py"]

    def test_touch_and_running_the_script_record_nothing(
        self, ws: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        _, journal = running
        subprocess.run(["touch", "train.py"], cwd=ws, check=True)
        subprocess.run([sys.executable, "-c", "open('train.py').read()"], cwd=ws, check=True)
        wait_for(lambda: journal.checks == ["train.py"])  # touch closes after write: checked, then dropped
        (ws / "marker.py").write_text("x = 1\n")  # events arrive in order: once this is in, the rest was seen
        wait_for(lambda: len(journal) == 1)
        assert [r.path for r in journal.saves_since(0)] == ["marker.py"]

    def test_twenty_quick_saves_of_one_file_can_collapse_but_the_last_content_is_recorded(
        self, ws: Path, running: tuple[Watcher, CountingJournal]
    ) -> None:
        _, journal = running
        for i in range(20):
            (ws / "train.py").write_text(f"import torch\nlr = {i}\n")
        final = (ws / "train.py").read_bytes()
        wait_for(lambda: len(journal) >= 1 and journal.saves_since(0)[-1].sha256 == _sha(final))
        assert not (ws / "lab-notebook.md").exists()  # the watcher writes the journal only

    def test_stop_checks_saves_still_in_their_quiet_period(self, ws: Path) -> None:
        journal = CountingJournal(ws)
        w = start_watcher(ws, journal, debounce=30.0, baseline=False)
        (ws / "train.py").write_text("changed\n")
        wait_for(lambda: w.handler.waiting == 1)
        w.stop()
        assert [r.path for r in journal.saves_since(0)] == ["train.py"]

    def test_the_journal_survives_a_restart_and_the_next_diff_uses_the_last_content(self, ws: Path) -> None:
        journal = CountingJournal(ws)
        w = start_watcher(ws, journal, debounce=0.05)
        assert w.baseline_done.wait(10)
        (ws / "train.py").write_text("a\nb\nc\n")
        wait_for(lambda: len(journal) == 1)
        w.stop()
        (ws / "train.py").write_text("a\nB\nc\n")  # edited while the agent was down: not a save we saw
        again = CountingJournal(ws)
        assert len(again) == 1
        w = start_watcher(ws, again, debounce=0.05)
        try:
            assert w.baseline_done.wait(10)
            (ws / "train.py").write_text("a\nB\nc\nd\n")
            wait_for(lambda: len(again) == 2)
        finally:
            w.stop()
        # The first save replaced both lines of the baseline with three; the second is diffed against the
        # first (the journal's last content), so it includes the edit made while the agent was down.
        assert [(r.lines_added, r.lines_removed) for r in again.saves_since(0)] == [(3, 2), (2, 1)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TestWhatTheRealWatcherCosts:
    """inotify watches count against the uid's limit, shared host-wide; a hostile file must not stall the watcher."""

    def test_no_inotify_watch_is_placed_in_excluded_folders_or_through_links(self, ws: Path, tmp_path: Path) -> None:
        for i in range(500):
            (ws / "data" / f"class-{i:03d}").mkdir(parents=True)
        (ws / ".venv" / "lib" / "site-packages").mkdir(parents=True)
        (ws / "node_modules" / "left-pad").mkdir(parents=True)
        (ws / "src" / "models").mkdir(parents=True)
        (tmp_path / "linked" / "deep").mkdir(parents=True)
        os.symlink(tmp_path / "linked", ws / "linked")
        before = inotify_instances()
        journal = CountingJournal(ws)
        w = start_watcher(ws, journal, debounce=0.05, baseline=False)
        try:
            (fd,) = [fd for fd in inotify_instances() if fd not in before]
            assert inotify_watches(fd) == 3  # the workspace, src, src/models: one line each in fdinfo

            def marker(n: int) -> None:  # events arrive in order: once this save is in, the ones before were seen
                (ws / "marker.py").write_text(f"n = {n}\n")
                wait_for(lambda: [r.path for r in journal.saves_since(0)].count("marker.py") == n)

            (ws / "src" / "new").mkdir()
            (ws / "src" / "new" / "x.py").write_text("x = 1\n")
            wait_for(lambda: "src/new/x.py" in [r.path for r in journal.saves_since(0)])
            (ws / "data" / "class-500" / "deeper").mkdir(parents=True)
            marker(1)
            assert inotify_watches(fd) == 4  # src/new, not data/class-500
            os.rename(ws / "src" / "new", ws / "checkpoints")  # renamed to an excluded name: unwatched
            marker(2)
            assert inotify_watches(fd) == 3
            os.rename(ws / "src" / "models", ws / "models")  # its watch follows it
            (ws / "models" / "net.py").write_text("class Net: ...\n")
            wait_for(lambda: "models/net.py" in [r.path for r in journal.saves_since(0)])
            assert inotify_watches(fd) == 3
        finally:
            w.stop()
        assert fd not in inotify_instances()

    @pytest.mark.slow
    def test_hostile_files_through_the_real_watcher_are_skipped_and_saves_go_on_being_recorded(
        self, ws: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Present when the agent starts (its baseline reads every watched file), and made while it runs.
        os.symlink("/dev/zero", ws / "z.py")
        os.mkfifo(ws / "p.py")
        (tmp_path / "outside.py").write_text("token = 'hf_abc'\n")
        os.symlink(tmp_path / "outside.py", ws / "link.py")
        journal = CountingJournal(ws)
        tracemalloc.start()
        try:
            with caplog.at_level(logging.WARNING, logger="devagent"):
                w = start_watcher(ws, journal, debounce=0.05)
                try:
                    assert w.mode == "inotify"
                    assert w.baseline_done.wait(30)
                    os.symlink("/dev/zero", ws / "z2.py")
                    os.mkfifo(ws / "p2.py")
                    os.symlink(tmp_path / "outside.py", ws / "link2.py")
                    (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
                    wait_for(lambda: len(journal) == 1)
                    with (ws / "big.py").open("wb") as f:  # 5 GB, sparse: no disk used
                        f.write(b"x = 1\n")
                        f.truncate(5 << 30)
                    wait_for(lambda: len(journal) == 2, timeout=180)  # hashed in 1 MiB chunks: ~15 s here
                    (ws / "train.py").write_text("import torch\nlr = 1e-2\n")
                    wait_for(lambda: len(journal) == 3)
                finally:
                    w.stop()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [(r.path, r.size) for r in journal.saves_since(0)] == [
            ("train.py", None), ("big.py", 5 << 30), ("train.py", None)
        ]
        assert peak < 16 << 20  # the 5 GB file was never held, nor /dev/zero read
        assert sorted(m for m in caplog.messages if m.startswith("save watcher: skipped")) == [
            f"save watcher: skipped {ws}/link2.py: a symbolic link, not followed",
            f"save watcher: skipped {ws}/p2.py: a FIFO, not a regular file",
            f"save watcher: skipped {ws}/z2.py: a symbolic link, not followed",
        ]
        assert not [b for b in snapshot_bytes(journal) if b"hf_abc" in b]


class TestPolling:
    def test_forced_polling_records_in_place_and_rename_saves(self, ws: Path) -> None:
        journal = CountingJournal(ws)
        w = start_watcher(ws, journal, polling=True, poll_interval=0.1, debounce=0.05)
        try:
            assert w.mode == "polling"
            assert w.baseline_done.wait(10)
            (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
            wait_for(lambda: len(journal) == 1)
            (ws / "tmp-save").write_text("import torch\nlr = 3e-4\nepochs = 3\n")
            os.replace(ws / "tmp-save", ws / "train.py")
            wait_for(lambda: len(journal) == 2)
        finally:
            w.stop()
        assert [(r.path, r.lines_added, r.lines_removed) for r in journal.saves_since(0)] == [
            ("train.py", 1, 1),
            ("train.py", 1, 0),
        ]

    def test_polling_does_not_walk_excluded_folders(self, ws: Path) -> None:
        (ws / ".venv" / "lib").mkdir(parents=True)
        (ws / "src").mkdir()
        scandir = watcher_module._scandir_without(frozenset(watcher_module.DEFAULT_EXCLUDE_DIRS))
        assert sorted(e.name for e in scandir(str(ws))) == ["src", "train.py"]

    def test_polling_waits_longer_when_a_pass_over_the_tree_takes_long(self, ws: Path) -> None:
        from watchdog.observers.api import EventQueue, ObservedWatch

        def slow_lstat(path: str) -> os.stat_result:  # a large tree, or a slow network mount
            time.sleep(0.02)
            return os.lstat(path)

        for i in range(9):
            (ws / f"m{i}.py").write_text("")
        emitter = watcher_module.AdaptivePollingEmitter(
            EventQueue(), ObservedWatch(str(ws), recursive=True), timeout=0.5, stat=slow_lstat, listdir=os.scandir
        )
        assert emitter.timeout == 0.5
        emitter.on_thread_start()  # the first pass, which later ones are compared with
        emitter.queue_events(0)  # one pass: 11 entries × 20 ms
        assert emitter.last_pass >= 0.2
        assert emitter.timeout == pytest.approx(emitter.last_pass / watcher_module.POLL_COST_SHARE)  # ≥ 4 s

    def test_when_inotify_runs_out_of_watches_it_falls_back_to_polling_and_says_so(
        self, ws: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def out_of_watches(root: Path, handler: SaveHandler) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        monkeypatch.setattr(watcher_module, "_start_inotify", out_of_watches)
        journal = CountingJournal(ws)
        with caplog.at_level(logging.WARNING, logger="devagent.watcher"):
            w = start_watcher(ws, journal, poll_interval=0.1, debounce=0.05)
        try:
            assert w.mode == "polling"
            assert caplog.messages == [
                f"inotify is not available for {ws} (inotify watch limit reached); watching by polling every "
                "0.1s instead. To use inotify, raise the limit on the host: "
                "sudo sysctl fs.inotify.max_user_watches=524288"
            ]
            # A save before the baseline is part of the baseline, not a change: wait for it (under load it lags).
            assert w.baseline_done.wait(10)
            (ws / "train.py").write_text("changed\n")
            wait_for(lambda: len(journal) == 1)
        finally:
            w.stop()

    def test_an_inotify_failure_while_adding_watches_releases_the_inotify_instance_and_polls(
        self, ws: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (ws / "a" / "b").mkdir(parents=True)
        tried: list[str] = []
        real = inotify_module.add_watch

        def full_at_the_third(fd: int, path: str, mask: int) -> int:
            tried.append(path)
            if len(tried) == 3:
                raise OSError(errno.ENOSPC, "inotify watch limit reached")
            return real(fd, path, mask)

        monkeypatch.setattr(inotify_module, "add_watch", full_at_the_third)
        before = inotify_instances()
        w = start_watcher(ws, CountingJournal(ws), poll_interval=0.1, baseline=False)
        try:
            assert w.mode == "polling"
            assert len(tried) == 3
            assert inotify_instances() == before  # the half-started one was closed, its watches with it
        finally:
            w.stop()

    def test_a_missing_folder_is_reported_as_missing_not_as_inotify_trouble(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="the folder to watch does not exist"):
            start_watcher(tmp_path / "gone", Journal(tmp_path / "gone"))

    def test_forcing_inotify_raises_instead_of_falling_back(self, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def unavailable(root: Path, handler: SaveHandler) -> None:
            raise OSError(errno.ENOSYS, "inotify unavailable")

        monkeypatch.setattr(watcher_module, "_start_inotify", unavailable)
        with pytest.raises(OSError, match="inotify unavailable"):
            start_watcher(ws, CountingJournal(ws), polling=False)


class TestJournal:
    def test_a_save_is_recorded_only_when_the_content_changed(self, ws: Path) -> None:
        journal = Journal(ws)
        first = journal.record_save(ws / "train.py", NOW)
        assert first is not None and (first.lines_added, first.lines_removed) == (2, 0)  # never seen: all new
        assert journal.record_save(ws / "train.py", NOW) is None
        (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
        second = journal.record_save(ws / "train.py", NOW)
        assert second is not None and (second.lines_added, second.lines_removed) == (1, 1)

    def test_its_state_is_read_back_from_disk_by_a_new_journal(self, ws: Path) -> None:
        journal = Journal(ws)
        journal.baseline(ws / "train.py")
        (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
        recorded = journal.record_save(ws / "train.py", NOW)
        again = Journal(ws)
        assert again.saves_since(0) == [recorded]
        assert again.record_save(ws / "train.py", NOW) is None  # same content as the last save
        assert (ws / ".devagent" / ".gitignore").read_text().endswith("\n*\n")

    def test_saves_since_takes_an_index_or_a_time(self, ws: Path) -> None:
        journal = Journal(ws)
        for minute in range(3):
            (ws / "train.py").write_text(f"step = {minute}\n")
            journal.record_save(ws / "train.py", NOW.replace(minute=minute))
        assert [r.time[11:16] for r in journal.saves_since(1)] == ["14:01", "14:02"]
        assert [r.time[11:16] for r in journal.saves_since(NOW.replace(minute=1))] == ["14:02"]
        assert [r.time[11:16] for r in journal.saves_since("2026-11-27T14:00:30+00:00")] == ["14:01", "14:02"]

    def test_lines_another_process_appends_are_seen_and_a_torn_line_is_skipped(
        self, ws: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        journal = Journal(ws)
        journal.record_save(ws / "train.py", NOW)
        other = SaveRecord("2026-11-27T14:05:00.000+00:00", "model.py", "0" * 64, 1, 0)
        with journal.path.open("a") as f:
            f.write(other.to_json() + "\n" + '{"time": "2026-11-27T14:06')  # a crash mid-line
        assert [r.path for r in journal.saves_since(0)] == ["train.py", "model.py"]
        (ws / "train.py").write_text("changed\n")
        with caplog.at_level(logging.WARNING, logger="devagent.journal"):
            journal.record_save(ws / "train.py", NOW)
        assert [r.path for r in journal.saves_since(0)] == ["train.py", "model.py", "train.py"]
        assert len(caplog.records) == 1 and "skipping an unreadable line" in caplog.messages[0]

    def test_repetitive_lines_do_not_inflate_the_counts(self) -> None:
        # difflib's autojunk would treat these frequent lines as junk and report 150 lines changed.
        lines = ["def f():", "    pass", ""] * 100
        changed = list(lines)
        changed[151] = "    return 1"
        before, after = ("\n".join(x).encode() for x in (lines, changed))
        assert count_changed_lines(before, after) == (1, 1)

    def test_snapshots_of_files_that_are_gone_are_pruned(self, ws: Path) -> None:
        journal = Journal(ws)
        (ws / "old.py").write_text("x = 1\n")
        journal.baseline(ws / "old.py")
        journal.baseline(ws / "train.py")
        assert len(os.listdir(journal.snapshots_dir)) == 2
        assert journal.prune_snapshots({"train.py"}, older_than=time.time() + 1) == 1
        assert journal.knows(ws / "train.py") and not journal.knows(ws / "old.py")

    @given(
        st.lists(st.sampled_from(["a", "b", "", "    pass"]), max_size=40),
        st.lists(st.sampled_from(["a", "b", "", "    pass"]), max_size=40),
    )
    def test_line_counts_always_add_up_to_the_change_in_length(self, old: list[str], new: list[str]) -> None:
        before, after = ("".join(line + "\n" for line in x).encode() for x in (old, new))
        added, removed = count_changed_lines(before, after)
        assert added - removed == len(new) - len(old)
        assert 0 <= added <= len(new) and 0 <= removed <= len(old)
        assert count_changed_lines(before, before) == (0, 0)
