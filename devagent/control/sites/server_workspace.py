"""The workspace folder on a server (`up --host`): where it is, which folders may be mounted, making it.

Everything runs on the server through the one ssh login of the command, as the server user, in as few commands as
it can (each costs a round trip and an ssh client): the link's own probe resolves the path (ServerLink's
`resolve=`, facts.resolved), one command makes the folder and reports its owner and mode. The
folder is made by that user, so it is theirs; a server user who is root gives it to uid 1000, the login user of
the environment then, with one `chown` of that login — no process of the environment runs as root for it. The
refusals are those of a local workspace (control/sites/local_workspace.py), judged on the server's own paths: not the
server user's home, not inside or around its ``~/.ssh``. devagent's keys stay on the laptop, so nothing else there needs
guarding.

The server user may be root, and the workspace may be in a folder a teammate can write (or below one). devagent is
not installed there, only a POSIX shell and coreutils can be counted on, so a folder is never acted on twice by its
path: every command starts with the shell functions of ``WALK``, which enter a path one folder at a time and check
each with ``pwd -P``; what is done then is done to ``.`` or to a name in it. A link (or another folder) swapped in
meanwhile is refused, never followed — as control/sites/local_workspace.py does with descriptors on this machine.

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
from devagent.core.mounts.system_folders import system_folder
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


# Shell functions every server command may use (POSIX sh and coreutils only: devagent is not installed there).
# The working folder is the shell's one handle on a folder, as a descriptor is in control/sites/local_workspace.py:
# `enter PATH` goes to PATH (absolute, links resolved already) one folder at a time with `cd -P` and checks each with
# `pwd -P`, the physical path, which holds no link; `enter PATH make` makes the missing ones as it goes, and
# `enter_new PATH` makes PATH's last folder itself (exit 4 when something is there already) and checks that it is
# the caller's. A folder that became a link or another folder meanwhile is refused (exit 3, "devagent-swapped
# PATH" on stderr), never followed; commands then act on `.` or on a name in it, never on the whole path again.
WALK = r"""swapped() { echo "devagent-swapped $1" >&2; return 3; }
enter() {
  cd / || return 1; _p=; _r=${1#/}
  while [ -n "$_r" ]; do
    _c=${_r%%/*}; case $_r in */*) _r=${_r#*/};; *) _r=;; esac
    [ -n "$_c" ] || continue
    _p=$_p/$_c
    if [ "$2" = make ] && [ ! -e "./$_c" ] && [ ! -L "./$_c" ]; then
      mkdir "./$_c" || [ -e "./$_c" ] || return 1  # made by someone else meanwhile: checked as any other
    fi
    if ! cd -P "./$_c" 2>/dev/null; then
      if [ -L "./$_c" ]; then swapped "$_p"; return 3; fi
      echo "$_p: missing, not a folder, or not yours to enter" >&2; return 1
    fi
    [ "$(pwd -P)" = "$_p" ] || { swapped "$_p"; return 3; }
  done
}
enter_new() {
  enter "$(dirname -- "$1")" make || return
  _n=$(basename -- "$1"); mkdir "./$_n" 2>/dev/null || return 4
  cd -P "./$_n" 2>/dev/null && [ "$(pwd -P)" = "$1" ] && [ "$(stat -c %u .)" = "$(id -u)" ] || {
    swapped "$1"; return 3; }
}
"""
_SWAPPED = "devagent-swapped "


def run_script(link: Runner, server: str, script: str, *args: str, about: str) -> str:
    """The output of the POSIX sh SCRIPT (which may use the functions of WALK) run on SERVER with ARGS as $1…; a
    DevagentError with what the server said when it fails (ABOUT: what the script was about, for the hint)."""
    done = link.run(["sh", "-c", WALK + script, "sh", *args], timeout=60.0)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        swapped = [line[len(_SWAPPED):] for line in said.splitlines() if line.startswith(_SWAPPED)]
        if done.returncode == 3 and swapped:
            raise swapped_error(swapped[-1], server)
        raise DevagentError(f"on {server}, `{script.split(';', maxsplit=1)[0].strip()}` failed "
                            f"(exit {done.returncode})", status=ExitStatus.USAGE, details=said or None,
                            hint=f"the lines above are what the server said about {about}")
    return done.stdout.decode(errors="replace")


def swapped_error(path: str, server: str) -> DevagentError:
    """PATH on SERVER turned into a link or another folder while devagent worked in it (WALK refused it)."""
    return DevagentError(
        f"{path} on {server} was replaced while devagent worked on it (it is now a link or another folder); "
        "nothing was changed through it", status=ExitStatus.USAGE,
        hint=f"someone else can write to {posixpath.dirname(path)} on {server}: use a folder there that only you "
        "can write")


class ServerWorkspace:
    def __init__(self, link: Runner, *, server: str, home: str, resolved: Mapping[str, str] | None = None) -> None:
        self.link, self.server, self.home = link, server, home
        self._resolved = dict(resolved or {})  # paths the link's probe resolved already
        self._seen: dict[str, tuple[int, int]] = {}  # path → (owner uid, mode) of a folder make() found there
        self._made: dict[str, str] = {}  # path → "device:inode" of the folder make() made there

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
        # Made and given away through the working folder (WALK): a link swapped in for it, or for a folder above
        # it, is refused, never chowned through. Another up that made it meanwhile: theirs (False), as locally.
        said = self._run(
            'if [ -e "$1" ] || [ -L "$1" ]; then [ -d "$1" ] || { echo not-a-folder; exit 0; }; '
            'echo there $(stat -L -c "%u %a" -- "$1"); exit 0; fi; '
            'enter_new "$1"; s=$?; [ $s = 4 ] && { echo raced; exit 0; }; [ $s = 0 ] || exit $s; '
            'if [ "$2" = root ]; then chown -- "$3:$3" . || exit; fi; echo made $(stat -c %d:%i .)',
            path, "root" if root else "user", str(uid)).split()
        if said[:1] == ["not-a-folder"]:
            raise DevagentError(f"workspace {path} on {self.server} is not a folder", status=ExitStatus.USAGE,
                                hint="pass --workspace a folder (it is created when missing)")
        if said[:1] == ["there"] and len(said) == 3 and said[1].isdigit():
            self._seen[path] = (int(said[1]), int(said[2], 8))
        if said[:1] == ["made"] and len(said) == 2:
            self._made[path] = said[1]
            return True
        return False

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
        # From the folder above it, entered through WALK, and only the very folder make() made (its device and
        # inode): a link swapped in for it or above it is not followed, another folder put there is not removed.
        keep = " ".join(shlex.quote(n) for n in sorted(layout.WORKSPACE_FILES))
        self._run('enter "$(dirname -- "$1")" 2>/dev/null || exit 0; n=$(basename -- "$1"); '
                  '( cd -P "./$n" 2>/dev/null && [ "$(pwd -P)" = "$1" ] || exit 1; '
                  '[ -z "$2" ] || [ "$(stat -c %d:%i .)" = "$2" ] || exit 1; '
                  'for f in * .[!.]* ..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
                  f'case " {keep} " in *" $f "*) ;; *) exit 1;; esac; done ) || exit 0; rm -rf -- "./$n"',
                  path, self._made.get(path, ""))
