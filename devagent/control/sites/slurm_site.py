"""A node of a Slurm allocation as a `Site` (control/sites/site.py): the third kind, beside this machine's engine
and a server's.

Slurm, not devagent, picks the node and the GPUs. `opened` logs in to the cluster's login node (a link that needs
no engine there), asks for the allocation and waits for it (control/slurm/allocation.py), then logs in to the node
the job runs on THROUGH the login node (`ssh -J login node`: the node is reached from the login node, as the
cluster allows) and uses that node's Docker Engine. From there it is a server site (control/sites/server_site.py)
with these differences:

- the alias reaches the environment through the login node and the node with a ProxyCommand that asks Slurm,
  beside the hop, whether the job still runs and says so when it has ended (core/ssh/job_hop.py; pinned host
  key as everywhere);
- the container is labelled with the job (`devagent.slurm-job=<id>`: what the job's holder removes when it ends),
  and the notebook header records cluster, job, partition, node, GPUs and time limit (`allocation`);
- devagent's record of the environment names the cluster (its login node), the job and the node, and `renote`,
  which `up` calls once the environment is made, first checks that the job still runs: a job that ended while
  `up` was provisioning left a container nobody removes, so `up` rolls back;
- `release` (what `down` calls first) cancels the job and waits until it has ended: its holder has removed the
  container by then; the holder's end line goes into the notebook (`take_in_end`). A failed `up` cancels the job
  too, unless it was running before that `up`;
- the environment gets the job's GPUs (`SlurmWorkspaces.place`) and Slurm's SLURM_JOB_ID, SLURMD_NODENAME and
  SLURM_JOB_PARTITION in its environment.

An environment whose job has ended is opened without its node (`_GoneLink`): nothing of it is left there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from devagent.control.paths import Paths
from devagent.control.settings import Settings
from devagent.control.sites.ended_job import EndedJobEngine
from devagent.control.sites.records import Record, Records, refuse_elsewhere
from devagent.control.sites.server_site import ServerSite, ServerWorkspaces
from devagent.control.slurm.allocation import Allocation, allocate, ended_lines, files, release, still_running
from devagent.control.slurm.queue import SlurmQueue
from devagent.core.slurm.holder import JOB_LABEL
from devagent.core.slurm.jobs import ENDED_STATES, format_left
from devagent.core.ssh.job_hop import JobCheck, mux_env
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from pathlib import Path

    from devagent.control.engine.docker_engine import Engine
    from devagent.control.engine.engine_api import EngineApi
    from devagent.control.features.listing import Row
    from devagent.control.link.link import ServerLink
    from devagent.control.link.probe import ServerFacts
    from devagent.core.slurm.request import SlurmRequest
    from devagent.core.spec import EnvSpec
    from devagent.core.up_request import SlurmUp

Report = Callable[[str], None]


class NodeName:
    """The node as the alias and the records name it: the cluster's login node (TEXT, what `ls` and the records
    show), and the two-hop ProxyJump that reaches the node."""

    def __init__(self, login: str, login_jump: str, node_jump: str) -> None:
        self.text, self.node = login, node_jump
        self.proxy_jump = f"{login_jump},{node_jump}"


class NodeLink:
    """The link to the node (`ssh -J login node`), naming its server as the cluster (NodeName)."""

    def __init__(self, link: ServerLink, name: NodeName) -> None:
        self._link, self.server = link, name

    @property
    def facts(self) -> ServerFacts:
        return self._link.facts

    @property
    def engine(self) -> Engine:
        return self._link.engine

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return self._link.run(argv, input=input, timeout=timeout)

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        return self._link.connect(port, timeout=timeout)

    @property
    def control_path(self) -> Path:
        return self._link.control_path


def describe(allocation: Allocation) -> str:
    """The notebook header's Slurm row.

    >>> describe(Allocation("hpc-login", "4812", "gpu", "gpu07", (2, 3), 28800, "/o", "/e"))
    'cluster hpc-login · job 4812 · partition gpu · node gpu07 · GPUs 2,3 · time limit 8 h'
    """
    gpus = ",".join(map(str, allocation.gpus)) or "none"
    limit = format_left(allocation.time_limit_s) if allocation.time_limit_s else "the partition's"
    return (f"cluster {allocation.cluster} · job {allocation.job_id} · partition {allocation.partition} · "
            f"node {allocation.node} · GPUs {gpus} · time limit {limit}")


class SlurmWorkspaces(ServerWorkspaces):
    """The workspace on the cluster's shared home (as on a server); and the environment's GPUs are the job's."""

    site: SlurmSite

    def place(self, spec: EnvSpec, *, exists: Callable[[], bool]) -> EnvSpec:
        from devagent.core.spec import parse_gpus

        gpus = ",".join(map(str, self.site.allocation.gpus)) or "none"  # indexes on the node: resolved there
        allocation = self.site.allocation
        # Slurm's own names, so that the user's code and every run section (core/runs/run_environment.py) see
        # which job and node they ran in, as in any Slurm job.
        job = (("SLURM_JOB_ID", allocation.job_id), ("SLURMD_NODENAME", allocation.node),
               ("SLURM_JOB_PARTITION", allocation.partition))
        placed = super().place(spec, exists=exists)
        return dataclasses.replace(placed, gpus=parse_gpus(gpus), container_env=(*placed.container_env, *job))


