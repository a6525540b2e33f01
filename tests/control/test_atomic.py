"""Atomic writes and the cross-process lock (control/atomic.py) that every change to devagent's ssh files goes
through."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from devagent.control.atomic import FileLock, atomic_write
from devagent.errors import DevagentError, ExitStatus


def raised(call) -> DevagentError:  # type: ignore[no-untyped-def]
    with pytest.raises(DevagentError) as info:
        call()
    return info.value


class TestAtomicWrite:
    def test_a_new_file_gets_mode_0600(self, tmp_path: Path) -> None:
        atomic_write(tmp_path / "f", b"x")
        assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
        assert (tmp_path / "f").read_bytes() == b"x"

    def test_an_existing_file_keeps_its_mode(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_bytes(b"old")
        (tmp_path / "f").chmod(0o644)
        atomic_write(tmp_path / "f", b"new")
        assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644

    def test_a_symlink_stays_a_link_and_its_final_target_is_replaced(self, tmp_path: Path) -> None:
        (tmp_path / "real").write_bytes(b"old")
        (tmp_path / "link1").symlink_to(tmp_path / "real")
        (tmp_path / "link2").symlink_to("link1")
        atomic_write(tmp_path / "link2", b"new")
        assert (tmp_path / "link2").is_symlink() and (tmp_path / "link1").is_symlink()
        assert (tmp_path / "real").read_bytes() == b"new"

    def test_no_temporary_file_is_left_behind(self, tmp_path: Path) -> None:
        atomic_write(tmp_path / "f", b"x", mode=0o640)
        assert [p.name for p in tmp_path.iterdir()] == ["f"]
        assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


class TestFileLock:
    def test_a_second_holder_times_out_with_a_message_that_names_the_fix(self, tmp_path: Path) -> None:
        lock = tmp_path / "d" / ".lock"
        with FileLock(lock):
            error = raised(FileLock(lock, timeout=0.2).__enter__)
        assert str(error) == (
            f"another devagent has been changing the ssh config for more than 0.2 s (it holds {lock})\n"
            "  hint: wait for the other devagent command to finish, then run this one again"
        )
        assert error.status == ExitStatus.SSH_CONFIG
        assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700

    def test_the_lock_is_free_again_after_the_block(self, tmp_path: Path) -> None:
        with FileLock(tmp_path / ".lock"):
            pass
        # Must not raise: a lock still held would make this one give up after 0.1 s with a DevagentError.
        with FileLock(tmp_path / ".lock", timeout=0.1) as again:
            assert again is not None

    def test_the_status_and_the_wait_notice_are_the_callers(self, tmp_path: Path) -> None:
        waits: list[str] = []
        with FileLock(tmp_path / ".lock"):
            error = raised(FileLock(tmp_path / ".lock", timeout=0.2, purpose="environment 'a'",
                                    status=ExitStatus.CONFLICT, on_wait=lambda: waits.append("w")).__enter__)
        assert error.status == ExitStatus.CONFLICT
        assert "changing environment 'a' for more than 0.2 s" in str(error)
        assert waits == ["w"]  # once, however long it waited

    def test_a_discarded_lock_file_is_removed_and_a_waiter_locks_the_path_anew(self, tmp_path: Path) -> None:
        lock = tmp_path / ".lock"
        waiting = threading.Event()
        release = threading.Event()
        holder_b: list[int] = []

        def second() -> None:
            with FileLock(lock, timeout=10, on_wait=waiting.set):
                holder_b.append(lock.stat().st_ino)  # the path exists again, and B holds it
                release.wait(30)  # until the third one has tried, however slow the machine

        with FileLock(lock) as first:
            first.discard()
            thread = threading.Thread(target=second)
            thread.start()
            assert waiting.wait(5)  # B opened the old file and waits on it
        # A has unlinked the file B was waiting on; B must not count that as holding the path.
        deadline = time.monotonic() + 5
        while not holder_b and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder_b, "the waiter never took the lock"
        third = raised(FileLock(lock, timeout=0.1).__enter__)  # so a third one cannot take it at the same time
        assert third.status == ExitStatus.SSH_CONFIG
        release.set()
        thread.join()
        assert lock.exists()  # B did not discard it
