"""Which folders `up` mounts as a workspace, and how it makes a new one: never ~ or ~/.ssh (devagent's keys, the
user's keys and ssh config would be readable and writable from the environment), and a new workspace is made and
given to the login user without following a link someone swapped in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from devagent.cli import main
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.control.sites import local_workspace as workspaces
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus

LOGIN_UID = 12345

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="reproduces root giving a new workspace to the login user")


class NoEngine:
    """An engine that must not be asked anything: the workspace is refused before."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        raise AssertionError(f"the engine was asked for {name}")


def up(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, NoEngine]:
    engine = NoEngine()
    monkeypatch.setattr("devagent.cli.site_options.provisioner",
                        lambda _site: Provisioner(engine=engine, paths=Paths.from_environ()))
    return main(["up", "x", "--workspace", str(workspace), "--sshd-profile", "compat"]), engine


class TestAWorkspaceMustNotExposeKeys:
    def test_the_home_folder_is_refused_before_anything_is_made(
            self, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        rc, engine = up(isolated_home, monkeypatch)
        assert rc == ExitStatus.USAGE
        assert capsys.readouterr().err == (
            f"Error: workspace {isolated_home} holds devagent's keys and host keys (DEVAGENT_HOME): "
            f"{isolated_home}/.ssh/devagent; everything in the environment could read and change it\n"
            "  hint: pass --workspace a folder that holds only the project (e.g. a folder below this one)\n")
        assert engine.asked == []
        assert not (isolated_home / ".ssh" / "devagent").exists()  # not even the lock folder

    def test_the_ssh_folder_is_refused_even_when_devagents_home_is_elsewhere(
            self, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setenv("DEVAGENT_HOME", str(tmp_path / "devagent-home"))
        monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(tmp_path / "ssh_config"))
        rc, engine = up(isolated_home, monkeypatch)
        assert rc == ExitStatus.USAGE
        assert capsys.readouterr().err.startswith(
            f"Error: workspace {isolated_home} holds your ssh folder (keys, authorized_keys): {isolated_home}/.ssh; ")
        assert engine.asked == []

    def test_a_folder_inside_devagents_home_is_refused(self, isolated_home: Path) -> None:
        paths = Paths.from_environ()
        with pytest.raises(DevagentError) as err:
            workspaces.check_workspace(paths.home / "hostkeys", paths)
        assert str(err.value) == (
            f"workspace {paths.home}/hostkeys is inside devagent's keys and host keys (DEVAGENT_HOME): {paths.home}; "
            "everything in the environment could read and change it\n"
            "  hint: keep projects elsewhere and pass --workspace that folder (e.g. ~/code/PROJECT)")
        assert err.value.status == ExitStatus.USAGE

    def test_a_folder_holding_the_ssh_config_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(tmp_path / "dotfiles" / "ssh" / "config"))
        with pytest.raises(DevagentError, match=r"holds your ssh config \(DEVAGENT_SSH_CONFIG\): "):
            workspaces.check_workspace(tmp_path / "dotfiles", Paths.from_environ())

    def test_a_link_to_the_home_folder_is_the_home_folder(self, isolated_home: Path, tmp_path: Path) -> None:
        (tmp_path / "code").symlink_to(isolated_home)
        with pytest.raises(DevagentError, match=rf"^workspace {isolated_home} holds "):
            workspaces.check_workspace(tmp_path / "code", Paths.from_environ())

    def test_a_folder_above_the_home_folder_is_refused(self, isolated_home: Path) -> None:
        with pytest.raises(DevagentError, match=r" holds devagent's keys"):
            workspaces.check_workspace(isolated_home.parent, Paths.from_environ())

    def test_a_project_folder_beside_them_is_fine(self, isolated_home: Path) -> None:
        # check_workspace raises to refuse and returns None to accept.
        assert workspaces.check_workspace(isolated_home / "code" / "project", Paths.from_environ()) is None
        assert workspaces.check_workspace(isolated_home / ".sshd-notes", Paths.from_environ()) is None  # a prefix

    def test_provision_refuses_it_too(self, isolated_home: Path) -> None:
        engine = NoEngine()
        provisioner = Provisioner(engine=engine, paths=Paths.from_environ())
        with pytest.raises(DevagentError, match=r" holds devagent's keys"):
            provisioner.up(EnvSpec(name="x", base_image="b", workspace=str(isolated_home)))
        assert engine.asked == []