class SlurmSite(ServerSite):
    """The node of ALLOCATION (through LINK, a NodeLink), on the cluster QUEUE speaks to."""

    engine_clock_is_ours = False  # the node's, as on any server

    def __init__(self, link: NodeLink | _GoneLink, *, queue: SlurmQueue, allocation: Allocation, paths: Paths,
                 report: Report = lambda _: None, login: ServerLink | None = None,
                 request: SlurmRequest | None = None) -> None:
        super().__init__(link, paths=paths, report=report, given=link.server.text)
        self.queue, self.allocation = queue, allocation
        self.request = request  # what `up` asked for (None: an environment opened from devagent's record)
        self.login: ServerLink | None = login  # where the job's end line is read and the notebook appended to
        self.workspaces = SlurmWorkspaces(self)

    @property
    def on(self) -> str:
        return f" on node {self.allocation.node} of {self.allocation.cluster} (job {self.allocation.job_id})"

    @property
    def via(self) -> str:
        return f" via {self.allocation.cluster} and node {self.allocation.node}"

    @property
    def loopback(self) -> str:
        return f"{self.allocation.node}'s 127.0.0.1"

    @property
    def up_flags(self) -> tuple[str, ...]:
        """`up`'s options that place an environment like this one: a job of the same partition and time limit
        (and account, QOS and constraint, when `up` asked for them)."""
        return ("--host", self.allocation.cluster, *self.job_flags)

    @property
    def job_flags(self) -> tuple[str, ...]:
        """The job's own options: its partition, its time limit as Slurm granted it, and the account, QOS and
        constraint `up` asked for (the GPUs are the environment's --gpus: the job's count of them)."""
        from devagent.core.slurm.request import format_time

        limit = self.allocation.time_limit_s
        request = self.request
        asked = (("--account", request.account), ("--qos", request.qos), ("--constraint", request.constraint)) \
            if request is not None else ()
        return ("--slurm", self.allocation.partition, *(("--time", format_time(limit)) if limit else ()),
                *(word for option, value in asked if value for word in (option, value)))

    @property
    def alias_check(self) -> JobCheck:
        """The alias asks the login node whether the job still runs with each connection, and says so when
        it has ended (core/ssh/job_hop.py); its inner ssh reads the user's ssh config, as ssh's own would."""
        return JobCheck(self.allocation.job_id, self.allocation.partition, str(self.paths.user_ssh_config))

    @property
    def proof_env(self) -> dict[str, str]:
        """`up` holds a master to the login node and one to the node (through it): its proof through the alias
        asks Slurm and makes the hop over them, not with two fresh logins (the alias as written is the same)."""
        node = self.link
        if self.login is None or not isinstance(node, NodeLink):
            return {}
        return mux_env(str(self.login.control_path), str(node.control_path))

    @property
    def container_labels(self) -> dict[str, str]:
        return {JOB_LABEL: self.allocation.job_id}

    @property
    def launch_note(self) -> str:
        return describe(self.allocation)

    def claim(self, name: str, aliases: Callable[[], list[str]]) -> None:
        """As a server's, but NAME may be recorded in a job on this cluster (an earlier job of it)."""
        record = self.records.get(name)
        if record is not None and record.server != self.server:
            raise refuse_elsewhere(name, record.server, here=f"on {self.server}")
        if record is None and name in aliases():
            super().claim(name, aliases)  # this machine's: refused there, in its words

    def renote(self, spec: EnvSpec, port: int | None) -> None:
        """Once the container runs (`up` calls it last): the job must still run, else `up` rolls back. `note`,
        before anything is made, does not ask Slurm: the job was seen running a moment before, and a job that
        ends meanwhile is caught here all the same."""
        if not still_running(self.queue, self.allocation):
            job = self.queue.job(self.allocation.job_id)
            how = ENDED_STATES.get(job.state, job.state.lower()) if job is not None else "Slurm forgot it"
            raise DevagentError(f"job {self.allocation.job_id} ended while `up` was making the environment: {how}",
                                status=ExitStatus.CONTAINER_FAILED,
                                hint="run `up` again for a new job; what this up made is removed")
        self.record(spec, port)

    def record(self, spec: EnvSpec, port: int | None) -> None:
        self.records.put(Record(name=spec.name, server=self.server, user=spec.user, workspace=spec.workspace,
                                port=port, slurm_job=self.allocation.job_id, slurm_node=self.allocation.node,
                                slurm_partition=self.allocation.partition))

    def release(self, name: str) -> list[str]:
        ended = release(self.queue, self.allocation.job_id)
        how = ENDED_STATES.get(ended.state, ended.state.lower()) if ended is not None else "ended"
        record = self.records.get(name)
        if record is not None and self.login is not None:
            take_in_end(self.login, self.queue, record, report=self.report)
        return [f"Slurm job {self.allocation.job_id} on {self.allocation.node} ({how}; its container went with it)"]


