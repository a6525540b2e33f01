"""The workspace on a server, judged and made through the link's `run` (here: commands run on this machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from devagent.control.features.rerun import ServerFiles
from devagent.control.sites.server_workspace import ServerWorkspace, absolute, check_server_workspace
from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus


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


# A teammate who can write the folder a workspace is made in swaps a link in at the worst moment: a `mkdir`,
# `rm` or `tar` first in PATH does its work, then moves the folder SWAP aside and puts a link to SWAP_TO there (once).
_SWAP_AFTER = """#!/bin/sh
{real} "$@" || exit
[ -e "$SWAP_DONE" ] && exit 0
: > "$SWAP_DONE"; /bin/mv -- "$SWAP" "$SWAP.aside" && /bin/ln -s -- "$SWAP_TO" "$SWAP"
"""
_SWAP_BEFORE = """#!/bin/sh
if [ ! -e "$SWAP_DONE" ]; then
  : > "$SWAP_DONE"; /bin/mv -- "$SWAP" "$SWAP.aside" && /bin/ln -s -- "$SWAP_TO" "$SWAP"
fi
exec {real} "$@"
"""


class Swapping(Here):
    """Commands run here, with TOOL replaced by one that swaps SWAP for a link to SWAP_TO (after or before it)."""

    def __init__(self, tmp_path: Path, tool: str, swap: Path, to: Path, *, before: bool = False) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        real = shutil.which(tool)
        assert real is not None
        wrapper = bin_dir / tool
        wrapper.write_text((_SWAP_BEFORE if before else _SWAP_AFTER).format(real=real))
        wrapper.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SWAP": str(swap),
                    "SWAP_TO": str(to), "SWAP_DONE": str(tmp_path / "swapped")}

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False,
                              env=self.env)


def victim_folder(tmp_path: Path) -> Path:
    """A folder of root's (as /etc is) with one file, which a swapped-in link points at."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep\n")
    return victim


def untouched(victim: Path) -> bool:
    st = victim.stat()
    return ((st.st_uid, st.st_gid) == (0, 0) and sorted(p.name for p in victim.iterdir()) == ["precious"]
            and (victim / "precious").read_text() == "keep\n" and (victim / "precious").stat().st_uid == 0)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the server user is root in these attacks")


