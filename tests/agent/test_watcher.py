"""Save detection: the handler driven by hand-made watchdog events, and the files the journal does not read
(real observers with real editors: test_watcher_observers.py)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
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

from devagent.agent.journal import Journal
from devagent.agent.watcher import SaveHandler, is_temp_name
from devagent.core.globs import compile_glob
from devagent.core.notebook import SaveRecord, render_edits_since
from tests.agent.watcher_support import (
    NOW,
    CountingJournal,
    FakeClock,
    T,
    p,
    settle,
    snapshot_bytes,
)


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
