"""Where an environment lives, as one typed interface: a `Site`; and what a server site needs of its ssh link.

A `Site` is this machine's Docker Engine (control/sites/local_site.py's `LocalSite`) or a server's reached over the
user's ssh (control/sites/server_site.py's `ServerSite`). `up`, `down`, `ls`, `doctor`, `reproduce`, `share`,
`forward` and `gpus` work on the site they are handed and never ask which kind it is; control/sites/opening.py's
`open_site` is the one place that decides. A third kind (a Slurm allocation reached through a login node, issue
17) is one more class that gives what `Site` lists.

`Link` is what a `ServerSite` needs of control/link/link.py's ServerLink: one ssh login (a ControlMaster) per
devagent command, the server's Docker Engine through a forwarded socket, commands and streams to the server's
loopback through that login. A test hands in a recording fake at this one boundary.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from devagent.control.engine.engine_api import EngineApi
    from devagent.control.features.rerun import Files
    from devagent.control.lifecycle.transaction import Transaction
    from devagent.control.sites.records import Records
    from devagent.core.gpu.ledger import Inventory
    from devagent.core.spec import EnvSpec
    from devagent.core.ssh.job_hop import JobCheck
    from devagent.errors import DevagentError


class ServerName(Protocol):
    @property
    def text(self) -> str: ...  # as the user gave it: "gpu-server", "alice@gpu:2222", "ssh://alice@gpu:2222"

    @property
    def proxy_jump(self) -> str: ...  # the ProxyJump value that reaches it


class Facts(Protocol):
    @property
    def user(self) -> str: ...

    @property
    def uid(self) -> int: ...

    @property
    def home(self) -> str: ...

    @property
    def resolved(self) -> Mapping[str, str]: ...  # the paths the link's probe resolved (ServerLink's resolve=)


class Link(Protocol):
    @property
    def server(self) -> ServerName: ...

    @property
    def facts(self) -> Facts: ...

    @property
    def engine(self) -> EngineApi: ...

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]: ...

    def connect(self, port: int, *, timeout: float) -> socket.socket: ...


@dataclass(frozen=True)
class SiteName:
    """A site as messages name it, known before it is opened (from devagent's record of an environment, say):
    SERVER as the user or the record named it, None for this machine. The open sites say the same (`on`,
    `loopback`)."""

    server: str | None = None

    @property
    def on(self) -> str:
        return f" on {self.server}" if self.server is not None else ""

    @property
    def loopback(self) -> str:
        return f"{self.server}'s 127.0.0.1" if self.server is not None else "127.0.0.1"


class Workspaces(Protocol):
    """The site's workspace folders: made when missing, handed to the login user, removed again by a rollback."""

    def place(self, spec: EnvSpec, *, exists: Callable[[], bool]) -> EnvSpec:
        """SPEC with its workspace and login uid as this site sees them; a workspace that would expose the user's
        keys is refused here, before anything is made. EXISTS: whether `up NAME` starts NAME as it was made (it
        keeps the workspace it was made with, unchecked)."""

    def make(self, spec: EnvSpec) -> object:
        """Make SPEC's workspace when missing. Returns what this up made (truthy), for `hand_over` and the
        rollback; falsy when the folder was there or another devagent made it meanwhile."""

    def hand_over(self, spec: EnvSpec, made: object, uid: int) -> None:
        """Let UID, the login user inside the container, write the workspace: give one this up MADE to it, refuse
        an existing one it could not write."""

    def remove_if_untouched(self, path: str) -> None:
        """Undo a workspace this up made, unless someone put their own files there meanwhile."""


class Site(Protocol):
    """Where an environment lives, for every command that works on one."""

    @property
    def server(self) -> str | None:
        """The server as devagent's records and `ls` write it (a Docker context's name resolved to its ssh
        endpoint); None: this machine."""

    @property
    def given(self) -> str | None:
        """The server as the user typed it (a Docker context's name, say); None: this machine."""

    @property
    def on(self) -> str:
        """For messages, the server as the user named it: " on gpu-server", or "" for this machine."""

    @property
    def via(self) -> str:
        """For messages: " via gpu-server", or "" for this machine."""

    @property
    def loopback(self) -> str:
        """For messages, where sshd listens: "gpu-server's 127.0.0.1", or "127.0.0.1"."""

    @property
    def user_uid(self) -> int:
        """The user's uid on the site's machine."""

    @property
    def up_flags(self) -> tuple[str, ...]:
        """What `devagent up` is given to make an environment on this site: ("--host", SERVER), or nothing."""

    @property
    def engine(self) -> EngineApi: ...

    @property
    def engine_clock_is_ours(self) -> bool:
        """Whether the engine's clock is this machine's: then a time the engine gives (until when a container's
        last health check stays the last, core/health.py's printed) may be kept and compared with ours."""

    @property
    def ports(self) -> range:
        """Where a new environment's host port comes from."""

    @property
    def proxy_jump(self) -> str | None:
        """How the alias reaches the environment's port: the ProxyJump value, or None (directly)."""

    @property
    def alias_check(self) -> JobCheck | None:
        """The Slurm job the alias asks about with each connection (core/ssh/job_hop.py), or None."""

    @property
    def proof_env(self) -> Mapping[str, str]:
        """What `up`'s login through the alias adds to its ssh's environment (job_hop.py's mux_env: the check
        and the hop then reuse this command's own ssh masters); empty for every kind but Slurm's."""

    @property
    def workspaces(self) -> Workspaces: ...

    @property
    def records(self) -> Records:
        """devagent's records of which site each environment lives on (on this machine, whatever the site)."""

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        """A stream to the engine's 127.0.0.1:PORT."""

    def key_login_socket(self, port: int, *, timeout: float) -> socket.socket | None:
        """The stream paramiko's login proof runs over; None: paramiko dials 127.0.0.1 itself."""

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """ARGV on the site's machine, as the user."""

    def gpu_inventory(self) -> Inventory:
        """The GPUs of the site's machine."""

    def files(self) -> Files:
        """The site's files as `reproduce` reads and copies them."""

    def append(self, notebook: PurePath, text: str, workspace: PurePath) -> None:
        """Append TEXT to NOTEBOOK inside WORKSPACE, as the user of the site's machine (OSError when it could
        not)."""

    def place_vscode_files(self, env: EnvSpec, show: Callable[[str], None]) -> None:
        """devagent's snippets and tasks into ENV's workspace's .vscode/ (`up --vscode`), each line said with
        SHOW: by this machine in a local workspace, in the environment as its login user on a server."""

    def place_editor_files(self, env: EnvSpec, extensions: Sequence[str],
                           settings: Mapping[str, object]) -> list[str]:
        """A devcontainer.json's VS Code EXTENSIONS and SETTINGS into ENV's workspace's .vscode/, written as
        `place_vscode_files` writes; the lines that say what was done."""

    def undo_step(self, undo: Callable[[], object]) -> Callable[[], None]:
        """UNDO as a rollback step that reaches the site: opened again first if it dropped."""

    def explain_drop(self, exc: Exception) -> DevagentError | None:
        """What EXC, raised during `up`, means when the site went away meanwhile (None: it did not)."""

    def claim(self, name: str, aliases: Callable[[], list[str]]) -> None:
        """Refuse NAME when it lives on another site (names are unique across sites); ALIASES: this machine's
        environment aliases."""

    def note(self, tx: Transaction, spec: EnvSpec, *, port: int | None) -> None:
        """Record where SPEC lives before anything is made there, undone by TX's rollback (nothing to note for
        this machine)."""

    def renote(self, spec: EnvSpec, port: int) -> None:
        """Record SPEC's port once known."""

    @property
    def container_labels(self) -> Mapping[str, str]:
        """Labels the site puts on the environment's container (a Slurm job's id, which its holder removes)."""

    @property
    def launch_note(self) -> str:
        """What the notebook header records of the site beyond the engine ("" for most: a Slurm allocation)."""

    @property
    def job_flags(self) -> tuple[str, ...]:
        """`up`'s options of the Slurm job an environment here lives in (--slurm, --time, …); () for most. Every
        run records them, so that `devagent reproduce` asks for a job like it."""

    def release(self, name: str) -> list[str]:
        """`down` NAME, first: give back what the site holds for it beyond the engine (a Slurm job: cancelled and
        waited for); what was given back, for `down` to say."""
