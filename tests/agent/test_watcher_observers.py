"""Save detection through real observers (inotify and polling) with real editors, and what the real watcher costs:
inotify watches, memory, hostile files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devagent.agent import inotify as inotify_module
from devagent.agent import watcher as watcher_module
from devagent.agent.journal import Journal
from devagent.agent.watcher import SaveHandler, Watcher, start_watcher
from tests.agent.watcher_support import (
    CountingJournal,
    snapshot_bytes,
)

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
