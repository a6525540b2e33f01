"""Appending to the lab notebook: whole entries only, across processes, under a full or read-only disk."""

from __future__ import annotations

import errno
import fcntl
import logging
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devagent.core.markdown import printable
from devagent.core.notebook import entry
from devagent.inside import append
from devagent.inside.notebook_writer import NotebookWriter
from tests.disks import fill_disk

HEADER = (
    "# Lab notebook — test\n\n| environment | test |\n|---|---|\n\n_devagent only appends below this line._\n"
)


def make_entry(i: int, body: str = "") -> str:
    return entry(f"2026-11-27 14:{i % 60:02d} · note {i}", body or f"body of entry {i}")


@pytest.fixture
def notebook(tmp_path: Path) -> NotebookWriter:
    return NotebookWriter(tmp_path / "lab-notebook.md", HEADER)


class TestAppending:
    def test_the_first_entry_creates_the_file_with_the_header_then_the_entry(
        self, notebook: NotebookWriter
    ) -> None:
        notebook.append(make_entry(1))
        assert notebook.path.read_text() == HEADER + make_entry(1)

    def test_entries_follow_each_other_separated_by_a_blank_line(self, notebook: NotebookWriter) -> None:
        notebook.append(make_entry(1))
        notebook.append(make_entry(2))
        assert notebook.path.read_text().endswith(
            "body of entry 1\n\n## 2026-11-27 14:02 · note 2\nbody of entry 2\n"
        )

    def test_a_deleted_notebook_is_started_again_with_the_header(self, notebook: NotebookWriter) -> None:
        notebook.append(make_entry(1))
        notebook.path.unlink()
        notebook.append(make_entry(2))
        assert notebook.path.read_text() == HEADER + make_entry(2)

    def test_an_emptied_notebook_gets_the_header_again(self, notebook: NotebookWriter) -> None:
        notebook.append(make_entry(1))
        notebook.path.write_text("")
        notebook.append(make_entry(2))
        assert notebook.path.read_text() == HEADER + make_entry(2)

    def test_the_users_own_text_between_entries_is_kept_byte_for_byte(self, notebook: NotebookWriter) -> None:
        notebook.append(make_entry(1))
        with notebook.path.open("a") as f:
            f.write("**Observations:** loss plateaued after epoch 3.\n  trailing spaces  \n")
        notebook.append(make_entry(2))
        assert notebook.path.read_text() == (
            HEADER
            + make_entry(1)
            + "**Observations:** loss plateaued after epoch 3.\n  trailing spaces  \n"
            + make_entry(2)
        )

    def test_user_text_without_a_final_newline_gets_one_before_the_next_entry(
        self, notebook: NotebookWriter
    ) -> None:
        notebook.append(make_entry(1))
        with notebook.path.open("a") as f:
            f.write("**Next:** try lr 1e-4")
        notebook.append(make_entry(2))
        assert notebook.path.read_text() == HEADER + make_entry(1) + "**Next:** try lr 1e-4\n" + make_entry(2)

    def test_a_notebook_the_user_started_by_hand_gets_no_header(self, notebook: NotebookWriter) -> None:
        notebook.path.write_text("# My experiments\n")
        notebook.append(make_entry(1))
        assert notebook.path.read_text() == "# My experiments\n" + make_entry(1)

    def test_ensure_header_writes_the_header_only_into_a_missing_or_empty_file(
        self, notebook: NotebookWriter
    ) -> None:
        assert notebook.ensure_header()
        assert notebook.ensure_header()
        assert notebook.path.read_text() == HEADER

    def test_text_that_is_not_an_entry_is_refused(self, notebook: NotebookWriter) -> None:
        with pytest.raises(ValueError, match="not a notebook entry"):
            notebook.append("## no leading newline\n")
        assert not notebook.path.exists()


