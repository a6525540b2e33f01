"""Opening a file below a folder never follows a link, never enters another user's folder, never opens a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devagent.errors import ExitStatus
from devagent.inside.append import locked_append
from devagent.nofollow.walk import (
    READS,
    WRITES,
    PathRefused,
    make_dirs_beneath,
    open_below,
    open_beneath,
    open_regular,
    read_beneath,
    read_limited,
    walk,
    write_beneath,
)

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

# Giving a file to another uid needs root: skipped with the reason elsewhere; CI runs as root, so there they run.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can give a folder to another uid")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the workspace with a file in it that must never change."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ssh_host_ed25519_key").write_bytes(KEY)
    return folder


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def test_a_link_at_the_file_itself_is_refused_and_what_it_points_at_is_untouched(ws: Path, outside: Path) -> None:
    (ws / "runs.jsonl").symlink_to(outside / "ssh_host_ed25519_key")
    with pytest.raises(PathRefused) as caught:
        locked_append(ws / "runs.jsonl", b'{"reserve": 1}\n', root=ws)
    assert str(caught.value) == f"{ws}/runs.jsonl is a symbolic link: devagent does not write through links"
    assert caught.value.hint == f"replace the link {ws}/runs.jsonl with a real file or folder, or remove it"
    assert (outside / "ssh_host_ed25519_key").read_bytes() == KEY


def test_a_dangling_link_creates_nothing_where_it_points(ws: Path, outside: Path) -> None:
    (ws / "run-1.patch").symlink_to(outside / "ld.so.preload")
    with pytest.raises(PathRefused):
        write_beneath(ws, ws / "run-1.patch", b"diff\n")
    assert sorted(p.name for p in outside.iterdir()) == ["ssh_host_ed25519_key"]


@pytest.mark.parametrize("linked", [".devagent", ".devagent/runs"])
def test_a_link_in_a_folder_on_the_way_is_refused_and_nothing_is_made_behind_it(ws: Path, outside: Path,
                                                                                 linked: str) -> None:
    (ws / linked).parent.mkdir(parents=True, exist_ok=True)
    (ws / linked).symlink_to(outside)
    with pytest.raises(PathRefused) as caught:
        write_beneath(ws, ws / ".devagent" / "runs" / "1" / "section.md", b"## run 1\n", make_parents=True)
    assert str(caught.value) == f"{ws / linked} is a symbolic link: devagent does not write through links"
    with pytest.raises(PathRefused):
        make_dirs_beneath(ws, ws / ".devagent" / "runs" / "1")
    assert sorted(p.name for p in outside.iterdir()) == ["ssh_host_ed25519_key"]


@needs_root
def test_a_folder_another_user_owns_is_not_entered(ws: Path) -> None:
    (ws / "shared").mkdir(mode=0o777)
    os.chown(ws / "shared", 12345, 12345)
    with pytest.raises(PathRefused) as caught:
        write_beneath(ws, ws / "shared" / "notes.md", b"x")
    assert str(caught.value) == (f"{ws}/shared belongs to another user (uid 12345): devagent writes only in its "
                                 "own folders")
    assert list((ws / "shared").iterdir()) == []


def test_a_fifo_is_refused_at_once_instead_of_blocking(ws: Path) -> None:
    os.mkfifo(ws / "runs.jsonl")
    with pytest.raises(PathRefused) as caught:
        locked_append(ws / "runs.jsonl", b"{}\n", root=ws)
    assert str(caught.value).endswith("runs.jsonl is not a regular file: devagent writes only files it can append to")
    with pytest.raises(PathRefused):
        read_beneath(ws, ws / "runs.jsonl")


def test_a_path_that_leaves_the_folder_is_refused(ws: Path, outside: Path) -> None:
    with pytest.raises(PathRefused) as caught:
        open_beneath(ws, ws / ".." / "etc" / "ssh_host_ed25519_key", os.O_WRONLY | os.O_APPEND)
    assert str(caught.value) == f"{ws}/../etc/ssh_host_ed25519_key is not inside {ws}"
    assert (outside / "ssh_host_ed25519_key").read_bytes() == KEY


def test_real_files_and_folders_are_written_as_before(ws: Path) -> None:
    write_beneath(ws, ws / "a" / "b" / "c.txt", b"one\n", make_parents=True)
    locked_append(ws / "a" / "b" / "c.txt", b"two\n", root=ws)
    assert read_beneath(ws, ws / "a" / "b" / "c.txt") == b"one\ntwo\n"
    with pytest.raises(FileExistsError):
        write_beneath(ws, ws / "a" / "b" / "c.txt", b"three\n", exclusive=True)


def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "big-disk" / "ws"
    real.mkdir(parents=True)
    (tmp_path / "ws").symlink_to(real)
    locked_append(tmp_path / "ws" / "lab-notebook.md", b"# Lab notebook\n", root=tmp_path / "ws")
    assert (real / "lab-notebook.md").read_bytes() == b"# Lab notebook\n"


class TestOneWalkerItsRulesAndItsError:
    @needs_root
    def test_own_is_the_one_rule_that_differs_and_it_is_asked_for_by_name(self, ws: Path) -> None:
        (ws / "shared").mkdir()
        os.chown(ws / "shared", 12345, 12345)
        fd, made = walk(ws, ["shared"], voice=READS)  # the agent reads in folders anyone may own
        os.close(fd)
        assert not made
        with pytest.raises(PathRefused) as caught:
            walk(ws, ["shared"], voice=WRITES, shown=str(ws), own=True)
        assert (caught.value.kind, str(caught.value)) == (
            "foreign", f"{ws}/shared belongs to another user (uid 12345): devagent writes only in its own folders")

    def test_create_makes_what_is_missing_and_says_whether_the_last_was_made_here(self, ws: Path) -> None:
        fd, made = walk(ws, ["a", "b"], voice=READS, create=True, mode=0o700)
        os.close(fd)
        assert made and (ws / "a" / "b").is_dir()
        fd, made = walk(ws, ["a", "b"], voice=READS, create=True)
        os.close(fd)
        assert not made

    def test_a_refusal_is_an_oserror_with_a_hint_that_becomes_the_error_a_command_ends_with(self, ws: Path
                                                                                            ) -> None:
        os.symlink("/etc", ws / "runs.jsonl")
        with pytest.raises(OSError) as caught:
            write_beneath(ws, ws / "runs.jsonl", b"{}\n")
        assert isinstance(caught.value, PathRefused) and caught.value.target == "/etc"
        error = caught.value.as_error()
        assert (error.message, error.hint, error.status) == (
            f"{ws}/runs.jsonl is a symbolic link: devagent does not write through links",
            f"replace the link {ws}/runs.jsonl with a real file or folder, or remove it", ExitStatus.USAGE)

    def test_read_limited_refuses_a_file_over_the_limit_or_one_that_grows_past_it(self, ws: Path) -> None:
        (ws / "big").write_bytes(b"x" * 11)
        fd = open_below(ws, "big")
        try:
            with pytest.raises(PathRefused, match=r"larger than 10 bytes, not read") as caught:
                read_limited(fd, 10, "big")
            assert caught.value.kind == "too-large"
            os.lseek(fd, 0, os.SEEK_SET)
            assert read_limited(fd, 11, "big") == b"x" * 11
        finally:
            os.close(fd)

    def test_a_device_is_refused_by_its_name_before_it_is_opened(self, ws: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        os.symlink("/dev/null", ws / "target")
        opened: list[str] = []
        real_open = os.open

        def record(path: str, *args: object, **kwargs: object) -> int:
            opened.append(str(path))
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", record)
        with pytest.raises(PathRefused, match="a character device, not a regular file"):
            open_regular(ws / "target")
        assert str(ws / "target") not in opened