def take_in_end(login_link: ServerLink, queue: SlurmQueue, record: Record, *, report: Report) -> bool:
    """Append to the environment's notebook (on the shared home) the line the job's holder wrote when the job
    ended: when and why; unless the environment's own devagent already put it there as the job ended (the line
    then ends in NOTED: core/slurm/holder.py). The default notebook only (the record does not keep another's
    path); a notebook not written yet, or one devagent may not append to, is left alone. Whether a line was
    taken in."""
    from pathlib import PurePosixPath

    from devagent.control.features.rerun import append_on_server
    from devagent.core import layout
    from devagent.core.slurm.holder import NOTED, end_entry

    assert record.slurm_job is not None
    output, ended_log = files(login_link.facts.home, record.name)
    lines = ended_lines(queue, Allocation(record.server, record.slurm_job, "", "", (), None, output, ended_log))
    text = end_entry(lines[-1]) if lines else None
    if text is None or lines[-1].endswith(NOTED):
        return False
    workspace = PurePosixPath(record.workspace)
    try:
        append_on_server(login_link, workspace=workspace, notebook=workspace / layout.NOTEBOOK, text=text)
    except (OSError, DevagentError) as exc:
        report(f"the notebook did not take in the job's end ({exc})")
        return False
    return True


@contextlib.contextmanager
def login(text: str, *, paths: Paths, settings: Settings, report: Report,
          quiet: bool = False) -> Iterator[tuple[ServerLink, SlurmQueue]]:
    """The login node TEXT (no engine needed there) and Slurm through it."""
    from devagent.control.link.link import ServerLink, resolve_server

    server = resolve_server(text, environ=settings.environ or {})
    with ServerLink(server, paths=paths, report=(lambda _: None) if quiet else report, engine=False) as link:
        yield link, SlurmQueue(link.run, cluster=text)