class TestANewWorkspace:
    @as_root
    def test_it_is_made_with_its_parents_and_given_to_the_login_user(self, tmp_path: Path) -> None:
        made = workspaces.create(tmp_path / "a" / "b" / "ws")
        assert made is not None and made.path == tmp_path / "a" / "b" / "ws"
        workspaces.give_to(made, LOGIN_UID)
        assert (made.path.stat().st_uid, made.path.stat().st_gid) == (LOGIN_UID, LOGIN_UID)
        assert (tmp_path / "a").stat().st_uid == 0  # parents stay root's, as before

    def test_an_existing_folder_is_not_made_and_not_given_away(self, tmp_path: Path) -> None:
        assert workspaces.create(tmp_path) is None

    def test_an_existing_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("")
        with pytest.raises(DevagentError, match=r"^workspace .*/f is not a folder\n"):
            workspaces.create(tmp_path / "f")

    @as_root
    def test_a_link_swapped_in_before_the_chown_is_not_followed(self, tmp_path: Path) -> None:
        # A group-writable parent: someone in the group replaces the new folder with a link to /etc (here: a
        # root-owned folder standing in for it) between `up` making the workspace and giving it away.
        parent, etc = tmp_path / "shared", tmp_path / "etc"
        parent.mkdir(mode=0o775)
        etc.mkdir()
        made = workspaces.create(parent / "ws")
        assert made is not None
        os.rmdir(made.path)
        made.path.symlink_to(etc)
        with pytest.raises(DevagentError) as err:
            workspaces.give_to(made, LOGIN_UID)
        assert str(err.value) == (
            f"workspace {parent}/ws was replaced while devagent made it (it is now a link, or gone); nothing was "
            f"changed through it\n  hint: someone else can write to {parent}: use a workspace in a folder only you "
            "can write")
        assert err.value.status == ExitStatus.USAGE
        assert etc.stat().st_uid == 0

    @as_root
    def test_another_folder_swapped_in_is_not_given_away(self, tmp_path: Path) -> None:
        made = workspaces.create(tmp_path / "ws")
        assert made is not None
        os.rename(made.path, tmp_path / "moved")
        (tmp_path / "ws").mkdir()
        with pytest.raises(DevagentError, match=r"it is now another folder\)"):
            workspaces.give_to(made, LOGIN_UID)
        assert (tmp_path / "ws").stat().st_uid == 0

    def test_a_link_swapped_in_right_after_mkdir_is_refused(self, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        etc = _link_after_mkdir(monkeypatch, tmp_path, "ws")
        with pytest.raises(DevagentError, match=r"^workspace .*/ws was replaced while devagent made it \(it is now a "
                                                r"link or not a folder\)"):
            workspaces.create(tmp_path / "parent" / "ws")
        assert os.listdir(etc) == []

    def test_a_parent_swapped_for_a_link_is_not_followed(self, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        etc = _link_after_mkdir(monkeypatch, tmp_path, "a")
        with pytest.raises(DevagentError, match=r"^workspace .*/a was replaced"):
            workspaces.create(tmp_path / "a" / "ws")
        assert os.listdir(etc) == []  # `ws` was not made in the link's target


class TestASystemFolderIsNeverAWorkspace:
    """`up --workspace /etc` as root was refused with the hint `chown -R 1000 /etc`: followed, it breaks the
    machine. System folders and home folders themselves are refused first, with their own message."""

    def test_etc_is_refused_as_a_system_folder_with_no_chown_hint(
            self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        rc, engine = up(Path("/etc"), monkeypatch)
        assert rc == ExitStatus.USAGE
        assert capsys.readouterr().err == (
            "Error: workspace /etc is a system folder: no environment may mount it (everything in the environment "
            "could change it, and giving it to the login user would break this machine)\n"
            "  hint: pass --workspace a folder of its own for the project, e.g. ~/code/PROJECT\n")
        assert engine.asked == []

    @pytest.mark.parametrize(("folder", "what"), [
        ("/", "a system folder"), ("/usr", "a system folder"), ("/var", "a system folder"),
        ("/boot", "a system folder"), ("/home", "the folder of all home folders"),
        ("/usr/local/lib", "inside the system folder /usr"), ("/etc/ssh", "inside the system folder /etc"),
    ])
    def test_system_folders_are_refused(self, folder: str, what: str) -> None:
        with pytest.raises(DevagentError) as err:
            workspaces.check_workspace(Path(folder), Paths.from_environ())
        assert err.value.message.startswith(f"workspace {folder} is {what}: no environment may mount it")
        assert err.value.status == ExitStatus.USAGE and "chown" not in str(err.value)

    def test_another_users_home_folder_itself_is_refused(self) -> None:
        import pwd

        root_home = pwd.getpwuid(0).pw_dir
        with pytest.raises(DevagentError, match=rf"^workspace {root_home} is root's home folder: "):
            workspaces.check_workspace(Path(root_home), Paths.from_environ())

    def test_a_link_to_a_system_folder_is_that_folder(self, tmp_path: Path) -> None:
        (tmp_path / "code").symlink_to("/etc")
        with pytest.raises(DevagentError, match=r"^workspace /etc is a system folder: "):
            workspaces.check_workspace(tmp_path / "code", Paths.from_environ())


class TestATildeIsTheHomeFolder:
    """`--workspace "~/.ssh"`, quoted so the shell did not expand it, made a folder `./~/.ssh` here and
    succeeded: a leading ~ is the home folder, and the rules for ~/.ssh apply."""

    def test_a_quoted_tilde_ssh_folder_is_refused_and_nothing_is_made_here(
            self, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.chdir(tmp_path)
        rc, engine = up(Path("~/.ssh"), monkeypatch)
        assert rc == ExitStatus.USAGE
        assert capsys.readouterr().err.startswith(
            f"Error: workspace {isolated_home}/.ssh holds devagent's keys and host keys (DEVAGENT_HOME): ")
        assert engine.asked == [] and not (tmp_path / "~").exists()

    def test_init_writes_into_the_home_folders_subfolder_not_a_literal_tilde(
            self, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        (isolated_home / "code").mkdir()
        assert main(["init", "--workspace", "~/code"]) == 0
        assert (isolated_home / "code" / "devagent.toml").is_file() and not (tmp_path / "~").exists()

    def test_an_unknown_users_tilde_is_refused(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.chdir(tmp_path)
        rc, _ = up(Path("~no-such-user-here/code"), monkeypatch)
        assert rc == ExitStatus.USAGE
        assert capsys.readouterr().err == (
            "Error: --workspace ~no-such-user-here/code: no such user, so ~no-such-user-here means no home folder\n"
            "  hint: write the folder's path without the ~, e.g. --workspace ./code\n")
        assert not (tmp_path / "~no-such-user-here").exists()


def _link_after_mkdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, swapped: str) -> Path:
    """Make os.mkdir of a folder named SWAPPED put a link to a new folder TMP_PATH/etc in its place, right after
    the mkdir (a racing attacker); returns that folder, which must stay empty."""
    etc = tmp_path / "etc"
    etc.mkdir()
    mkdir = os.mkdir

    def mkdir_then_swap(name: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        mkdir(name, mode, dir_fd=dir_fd)
        if name == swapped:
            os.rmdir(name, dir_fd=dir_fd)
            os.symlink(etc, name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir_then_swap)
    return etc
