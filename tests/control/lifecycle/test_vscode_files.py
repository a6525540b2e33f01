"""`up --vscode` writes .vscode/ into a workspace that may belong to someone else, as root: nothing is ever read,
created, written or chowned through a link, and a link where devagent would write is refused by name."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from devagent.cli import main
from devagent.control.lifecycle.provision import UpResult
from devagent.control.lifecycle.vscode_files import place_vscode_files
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow import walk as nofollow_walk
from devagent.nofollow.folder import Folder

OWNER = 12345  # the workspace's owner: another user than the one running devagent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reproduces root writing into another user's workspace")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    os.chown(folder, OWNER, OWNER)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A root-owned folder outside the workspace, standing in for /etc."""
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    (folder / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (folder / "passwd").chmod(0o644)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry below FOLDER, with owner, group, mode and content: to show nothing changed."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_uid, st.st_gid, st.st_mode,
                                              path.read_bytes() if path.is_file() else b"")
    st = folder.lstat()
    out["."] = (st.st_uid, st.st_gid, st.st_mode, b"")
    return out


class FakeProvisioner:
    """`up` as if the environment had come up: the test is about what happens after."""

    def __init__(self, site: Any = None) -> None:
        self.site = site

    def up(self, spec: Any, **_: Any) -> UpResult:
        return UpResult(name=spec.name, image="devagent/x:1", image_built=False, port=2222, user="dev", uid=1000,
                        created=True, recreated=False, workspace=spec.workspace)


