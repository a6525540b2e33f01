"""The workspace on a server, judged and made through the link's `run` (here: commands run on this machine)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus
from devagent.host.server_workspace import ServerWorkspace, absolute, check_server_workspace


class Here:
    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)


def workspace(home: Path) -> ServerWorkspace:
    return ServerWorkspace(Here(), server="gpu", home=str(home))


@pytest.mark.parametrize(("path", "ok"), [
    ("/home/a/devagent/x", True), ("/srv/data/x", True), ("/home/a/.sshx", True),
    ("/home/a", False), ("/home", False), ("/", False), ("/home/a/.ssh", False), ("/home/a/.ssh/keys", False),
])
def test_only_folders_that_neither_are_nor_hold_the_home_or_ssh_folder_may_be_mounted(path: str, ok: bool) -> None:
    if ok:
        check_server_workspace(path, home="/home/a", server="gpu")
        return
    with pytest.raises(DevagentError) as err:
        check_server_workspace(path, home="/home/a", server="gpu")
    assert err.value.status == ExitStatus.USAGE and err.value.message.startswith(f"workspace {path} on gpu ")


def test_a_link_into_the_ssh_folder_is_resolved_on_the_server_and_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / "code").symlink_to(home / ".ssh")
    with pytest.raises(DevagentError) as err:
        workspace(home).resolve("code/x")
    assert err.value.message.startswith(f"workspace {home}/.ssh/x on gpu is inside {home}/.ssh")


def test_relative_and_tilde_paths_are_below_the_server_home() -> None:
    assert absolute("~", "/home/a") == "/home/a"
    assert absolute("x/../y", "/home/a") == "/home/a/y"


def test_make_reports_whether_it_made_the_folder_and_refuses_a_file(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    assert ws.make(str(tmp_path / "a" / "b"), uid=1000, root=False) is True
    assert ws.make(str(tmp_path / "a" / "b"), uid=1000, root=False) is False
    (tmp_path / "file").write_text("x")
    with pytest.raises(DevagentError) as err:
        ws.make(str(tmp_path / "file"), uid=1000, root=False)
    assert (err.value.message, err.value.status) == (f"workspace {tmp_path / 'file'} on gpu is not a folder",
                                                     ExitStatus.USAGE)


def test_the_rollback_removes_a_made_folder_only_while_it_holds_nothing_but_devagents_files(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    made = tmp_path / "made"
    made.mkdir()
    (made / layout.NOTEBOOK).write_text("# Lab notebook\n")
    ws.remove_if_untouched(str(made))
    assert not made.exists()
    made.mkdir()
    (made / "train.py").write_text("print(1)\n")
    ws.remove_if_untouched(str(made))
    assert (made / "train.py").exists()
    (made / "train.py").unlink()
    (made / ".hidden").write_text("mine")
    ws.remove_if_untouched(str(made))
    assert (made / ".hidden").exists()


@pytest.mark.parametrize(("path", "what"), [
    ("/etc", "a system folder"), ("/", "a system folder"), ("/home", "the folder of all home folders"),
    ("/usr/lib/x", "inside the system folder /usr"),
])
def test_a_system_folder_on_the_server_is_refused_with_its_own_message(path: str, what: str) -> None:
    with pytest.raises(DevagentError) as err:
        check_server_workspace(path, home="/home/a", server="gpu")
    assert str(err.value) == (
        f"workspace {path} on gpu is {what}: no environment may mount it (everything in the environment could "
        "change it, and giving it to the login user would break the server)\n"
        "  hint: pass --workspace a folder of its own, e.g. ~/devagent/NAME (the default)")