@contextlib.contextmanager
def node_site(login_link: ServerLink, queue: SlurmQueue, allocation: Allocation, *, paths: Paths,
              settings: Settings, report: Report, resolve: tuple[str, ...] = (),
              request: SlurmRequest | None = None) -> Iterator[SlurmSite]:
    """The site on ALLOCATION's node, through LOGIN_LINK's login node."""
    from devagent.control.link.link import ServerLink
    from devagent.core.ssh.destination import parse_server

    node = parse_server(allocation.node)  # Slurm's name for it, checked as any ssh destination
    with ServerLink(node, paths=paths, report=report, jump=login_link.server,
                    docker_socket=settings.docker_socket, resolve=resolve) as link:
        name = NodeName(allocation.cluster, login_link.server.proxy_jump, node.proxy_jump)
        yield SlurmSite(NodeLink(link, name), queue=queue, allocation=allocation, paths=paths, report=report,
                        login=login_link, request=request)


@contextlib.contextmanager
def opened(text: str, slurm: SlurmUp, *, environment: str, paths: Paths, settings: Settings, report: Report,
           resolve: tuple[str, ...] = ()) -> Iterator[SlurmSite]:
    """`up --slurm`: a new allocation (or the user's live job of ENVIRONMENT, made with --no-wait) on the cluster
    whose login node is TEXT, waited for, and the site on its node. A failure here or in the caller's `up`
    cancels the job (its holder removes whatever container was made)."""
    with login(text, paths=paths, settings=settings, report=report) as (login_link, queue):
        before = Records(paths).get(environment)
        if before is not None and before.slurm_job is not None and before.server == text:
            # `up` again after the job ended on its own (scancel, time limit): the notebook says so first.
            job = queue.job(before.slurm_job)
            if job is None or job.ended:
                take_in_end(login_link, queue, before, report=report)
        # A job already running (an `up` again of a running environment): a failure of this up leaves it be.
        running = queue.live_job(environment, login_link.facts.user)
        kept = running.job_id if running is not None and running.running else None
        allocation = allocate(queue, slurm.request, environment=environment, user=login_link.facts.user,
                              home=login_link.facts.home, report=report, timeout_s=slurm.wait_timeout_s,
                              live=running)
        gpus = f": GPUs {','.join(map(str, allocation.gpus))}" if allocation.gpus else ""
        limit = f" · {format_left(allocation.time_limit_s)}" if allocation.time_limit_s else ""
        report(f"job {allocation.job_id} running on node {allocation.node}{gpus}{limit}")
        try:
            with node_site(login_link, queue, allocation, paths=paths, settings=settings, report=report,
                           resolve=resolve, request=slurm.request) as site:
                yield site
        except BaseException:
            if allocation.job_id == kept:
                report(f"Slurm job {allocation.job_id} keeps running (it was running before this up)")
            else:
                report(f"cancelling Slurm job {allocation.job_id}")
                release(queue, allocation.job_id)
            raise


