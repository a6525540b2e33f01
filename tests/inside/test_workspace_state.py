"""The workspace state folder is devagent's only when it is this user's own: never a link, never someone else's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devagent.inside.workspace_state import SaveLog, prepare_workspace_state, state_folder_problem
from devagent.nofollow.walk import PathRefused

# Giving a file to another uid needs root: skipped with the reason elsewhere; CI runs as root, so there they run.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can give a folder to another uid")


def test_a_new_state_folder_is_made_with_its_gitignore_and_writable_only_by_its_owner(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a user-private-group umask: folders would be group-writable
    try:
        state = prepare_workspace_state(tmp_path)
    finally:
        os.umask(old)
    assert (state.stat().st_mode & 0o777, state.stat().st_uid) == (0o755, os.geteuid())
    assert (state / ".gitignore").read_text().splitlines()[-1] == "*"
    assert state_folder_problem(tmp_path) is None


@pytest.mark.parametrize(("owner", "mode", "reason", "hint"), [
    pytest.param(12345, 0o755, "belongs to another user (uid 12345): devagent keeps its state only in a folder of "
                 "its own", "run from a folder of your own, or name the notebook with --notebook", marks=needs_root),
    (None, 0o777, "is writable by other users: devagent keeps its state only in a folder of its own",
     "chmod go-w {state}"),
    (None, 0o775, "is writable by other users: devagent keeps its state only in a folder of its own",
     "chmod go-w {state}"),
])
def test_a_state_folder_that_is_not_this_users_own_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, owner: int | None, mode: int, reason: str, hint: str,
) -> None:
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("export PATH=$HOME/bin:$PATH\n")
    state = tmp_path / "shared" / ".devagent"
    state.mkdir(parents=True)
    (state / ".gitignore").symlink_to(bashrc)  # planted by whoever made the folder
    (state / "saves.jsonl").symlink_to(bashrc)
    os.chmod(state, mode)
    if owner is not None:
        os.chown(state, owner, owner)
    with pytest.raises(PathRefused) as caught:
        prepare_workspace_state(tmp_path / "shared")
    assert str(caught.value) == f"{state} {reason}"
    assert caught.value.hint == hint.format(state=state)
    assert len(SaveLog(tmp_path / "shared")) == 0  # its journal is not believed either
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"


def test_a_state_folder_that_is_a_link_is_refused_and_nothing_is_made_behind_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".devagent").symlink_to(elsewhere)
    with pytest.raises(PathRefused) as caught:
        prepare_workspace_state(tmp_path / "ws")
    assert str(caught.value) == (f"{tmp_path}/ws/.devagent is a symbolic link: devagent keeps its state only in a "
                                 "folder of its own")
    assert list(elsewhere.iterdir()) == []


def test_a_link_standing_at_the_gitignore_is_left_alone_and_not_followed(tmp_path: Path) -> None:
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("alias ll='ls -l'\n")
    (tmp_path / "ws" / ".devagent").mkdir(parents=True, mode=0o755)
    (tmp_path / "ws" / ".devagent" / ".gitignore").symlink_to(bashrc)
    prepare_workspace_state(tmp_path / "ws")
    assert bashrc.read_text() == "alias ll='ls -l'\n"
