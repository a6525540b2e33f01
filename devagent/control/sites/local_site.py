"""This machine's Docker Engine as a `Site` (control/sites/site.py): the environment's port is dialled on
127.0.0.1, commands run here, the workspace is a folder here (control/sites/local_workspace.py), and nothing needs
recording, since an environment without a record is a local one."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from devagent.control.paths import Paths
from devagent.control.sites import local_workspace as workspaces
from devagent.control.sites.records import Records, refuse_elsewhere
from devagent.control.ssh.openssh import connect_local
from devagent.core import layout
from devagent.core import ports as port_choice
from devagent.core.gpu.ledger import Inventory
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.engine.engine_api import EngineApi
    from devagent.control.features.rerun import Files
    from devagent.control.lifecycle.transaction import Transaction
    from devagent.core.spec import EnvSpec
    from devagent.core.ssh.job_hop import JobCheck


def prepare_workspace(path: Path, uid: int, *, created: workspaces.NewWorkspace | None) -> None:
    """Give a workspace this up created to the login user; refuse an existing one that user could not write."""
    if created:
        workspaces.give_to(created, uid)  # through a descriptor of the folder made, never through a link
        return
    st = path.stat()
    writable = (st.st_uid == uid and st.st_mode & stat.S_IWUSR) or st.st_mode & stat.S_IWOTH
    if not writable:
        raise DevagentError(
            f"workspace {path} is not writable by uid {uid}, the login user inside the container",
            status=ExitStatus.USAGE,
            hint=f"give it to that user (chown -R {uid} {path}) or pass --workspace a folder you own",
        )


Append = Callable[[Path, bytes, Path], None]  # (notebook, bytes, workspace)


class LocalWorkspaces:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def place(self, spec: EnvSpec, *, exists: Callable[[], bool]) -> EnvSpec:
        if not exists():  # one that exists keeps the workspace it was made with
            workspaces.check_workspace(Path(spec.workspace), self.paths)  # not ~, not ~/.ssh: before anything
        return spec

    def make(self, spec: EnvSpec) -> workspaces.NewWorkspace | None:
        """Made without following a link swapped in meanwhile, and the login user's at once, so that a killed up
        leaves none that the next one refuses."""
        created = workspaces.create(Path(spec.workspace))
        if created is not None:
            prepare_workspace(Path(spec.workspace), spec.uid, created=created)
        return created

    def hand_over(self, spec: EnvSpec, made: object, uid: int) -> None:
        prepare_workspace(Path(spec.workspace), uid,
                          created=made if isinstance(made, workspaces.NewWorkspace) else None)

    def remove_if_untouched(self, path: str) -> None:
        folder = Path(path)
        if folder.is_dir() and set(os.listdir(folder)) <= layout.WORKSPACE_FILES:
            shutil.rmtree(folder, ignore_errors=True)


class LocalSite:
    """This machine's engine. INVENTORY: this machine's GPUs, and APPEND: the notebook append under its lock (the
    CLI brings both: control/ may not import the environment's side); PORTS: where a new environment's host port
    comes from (DEVAGENT_PORTS)."""

    server: str | None = None
    given: str | None = None
    on = ""  # for messages
    via = ""
    loopback = "127.0.0.1"
    up_flags: tuple[str, ...] = ()
    proxy_jump: str | None = None
    alias_check: JobCheck | None = None
    proof_env: Mapping[str, str] = {}
    container_labels: Mapping[str, str] = {}
    launch_note = ""
    job_flags: tuple[str, ...] = ()
    engine_clock_is_ours = True  # the engine runs on this machine

    def __init__(self, engine: EngineApi | Callable[[], EngineApi], *, paths: Paths,
                 inventory: Callable[[], Inventory] | None = None,
                 ports: range | Callable[[], range] = port_choice.DEFAULT_PORTS, append: Append | None = None) -> None:
        """ENGINE and PORTS may be given as functions: asked once, when first used (the engine answers a ping,
        and DEVAGENT_PORTS is checked before that, by whoever needs a port)."""
        self.paths = paths
        self._engine, self._ports, self._append = engine, ports, append
        self._inventory = inventory or (lambda: Inventory(error="no GPU inventory"))
        self.workspaces = LocalWorkspaces(paths)
        self.records = Records(paths)

    @functools.cached_property
    def engine(self) -> EngineApi:
        return self._engine() if callable(self._engine) else self._engine

    @functools.cached_property
    def ports(self) -> range:
        return self._ports() if callable(self._ports) else self._ports

    @property
    def user_uid(self) -> int:
        return os.getuid()

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        return connect_local(port, timeout)

    def key_login_socket(self, port: int, *, timeout: float) -> socket.socket | None:
        return None

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)

    def gpu_inventory(self) -> Inventory:
        return self._inventory()

    def files(self) -> Files:
        from devagent.control.features.rerun import LocalFiles

        return LocalFiles()

    def append(self, notebook: PurePath, text: str, workspace: PurePath) -> None:
        if self._append is None:
            raise OSError("no notebook append on this machine's site")
        self._append(Path(notebook), text.encode(), Path(workspace))

    def place_vscode_files(self, env: EnvSpec, show: Callable[[str], None]) -> None:
        """devagent's snippets and tasks into the workspace's .vscode/, by this machine, for ENV that is up."""
        from devagent.control.lifecycle.vscode_files import place_vscode_files

        try:
            for line in place_vscode_files(Path(env.workspace)):
                show(line)
        except OSError as exc:  # the environment is up; only the convenience files are missing
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ could not be written: {exc}",
                                status=ExitStatus.USAGE, hint="make the workspace writable, then run up again"
                                ) from None
        except DevagentError as exc:  # a link, or not a regular file, where a file would be written: refused
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written: {exc.message}",
                                status=exc.status, hint=exc.hint) from None

    def place_editor_files(self, env: EnvSpec, extensions: Sequence[str],
                           settings: Mapping[str, object]) -> list[str]:
        """A devcontainer.json's VS Code extensions and settings into the workspace's .vscode/, by this machine;
        the lines that say what was done."""
        from devagent.control.lifecycle.vscode_files import place_editor_files

        try:
            return list(place_editor_files(Path(env.workspace), extensions, settings))
        except (OSError, DevagentError) as exc:
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written: "
                                f"{getattr(exc, 'message', exc)}", status=ExitStatus.USAGE,
                                hint="make .vscode/ a writable folder of the workspace, then run up again") from None

    def undo_step(self, undo: Callable[[], object]) -> Callable[[], None]:
        def step() -> None:
            undo()
        return step

    def explain_drop(self, exc: Exception) -> DevagentError | None:
        return None

    def claim(self, name: str, aliases: Callable[[], list[str]]) -> None:
        record = self.records.get(name)
        if record is not None:
            raise refuse_elsewhere(name, record.server, here="on this machine's engine")

    def note(self, tx: Transaction, spec: EnvSpec, *, port: int | None) -> None:
        return

    def renote(self, spec: EnvSpec, port: int) -> None:
        return

    def release(self, name: str) -> list[str]:
        return []
