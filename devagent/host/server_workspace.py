"""The workspace folder on a server (`up --host`): where it is, which folders may be mounted, making it.

Everything runs on the server through the one ssh login of the command, as the server user, in as few commands as
it can (each costs a round trip and an ssh client): the link's own probe resolves the path (ServerLink's
`resolve=`, facts.resolved), one command makes the folder and reports its owner and mode. The
folder is made by that user, so it is theirs; a server user who is root gives it to uid 1000, the login user of
the environment then, with one `chown` of that login — no process of the environment runs as root for it. The
refusals are those of a local workspace (host/workspace.py), judged on the server's own paths: not the server
user's home, not inside or around its ``~/.ssh``. devagent's keys stay on the laptop, so nothing else there needs
guarding.

    ws = ServerWorkspace(link, server="gpu", home="/home/alice", resolved=link.facts.resolved)
    path = ws.resolve("~/devagent/pytorch-dev")    # '/home/alice/devagent/pytorch-dev', links resolved
    made = ws.make(path, uid=1000, root=False)      # True: this up made it (and the rollback may remove it)
    ws.check_writable(path, 1000)                   # an existing folder: judged from what make saw
"""

from __future__ import annotations

import posixpath
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from devagent.core import layout
from devagent.core.system_folders import system_folder
from devagent.core.up_request import SERVER_WORKSPACES
from devagent.errors import DevagentError, ExitStatus


class Runner(Protocol):
    """How a command runs on the server (ServerLink.run)."""

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]: ...


def absolute(path: str, home: str) -> str:
    """PATH on the server made absolute: `~`, `~/x` and relative paths are below HOME.

    >>> absolute("~/devagent/x", "/home/a"), absolute("code", "/home/a"), absolute("/srv/x/../y", "/home/a")
    ('/home/a/devagent/x', '/home/a/code', '/srv/y')
    """
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    elif not path.startswith("/"):
        path = posixpath.join(home, path)
    return posixpath.normpath(path)


def check_server_workspace(workspace: str, *, home: str, server: str) -> None:
    """Refuse WORKSPACE (absolute, links resolved) when it is the server user's HOME, holds it, or is in, or holds,
    its ~/.ssh: everything in the environment can read and change the workspace."""
    ssh_dir = posixpath.join(home, ".ssh")
    what = system_folder(workspace)  # its home itself is said below, with its own hint
    if what is not None:
        raise DevagentError(
            f"workspace {workspace} on {server} is {what}: no environment may mount it (everything in the "
            "environment could change it, and giving it to the login user would break the server)",
            status=ExitStatus.USAGE, hint=f"pass --workspace a folder of its own, e.g. ~/{SERVER_WORKSPACES}/NAME "
            "(the default)")

    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith(outer.rstrip("/") + "/")

    if within(home, workspace):
        what = "is" if workspace == home else "holds"
        raise DevagentError(
            f"workspace {workspace} on {server} {what} the home folder of your login there ({home}), with its "
            "~/.ssh; everything in the environment could read and change it", status=ExitStatus.USAGE,
            hint=f"pass --workspace a folder of its own, e.g. ~/{SERVER_WORKSPACES}/NAME (the default)")
    if within(workspace, ssh_dir):
        raise DevagentError(
            f"workspace {workspace} on {server} is inside {ssh_dir}; everything in the environment could read "
            "and change it", status=ExitStatus.USAGE,
            hint="keep projects elsewhere and pass --workspace that folder (e.g. ~/code/PROJECT)")


def run_script(link: Runner, server: str, script: str, *args: str, about: str) -> str:
    """The output of the POSIX sh SCRIPT run on SERVER with ARGS as $1…; a DevagentError with what the server said
    when it fails (ABOUT: what the script was about, for the hint)."""
    done = link.run(["sh", "-c", script, "sh", *args], timeout=60.0)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise DevagentError(f"on {server}, `{script.split(';', maxsplit=1)[0].strip()}` failed "
                            f"(exit {done.returncode})", status=ExitStatus.USAGE, details=said or None,
                            hint=f"the lines above are what the server said about {about}")
    return done.stdout.decode(errors="replace")


class ServerWorkspace:
    def __init__(self, link: Runner, *, server: str, home: str, resolved: Mapping[str, str] | None = None) -> None:
        self.link, self.server, self.home = link, server, home
        self._resolved = dict(resolved or {})  # paths the link's probe resolved already
        self._seen: dict[str, tuple[int, int]] = {}  # path → (owner uid, mode) of a folder make() found there

    def _run(self, script: str, *args: str) -> str:
        return run_script(self.link, self.server, script, *args, about="the workspace folder")

    def resolve(self, path: str) -> str:
        """PATH as the server sees it: absolute, `..` and links resolved (links in the part that exists)."""
        wanted = absolute(path, self.home)
        real = self._resolved.get(path)
        if real is None:  # the probe was not asked: a command of its own
            real = self._run('realpath -m -- "$1"', wanted).strip()
        if not real.startswith("/"):
            raise DevagentError(f"the server {self.server} could not resolve the workspace path {wanted}",
                                status=ExitStatus.USAGE, hint="pass --workspace an absolute path on the server")
        check_server_workspace(real, home=self.home, server=self.server)
        return real

    def make(self, path: str, *, uid: int, root: bool) -> bool:
        """Make PATH when missing (True: this call made it); a folder ROOT (the server user is root) makes is
        given to UID. An existing folder is left as it is, its owner and mode noted: `check_writable` judges it
        once the uid is known, without asking the server again."""
        said = self._run(
            'if [ -e "$1" ] || [ -L "$1" ]; then [ -d "$1" ] || { echo not-a-folder; exit 0; }; '
            'echo there $(stat -L -c "%u %a" -- "$1"); exit 0; fi; '
            'mkdir -p -- "$1"; if [ "$2" = root ]; then chown -- "$3:$3" "$1"; fi; echo made',
            path, "root" if root else "user", str(uid)).split()
        if said[:1] == ["not-a-folder"]:
            raise DevagentError(f"workspace {path} on {self.server} is not a folder", status=ExitStatus.USAGE,
                                hint="pass --workspace a folder (it is created when missing)")
        if said[:1] == ["there"] and len(said) == 3 and said[1].isdigit():
            self._seen[path] = (int(said[1]), int(said[2], 8))
        return said == ["made"]

    def check_writable(self, path: str, uid: int) -> None:
        """Refuse an existing workspace the login user (UID inside the container) could not write."""
        seen = self._seen.get(path)
        if seen is None:
            owner, mode = self._run('stat -L -c "%u %a" -- "$1"', path).split()
            seen = (int(owner), int(mode, 8))
        st_uid, bits = seen
        if not ((st_uid == uid and bits & 0o200) or bits & 0o002):
            raise DevagentError(
                f"workspace {path} on {self.server} is not writable by uid {uid}, the login user inside the "
                "container", status=ExitStatus.USAGE,
                hint=f"give it to that user on the server (chown -R {uid} {shlex.quote(path)}) or pass "
                "--workspace a folder you own there")

    def remove_if_untouched(self, path: str) -> None:
        """Undo a workspace this up made, unless someone put their own files there meanwhile."""
        keep = " ".join(shlex.quote(n) for n in sorted(layout.WORKSPACE_FILES))
        self._run('cd -- "$1" || exit 0; for f in * .[!.]* ..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
                  f'case " {keep} " in *" $f "*) ;; *) exit 0;; esac; done; cd /; rm -rf -- "$1"', path)