class TestFailedWrites:
    def test_a_failed_fsync_truncates_back_and_keeps_the_entry_pending(
        self, notebook: NotebookWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        notebook.append(make_entry(1))
        before = notebook.path.read_bytes()

        def failing_fsync(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(append.os, "fsync", failing_fsync)
        with caplog.at_level(logging.WARNING, logger="devagent.notebook"):
            notebook.append(make_entry(2))
        assert notebook.path.read_bytes() == before
        assert notebook.pending == 1
        assert caplog.messages == [
            f"lab notebook {notebook.path}: could not write 1 entry (Input/output error); kept in memory and "
            "retried at the next entry — check the disk"
        ]
        monkeypatch.undo()
        notebook.append(make_entry(3))
        assert notebook.pending == 0
        assert notebook.path.read_text() == HEADER + make_entry(1) + make_entry(2) + make_entry(3)

    def test_an_unwritable_folder_keeps_entries_pending_without_raising(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def failing_open(*args: object, **kwargs: object) -> int:
            raise PermissionError(errno.EACCES, "Permission denied")

        notebook = NotebookWriter(tmp_path / "lab-notebook.md", HEADER)
        monkeypatch.setattr(append.os, "open", failing_open)
        notebook.append(make_entry(1))
        notebook.append(make_entry(2))
        assert notebook.pending == 2
        assert not notebook.flush_pending()
        monkeypatch.undo()
        assert notebook.flush_pending()
        assert notebook.path.read_text() == HEADER + make_entry(1) + make_entry(2)


HOST_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
BASHRC = b"# ~/.bashrc\nexport PATH=$HOME/bin:$PATH\n"


class TestLinks:
    """The notebook may be a link only to a file inside its workspace; a link out is never written through."""

    @pytest.fixture
    def ws(self, tmp_path: Path) -> Path:
        (tmp_path / "ws").mkdir()
        return tmp_path / "ws"

    @pytest.mark.parametrize(("target", "content"), [
        ("etc/devagent/ssh_host_ed25519_key", HOST_KEY),  # sshd would not start again
        ("home/dev/.bashrc", BASHRC),  # every login would run the entry
    ])
    def test_a_notebook_linked_out_of_the_workspace_is_never_written_through(
        self, tmp_path: Path, ws: Path, caplog: pytest.LogCaptureFixture, target: str, content: bytes
    ) -> None:
        victim = tmp_path / target
        victim.parent.mkdir(parents=True)
        victim.write_bytes(content)
        (ws / "lab-notebook.md").symlink_to(victim)
        notebook = NotebookWriter(ws / "lab-notebook.md", HEADER, workspace=ws)
        with caplog.at_level(logging.WARNING, logger="devagent.notebook"):
            assert not notebook.ensure_header()
            notebook.append(make_entry(1))
        assert victim.read_bytes() == content
        assert notebook.pending == 1  # kept back, never written through
        assert caplog.messages[-1] == (
            f"lab notebook {ws}/lab-notebook.md: could not write 1 entry: {ws}/lab-notebook.md leads to {victim}, "
            f"outside the workspace {ws}: devagent does not write through it; kept in memory — make "
            f"{ws}/lab-notebook.md a regular file (or a link to one inside {ws})")

    def test_a_dangling_link_out_of_the_workspace_creates_nothing(self, tmp_path: Path, ws: Path) -> None:
        (ws / "lab-notebook.md").symlink_to(tmp_path / "etc" / "ld.so.preload")
        (tmp_path / "etc").mkdir()
        NotebookWriter(ws / "lab-notebook.md", HEADER, workspace=ws).append(make_entry(1))
        assert list((tmp_path / "etc").iterdir()) == []

    def test_a_link_through_a_linked_folder_that_leaves_the_workspace_is_refused(self, tmp_path: Path,
                                                                                 ws: Path) -> None:
        (tmp_path / "home").mkdir()
        (tmp_path / "home" / ".bashrc").write_bytes(BASHRC)
        (ws / "notes").symlink_to(tmp_path / "home")
        (ws / "lab-notebook.md").symlink_to("notes/.bashrc")
        notebook = NotebookWriter(ws / "lab-notebook.md", HEADER, workspace=ws)
        notebook.append(make_entry(1))
        assert notebook.pending == 1
        assert (tmp_path / "home" / ".bashrc").read_bytes() == BASHRC

    def test_a_notebook_linked_to_a_file_inside_the_workspace_is_written_there(self, ws: Path) -> None:
        (ws / "notes").mkdir()
        (ws / "notes" / "lab.md").write_text(HEADER)
        (ws / "lab-notebook.md").symlink_to("notes/lab.md")
        notebook = NotebookWriter(ws / "lab-notebook.md", HEADER, workspace=ws)
        notebook.append(make_entry(1))
        assert notebook.pending == 0
        assert (ws / "notes" / "lab.md").read_text() == HEADER + make_entry(1)
        assert (ws / "lab-notebook.md").is_symlink()


class TestRealDisk:
    def test_a_full_disk_leaves_the_file_on_an_entry_boundary_and_the_entry_lands_once_space_is_freed(
        self, small_tmpfs: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        notebook = NotebookWriter(small_tmpfs / "lab-notebook.md", HEADER)
        notebook.append(make_entry(1))
        before = notebook.path.read_bytes()
        filler = fill_disk(small_tmpfs)
        # Larger than the room left in the notebook's last page: the write starts, then the disk is full.
        big = make_entry(2, "x" * 20_000)
        with caplog.at_level(logging.WARNING, logger="devagent.notebook"):
            notebook.append(big)
        assert notebook.path.read_bytes() == before
        assert notebook.pending == 1
        assert "No space left on device" in caplog.text and "free some disk space" in caplog.text

        filler.unlink()
        notebook.append(make_entry(3))
        assert notebook.pending == 0
        assert notebook.path.read_text() == HEADER + make_entry(1) + big + make_entry(3)

    def test_a_write_that_only_partly_fits_is_undone(self, small_tmpfs: Path) -> None:
        notebook = NotebookWriter(small_tmpfs / "lab-notebook.md", HEADER)
        notebook.append(make_entry(1, "y" * 1000))  # the notebook's page now has ~3 KiB free
        filler = fill_disk(small_tmpfs)
        size = notebook.path.stat().st_size
        fd = os.open(notebook.path, os.O_WRONLY | os.O_APPEND)
        try:
            partial = os.write(fd, b"z" * 8192)  # proves a raw write would have left part of an entry
        finally:
            os.ftruncate(fd, size)
            os.close(fd)
        assert 0 < partial < 8192
        notebook.append(make_entry(2, "z" * 8192))
        assert notebook.path.stat().st_size == size
        filler.unlink()
        assert notebook.flush_pending()
        assert notebook.path.read_text().endswith(make_entry(2, "z" * 8192))

    def test_a_read_only_remount_keeps_entries_pending_until_it_is_writable_again(
        self, small_tmpfs: Path
    ) -> None:
        notebook = NotebookWriter(small_tmpfs / "lab-notebook.md", HEADER)
        notebook.append(make_entry(1))
        subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
        try:
            notebook.append(make_entry(2))
            notebook.append(make_entry(3))
            assert notebook.pending == 2
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(small_tmpfs)], check=True)
        assert notebook.flush_pending()
        assert notebook.path.read_text() == HEADER + make_entry(1) + make_entry(2) + make_entry(3)

    def test_a_new_notebook_on_a_nearly_full_disk_is_not_left_with_a_half_header(
        self, small_tmpfs: Path
    ) -> None:
        spare = small_tmpfs / "spare"
        spare.write_bytes(b"\0" * 4096)
        filler = fill_disk(small_tmpfs)
        spare.unlink()  # one page free: less than the header
        header = HEADER * 60
        assert len(header.encode()) > 4096
        notebook = NotebookWriter(small_tmpfs / "lab-notebook.md", header)
        notebook.append(make_entry(1))
        assert notebook.path.read_bytes() == b""
        assert notebook.pending == 1
        filler.unlink()
        assert notebook.flush_pending()
        assert notebook.path.read_text() == header + make_entry(1)


def _writer_process(path: str, worker: int, count: int, go: Any = None) -> None:
    writer = NotebookWriter(Path(path), HEADER)
    if go is not None:
        go.wait()  # all processes start together, so the first appends race for the header
    for i in range(count):
        # Multi-line bodies of varying size so interleaving would show.
        writer.append(
            entry(f"w{worker} e{i}", "\n".join(f"w{worker} e{i} line {k}" for k in range(i % 7 + 1)))
        )
    assert writer.pending == 0


def split_entries(text: str) -> tuple[str, list[str]]:
    """The text before the first entry, and the entries (bodies in these tests never contain a heading)."""
    head, *rest = text.split("\n## ")
    return head, ["\n## " + chunk for chunk in rest]


class TestConcurrency:
    @pytest.mark.slow
    def test_eight_processes_appending_500_entries_each_leave_4000_whole_entries_and_one_header(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "lab-notebook.md"
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Barrier(8)
        procs = [ctx.Process(target=_writer_process, args=(str(path), w, 500, go)) for w in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * 8

        text = path.read_text()
        assert text.count("# Lab notebook") == 1
        head, entries = split_entries(text)
        assert head == HEADER
        assert len(entries) == 4000
        expected = {
            entry(f"w{w} e{i}", "\n".join(f"w{w} e{i} line {k}" for k in range(i % 7 + 1)))
            for w in range(8)
            for i in range(500)
        }
        assert set(entries) == expected
        for w in range(8):  # each process's entries stay in its own order
            mine = [e for e in entries if e.startswith(f"\n## w{w} ")]
            assert [e.split()[2] for e in mine] == [f"e{i}" for i in range(500)]

    def test_a_writer_waiting_for_the_lock_on_a_deleted_notebook_starts_the_new_one_with_a_header(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "lab-notebook.md"
        NotebookWriter(path, HEADER).append(make_entry(1))
        real_flock = fcntl.flock
        waiting = threading.Event()

        def signalling_flock(fd: int, op: int) -> None:
            waiting.set()
            real_flock(fd, op)

        held = os.open(path, os.O_RDWR)
        real_flock(held, fcntl.LOCK_EX)  # another writer holds the lock...
        monkeypatch.setattr(append.fcntl, "flock", signalling_flock)
        writer = threading.Thread(target=NotebookWriter(path, HEADER).append, args=(make_entry(2),))
        writer.start()
        try:
            assert waiting.wait(10)  # ...while ours has opened the file and waits for the lock
            path.unlink()  # the user deletes the notebook
        finally:
            os.close(held)
        writer.join(10)
        assert path.read_text() == HEADER + make_entry(2)


# --- property: whatever entries and user edits come, bytes already in the file never change -----------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("entry"), st.text(max_size=20), st.text(max_size=60)),
        st.tuples(st.just("user"), st.text(max_size=40), st.just("")),
    ),
    max_size=12,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=150)
@given(ops)
def test_for_any_entries_and_user_edits_at_the_end_existing_bytes_never_change(
    steps: list[tuple[str, str, str]],
) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        writer = NotebookWriter(folder / "lab-notebook.md", HEADER)
        expected = b""  # what the file must hold: a model of the rules
        for kind, a, b in steps:
            before = writer.path.read_bytes() if writer.path.exists() else b""
            if kind == "entry":
                writer.append(entry(a, b))
                if not expected:
                    expected += HEADER.encode()
                elif not expected.endswith(b"\n"):
                    expected += b"\n"
                expected += printable(entry(a, b)).encode()  # devagent's text: control characters shown
            else:
                with writer.path.open("ab") as f:
                    f.write(a.encode())
                expected += a.encode()
            after = writer.path.read_bytes()
            assert after.startswith(before)
            assert after == expected
        assert writer.pending == 0
    finally:
        shutil.rmtree(folder)


def test_entries_from_four_threads_in_one_process_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "lab-notebook.md"
    tag = uuid.uuid4().hex[:6]

    def work(n: int) -> None:
        w = NotebookWriter(path, HEADER)
        for i in range(200):
            w.append(entry(f"{tag} t{n} {i}", "x" * (i * 37 % 900)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    head, entries = split_entries(path.read_text())
    assert head == HEADER
    assert sorted(entries) == sorted(
        entry(f"{tag} t{n} {i}", "x" * (i * 37 % 900)) for n in range(4) for i in range(200)
    )
