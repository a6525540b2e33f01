"""`up`, `down` and `ls` as library calls: the CLI parses, these do, the CLI renders.

`up` is one transaction — create → inject keys → start → write the ssh config (while sshd boots) → wait for
sshd's banner → prove the login → prove it again through the alias — undone in reverse on any failure, Ctrl-C,
SIGTERM and SIGHUP included: a failed `up` leaves no container, no ssh entry, no pinned key behind. What SIGKILL
leaves is safe to meet: the container gets its name only once it is complete, and the next up or down removes
the half-made ones.

The environment's host port is fixed when its container is made (core/ports.py) and stays the same across
restarts and `--recreate`, so the alias is written once. `--recreate` stops the old container just before the new
one starts on its port, and starts it again on rollback; SIGKILL in between leaves it stopped, under its name,
and the next `up` starts it again (or, with --recreate, replaces it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import devagent
from devagent.control.atomic import FileLock
from devagent.control.engine import home_volume
from devagent.control.engine.derived_image import derived_image, team_image
from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.engine_data import ArchiveFile, ContainerInfo, ContainerRow
from devagent.control.engine.gpu_leases import GPU_UUIDS_LABEL, GpuLedger, owner_name
from devagent.control.features import teammates
from devagent.control.features.listing import Row
from devagent.control.lifecycle import down as teardown
from devagent.control.lifecycle.interrupts import AGAIN, Stopped, StopSignals, describe, exit_status
from devagent.control.lifecycle.transaction import Transaction
from devagent.control.paths import Paths
from devagent.control.sites.local_site import LocalSite
from devagent.control.ssh import keys
from devagent.control.ssh.openssh import GATED_BY_STDIN, login_through_alias, openssh_at_least, wait_for_banner
from devagent.control.ssh.user_config import SshConfig
from devagent.core import layout, made_with
from devagent.core import ports as port_choice
from devagent.core.gpu.idle_rule import idle_test_seam
from devagent.core.gpu.ledger import Inventory, choose, describe_choice
from devagent.core.mounts import home
from devagent.core.notebook import LaunchContext
from devagent.core.people import who
from devagent.core.spec import DEFAULT_CPUS, SSHD_PORT, EnvSpec, GpuRequest
from devagent.core.ssh.forward_plan import ports_label
from devagent.core.ssh.host_entry import HostEntry
from devagent.core.ssh.sshd import session_env_file
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.sites.site import Site

Report = Callable[[str], None]
READY_TIMEOUT = 60.0
# How long `up`/`down` wait for another devagent working on the same environment (an image build takes minutes).
ENV_LOCK_TIMEOUT = 900.0
# Prints the uid and tells the agent that up has committed (the ready flag of core/layout.py, which the agent
# waits for). Plain sh: a Python start-up inside the container would cost a quarter of a second on every up.
READY_COMMAND = (f"mkdir -p ~/{layout.AGENT_HOME} && touch ~/{layout.READY_FLAG} && id -u",)
UP_ID_LABEL = "devagent.up-id"
# Which devagent made a container: a hash of this machine's name and DEVAGENT_HOME, whose per-environment lock
# every up holds. A leftover that carries our own id cannot belong to an up still running, so up may remove it.
HOME_ID_LABEL = "devagent.home-id"
# Every up creates its container as NAME-new-xxxxxx and renames it to NAME only once it is complete (its keys
# are in, sshd answered, the login was proven): a container named NAME is never half-made, and one labelled with
# NAME under another name is a leftover. The steps, in order, for Provisioner.on_step (a test seam).
UP_STEPS = ("workspace", "created", "leased", "started", "alias", "renamed", "proven", "replacing")


@dataclass(frozen=True)
class GpuChoice:
    """What `up` gives the container: the device request (UUIDs, or all) and the GPUs to lease, by UUID."""

    request: GpuRequest
    uuids: tuple[str, ...]
    text: str  # for the notebook header
    index: dict[str, int] = dataclasses.field(default_factory=dict)  # UUID → index, for messages


NO_GPUS = GpuChoice(GpuRequest("none"), (), "none")
# How long a failed --recreate waits for the old container's sshd once it has started it again.
RESTART_TIMEOUT = 30.0


@dataclass
class UpResult:
    name: str
    image: str
    image_built: bool
    port: int
    user: str
    uid: int
    created: bool
    recreated: bool
    workspace: str


def spec_hash(spec: EnvSpec, user_public: str) -> str:
    """What the container was made from, minus the image (a devagent upgrade must not force --recreate).

    The user's public key is part of it: the container's authorized_keys holds it.
    """
    parts: list[object] = [spec.base_image, spec.workspace, spec.user, spec.gpus.describe(), spec.limits.describe(),
                            spec.sshd_profile, dataclasses.astuple(spec.agent), user_public.split()[:2]]
    if spec.image:  # only then: environments made before --image existed keep their hash
        parts.append(spec.image)
    if spec.idle_release is not None:  # the same: those made before --idle-release keep theirs
        parts.append(["idle-release", spec.idle_release])
    if spec.container_env or spec.remote_env:  # the same: those made without a devcontainer.json keep theirs
        parts.append(["env", spec.container_env, spec.remote_env])
    if spec.forward_ports:  # recorded in a label: a change makes a new container
        parts.append(["forward-ports", spec.forward_ports])
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Provisioner:
    """Host-side operations on one site (control/sites/: this machine's engine, or a server's over the one ssh
    login), with one set of paths and the user's ssh config. The site says where the workspace is made, how sshd
    is reached and how the alias reaches it, and what is recorded of where the environment lives.

    ENGINE (with GPU_INVENTORY and PORTS) is shorthand for this machine's site over that engine.
    """

    def __init__(self, *, paths: Paths, site: Site | None = None, engine: EngineApi | None = None,
                 report: Report = lambda _: None, gpu_inventory: Callable[[], Inventory] | None = None,
                 ports: range | None = None) -> None:
        if site is None:
            assert engine is not None, "a Provisioner needs a site or an engine"
            site = LocalSite(engine, paths=paths, inventory=gpu_inventory,
                             ports=port_choice.DEFAULT_PORTS if ports is None else ports)
        self.site, self.paths, self.report = site, paths, report
        self.ports = site.ports if ports is None else ports  # where a new environment's host port comes from
        self.ssh_config = SshConfig(paths)
        self.gpus = GpuLedger(site.engine, inventory=site.gpu_inventory, clock_is_ours=site.engine_clock_is_ours,
                              cache=paths.gpu_cache)
        self.records = site.records

    @property
    def engine(self) -> EngineApi:
        return self.site.engine

    @property
    def host(self) -> str | None:
        """The server this provisioner works on (as the user named it); None: the local engine."""
        return self.site.server

    def _on_site(self, undo: Callable[[], object]) -> Callable[[], None]:
        """An undo step that reaches the site (opened again first if it dropped); the GPU ledger follows."""
        def synced() -> None:
            self.gpus.engine = self.site.engine
            undo()
        return self.site.undo_step(synced)

    # -- up -------------------------------------------------------------------------------------------------

    def _env_lock(self, name: str) -> FileLock:
        """One `up` or `down` per environment at a time: a second one waits, then sees what the first made."""
        return FileLock(self.paths.env_lock(name), timeout=ENV_LOCK_TIMEOUT, purpose=f"environment {name!r}",
                        status=ExitStatus.CONFLICT,
                        on_wait=lambda: self.report(f"waiting for another devagent working on {name!r}"))

    def on_step(self, step: str) -> None:
        """Called as `up` reaches each of UP_STEPS. Does nothing; a test harness replaces it to pause there."""

    def up(self, spec: EnvSpec, *, identity: Path | None = None, recreate: bool = False,
           launch_command: str = "", as_made: bool = False) -> UpResult:
        """AS_MADE: no option was given (`up NAME`): an environment NAME of the caller's that exists is started as
        it was made, whatever the defaults would make now."""
        spec = self.site.workspaces.place(spec, exists=lambda: as_made and self.engine.get(spec.name) is not None)
        # DEVAGENT_HOME's paths go into the alias and the Include line: one OpenSSH would misread ('#', '%') is
        # refused now, not once the container runs (and the home folder holds a new key).
        HostEntry(name=spec.name, port=1, user=spec.user, identity_file=str(identity or self.paths.identity),
                  known_hosts_file=str(self.paths.known_hosts))
        self.ssh_config.include_line()
        # SIGTERM and SIGHUP end up like Ctrl-C, with the rollback; Ctrl-C works even if SIGINT was ignored.
        with StopSignals() as signals:
            try:
                with self._env_lock(spec.name) as lock:
                    try:
                        try:
                            return self._up(spec, identity=identity, recreate=recreate,
                                            launch_command=launch_command, signals=signals, as_made=as_made)
                        except Exception as exc:
                            said = self.site.explain_drop(exc)  # the site went away meanwhile: say so
                            if said is None:
                                raise
                            raise said from exc
                    except BaseException:
                        with contextlib.suppress(Exception):  # the first error is the one the user sees
                            if self.engine.get(spec.name) is None:  # nothing is left for the lock to guard
                                lock.discard()
                        raise
            except Stopped as exc:  # outside the transaction (it turns its own into a DevagentError)
                raise DevagentError(f"{describe(exc.signum)}; `up` had made nothing that needed undoing",
                                    status=exit_status(exc.signum), hint=AGAIN) from None

    def _connect(self, port: int, timeout: float) -> socket.socket:
        """A stream to sshd's published port on the site's 127.0.0.1."""
        return self.site.connect(port, timeout=timeout)

    def _home_id(self) -> str:
        return hashlib.sha256(f"{os.uname().nodename}\0{self.paths.home}".encode()).hexdigest()[:12]

    def _leftovers(self, name: str, *, ours_only: bool) -> list[ContainerInfo]:
        """Containers an interrupted or killed `up` of NAME left under a temporary name (see UP_STEPS).
        OURS_ONLY: only those of this DEVAGENT_HOME (another one's may belong to an up running now)."""
        return [c for c in self.engine.list_managed(name=name)
                if c.labels.get("devagent.name") == name and c.name != name
                and (not ours_only or c.labels.get(HOME_ID_LABEL) == self._home_id())]

    def _up(self, spec: EnvSpec, *, identity: Path | None, recreate: bool, launch_command: str,
            signals: StopSignals, as_made: bool = False) -> UpResult:
        if spec.limits.cpus is None:
            spec = dataclasses.replace(spec, limits=dataclasses.replace(
                spec.limits, cpus=float(min(DEFAULT_CPUS, self.engine.cpu_count()))))
        self.ssh_config.check_user_config(spec.name)
        self.site.claim(spec.name, self.ssh_config.names)
        existing = self.engine.get(spec.name)
        if existing is not None and existing.labels.get("devagent.managed") != "true":
            raise DevagentError(f"a container named {spec.name!r} exists and devagent did not make it",
                                status=ExitStatus.CONFLICT,
                                hint=f"choose another name, or remove it yourself: docker rm -f {spec.name}")
        # We hold NAME's lock, so no up of ours is running: what one of ours left half-made goes.
        for leftover in self._leftovers(spec.name, ours_only=True):
            self.report(f"removing container {leftover.name}, left behind by an interrupted up")
            self.engine.remove(leftover.id)
        identity_path = identity or self.paths.identity
        user_public = (keys.public_line(identity_path) if identity
                       else keys.ensure_keypair(identity_path, comment=f"devagent@{os.uname().nodename}"))
        self._refuse_others(existing, user_public)
        wanted_hash = spec_hash(spec, user_public)
        if existing is not None and not recreate:
            if existing.labels.get("devagent.spec-hash") != wanted_hash:
                spec = self._as_made(spec, existing, as_made=as_made)
            return self._reuse(spec, existing, identity_path)

        gpus = self._choose_gpus(spec, replacing=existing)  # before the image: a busy GPU is refused at once
        if spec.image:  # a team image: pulled when missing, checked, started as it is
            team = team_image(self.engine, spec.image, self.report)
            if team.user != spec.user:
                raise DevagentError(f"the image {spec.image} has the login user {team.user!r}, not {spec.user!r}",
                                    status=ExitStatus.USAGE, hint=f"pass --user {team.user}, or leave --user out "
                                    "when the image was built for the default user")
            if not team.pulled:
                self.report(f"image {spec.image} (present)")
            image_tag, built, pinned = team.run_ref, False, team.pinned
            spec, base_digest = dataclasses.replace(spec, base_image=team.base_image), team.base_digest
            login_uid = None  # read from the container: whoever built a team image, its /etc/passwd says
        else:
            made = derived_image(self.engine, base_image=spec.base_image, user=spec.user, uid=spec.uid,
                                 report=self.report)
            image_tag, built, pinned, base_digest = made.tag, made.built, made.pinned, made.base_digest
            login_uid = made.login_uid
            if not built:
                self.report(f"image {image_tag} (cached)")
        result = self._create(spec, image_tag=image_tag, base_digest=base_digest, pinned=pinned,
                              identity=identity_path, user_public=user_public, replacing=existing,
                              wanted_hash=wanted_hash, launch_command=launch_command, signals=signals, gpus=gpus,
                              labelled_uid=login_uid)
        if spec.image:
            result.image = spec.image
        result.image_built = built
        if existing is not None:  # replaced: the GPUs the old container had and the new one has not are free again
            with contextlib.suppress(Exception):  # the environment is made; `down` releases the rest
                self.gpus.release(spec.name, keep=gpus.uuids)
        return result

    def _as_made(self, spec: EnvSpec, existing: ContainerInfo, *, as_made: bool) -> EnvSpec:
        """`up NAME` of the caller's environment made with other options: AS_MADE (no option given) starts it as
        it was made; else the options that differ are named."""
        if as_made:
            return made_with.as_made(spec, existing.labels)
        raise DevagentError(
            f"environment {spec.name!r} exists with other options: "
            f"{'; '.join(made_with.differences(spec, existing.labels))}", status=ExitStatus.CONFLICT,
            hint=f"`devagent up {spec.name}` with no options starts it as it was made; `devagent up {spec.name} "
            "--recreate ...` replaces it with these (alias, host key and workspace files are kept)")

    def _refuse_others(self, existing: ContainerInfo | None, user_public: str) -> None:
        """A container under the name that someone else owns is never reused nor replaced (a stale name)."""
        if existing is not None and not teammates.owned_by(existing, {" ".join(user_public.split()[:2])}):
            raise teammates.not_owned(existing, command=f"up {existing.name}", server=self.host)

    def _choose_gpus(self, spec: EnvSpec, *, replacing: ContainerInfo | None) -> GpuChoice:
        """The GPUs for SPEC from the ledger's view (no lease yet: `_create` takes them, atomically). Refuses a GPU
        another container or process holds (GPU_BUSY) unless spec.share_gpus; `--recreate` keeps its own."""
        if spec.gpus.mode == "none":
            return NO_GPUS
        state = self.gpus.state(ignore_environment=spec.name if replacing else None)
        keep = tuple(lease.gpu_uuid for lease in state.leases if replacing and lease.environment == spec.name)
        uuids = choose(spec.gpus, state.inventory, state.holders, share=spec.share_gpus, keep=keep)
        request = spec.gpus if spec.gpus.mode == "all" else GpuRequest("list", uuids)
        text = describe_choice(spec.gpus, uuids, state.inventory.gpus, shared=spec.share_gpus)
        index = {g.uuid: g.index for g in state.inventory.gpus}
        self.report(f"GPUs {', '.join(str(index[u]) for u in uuids)} ({', '.join(uuids)})"
                    + (", shared knowingly" if spec.share_gpus else ""))
        return GpuChoice(request, uuids, text, index)

    def _create(self, spec: EnvSpec, *, image_tag: str, base_digest: str | None, pinned: str | None,
                identity: Path, user_public: str,
                replacing: ContainerInfo | None, wanted_hash: str, launch_command: str,
                signals: StopSignals | None = None, gpus: GpuChoice = NO_GPUS,
                labelled_uid: int | None = None) -> UpResult:
        temp_name = f"{spec.name}-new-{secrets.token_hex(3)}"
        with Transaction(self.report, signals) as tx:
            host_key_path = self.paths.host_key(spec.name)
            if not host_key_path.exists():
                tx.on_failure(lambda: self._forget_host_key(spec.name))
            host_public = keys.ensure_keypair(host_key_path, comment=f"devagent-host-{spec.name}")
            self.site.note(tx, spec, port=replacing.host_port if replacing else None)
            name_taken = [False]  # by a concurrent up elsewhere, which may be mounting this very workspace
            created_workspace = self._made_workspace(tx, spec, name_taken)
            self.on_step("workspace")
            command = spec.agent.command(sshd_config=layout.sshd_config_path(spec.sshd_profile),
                                         inside_workspace=spec.inside_workspace) + spec.idle_release_args()
            # sshd started by the container's shell first; not in a team image (an older agent starts its own).
            command = home.container_command(
                command, sshd_first=None if spec.image else layout.sshd_config_path(spec.sshd_profile))
            stop_old = self._old_container_yields_its_port(tx, spec, replacing)
            self.report("creating container")
            # Registered before the call, so a Ctrl-C between Docker creating it and us hearing back still undoes
            # it; by this up's own id label, so a concurrent up that won the name keeps its container; under
            # whichever of its two names it has by then. Every try at a port makes its container under TEMP_NAME.
            up_id = secrets.token_hex(8)
            tx.on_failure(self._on_site(lambda: self._remove_made_and_home(up_id, spec.name, temp_name)))
            owner, invited = teammates.who_may_log_in(self.paths, spec.name, user_public)  # survives --recreate
            context = LaunchContext(
                name=spec.name, user=spec.user, image=spec.image or image_tag, base_image=spec.base_image,
                base_digest=base_digest, launch_command=launch_command, pinned_image=pinned, up_args=spec.up_args(),
                mounts=((spec.workspace, spec.inside_workspace, "rw"),), limits=spec.limits.describe(),
                gpus=gpus.text, ssh_alias=spec.name, devagent_version=devagent.__version__,
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"), people=who([owner, *invited]),
                slurm=self.site.launch_note, slurm_args=self.site.job_flags,
            )

            leased = False

            def make(port: int) -> str:
                """Create the container on PORT, lease its GPUs (the first time) and put its keys in; return its
                id."""
                # Uninterrupted until Docker answers: an engine may list the container (`docker ps -a`) before
                # it can remove it (Docker 20.10 does), so an undo sent before the answer may find nothing to
                # remove and the container appear after it.
                with tx.whole_step():
                    cid = self.engine.create(
                        name=temp_name, image=image_tag, command=command, user=spec.user,
                        labels={**spec.labels(version=devagent.__version__, image=image_tag),
                                **made_with.option_labels(spec),
                                "devagent.spec-hash": wanted_hash, UP_ID_LABEL: up_id,
                                HOME_ID_LABEL: self._home_id(), GPU_UUIDS_LABEL: ",".join(gpus.uuids),
                                **teammates.owner_labels(user_public), **ports_label(spec.forward_ports),
                                **self.site.container_labels},
                        container_port=SSHD_PORT, host_port=port,
                        mounts=[(spec.workspace, spec.inside_workspace, "rw")],
                        memory=spec.limits.memory, cpus=spec.limits.cpus or 1.0, shm_size=spec.limits.shm_size,
                        pids=spec.limits.pids, gpus=gpus.request,
                        environment={**dict(spec.container_env), "DEVAGENT_NAME": spec.name,
                                     **idle_test_seam(os.environ)},
                        volumes=home.mount_plan(spec.name, home=layout.login_home(spec.user), up_id=up_id),
                        read_only=True,
                    )
                nonlocal leased
                if not leased:  # once: a container made again on another port keeps this up's leases
                    self._lease(tx, spec, gpus, up_id, cid, replacing=replacing is not None)
                    leased = True
                uid = self._login_uid(cid, spec, labelled=labelled_uid)
                self.site.workspaces.hand_over(spec, created_workspace, uid)
                self.engine.put_files(cid, layout.CONFIG_DIR, [
                    ArchiveFile(layout.HOST_KEY, host_key_path.read_bytes(), 0o600, uid, uid),
                    ArchiveFile(f"{layout.HOST_KEY}.pub", (host_public + "\n").encode(), 0o644, uid, uid),
                    *teammates.container_files(owner, invited),  # who may log in
                    ArchiveFile(layout.LAUNCH_CONTEXT, context.to_json().encode(), 0o644),
                    *([ArchiveFile(layout.SESSION_ENV, session_env_file(spec.container_env, spec.remote_env),
                                   0o644)] if spec.container_env or spec.remote_env else []),
                ])
                return cid

            # --recreate keeps the old container's port (none for one made before devagent fixed ports). The ssh
            # config is written while the engine starts the container (again if that port was taken); rolled back.
            cid, port = self._start_on_a_port(
                spec.name, make, keep_port=replacing.fixed_port if replacing else None, stop_old=stop_old, tx=tx,
                while_starting=lambda port: self._write_alias(tx, spec, port=port, identity=identity,
                                                              host_public=host_public, replacing=replacing))
            self.on_step("started")
            self.on_step("alias")
            banner = wait_for_banner(port, timeout=READY_TIMEOUT, connect=self._connect,
                                     still_starting=lambda: self._still_starting(cid, spec))
            with self._exit_explains_a_failed_login(cid, spec):
                self._prove(spec, banner=banner, port=port, identity=identity, host_public=host_public)

            def rename() -> None:
                # Complete: a killed up now leaves a container the next up can use. While the alias proof logs in,
                # before its READY_COMMAND (gated on it) lets the agent write: an up losing the name wrote nothing.
                try:
                    self.engine.rename(cid, spec.name)
                except DevagentError as exc:
                    name_taken[0] = exc.status == ExitStatus.CONFLICT  # by another devagent's up, meanwhile
                    raise
                self.on_step("renamed")

            with self._exit_explains_a_failed_login(cid, spec):
                login_uid = self._prove_alias(spec.name, gate=None if replacing else rename)
            if replacing:
                self._swap(tx, cid, replacing, spec.name)
            self.site.renote(spec, port)
        return UpResult(name=spec.name, image=image_tag, image_built=False, port=port, user=spec.user, uid=login_uid,
                        created=True, recreated=replacing is not None, workspace=spec.workspace)

    def _login_uid(self, cid: str, spec: EnvSpec, *, labelled: int | None) -> int:
        """The login user's uid in the created container CID: the one the derived image's label records
        (LOGIN_UID_LABEL), else the one its /etc/passwd gives (the base image may already have had the user, with
        another uid: an archive request to the engine)."""
        if labelled is not None:
            return labelled
        return self.engine.user_uid(cid, spec.user) or spec.uid

    def _lease(self, tx: Transaction, spec: EnvSpec, gpus: GpuChoice, up_id: str, cid: str, *,
               replacing: bool) -> None:
        """Report the `created` step, then take the GPUs' leases in the engine's ledger. After the container
        (labelled with the environment's name), so that a lease whose environment has no container is stale for
        certain; the undo is registered first and removes this up's leases by its id, whichever of them were made
        before a failure or Ctrl-C."""
        self.on_step("created")
        if not gpus.uuids:
            return
        tx.on_failure(lambda: self.gpus.release_up(up_id))
        self.gpus.take(gpus.uuids, environment=spec.name, container_id=cid, owner=owner_name(), up_id=up_id,
                       shared=spec.share_gpus, replacing=replacing, index=gpus.index)
        self.on_step("leased")

    def _old_container_yields_its_port(self, tx: Transaction, spec: EnvSpec,
                                       replacing: ContainerInfo | None) -> Callable[[], None] | None:
        """For --recreate: how to stop the old container so that the new one can take its fixed port (None: it
        holds none, or is not running). Its undo is registered now, before the new container's removal, so that
        a rollback removes the new container first (it holds the port) and then starts the old one again."""
        if replacing is None or replacing.fixed_port is None or replacing.status != "running":
            return None
        old, port = replacing, replacing.fixed_port
        stopped = False

        def stop() -> None:
            nonlocal stopped
            self.report(f"stopping container {old.name}, which holds the port")
            stopped = True  # before the call: an undo that starts a running container does nothing
            self.engine.stop(old.id)

        def start_again() -> None:
            if stopped:
                self.engine.start(old.id)
                wait_for_banner(port, timeout=RESTART_TIMEOUT, connect=self._connect,
                                still_starting=lambda: self._still_starting(old.id, spec))

        tx.on_failure(start_again)
        return stop

    def _start_on_a_port(self, name: str, make: Callable[[int], str], *, keep_port: int | None,
                         stop_old: Callable[[], None] | None, tx: Transaction,
                         while_starting: Callable[[int], None]) -> tuple[str, int]:
        """Make the container with MAKE(port) and start it, on KEEP_PORT first, then on the ports of self.ports
        no container binds: a port the engine says is taken costs that container, and the next one is tried.
        WHILE_STARTING(port) runs meanwhile. Returns (container id, port)."""
        tried: list[int] = []
        while True:
            port = self._next_port(name, keep=keep_port, tried=tried)
            cid = make(port)
            if stop_old is not None and port == keep_port:
                stop_old()
                stop_old = None
            self.report("starting container")
            try:
                published = tx.alongside(partial(while_starting, port), partial(self.engine.start, cid)).host_port
            except DevagentError as exc:
                if exc.status != ExitStatus.PORT_TAKEN:
                    raise
                tried.append(port)
                self.report(f"port {port} is taken on the engine's 127.0.0.1; trying another")
                self.engine.remove(cid)
                continue
            if published != port:
                home_volume.check_exit(self.engine, self.engine.get(cid), name)  # exited before it published
                raise DevagentError("Docker published no port for sshd" if published is None else
                                    f"Docker published sshd on port {published}, not on {port} as asked",
                                    status=ExitStatus.CONTAINER_FAILED)
            if keep_port is not None and port != keep_port:
                self.report(f"the environment moves from port {keep_port} to {port}: the alias follows")
            return cid, port

    def _next_port(self, name: str, *, keep: int | None, tried: list[int]) -> int:
        """The host port to try next: KEEP (the replaced container's) first, then the lowest of self.ports that
        no container binds, asking the engine anew each time (a concurrent up may have taken one meanwhile)."""
        if keep is not None and keep not in tried:
            return keep
        if len(tried) >= port_choice.ATTEMPTS:
            raise DevagentError(
                f"no free port for {name!r}: the engine said {', '.join(map(str, tried))} were all taken",
                status=ExitStatus.PORT_TAKEN,
                hint=f"free some of them, or choose another range: {port_choice.PORTS_VARIABLE}=FIRST-LAST "
                f"(now {port_choice.describe(self.ports)})")
        port = next(port_choice.candidates(self.ports, bound=self.engine.bound_ports(), tried=tried), None)
        if port is None:
            raise DevagentError(
                f"no free port for {name!r}: every port of {port_choice.describe(self.ports)} is bound by a "
                "container or was taken", status=ExitStatus.PORT_TAKEN,
                hint=f"remove environments you no longer need (devagent down NAME), or choose a wider range: "
                f"{port_choice.PORTS_VARIABLE}=FIRST-LAST")
        return port

    def _swap(self, tx: Transaction, cid: str, replacing: ContainerInfo, name: str) -> None:
        """--recreate's last step: the proven new container CID takes NAME from the one it replaces."""
        self.on_step("proven")
        with tx.last_step():
            self.report(f"replacing container {replacing.name}")
            self.engine.remove(replacing.id)
            self.on_step("replacing")
            self.engine.rename(cid, name)

    def _remove_made(self, up_id: str, *names: str) -> None:
        """Remove the container the up UP_ID made, under whichever of NAMES it has. By a label query, not by
        list_managed(), which inspects every container it lists and can meet one that is being removed."""
        for name in names:
            self.engine.remove_if_labelled(name, UP_ID_LABEL, up_id)

    def _made_workspace(self, tx: Transaction, spec: EnvSpec, name_taken: list[bool]) -> object:
        """The workspace, made when missing (what the site's `make` returns: truthy when this up made it); the
        rollback removes one this up made unless NAME_TAKEN[0] (another up won the name and may mount it)."""
        workspace, created = spec.workspace, self.site.workspaces.make(spec)

        def undo_workspace() -> None:
            if created and not name_taken[0]:
                self._remove_created_workspace(workspace)

        tx.on_failure(self._on_site(undo_workspace))
        return created

    def _remove_created_workspace(self, workspace: str) -> None:
        """Undo a workspace this up created, unless another environment mounts it (one that won a race for the
        name, say) or someone put their own files there meanwhile."""
        if any(c.labels.get("devagent.workspace") == workspace for c in self.engine.list_managed()):
            return
        self.site.workspaces.remove_if_untouched(workspace)

    def _write_alias(self, tx: Transaction, spec: EnvSpec, *, port: int, identity: Path, host_public: str,
                     replacing: ContainerInfo | None) -> None:
        """Write the Host block, pin the key, include devagent's config; check that ssh -G sees our values.

        An alias that already says all this (a --recreate that kept the port) is left as it is, byte for byte."""
        def entry(port: int) -> HostEntry:
            return HostEntry(name=spec.name, port=port, user=spec.user, identity_file=str(identity),
                             known_hosts_file=str(self.paths.known_hosts), proxy_jump=self.site.proxy_jump,
                          job_check=self.site.alias_check)

        if self.ssh_config.needs_update(entry(port), host_public):
            # Undone last: the files install makes, which its undo only empties (a failure before the alias was
            # written left them absent, and it is now written while the container starts).
            for made in (self.paths.known_hosts, self.paths.user_ssh_config):
                if not made.exists():
                    tx.on_failure(partial(self._remove_if_empty, made))
            old_port = replacing and (replacing.host_port or replacing.fixed_port)
            if replacing and old_port:
                old = entry(old_port)
                tx.on_failure(lambda: self.ssh_config.install(old, host_public))
            else:
                tx.on_failure(lambda: self.ssh_config.remove(spec.name))
            self.ssh_config.install(entry(port), host_public)
        self.ssh_config.verify_effective(entry(port))

    def _remove_if_empty(self, path: Path) -> None:
        with FileLock(self.paths.lock), contextlib.suppress(FileNotFoundError):  # another up may be writing it
            if path.stat().st_size == 0:
                path.unlink()

    def _prove_alias(self, name: str, *, gate: Callable[[], None] | None = None) -> int:
        """Log in through the alias with OpenSSH; READY_COMMAND also tells the agent that up has committed. GATE
        runs while ssh logs in, READY_COMMAND once it succeeded (login_through_alias)."""
        uid = login_through_alias(self.paths.user_ssh_config, name, gate=gate, remote_command=READY_COMMAND if
                                  gate is None else (GATED_BY_STDIN + READY_COMMAND[0],), env=self.site.proof_env)
        if uid == 0:
            raise DevagentError("the login through the alias landed as root", status=ExitStatus.LOGIN_FAILED)
        return uid

    def _reuse(self, spec: EnvSpec, existing: ContainerInfo, identity: Path) -> UpResult:
        """`up` on an environment that exists with the same options: start it if stopped, re-verify."""
        info = existing
        if existing.status != "running":
            up_id = secrets.token_hex(8)  # one that gave its GPUs back takes them anew, before it starts
            self.gpus.retake(ContainerRow(existing.id, existing.name, existing.status, existing.labels,
                                          existing.exit_code), owner=owner_name(), up_id=up_id)
            self.report(f"starting stopped container {spec.name}")
            try:
                info = self.engine.start(existing.id)
            except BaseException as exc:
                self.gpus.release_up(up_id)
                if not isinstance(exc, DevagentError):
                    raise
                if exc.status != ExitStatus.PORT_TAKEN or existing.fixed_port is None:
                    raise
                port = existing.fixed_port
                holder = "container" if "already allocated" in (exc.details or "") else "program"
                raise DevagentError(
                    f"environment {spec.name!r} cannot start: its port {port} on 127.0.0.1 is taken by another "
                    f"{holder}", status=ExitStatus.PORT_TAKEN, details=exc.details,
                    hint=f"free it (`ss -ltnp 'sport = :{port}'` on the machine of the Docker Engine shows who "
                    f"holds it) and run `devagent up {spec.name}` again, or run the same `devagent up` with "
                    "--recreate: the environment gets a new port and the alias follows") from None
        if info.host_port is None:
            raise DevagentError(f"Docker published no port for sshd of {spec.name!r}",
                                status=ExitStatus.CONTAINER_FAILED, hint=f"`devagent up {spec.name} --recreate` "
                                "makes its container again")
        host_public = keys.ensure_keypair(self.paths.host_key(spec.name), comment=f"devagent-host-{spec.name}")
        banner = wait_for_banner(info.host_port, timeout=READY_TIMEOUT, connect=self._connect,
                                 still_starting=lambda: self._still_starting(existing.id, spec))
        self._prove(spec, banner=banner, port=info.host_port, identity=identity, host_public=host_public)
        self.site.renote(spec, info.host_port)
        entry = HostEntry(name=spec.name, port=info.host_port, user=spec.user, identity_file=str(identity),
                          known_hosts_file=str(self.paths.known_hosts), proxy_jump=self.site.proxy_jump,
                          job_check=self.site.alias_check)
        if self.ssh_config.needs_update(entry, host_public):
            self.ssh_config.install(entry, host_public)
        self.ssh_config.verify_effective(entry)
        uid = self._prove_alias(spec.name)
        return UpResult(name=spec.name, image=existing.image, image_built=False, port=info.host_port,
                        user=spec.user, uid=uid, created=False, recreated=False, workspace=spec.workspace)

    def _prove(self, spec: EnvSpec, *, banner: str, port: int, identity: Path, host_public: str) -> None:
        """The paramiko proof against the pinned key, where paramiko speaks the server's key exchange: it has
        mlkem768x25519 but no sntrup761, so under the strict profile on OpenSSH < 9.9 (no mlkem) the OpenSSH client's
        login through the alias alone proves it."""
        if spec.sshd_profile == "strict" and not openssh_at_least(banner, (9, 9)):
            self.report("paramiko speaks none of this sshd's key exchanges; the login is proven with OpenSSH")
            return
        from devagent.control.ssh.key_login import prove_login  # paramiko costs 150 ms to import: only when used

        sock = self.site.key_login_socket(port, timeout=15.0)
        uid = prove_login(port=port, user=spec.user, identity=identity, host_public_key=host_public, sock=sock)
        if uid is None:
            self.report("paramiko speaks none of this sshd's key exchanges; the login is proven with OpenSSH")
        elif uid == 0:
            raise DevagentError("the key login landed as root", status=ExitStatus.LOGIN_FAILED)

    @contextlib.contextmanager
    def _exit_explains_a_failed_login(self, cid: str, spec: EnvSpec) -> Iterator[None]:
        """A failed login's cause where the container exited meanwhile (sshd, which its shell starts first, answered
        before the agent was killed for --memory): _still_starting's error, once the engine saw it (1 s at most)."""
        try:
            yield
        except DevagentError as exc:
            for _ in range(10 if exc.status == ExitStatus.LOGIN_FAILED else 0):
                self._still_starting(cid, spec)
                time.sleep(0.1)
            raise

    def _still_starting(self, cid: str, spec: EnvSpec) -> None:
        info = self.engine.get(cid)
        home_volume.check_exit(self.engine, info, spec.name)
        if info is None or info.status in ("exited", "dead"):
            code = info.exit_code if info else None
            raise DevagentError(
                f"the container exited while starting (exit code {code})",
                status=ExitStatus.CONTAINER_FAILED, details=self.engine.logs(cid, tail=20) or "(it printed nothing)",
                hint="the lines above are the container's last log lines; an exit code of 137 means it ran out "
                "of memory (raise --memory)",
            )

    def _remove_made_and_home(self, up_id: str, name: str, temp_name: str) -> None:
        """The undo of a container this up made: the container, then the home volume if this up made it."""
        self._remove_made(up_id, temp_name, name)
        home_volume.remove_made(self.engine, name, up_id)

    def _forget_host_key(self, name: str) -> None:
        for p in (self.paths.host_key(name), self.paths.host_key(name).with_name(f"{name}_ed25519.pub")):
            p.unlink(missing_ok=True)

    # -- down / ls: control/lifecycle/down.py --------------------------------------------------------------

    def down(self, name: str, *, keep_home: bool = False) -> list[str]:
        """Remove the container, the ssh alias, the pinned key, the host key and the home volume (KEEP_HOME: not
        the home). Workspace files stay.

        Also every container an interrupted or killed `up` of NAME left under a temporary name, whoever's."""
        return teardown.down(self, name, keep_home=keep_home)

    def ls(self) -> list[Row]:
        return teardown.ls(self)