@needs_root
@pytest.mark.parametrize("swapped", ["the workspace", "its parent"])
def test_a_link_swapped_in_right_after_mkdir_is_refused_and_its_target_keeps_its_owner(tmp_path: Path,
                                                                                      swapped: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    ws = shared / "ws"
    victim = victim_folder(tmp_path)
    if swapped == "the workspace":
        swap, to, replaced = ws, victim, ws
    else:  # the link's target holds a folder of the workspace's name
        (victim / "ws").mkdir()
        swap, to, replaced = shared, victim, ws
    with pytest.raises(DevagentError) as err:
        ServerWorkspace(Swapping(tmp_path, "mkdir", swap, to), server="gpu", home="/home/a").make(
            str(ws), uid=1000, root=True)
    assert (err.value.message, err.value.status) == (
        f"{replaced} on gpu was replaced while devagent worked on it (it is now a link or another folder); "
        "nothing was changed through it", ExitStatus.USAGE)
    assert err.value.hint == (f"someone else can write to {replaced.parent} on gpu: use a folder there that only "
                              "you can write")
    assert victim.stat().st_uid == 0 and (victim / "precious").read_text() == "keep\n"
    if swapped == "its parent":
        assert (victim / "ws").stat().st_uid == 0


@needs_root
def test_make_gives_the_folder_it_made_to_the_uid_and_the_rollback_removes_only_that_folder(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    made = tmp_path / "a" / "b"
    assert ws.make(str(made), uid=1000, root=True) is True
    assert (made.stat().st_uid, made.stat().st_gid) == (1000, 1000)
    (tmp_path / "a" / "other").mkdir()
    made.rmdir()
    (tmp_path / "a" / "other").rename(made)  # another folder by that name meanwhile: not the one make() made
    ws.remove_if_untouched(str(made))
    assert made.is_dir()


@needs_root
def test_the_rollback_removes_nothing_through_a_parent_swapped_for_a_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    made = shared / "ws"
    victim = victim_folder(tmp_path)
    (victim / "ws").mkdir()
    (victim / "ws" / layout.NOTEBOOK).write_text("# theirs\n")
    ws = ServerWorkspace(Swapping(tmp_path, "rm", shared, victim, before=True), server="gpu", home="/home/a")
    made.mkdir()
    ws.remove_if_untouched(str(made))
    assert (victim / "ws" / layout.NOTEBOOK).read_text() == "# theirs\n"
    assert not (tmp_path / "shared.aside" / "ws").exists()  # the folder it was asked to remove: gone


@needs_root
def test_the_copy_of_a_workspace_extracts_nothing_through_a_link_swapped_in(tmp_path: Path) -> None:
    source = tmp_path / "ws"
    source.mkdir()
    (source / "train.py").write_text("print(1)\n")
    into = tmp_path / "shared" / "again"
    victim = victim_folder(tmp_path)
    files = ServerFiles(SiteHere(Swapping(tmp_path, "tar", into, victim, before=True)))
    files.copy_code(PurePosixPath(source), PurePosixPath(into))
    assert untouched(victim)
    assert (tmp_path / "shared" / "again.aside" / "train.py").read_text() == "print(1)\n"


@needs_root
def test_the_copy_refuses_a_workspace_that_became_a_link_and_reads_nothing_through_it(tmp_path: Path) -> None:
    source = tmp_path / "ws"
    source.mkdir()
    victim = victim_folder(tmp_path)
    into = tmp_path / "again"
    files = ServerFiles(SiteHere(Swapping(tmp_path, "mkdir", source, victim)))  # as INTO is made
    with pytest.raises(DevagentError) as err:
        files.copy_code(PurePosixPath(source), PurePosixPath(into))
    assert err.value.message == (f"{source} on gpu was replaced while devagent worked on it (it is now a link or "
                                 "another folder); nothing was changed through it")
    assert list(into.iterdir()) == []


class SiteHere:
    """A ServerSite whose server is this machine, its user root (ServerFiles' view of it)."""

    server = "gpu"

    def __init__(self, runner: Here) -> None:
        self.runner = runner
        self.facts = SimpleNamespace(uid=0, home="/root")

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return self.runner.run(argv, input=input, timeout=timeout)


_TOGGLER = """
import os, random, sys, time
shared, target, stop = sys.argv[1:]
while not os.path.exists(stop):
    os.rename(shared, shared + ".real"); os.symlink(target, shared)
    time.sleep(random.random() / 500)
    os.unlink(shared); os.rename(shared + ".real", shared)
    time.sleep(random.random() / 500)
"""


@needs_root
@pytest.mark.parametrize("operation", ["make", "remove_if_untouched", "copy_code"])
def test_a_teammate_toggling_the_shared_folder_for_a_link_never_reaches_its_target(tmp_path: Path,
                                                                                 operation: str) -> None:
    """The race as it happens: a process swaps the shared folder for a link to a folder of root's and back, as
    fast as it can, while the operation runs again and again (a few seconds); the link's target never changes."""
    shared, victim, source = tmp_path / "shared", tmp_path / "victim", tmp_path / "source"
    rounds = 300
    for folder in (shared, victim, source):
        folder.mkdir()
    (source / "train.py").write_text("print(1)\n")
    for i in range(rounds):  # the rollback's folders, and folders of the same names in the target
        for top in (shared, victim):
            (top / f"rm-{i}").mkdir()
            (top / f"rm-{i}" / layout.NOTEBOOK).write_text("# a notebook\n")
    before = sorted(p.name for p in victim.iterdir())
    ws = ServerWorkspace(Here(), server="gpu", home="/home/a")
    files = ServerFiles(SiteHere(Here()))
    stop = tmp_path / "stop"
    toggler = subprocess.Popen([sys.executable, "-c", _TOGGLER, str(shared), str(victim), str(stop)])
    try:
        deadline = time.monotonic() + 5.0
        for i in range(rounds):
            if time.monotonic() > deadline:
                break
            try:
                if operation == "make":
                    ws.make(str(shared / f"ws-{i}"), uid=1000, root=True)
                elif operation == "remove_if_untouched":
                    ws.remove_if_untouched(str(shared / f"rm-{i}"))
                else:
                    files.copy_code(PurePosixPath(source), PurePosixPath(shared / f"cp-{i}"))
            except DevagentError:
                pass  # refused: the folder was a link, or was missing, at that moment
            assert sorted(p.name for p in victim.iterdir()) == before, f"round {i}"
    finally:
        stop.touch()
        toggler.wait(timeout=60)
    assert victim.stat().st_uid == 0
    assert all((victim / name / layout.NOTEBOOK).read_text() == "# a notebook\n" for name in before)
    assert all((victim / name).stat().st_uid == 0 for name in before)
