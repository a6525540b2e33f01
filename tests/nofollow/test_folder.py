"""copy_tree and give_tree, as any user runs them (the attack by another uid on root is in
tests/control/features/test_rerun_files.py): links stay links, no set-id bit survives, nothing half-made is left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from devagent.nofollow.folder import copy_tree, give_tree
from devagent.nofollow.walk import PathRefused


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg" / ".devagent").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("a = 1\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o6755)  # noqa: S103 -- a set-uid, set-gid file that must not stay one
    (src / "data").symlink_to("../datasets")
    (src / ".devagent").mkdir()
    (src / ".devagent" / "runs.jsonl").write_text("{}\n")
    return src


def test_the_copy_keeps_permissions_and_links_and_leaves_out_the_skipped_names_at_any_depth(
        source: Path, tmp_path: Path) -> None:
    into = tmp_path / "copy"
    copy_tree(source, into, skip={".devagent"})
    assert sorted(str(p.relative_to(into)) for p in into.rglob("*")) == ["data", "pkg", "pkg/a.py", "run.sh"]
    assert stat.S_IMODE((into / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(into / "data") == "../datasets"
    assert (into / "pkg" / "a.py").read_text() == "a = 1\n"
    assert (into / "run.sh").stat().st_mtime_ns == (source / "run.sh").stat().st_mtime_ns


def test_an_existing_target_is_refused_and_kept(source: Path, tmp_path: Path) -> None:
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "mine").write_text("keep\n")
    with pytest.raises(FileExistsError):
        copy_tree(source, tmp_path / "copy")
    assert (tmp_path / "copy" / "mine").read_text() == "keep\n"


def test_a_socket_part_way_is_refused_and_nothing_of_the_copy_is_left(source: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(source / "pkg" / "zz.sock"))
    with pytest.raises(PathRefused, match=r"zz\.sock is a socket, not a file, folder or link"):
        copy_tree(source, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_give_tree_refuses_a_link_where_the_folder_was(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "made").symlink_to(tmp_path / "real")
    with pytest.raises(PathRefused) as caught:
        give_tree(tmp_path / "made", (12345, 12345))
    assert str(caught.value) == (f"{tmp_path}/made was replaced while devagent made it (it is now a symbolic "
                                 "link); nothing was changed through it")
    assert (tmp_path / "real").stat().st_uid == os.getuid()
