"""A server's Docker Engine reached over the user's ssh (`--host`) as a `Site` (control/sites/site.py).

It wraps the command's one ssh login (a `Link`: control/link/link.py's ServerLink) and owns what only a server
has: the environment's port is reached through the link and, for the alias, through ProxyJump; the workspace is
a folder there (control/sites/server_workspace.py); devagent's record of which server NAME lives on is written
before anything is made there; and when the link drops during `up`, the rollback opens it again (RELINK) so that
it still reaches the server, keeping the record for `down NAME` when even that fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from devagent.control.paths import Paths
from devagent.control.settings import Settings
from devagent.control.sites.records import Record, Records, refuse_elsewhere
from devagent.control.sites.server_workspace import ServerWorkspace
from devagent.core import ports as port_choice
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.engine.engine_api import EngineApi
    from devagent.control.features.rerun import Files
    from devagent.control.lifecycle.transaction import Transaction
    from devagent.control.sites.site import Link
    from devagent.core.gpu.ledger import Inventory
    from devagent.core.spec import EnvSpec
    from devagent.core.ssh.job_hop import JobCheck

Report = Callable[[str], None]


@contextlib.contextmanager
def opened(text: str, *, paths: Paths, settings: Settings, report: Report, quiet: bool = False,
           resolve: tuple[str, ...] = ()) -> Iterator[ServerSite]:
    """The server TEXT (as the user gave it) over one ssh login for this command, closed when the command ends;
    a second login only if that one drops during `up`, for the rollback. RESOLVE: paths on the server its probe
    resolves too (`up`'s workspace), with no command of their own."""
    with contextlib.ExitStack() as stack:
        def link(quiet: bool, resolve: tuple[str, ...] = ()) -> Link:
            from devagent.control.link.link import ServerLink, resolve_server

            server = resolve_server(text, environ=settings.environ or {})
            return stack.enter_context(ServerLink(
                server, paths=paths, report=(lambda _: None) if quiet else report,
                docker_socket=settings.docker_socket, resolve=resolve))

        # The link imports the docker SDK while ssh logs in (one thread: no import racing a fork).
        yield ServerSite(link(quiet, resolve), paths=paths, report=report, relink=lambda: link(False), given=text)


def resolve_name(text: str, settings: Settings) -> str:
    """The server TEXT names (a Docker context's endpoint, else TEXT), as devagent's records write it."""
    from devagent.control.link.link import resolve_server

    return resolve_server(text, environ=settings.environ or {}).text


class ServerWorkspaces:
    """The workspace folder on the server, through the site's current link."""

    def __init__(self, site: ServerSite) -> None:
        self.site = site

    def place(self, spec: EnvSpec, *, exists: Callable[[], bool]) -> EnvSpec:
        # A server folder (links resolved there); the login user inside gets the server user's uid (root's 0
        # becomes 1000, as locally).
        return dataclasses.replace(spec, workspace=self.site.folder.resolve(spec.workspace),
                                   uid=self.site.link.facts.uid or 1000)

    def make(self, spec: EnvSpec) -> bool:
        return self.site.folder.make(spec.workspace, uid=spec.uid, root=self.site.link.facts.uid == 0)

    def hand_over(self, spec: EnvSpec, made: object, uid: int) -> None:
        """One this up made belongs to the server user's uid (spec.uid): the login user can write it unless a
        team image brought another uid (whoever built it) — then it is judged like any other, and for a team
        image built for another uid than the server user's, the refusal says that this is why."""
        if made and uid == spec.uid:
            return
        server, workspace = self.site.server, spec.workspace
        try:
            self.site.folder.check_writable(workspace, uid)
        except DevagentError as exc:
            if not spec.image or uid == spec.uid:
                raise
            raise DevagentError(
                f"workspace {workspace} on {server} is not writable by uid {uid}, the login user of the team "
                f"image {spec.image} (your user there is uid {spec.uid})", status=ExitStatus.USAGE,
                hint=f"pass --workspace a folder on {server} that uid {uid} may write, or start a team image "
                f"built for uid {spec.uid} (`devagent image build --host {server} --tag … --push` as that user)"
            ) from exc

    def remove_if_untouched(self, path: str) -> None:
        self.site.folder.remove_if_untouched(path)


class ServerSite:
    """The server of LINK. RELINK opens the link again when it dropped (None: it is not opened again)."""

    ports = port_choice.DEFAULT_PORTS
    engine_clock_is_ours = False  # the server's: another machine's clock, however well kept

    def __init__(self, link: Link, *, paths: Paths, report: Report = lambda _: None,
                 relink: Callable[[], Link] | None = None, given: str | None = None) -> None:
        """GIVEN: the server as the user typed it (a Docker context's name, say), for messages."""
        self.paths, self.report, self._relink = paths, report, relink
        self.given: str | None = given
        self.records = Records(paths)
        self.workspaces = ServerWorkspaces(self)
        self._undo_failed = False  # an undo on the server failed: what is left there needs `down NAME`
        self._dropped = False  # the link dropped during this command (and was opened again for the rollback)
        self._use(link)

    def _use(self, link: Link) -> None:
        self.link = link
        self.folder = ServerWorkspace(link, server=link.server.text, home=link.facts.home,
                                      resolved=link.facts.resolved)

    @property
    def server(self) -> str:
        return self.link.server.text

    @property
    def on(self) -> str:
        return f" on {self.given or self.server}"

    @property
    def via(self) -> str:
        return f" via {self.given or self.server}"

    @property
    def loopback(self) -> str:
        return f"{self.given or self.server}'s 127.0.0.1"

    @property
    def up_flags(self) -> tuple[str, ...]:
        return ("--host", self.given or self.server)

    @property
    def user_uid(self) -> int:
        return self.link.facts.uid

    @property
    def engine(self) -> EngineApi:
        return self.link.engine

    @property
    def proxy_jump(self) -> str:
        return self.link.server.proxy_jump

    @property
    def alias_check(self) -> JobCheck | None:
        return None

    @property
    def proof_env(self) -> Mapping[str, str]:
        return {}

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        return self.link.connect(port, timeout=timeout)

    def key_login_socket(self, port: int, *, timeout: float) -> socket.socket | None:
        return self.link.connect(port, timeout=timeout)

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return self.link.run(argv, input=input, timeout=timeout)

    def gpu_inventory(self) -> Inventory:
        from devagent.control.engine.gpu_leases import nvidia_smi_inventory

        return nvidia_smi_inventory(self.link.run)

    def files(self) -> Files:
        from devagent.control.features.rerun import ServerFiles

        return ServerFiles(self.link)

    def append(self, notebook: PurePath, text: str, workspace: PurePath) -> None:
        """Over the ssh login, as the server user, only the appended bytes: never in a container of the image
        the notebook names, which must not get the original workspace (control/features/rerun.py's docstring)."""
        from devagent.control.features.rerun import append_on_server

        append_on_server(self.link, workspace=workspace, notebook=notebook, text=text)

    def place_vscode_files(self, env: EnvSpec, show: Callable[[str], None]) -> None:
        """devagent's snippets and tasks into the workspace's .vscode/, in the environment as its login user: the
        workspace on the server is theirs, and a link planted in it leads to the container's files, never to the
        server user's."""
        code, said = self.engine.exec_as(env.name, env.user, ["devagent", "vscode-files", env.inside_workspace])
        for line in said.splitlines():
            show(line)
        if code != 0:
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written{self.on}",
                                status=ExitStatus.USAGE, hint="the line above says why; fix it, then run up again")

    def place_editor_files(self, env: EnvSpec, extensions: Sequence[str],
                           settings: Mapping[str, object]) -> list[str]:
        """A devcontainer.json's VS Code extensions and settings into the workspace's .vscode/, in the environment
        as its login user (as `place_vscode_files`); the lines that say what was done."""
        argv = ["devagent", "editor-files", env.inside_workspace, "--settings", json.dumps(dict(settings))]
        code, text = self.engine.exec_as(env.name, env.user, [*argv, *(f"--recommend={e}" for e in extensions)])
        if code != 0:
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written{self.on}",
                                status=ExitStatus.USAGE, details=text.strip() or None,
                                hint="fix what the details say, then run up again")
        return text.splitlines()

    def _alive(self) -> bool:
        try:
            self.link.run(["true"], timeout=15.0)
        except DevagentError:
            return False
        return True

    def undo_step(self, undo: Callable[[], object]) -> Callable[[], None]:
        """An undo step on the server: through the link, opened again first if it dropped. When it still fails,
        devagent's record of the environment is kept, so that `down NAME` can finish the job later."""
        def step() -> None:
            try:
                if self._relink is not None and not self._alive():
                    self.report(f"the ssh connection to {self.server} dropped; connecting again to undo")
                    self._dropped = True
                    self._use(self._relink())
                undo()
            except BaseException:
                self._undo_failed = True
                raise
        return step

    def explain_drop(self, exc: Exception) -> DevagentError | None:
        """A dropped link shows as whatever the engine's client or ssh raised: say what it is (None: not that)."""
        if isinstance(exc, DevagentError) or (not self._dropped and self._alive()):
            return None
        return DevagentError(f"the ssh connection to {self.server} dropped during `up`; what it had made is "
                             "removed again", status=ExitStatus.SERVER_UNREACHABLE, details=str(exc) or None,
                             hint=f"check that `ssh {self.server}` works, then run up again")

    def claim(self, name: str, aliases: Callable[[], list[str]]) -> None:
        record = self.records.get(name)
        if record is not None and record.server != self.server:
            raise refuse_elsewhere(name, record.server, here=f"on {self.server}")
        if record is not None and record.slurm_job is not None:  # (SlurmSite's claim takes those)
            raise DevagentError(f"environment {name!r} lives in Slurm job {record.slurm_job} on {record.server}, "
                                f"not on {record.server}'s own engine", status=ExitStatus.CONFLICT,
                                hint=f"ask for its job again with --slurm PARTITION (and --time), or remove it "
                                f"first: devagent down {name}")
        if record is None and name in aliases():
            raise DevagentError(f"environment {name!r} exists on this machine's Docker Engine; names are unique "
                                "across servers", status=ExitStatus.CONFLICT,
                                hint=f"pick another name, or remove that one first: devagent down {name}")

    def note(self, tx: Transaction, spec: EnvSpec, *, port: int | None) -> None:
        """Note where NAME lives before anything is made there, so that `down NAME` finds it even after this up
        is killed; the rollback removes the note again (or restores the one `--recreate` found)."""
        before = self.records.get(spec.name)

        def undo() -> None:
            if self._undo_failed:  # something is left on the server: `down NAME` must still find it
                self.report(f"devagent keeps its record of {spec.name} on {self.server}: `devagent down "
                            f"{spec.name}` removes what is left there once the server answers")
            elif before:
                self.records.put(before)
            else:
                self.records.remove(spec.name)

        tx.on_failure(undo)
        self.record(spec, port)

    def renote(self, spec: EnvSpec, port: int | None) -> None:
        self.record(spec, port)

    def record(self, spec: EnvSpec, port: int | None) -> None:
        """Write devagent's record of SPEC on this server (note's and renote's)."""
        self.records.put(Record(name=spec.name, server=self.server, user=spec.user, workspace=spec.workspace,
                                port=port))

    @property
    def container_labels(self) -> Mapping[str, str]:
        return {}

    @property
    def launch_note(self) -> str:
        return ""

    @property
    def job_flags(self) -> tuple[str, ...]:
        return ()

    def release(self, name: str) -> list[str]:
        return []
