"""`reproduce`'s files on this machine, as an attacker who controls the original workspace (uid 1000 while
devagent runs as root) or the code run in the new environment would meet them: the copy of the workspace never
holds a set-uid file, never reads through a link and never waits on a FIFO; the notebook and the new runs
journal are read without following a link, without blocking and at a bounded cost."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from devagent.control.features import rerun
from devagent.control.features.rerun import LocalFiles, last_run, load_facts
from devagent.core.runs.record import RunRecord
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow import walk as nofollow_walk
from tests.control.fakes import FakeEngine

ATTACKER = 1000  # the workspace's owner, and the login user the copy is given to
SECRET = b"root:$y$j9T$only-root-reads-this:19000:0:99999:7:::\n"
T = TypeVar("T")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attack is on devagent run as root")


def within(seconds: float, call: Callable[[], T]) -> T:
    """CALL's result, or a failure when it has not returned after SECONDS (a FIFO opened for reading blocks
    forever: the test must fail, not hang)."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(("ok", call()))
        except BaseException as exc:  # handed to the test below
            result.append(("raised", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still running after {seconds} s (blocked on a FIFO, or reading without end)"
    kind, value = result[0]
    if kind == "raised":
        raise value
    return value  # type: ignore[no-any-return]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "shadow"
    path.write_bytes(SECRET)
    path.chmod(0o600)  # root's alone
    return path


@pytest.fixture
def workspace(tmp_path: Path, secret: Path) -> Path:
    """uid 1000's workspace, with what uid 1000 can plant: set-uid and set-gid programs, a set-gid folder, a
    link to a file only root may read, a relative link."""
    ws = tmp_path / "code"
    (ws / "pkg").mkdir(parents=True)
    (ws / "train.py").write_text("lr = 1\n")
    (ws / "pkg" / "model.py").write_text("layers = 2\n")
    (ws / "tool").write_bytes(b"#!/bin/sh\nid\n")
    (ws / "grouptool").write_bytes(b"#!/bin/sh\nid\n")
    (ws / "shadow").symlink_to(secret)
    (ws / "model.py").symlink_to("pkg/model.py")
    (ws / ".devagent").mkdir()
    (ws / "lab-notebook.md").write_text("# Lab notebook\n")
    for path in (ws, *ws.rglob("*")):
        os.chown(path, ATTACKER, ATTACKER, follow_symlinks=False)
    # What the attacker does (after chown, which clears the bits): hostile on purpose.
    os.chmod(ws / "tool", 0o4755)  # noqa: S103
    os.chmod(ws / "grouptool", 0o2755)  # noqa: S103
    os.chmod(ws / "pkg", 0o2775)  # noqa: S103
    return ws


def entries(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    yield root, root.lstat()
    for path in sorted(root.rglob("*")):
        yield path, path.lstat()


class TestTheCopyOfAWorkspaceAnotherUserControls:
    def test_no_copy_is_set_uid_or_root_owned_and_links_stay_links(self, workspace: Path, tmp_path: Path,
                                                                   secret: Path) -> None:
        into = tmp_path / "exp-run1"
        LocalFiles().copy_code(workspace, into)
        copied = {str(path.relative_to(into)): st for path, st in entries(into)}
        assert sorted(copied) == [".", "grouptool", "model.py", "pkg", "pkg/model.py", "shadow", "tool", "train.py"]
        for name, st in copied.items():
            assert (name, st.st_uid, st.st_gid) == (name, ATTACKER, ATTACKER)
            assert (name, st.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)) == (name, 0)
        assert stat.S_IMODE(copied["tool"].st_mode) == 0o755  # the permission bits themselves are kept
        assert os.readlink(into / "shadow") == str(secret)  # a link, as it was: its target never read
        assert os.readlink(into / "model.py") == "pkg/model.py"
        for path, st in entries(into):
            if stat.S_ISREG(st.st_mode):
                assert SECRET not in path.read_bytes()
        assert (into / "pkg" / "model.py").read_text() == "layers = 2\n"

    def test_no_moment_exists_where_the_copy_holds_a_root_owned_or_set_uid_file(
            self, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Every byte written into the copy, and every mode given, is checked as it happens.
        real_write, real_fchmod, real_open = os.write, os.fchmod, os.open
        checked: list[int] = []

        def write(fd: int, data: Any) -> int:
            st = os.fstat(fd)
            assert (st.st_uid, st.st_mode & (stat.S_ISUID | stat.S_ISGID)) == (ATTACKER, 0)
            checked.append(fd)
            return real_write(fd, data)

        def fchmod(fd: int, mode: int) -> None:
            assert mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) == 0
            real_fchmod(fd, mode)

        def open_(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
            if flags & os.O_CREAT:
                assert mode & 0o7077 == 0  # made for this process alone, until given away
            return real_open(path, flags, mode, **kwargs)

        monkeypatch.setattr(os, "write", write)  # the os module devagent/nofollow/folder.py calls
        monkeypatch.setattr(os, "fchmod", fchmod)
        monkeypatch.setattr(os, "open", open_)
        LocalFiles().copy_code(workspace, tmp_path / "exp-run1")
        assert len(checked) >= 4  # train.py, tool, grouptool, pkg/model.py

    def test_a_file_swapped_for_a_link_while_copying_is_refused_and_nothing_is_left(
            self, workspace: Path, tmp_path: Path, secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real_open_file = nofollow_walk.open_file

        def swap_then_open(folder: int, name: str, shown: str, flags: int, *args: Any, **kwargs: Any) -> int:
            if name == "train.py":  # uid 1000 wins the race between the listing and the open
                os.unlink(name, dir_fd=folder)
                os.symlink(secret, name, dir_fd=folder)
            return real_open_file(folder, name, shown, flags, *args, **kwargs)

        monkeypatch.setattr("devagent.nofollow.folder.open_file", swap_then_open)
        into = tmp_path / "exp-run1"
        with pytest.raises(DevagentError) as err:
            LocalFiles().copy_code(workspace, into)
        assert (err.value.message, err.value.status) == (
            f"cannot copy {workspace}: {workspace}/train.py is a symbolic link to '{secret}'; devagent does not "
            "write through links in a workspace", ExitStatus.USAGE)
        assert not into.exists() and not into.is_symlink()

    def test_a_fifo_is_refused_at_once_and_the_half_made_copy_removed(self, workspace: Path,
                                                                       tmp_path: Path) -> None:
        os.mkfifo(workspace / "zz-pipe")  # listed last: the files before it are copied first
        into = tmp_path / "exp-run1"
        with pytest.raises(DevagentError) as err:
            within(30, lambda: LocalFiles().copy_code(workspace, into))
        assert (err.value.message, err.value.hint, err.value.status) == (
            f"cannot copy {workspace}: {workspace}/zz-pipe is a FIFO, not a file, folder or link; devagent does "
            "not copy it", f"move it out of the workspace (mv {workspace}/zz-pipe ...), then run the command again",
            ExitStatus.USAGE)
        assert not into.exists()

    def test_a_clone_is_given_away_only_while_it_is_the_folder_devagent_made(self, tmp_path: Path) -> None:
        clone = tmp_path / "clone"
        (clone / "pkg").mkdir(parents=True)
        (clone / "pkg" / "a.py").write_text("x = 1\n")
        (clone / "link").symlink_to("/etc/passwd")
        LocalFiles().give_to_login_user(clone)
        assert {(str(p.relative_to(clone)), st.st_uid) for p, st in entries(clone)} == {
            (".", ATTACKER), ("pkg", ATTACKER), ("pkg/a.py", ATTACKER), ("link", ATTACKER)}
        assert Path("/etc/passwd").stat().st_uid == 0
        theirs = tmp_path / "theirs"  # put in its place by the other user
        theirs.mkdir()
        os.chown(theirs, ATTACKER, ATTACKER)
        with pytest.raises(DevagentError) as err:
            LocalFiles().give_to_login_user(theirs)
        assert (err.value.message, err.value.hint, err.value.status) == (
            f"{theirs} was replaced while devagent made it (it is now a folder of uid {ATTACKER}); nothing was "
            f"changed through it", f"someone else can write to {tmp_path}: use a folder only you can write",
            ExitStatus.USAGE)
        assert theirs.stat().st_uid == ATTACKER

    def test_a_folder_made_by_someone_else_where_the_copy_goes_is_refused_and_kept(
            self, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # prepare() found no folder there; another user makes one before the copy starts.
        from devagent.core.runs.reproduce_block import ReproduceFacts, render_reproduce

        facts = ReproduceFacts(number=1, env_name="exp", image="devagent/env:1", pinned=None, base_image="debian:12",
                               up_args=(), commit=None, patch=None, argv=("python", "train.py"),
                               cwd="/home/dev/workspace", metrics={})
        (workspace / "lab-notebook.md").write_text("## 2026-11-27 14:05 · run 1 · train.py · ✅ exit 0\n"
                                                   + render_reproduce(facts, notebook="lab-notebook.md") + "\n")
        into = tmp_path / "exp-run1"
        real_copy_tree = rerun.copy_tree

        def theirs_first(source: Path, target: Path, **kwargs: Any) -> None:
            target.mkdir()
            (target / "theirs.txt").write_text("keep\n")
            real_copy_tree(source, target, **kwargs)

        monkeypatch.setattr(rerun, "copy_tree", theirs_first)
        with pytest.raises(DevagentError, match=f"^{into} exists"):
            rerun.prepare(f"{workspace}/lab-notebook.md#run-1", name=None, into=None, anyway=True,
                              engine=FakeEngine(), files=LocalFiles(), report=lambda _: None)
        assert (into / "theirs.txt").read_text() == "keep\n"


def journal_line(number: int) -> str:
    return RunRecord(number, False, "train.py", ("python", "train.py"), "/w", "s", 1.0, 0, "success", {},
                     {"loss": 0.25}).to_json()


class TestTheNewRunsJournal:
    @pytest.fixture
    def ws(self, tmp_path: Path) -> Path:
        (tmp_path / "ws" / ".devagent").mkdir(parents=True)
        return tmp_path / "ws"

    @pytest.mark.parametrize("planted", ["fifo", "dev-zero-link"])
    def test_a_fifo_or_a_link_to_dev_zero_is_refused_at_once(self, ws: Path, planted: str) -> None:
        journal = ws / ".devagent" / "runs.jsonl"
        if planted == "fifo":
            os.mkfifo(journal)  # read naively: devagent waits for a writer forever
            reason = "a FIFO, not a regular file"
        else:
            journal.symlink_to("/dev/zero")  # read naively: memory fills until the OOM killer comes
            reason = "a symbolic link, not followed"
        with pytest.raises(DevagentError) as err:
            within(30, lambda: last_run(LocalFiles(), ws))
        assert (err.value.message, err.value.hint, err.value.status) == (
            f"the new runs journal {journal} is not read: {journal} is {reason}",
            f"something in the new environment put it there: look into the workspace {ws} (the environment is "
            "kept; devagent down removes it)", ExitStatus.NOT_REPRODUCIBLE)

    def test_a_linked_state_folder_is_refused(self, ws: Path, tmp_path: Path) -> None:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "runs.jsonl").write_text(journal_line(1) + "\n")
        (ws / ".devagent").rmdir()
        (ws / ".devagent").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(DevagentError) as err:
            last_run(LocalFiles(), ws)
        assert err.value.message == (f"the new runs journal {ws}/.devagent/runs.jsonl is not read: "
                                     f"{ws}/.devagent is a symbolic link, not followed")

    def test_only_the_end_of_a_huge_journal_is_read_for_its_last_record(self, ws: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(rerun, "_RUNS_TAIL", 4096)
        journal = ws / ".devagent" / "runs.jsonl"
        with journal.open("w") as f:
            f.write(journal_line(1) + "\n")
            f.truncate(1 << 30)  # a sparse GiB of NULs: never read
        with journal.open("a") as f:
            f.write("\n" + journal_line(7) + "\n")
        record = last_run(LocalFiles(), ws)
        assert record is not None and record.number == 7

    def test_no_journal_is_no_new_run(self, ws: Path) -> None:
        assert last_run(LocalFiles(), ws) is None


class TestTheNotebook:
    @pytest.mark.parametrize("planted", ["fifo", "dev-zero-link"])
    def test_a_fifo_or_a_link_to_a_device_is_refused_at_once(self, tmp_path: Path, planted: str) -> None:
        notebook = tmp_path / "lab-notebook.md"
        if planted == "fifo":
            os.mkfifo(notebook)
            shown, reason = notebook, "a FIFO, not a regular file"
        else:
            notebook.symlink_to("/dev/zero")
            shown, reason = Path("/dev/zero"), "a character device, not a regular file"
        files = LocalFiles()
        with pytest.raises(DevagentError) as err:
            within(30, lambda: load_facts(files, files.path(str(notebook)), 1))
        assert (err.value.message, err.value.status) == (f"cannot read the notebook {shown}: {reason}",
                                                         ExitStatus.USAGE)

    def test_a_notebook_over_the_limit_is_refused_naming_the_limit(self, tmp_path: Path) -> None:
        notebook = tmp_path / "lab-notebook.md"
        with notebook.open("w") as f:
            f.truncate((64 << 20) + 1)  # sparse
        with pytest.raises(DevagentError) as err:
            load_facts(LocalFiles(), notebook, 1)
        assert (err.value.message, err.value.status) == (
            f"cannot read the notebook {notebook}: larger than 67108864 bytes, not read", ExitStatus.USAGE)