def up_vscode(ws: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("devagent.cli.site_options.provisioner", FakeProvisioner)
    return main(["up", "x", "--workspace", str(ws), "--vscode", "--sshd-profile", "compat"])


class TestAWorkspaceWithoutLinks:
    def test_the_files_and_the_folder_go_to_the_workspaces_owner(self, ws: Path) -> None:
        lines = list(place_vscode_files(ws))
        assert lines[0].startswith(".vscode/devagent.code-snippets: wrote devagent: ")
        assert lines[1] == ".vscode/tasks.json: wrote devagent: run current file, devagent: GPU check"
        for path in (ws / ".vscode", ws / ".vscode" / "tasks.json", ws / ".vscode" / "devagent.code-snippets"):
            assert (path.stat().st_uid, path.stat().st_gid) == (OWNER, OWNER), path
        assert stat.S_IMODE((ws / ".vscode" / "tasks.json").stat().st_mode) == 0o644
        assert sorted(os.listdir(ws / ".vscode")) == ["devagent.code-snippets", "tasks.json"]  # no temporary left

    def test_a_users_tasks_json_is_merged_and_stays_theirs(self, ws: Path) -> None:
        (ws / ".vscode").mkdir()
        (ws / ".vscode" / "tasks.json").write_text(json.dumps({"version": "2.0.0", "tasks": [{"label": "mine"}]}))
        lines = list(place_vscode_files(ws))
        assert lines[1] == ".vscode/tasks.json: added devagent: run current file, devagent: GPU check"
        tasks = json.loads((ws / ".vscode" / "tasks.json").read_text())
        assert [t["label"] for t in tasks["tasks"]] == ["mine", "devagent: run current file", "devagent: GPU check"]
        assert (ws / ".vscode" / "tasks.json").stat().st_uid == OWNER


class TestALinkInTheWorkspace:
    def test_a_dangling_tasks_json_link_is_refused_and_nothing_is_created_outside(
            self, ws: Path, outside: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> None:
        # The review's case: .vscode/tasks.json -> /etc/ld.so.preload, which does not exist yet.
        (ws / ".vscode").mkdir()
        os.chown(ws / ".vscode", OWNER, OWNER)
        target = outside / "ld.so.preload"
        (ws / ".vscode" / "tasks.json").symlink_to(target)
        before = snapshot(outside)
        assert up_vscode(ws, monkeypatch) == ExitStatus.USAGE
        assert capsys.readouterr().err == (
            f"Error: environment 'x' is up, but .vscode/ was not written: {ws}/.vscode/tasks.json is a symbolic "
            f"link to '{target}'; devagent does not write through links in a workspace\n"
            f"  hint: replace it with a regular file (rm {ws}/.vscode/tasks.json), then run the command again\n")
        assert not target.exists()
        assert snapshot(outside) == before
        assert os.readlink(ws / ".vscode" / "tasks.json") == str(target)  # the link itself is left as it was

    def test_a_link_to_an_existing_file_outside_leaves_that_file_untouched(
            self, ws: Path, outside: Path) -> None:
        (ws / ".vscode").mkdir()
        (ws / ".vscode" / "devagent.code-snippets").symlink_to(outside / "passwd")
        before = snapshot(outside)
        with pytest.raises(DevagentError) as err:
            list(place_vscode_files(ws))
        assert err.value.message == (f"{ws}/.vscode/devagent.code-snippets is a symbolic link to "
                                     f"'{outside}/passwd'; devagent does not write through links in a workspace")
        assert err.value.status == ExitStatus.USAGE
        assert snapshot(outside) == before

    def test_a_vscode_folder_that_is_a_link_is_refused(self, ws: Path, outside: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
        (ws / ".vscode").symlink_to(outside)
        before = snapshot(outside)
        assert up_vscode(ws, monkeypatch) == ExitStatus.USAGE
        assert capsys.readouterr().err.endswith(
            f"Error: environment 'x' is up, but .vscode/ was not written: {ws}/.vscode is a symbolic link to "
            f"'{outside}'; devagent does not write through links in a workspace\n"
            f"  hint: replace it with a real folder (rm {ws}/.vscode && mkdir {ws}/.vscode), then run the command "
            "again\n")
        assert snapshot(outside) == before

    def test_a_dangling_vscode_link_creates_no_folder_outside(self, ws: Path, outside: Path) -> None:
        (ws / ".vscode").symlink_to(outside / "made-by-devagent")
        with pytest.raises(DevagentError, match="is a symbolic link to"):
            list(place_vscode_files(ws))
        assert not (outside / "made-by-devagent").exists()

    def test_a_link_swapped_in_after_the_check_is_replaced_not_followed(
            self, ws: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # The owner races devagent: tasks.json is a regular file when looked at, a link a moment later.
        (ws / ".vscode").mkdir()
        tasks = ws / ".vscode" / "tasks.json"
        tasks.write_text('{"version": "2.0.0", "tasks": []}')
        before = snapshot(outside)
        token_hex = nofollow_walk.secrets.token_hex

        def swap_then_name(n: int) -> str:  # called between the check and the write
            if tasks.exists() and not tasks.is_symlink():
                tasks.unlink()
                tasks.symlink_to(outside / "passwd")
            return token_hex(n)

        monkeypatch.setattr(nofollow_walk.secrets, "token_hex", swap_then_name)
        with Folder.open(ws) as root, root.folder(".vscode") as vscode:
            vscode.write("tasks.json", b"{}\n", mode=0o644, owner=(OWNER, OWNER))
        assert snapshot(outside) == before
        assert not tasks.is_symlink()
        assert tasks.read_bytes() == b"{}\n"
        assert tasks.stat().st_uid == OWNER


class TestNotARegularFile:
    def test_a_fifo_named_tasks_json_is_refused_without_blocking(self, ws: Path) -> None:
        (ws / ".vscode").mkdir()
        os.mkfifo(ws / ".vscode" / "tasks.json")
        with pytest.raises(DevagentError) as err:
            list(place_vscode_files(ws))
        assert str(err.value) == (
            f"{ws}/.vscode/tasks.json is a FIFO, not a regular file; devagent leaves it alone\n"
            f"  hint: move it away (mv {ws}/.vscode/tasks.json {ws}/.vscode/tasks.json.old), then run the command "
            "again")

    def test_a_vscode_that_is_a_file_is_refused(self, ws: Path) -> None:
        (ws / ".vscode").write_text("")
        with pytest.raises(DevagentError) as err:
            list(place_vscode_files(ws))
        assert str(err.value) == (f"{ws}/.vscode is not a folder\n"
                                  f"  hint: move it away (mv {ws}/.vscode {ws}/.vscode.old), then run the command "
                                  "again")

    def test_a_huge_tasks_json_is_not_read(self, ws: Path) -> None:
        (ws / ".vscode").mkdir()
        with open(ws / ".vscode" / "tasks.json", "wb") as f:
            f.truncate(10 * 1024**3)  # sparse: 10 GiB that would be read into a root process's memory
        with pytest.raises(DevagentError, match=r"tasks.json is larger than 1048576 bytes; devagent does not read"):
            list(place_vscode_files(ws))