@contextlib.contextmanager
def recorded(record: Record, *, paths: Paths, settings: Settings, report: Report,
             quiet: bool = False) -> Iterator[SlurmSite]:
    """The site of an environment devagent's RECORD places in a Slurm job. A job that has ended has no node to
    reach: its site then has no node (`_GoneLink`, control/sites/ended_job.py), and `down` just forgets what
    this machine keeps."""
    assert record.slurm_job is not None
    with login(record.server, paths=paths, settings=settings, report=report, quiet=quiet) as (login_link, queue):
        job = queue.job(record.slurm_job)
        allocation = Allocation(cluster=record.server, job_id=record.slurm_job,
                                partition=record.slurm_partition or "", node=record.slurm_node or "",
                                gpus=job.gpus if job is not None else (),
                                time_limit_s=job.time_limit_s if job is not None else None, output="", ended_log="")
        if job is None or not job.running:
            how = ENDED_STATES.get(job.state, job.state.lower()) if job is not None else "Slurm forgot it"
            gone = DevagentError(f"environment {record.name}'s Slurm job {record.slurm_job} has ended: {how}",
                                 status=ExitStatus.NOT_FOUND,
                                 hint=f"`devagent up {record.name} --slurm …` again asks for a new job (the "
                                 "workspace stays)")
            name = NodeName(record.server, login_link.server.proxy_jump, record.slurm_node or "")
            yield SlurmSite(_GoneLink(login_link, name, gone), queue=queue, allocation=allocation, paths=paths,
                            report=report, login=login_link)
            return
        with node_site(login_link, queue, allocation, paths=paths, settings=settings, report=report) as site:
            yield site


class _GoneLink:
    """The link of an environment whose job has ended: the login node's facts (the home is shared), no node."""

    def __init__(self, login_link: ServerLink, name: NodeName, gone: DevagentError) -> None:
        self.server, self._login, self._gone = name, login_link, gone
        self.engine: EngineApi = EndedJobEngine(name.node, gone)

    @property
    def facts(self) -> ServerFacts:
        return self._login.facts

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        raise self._gone

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        raise self._gone


def submit_only(text: str, slurm: SlurmUp, *, environment: str, paths: Paths, settings: Settings,
                report: Report) -> Allocation:
    """`up --slurm --no-wait`: ask for the job (or find the user's live one of ENVIRONMENT) and return at once; a
    later `up` picks it up."""
    with login(text, paths=paths, settings=settings, report=report) as (login_link, queue):
        return allocate(queue, slurm.request, environment=environment, user=login_link.facts.user,
                        home=login_link.facts.home, report=report, timeout_s=None, wait=False)


def listed(record: Record, *, paths: Paths, settings: Settings) -> list[Row]:
    """`ls`'s row of the environment RECORD places in a Slurm job, from Slurm (the job, its node, its state and
    the time left): the login node is asked, never the node (an ended job's node may not let the user in)."""
    import time

    from devagent.control.features.listing import Row, unreachable_rows

    assert record.slurm_job is not None
    try:
        with login(record.server, paths=paths, settings=settings, report=lambda _: None, quiet=True) as (_, queue):
            job = queue.find(record.slurm_job) or queue.job(record.slurm_job)
    except DevagentError as exc:
        if exc.status not in (ExitStatus.SERVER_UNREACHABLE, ExitStatus.SERVER_AUTH, ExitStatus.SERVER_REFUSED):
            raise
        return unreachable_rows([record], exc)
    where = f"Slurm job {record.slurm_job} on {record.slurm_node}, partition {record.slurm_partition}"
    if job is not None and job.running:
        left = job.time_left_s(time.time())
        state, note = "running", f"{where}: running" + (f", {format_left(left)} left" if left is not None else "")
    elif job is not None and job.pending:
        state, note = "pending", f"{where}: pending ({job.reason})"
    elif job is not None and not job.ended:  # COMPLETING: the holder's trap is removing the container
        state, note = "ending", f"{where}: ending ({job.state.lower()}: its holder removes the container)"
    else:
        how = ENDED_STATES.get(job.state, job.state.lower()) if job is not None else "Slurm no longer knows it"
        state, note = "ended", f"{where}: ended: {how}"
    gpus = ",".join(map(str, job.gpus)) if job is not None and job.running and job.gpus else "none"
    return [Row(name=record.name, state=state, health=None, port=record.port, user=record.user, image=None,
                gpus=gpus, workspace=record.workspace, ssh_alias=record.name, created=None, host=record.server,
                slurm=note)]
