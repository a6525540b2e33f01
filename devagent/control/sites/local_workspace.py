"""The workspace folder on the host: which folders may be mounted, and making a new one without following links.

Everything in the environment can read and write the workspace (it is a read-write bind mount), so a workspace
must not hold what would let the environment out: devagent's keys, the user's ``~/.ssh`` (``authorized_keys``,
private keys) or the ssh config (a ``ProxyCommand`` there runs on the host). ``up`` also runs as root on a
shared server, in folders other users may write: a new workspace is made and given to the login user through a
file descriptor of the folder devagent made, never by path, so a link swapped in meanwhile is not followed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from devagent.control.paths import Paths
from devagent.core.mounts.system_folders import system_folder
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow.folder import Folder
from devagent.nofollow.walk import READS, PathRefused, walk


def check_workspace(workspace: Path, paths: Paths) -> None:
    """Refuse WORKSPACE when it is, holds or lies inside devagent's home or the user's ssh folder, or holds the
    user's ssh config, and when it is a system folder or a user's home folder itself
    (see core/mounts/system_folders.py).
    Links are resolved on both sides: a workspace that reaches ``~`` through a link is ``~``."""
    ws = Path(os.path.realpath(workspace))
    _refuse_system_folder(ws, system_folder(str(ws)))
    guarded: list[tuple[Path, str, bool]] = [  # path, what it is, is it a folder
        (paths.home, "devagent's keys and host keys (DEVAGENT_HOME)", True),
        (paths.user_ssh_config, "your ssh config (DEVAGENT_SSH_CONFIG)", False),
    ]
    if paths.ssh_dir is not None:
        guarded.append((paths.ssh_dir, "your ssh folder (keys, authorized_keys)", True))
    for path, what, is_folder in guarded:
        real = Path(os.path.realpath(path))
        if ws == real or real.is_relative_to(ws):
            raise DevagentError(
                f"workspace {ws} holds {what}: {real}; everything in the environment could read and change it",
                hint="pass --workspace a folder that holds only the project (e.g. a folder below this one)",
                status=ExitStatus.USAGE)
        if is_folder and ws.is_relative_to(real):
            raise DevagentError(
                f"workspace {ws} is inside {what}: {real}; everything in the environment could read and change it",
                hint="keep projects elsewhere and pass --workspace that folder (e.g. ~/code/PROJECT)",
                status=ExitStatus.USAGE)
    # A home folder itself: yours said above when it holds your keys; anyone's, whatever it holds. A home belongs
    # to its user, so the folder's owner is asked (no listing of every account, which LDAP can make slow).
    homes = [("your", str(Path.home()))]
    with contextlib.suppress(OSError, KeyError):
        owner = pwd.getpwuid(ws.stat().st_uid)
        homes.append((f"{owner.pw_name}'s", owner.pw_dir))
    _refuse_system_folder(ws, system_folder(str(ws), homes))


def _refuse_system_folder(ws: Path, what: str | None) -> None:
    if what is not None:
        raise DevagentError(
            f"workspace {ws} is {what}: no environment may mount it (everything in the environment could change "
            "it, and giving it to the login user would break this machine)", status=ExitStatus.USAGE,
            hint="pass --workspace a folder of its own for the project, e.g. ~/code/PROJECT")


@dataclass(frozen=True)
class NewWorkspace:
    """A workspace folder `create` made: its path and the identity of the folder made there."""

    path: Path
    device: int
    inode: int


def create(workspace: Path) -> NewWorkspace | None:
    """Make WORKSPACE and its missing parents; None when it is already a folder (someone else's to keep).

    The folder that already exists above it is opened as the user named it; below that, each folder is made with
    ``mkdir`` relative to its parent's descriptor and opened with ``O_NOFOLLOW`` (devagent/nofollow's walker, with
    ``create``; ``mkdir -p``'s mode 0777, the umask applies): if a name turned into a link in between (someone who
    can write the parent swapped it), this is refused and nothing is followed.
    """
    missing: list[str] = []
    existing = workspace
    while not os.path.lexists(existing):
        missing.append(existing.name)
        existing = existing.parent
    if not missing:
        _check_is_folder(workspace)
        return None
    try:  # the folder that exists is the user's choice (followed); below it, the one walker (no link followed)
        fd, made = walk(existing, reversed(missing), voice=READS, shown=str(existing), create=True, mode=0o777)
    except (PathRefused, NotADirectoryError) as exc:  # a name on the way became a link or a file meanwhile
        raise _swapped(Path(str(exc.filename)), "a link or not a folder") from None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not made:
        return None  # the workspace was made by someone else meanwhile: theirs to undo, not ours
    if st.st_uid != os.geteuid():
        raise _swapped(workspace, f"a folder of uid {st.st_uid}")
    return NewWorkspace(workspace, st.st_dev, st.st_ino)


def give_to(workspace: NewWorkspace, uid: int) -> None:
    """Give the folder `create` made to UID (when devagent runs as root), through a descriptor of that very folder;
    refused when its path no longer names it (a link or another folder was put there)."""
    try:
        folder = Folder.open(workspace.path)
    except (PathRefused, FileNotFoundError):
        raise _swapped(workspace.path, "a link, or gone") from None
    with folder:
        st = folder.stat()
        if (st.st_dev, st.st_ino) != (workspace.device, workspace.inode):
            raise _swapped(workspace.path, "another folder")
        if os.geteuid() == 0:
            os.fchown(folder.fd, uid, uid)


def _check_is_folder(workspace: Path) -> None:
    if not workspace.is_dir():
        raise DevagentError(f"workspace {workspace} is not a folder", status=ExitStatus.USAGE,
                            hint="pass --workspace a folder (it is created when missing)")


def _swapped(path: Path, now: str) -> DevagentError:
    return DevagentError(
        f"workspace {path} was replaced while devagent made it (it is now {now}); nothing was changed through it",
        hint=f"someone else can write to {path.parent}: use a workspace in a folder only you can write",
        status=ExitStatus.USAGE)

