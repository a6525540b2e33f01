"""Slurm's view of jobs, read from its own commands' text, and what each state means in devagent's words.

Pure: the text of `squeue --json`, `squeue -h -o FORMAT` or `scontrol -d show job JOBID` comes in, frozen rows come
out; times are compared with a `now` the caller passes. The fixtures in tests/core/slurm/fixtures were captured
from a real Slurm 22.05 (tests/integration/slurm_cluster.py).

Note that 22.05's `squeue --json` lists every job whatever -j/-u/-p say: filter the rows, not the command.

>>> job = parse_scontrol_job(
...     "JobId=12 JobName=devagent-exp\\n   JobState=RUNNING Reason=None Dependency=(null)\\n"
...     "   Partition=gpu AllocNode:Sid=login:1\\n   NodeList=n1\\n"
...     "     Nodes=n1 CPU_IDs=0 Mem=0 GRES=gpu:2(IDX:0-1)\\n")
>>> job.job_id, job.state, job.node, job.gpus
('12', 'RUNNING', 'n1', (0, 1))
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from devagent.errors import DevagentError, ExitStatus

# The states a job has not yet left (squeue's long names); every other state has ended it.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"})
LIVE_STATES = PENDING_STATES | {"RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT"}
# `squeue -o` format for `parse_squeue_lines`; '|' cannot occur in any of these fields.
SQUEUE_FORMAT = "%i|%T|%r|%N|%L|%b|%u|%P|%Q|%j"

_GRES_RE = re.compile(r"gpu(?::[^:(\s]+)?:(\d+)\(IDX:([^)]*)\)")


@dataclass(frozen=True)
class Job:
    """One Slurm job as devagent needs it."""

    job_id: str
    state: str  # squeue's long name: PENDING, RUNNING, CANCELLED, TIMEOUT, ...
    reason: str  # Resources, Priority, TimeLimit, None, ...
    name: str = ""
    user: str = ""
    partition: str = ""
    node: str = ""  # the batch host (the node the environment lives on); "" while pending
    gpus: tuple[int, ...] = ()  # the GPU indexes on that node, from GRES=gpu:N(IDX:...)
    time_limit_s: int | None = None
    start: int | None = None  # epoch seconds; None while unknown
    end: int | None = None  # epoch seconds: when it ended or will end at its time limit
    priority: int = 0

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def ended(self) -> bool:
        return self.state not in LIVE_STATES

    def time_left_s(self, now: float) -> int | None:
        """Seconds until the time limit ends the running job; None when unknown or not running."""
        if not self.running or self.end is None:
            return None
        return max(0, int(self.end - now))


def gres_indexes(text: str) -> tuple[int, ...]:
    """The GPU indexes in GRES detail text: `gpu:2(IDX:0-1)`, `gpu:a100:3(IDX:0,2-3)`; () for `gpu:1(IDX:N/A)`.

    >>> gres_indexes("gpu:2(IDX:0-1)"), gres_indexes("gpu:a100:3(IDX:0,2-3)"), gres_indexes("gpu:0(IDX:N/A)")
    ((0, 1), (0, 2, 3), ())
    """
    found: list[int] = []
    for match in _GRES_RE.finditer(text):
        for part in match.group(2).split(","):
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                continue
            found.extend(range(int(low), int(high or low) + 1))
    return tuple(sorted(set(found)))


def parse_squeue_json(text: str) -> list[Job]:
    """The jobs in `squeue --json` (Slurm 22.05, openapi v0.0.38)."""
    try:
        data = json.loads(text)
        rows = data["jobs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DevagentError("squeue --json answered something devagent cannot read", details=text[:500],
                            hint="run `squeue --json` on the login node; devagent reads Slurm 22.05's format",
                            status=ExitStatus.SERVER_REFUSED) from exc
    return [_json_job(row) for row in rows]


def _json_job(row: Mapping[str, object]) -> Job:
    def number(key: str) -> int | None:
        value = row.get(key)
        return value if isinstance(value, int) and value > 0 else None

    limit = number("time_limit")
    detail = row.get("gres_detail") or []
    return Job(job_id=str(row["job_id"]), state=str(row.get("job_state", "")),
               reason=str(row.get("state_reason", "")), name=str(row.get("name", "")),
               user=str(row.get("user_name", "")), partition=str(row.get("partition", "")),
               node=str(row.get("batch_host") or ""),
               gpus=gres_indexes(" ".join(str(d) for d in detail) if isinstance(detail, list) else ""),
               time_limit_s=limit * 60 if limit else None, start=number("start_time"), end=number("end_time"),
               priority=number("priority") or 0)


def parse_squeue_lines(text: str) -> list[Job]:
    """The jobs in `squeue -h -o SQUEUE_FORMAT` (no GPU indexes there: `scontrol -d show job` has them)."""
    jobs = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 9:
            continue
        job_id, state, reason, nodes, _left, _tres, user, partition, priority = fields[:9]
        jobs.append(Job(job_id=job_id, state=state, reason=reason, user=user, partition=partition,
                        node=nodes if "," not in nodes and "[" not in nodes else "",
                        name=fields[9] if len(fields) > 9 else "",
                        priority=int(priority) if priority.isdigit() else 0))
    return jobs


def scontrol_fields(text: str) -> dict[str, str]:
    """KEY=VALUE pairs of `scontrol show job|node` (one record). Values run to the next space, except those of
    keys that hold paths or commands, which run to the end of the line."""
    fields: dict[str, str] = {}
    whole_line = ("Command", "WorkDir", "StdErr", "StdIn", "StdOut", "Comment")
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.split("=", 1)[0]
        if key in whole_line and "=" in stripped:
            fields[key] = stripped.split("=", 1)[1]
            continue
        for match in re.finditer(r"(?:^|\s)([A-Za-z_/:]+)=(\S*)", stripped):
            fields.setdefault(match.group(1), match.group(2))
    return fields


def parse_scontrol_job(text: str) -> Job:
    """One job from `scontrol -d show job JOBID` (the -d adds the node's GRES indexes)."""
    fields = scontrol_fields(text)
    if "JobId" not in fields:
        raise DevagentError("scontrol show job answered no job", details=text[:500],
                            hint="is the job id right? ended jobs stay visible for MinJobAge seconds only",
                            status=ExitStatus.NOT_FOUND)
    # The batch host, else the job's only node; several nodes without a batch host, or none yet, are no node.
    node = fields.get("BatchHost", "") or fields.get("NodeList", "")
    if "," in node or "[" in node or node == "(null)":
        node = ""
    return Job(job_id=fields["JobId"], state=fields.get("JobState", ""), reason=fields.get("Reason", ""),
               name=fields.get("JobName", ""), user=fields.get("UserId", "").split("(", 1)[0],
               partition=fields.get("Partition", ""), node=node, gpus=gres_indexes(text),
               time_limit_s=parse_duration(fields.get("TimeLimit", "")),
               priority=int(fields["Priority"]) if fields.get("Priority", "").isdigit() else 0)


def parse_duration(text: str) -> int | None:
    """Seconds in a duration as scontrol prints it ([D-]HH:MM:SS, MM:SS); None for UNLIMITED, N/A, and the like.

    >>> parse_duration("00:10:00"), parse_duration("1-02:00:00"), parse_duration("UNLIMITED")
    (600, 93600, None)
    """
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3 or (days and not days.isdigit()):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds + int(days or 0) * 86400


def find_job(jobs: Iterable[Job], job_id: str) -> Job | None:
    return next((job for job in jobs if job.job_id == job_id), None)


def queue_position(jobs: Sequence[Job], job_id: str) -> int | None:
    """How many pending jobs of the same partition Slurm will consider before JOB_ID (higher priority, or equal
    and older id); None if JOB_ID is not pending. Held jobs (priority 0) are not ahead of anyone."""
    job = find_job(jobs, job_id)
    if job is None or not job.pending:
        return None
    return sum(1 for other in jobs
               if other.pending and other.partition == job.partition and other.job_id != job.job_id
               and other.priority > 0
               and (other.priority, -int(other.job_id)) > (job.priority, -int(job.job_id)))


# Why a job pends, in devagent's words. `hopeless`: the job will not start as asked (up cancels it and says why).
@dataclass(frozen=True)
class Pending:
    words: str
    hopeless: bool = False


PENDING_REASONS: Mapping[str, Pending] = {
    "Resources": Pending("waiting for the GPUs, CPUs or memory asked for: other jobs hold them"),
    "Priority": Pending("jobs of higher priority are ahead in the queue"),
    "None": Pending("Slurm has not looked at the job yet"),
    "Dependency": Pending("waiting for another job it depends on"),
    "BeginTime": Pending("waiting for its start time"),
    "JobHeldUser": Pending("held by its owner (scontrol release JOBID lets it go)"),
    "JobHeldAdmin": Pending("held by the cluster's admins"),
    "ReqNodeNotAvail": Pending("a node it needs is down, drained or reserved"),
    "Reservation": Pending("waiting for its reservation to start"),
    "QOSMaxGRESPerUser": Pending("your QOS caps the GPUs you may hold at once: it starts when one of your jobs ends"),
    "QOSMaxJobsPerUserLimit": Pending("your QOS caps how many jobs you may run at once"),
    "QOSMaxCpuPerUserLimit": Pending("your QOS caps the CPUs you may hold at once"),
    "QOSGrpGRES": Pending("your QOS's group has all the GPUs it may hold"),
    "AssocGrpGRES": Pending("your account has all the GPUs it may hold"),
    "AssocMaxJobsLimit": Pending("your account caps how many jobs you may run at once"),
    "AssocGrpGRESMinutes": Pending("your account has used its GPU minutes", hopeless=True),
    "PartitionTimeLimit": Pending("the time asked is over the partition's limit", hopeless=True),
    "PartitionConfig": Pending("no node of the partition has the CPUs or memory asked for", hopeless=True),
    "PartitionNodeLimit": Pending("the partition allows fewer nodes than asked", hopeless=True),
    "PartitionDown": Pending("the partition is down: jobs wait until the admins bring it up"),
    "PartitionInactive": Pending("the partition is inactive: it starts no jobs", hopeless=True),
    "BadConstraints": Pending("no node has the features asked for", hopeless=True),
    "InvalidAccount": Pending("the account is not valid", hopeless=True),
    "InvalidQOS": Pending("the QOS is not valid", hopeless=True),
    "QOSMaxWallDurationPerJobLimit": Pending("the time asked is over your QOS's limit", hopeless=True),
    "QOSMaxGRESPerJob": Pending("more GPUs than your QOS allows a job", hopeless=True),
    "AssocMaxWallDurationPerJobLimit": Pending("the time asked is over your account's limit", hopeless=True),
    "launch failed requeued held": Pending("Slurm could not launch it on the node", hopeless=True),
    "launch_failed_requeued_held": Pending("Slurm could not launch it on the node", hopeless=True),  # scontrol's
}

# How a job ended, in devagent's words: the notebook line and `ls` say this.
ENDED_STATES: Mapping[str, str] = {
    "COMPLETED": "the job ended (its batch script exited)",
    "CANCELLED": "the job was cancelled (devagent down or scancel)",
    "TIMEOUT": "the job reached its time limit",
    "PREEMPTED": "the job was preempted by a job of higher priority",
    "NODE_FAIL": "the node failed",
    "FAILED": "the job failed on the node",
    "BOOT_FAIL": "the node could not be booted for the job",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "DEADLINE": "the job reached its deadline",
}


def describe(job: Job, *, position: int | None = None, now: float | None = None) -> str:
    """One line on JOB for `up`'s progress and `ls`.

    >>> describe(Job("4812", "PENDING", "Resources", partition="gpu"), position=3)
    'job 4812 pending on partition gpu: waiting for the GPUs, CPUs or memory asked for: other jobs hold them (3 ahead)'
    >>> describe(Job("4812", "TIMEOUT", "TimeLimit", node="n1"))
    'job 4812 ended on n1: the job reached its time limit'
    """
    if job.pending:
        pending = PENDING_REASONS.get(job.reason, Pending(f"Slurm's reason: {job.reason}"))
        ahead = f" ({position} ahead)" if position else ""
        return f"job {job.job_id} pending on partition {job.partition}: {pending.words}{ahead}"
    if job.running:
        gpus = f": GPUs {','.join(map(str, job.gpus))}" if job.gpus else ""
        left = job.time_left_s(now) if now is not None else None
        until = f" · {format_left(left)} left" if left is not None else ""
        return f"job {job.job_id} running on node {job.node}{gpus}{until}"
    if job.ended:
        where = f" on {job.node}" if job.node else ""
        return f"job {job.job_id} ended{where}: {ENDED_STATES.get(job.state, job.state.lower())}"
    return f"job {job.job_id} {job.state.lower()}"


def hopeless(job: Job) -> str | None:
    """Why JOB will never start as asked (up cancels it and says so), or None."""
    pending = PENDING_REASONS.get(job.reason)
    return pending.words if job.pending and pending is not None and pending.hopeless else None


def format_left(seconds: int) -> str:
    """SECONDS as devagent says a time left.

    >>> format_left(29940), format_left(59), format_left(90000)
    ('8 h 19 min', '59 s', '1 d 1 h')
    """
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
