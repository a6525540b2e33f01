"""An environment's allocation on a Slurm cluster: asked for, waited on, checked, and given back.

The holder job (core/slurm/holder.py) is the allocation: it writes its output and its end line into
`~/.devagent/slurm/` on the cluster's shared home (the same on the login node and every node), and removes the
environment's container on the node when it ends. So giving the allocation back is `scancel` and a wait until
Slurm says the job has ended: by then the container is gone.

`allocate` asks and waits (control/slurm/waiting.py); with `wait=False` it returns the pending job at once and a
later `allocate` of the same environment picks that job up (found by its name and the user, not submitted again).
`still_running` is `up`'s check after the container has started: a job that ended while `up` was provisioning
left a container nobody removes, so `up` rolls back then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from devagent.control.slurm.queue import SlurmQueue
from devagent.control.slurm.waiting import wait_until_running
from devagent.core.slurm.jobs import Job
from devagent.core.slurm.request import SlurmRequest
from devagent.errors import DevagentError, ExitStatus

FOLDER = ".devagent/slurm"  # under the user's home on the cluster (shared by the login node and every node)
RELEASE_TIMEOUT_S = 120.0  # scancel -> ended: KillWait (30 s by default) plus the trap's `docker rm -f`


@dataclass(frozen=True)
class Allocation:
    """One environment's job: where it runs, with which GPUs, and the files it writes on the shared home."""

    cluster: str  # the login node, as the user named it
    job_id: str
    partition: str
    node: str  # "" while the job pends (--no-wait)
    gpus: tuple[int, ...]  # the GPU indexes on NODE, Slurm's own view (scontrol -d show job)
    time_limit_s: int | None
    output: str  # the job's output file: the holder's line
    ended_log: str  # where the holder appends when and why the job ended

    @property
    def running(self) -> bool:
        return bool(self.node)


def files(home: str, environment: str) -> tuple[str, str]:
    """The job's output file and its ended log for ENVIRONMENT, under HOME on the cluster.

    >>> files("/home/ada", "exp")
    ('/home/ada/.devagent/slurm/exp.out', '/home/ada/.devagent/slurm/exp.ended')
    """
    folder = f"{home.rstrip('/')}/{FOLDER}"
    return f"{folder}/{environment}.out", f"{folder}/{environment}.ended"


def allocate(queue: SlurmQueue, request: SlurmRequest, *, environment: str, user: str, home: str,
             report: Callable[[str], None], timeout_s: float | None, wait: bool = True,
             live: Job | Literal["ask"] | None = "ask", clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Allocation:
    """ENVIRONMENT's allocation: USER's live holder job of it when there is one (a request made with --no-wait),
    else a new one. WAIT: until it runs (any other end cancels it and raises); else return it pending. LIVE: that
    job as the caller has just asked Slurm (queue.live_job), so that it is not asked twice."""
    output, ended_log = files(home, environment)
    job = queue.live_job(environment, user) if isinstance(live, str) else live
    if job is None:
        made = queue.call(["mkdir", "-p", "-m", "700", "--", output.rsplit("/", 1)[0]])
        if made.returncode != 0:
            raise DevagentError(f"devagent could not make ~/{FOLDER} on {queue.cluster}",
                                details=(made.stderr or made.stdout).decode(errors="replace") or None,
                                hint=f"check that your home on {queue.cluster} is writable",
                                status=ExitStatus.SERVER_REFUSED)
        job_id = queue.submit(request, environment=environment, output=output, ended_log=ended_log)
        report(f"job {job_id} submitted to partition {request.partition} on {queue.cluster}")
    else:
        job_id = job.job_id
        report(f"job {job_id} of {environment} is already {job.state.lower()} on {queue.cluster}: using it")
    if not wait:
        found = queue.job(job_id)
        return _allocation(queue, found or Job(job_id, "PENDING", "None", partition=request.partition),
                           output=output, ended_log=ended_log, running=False)
    running = wait_until_running(queue, job_id, request, output=output, report=report, timeout_s=timeout_s,
                                 clock=clock, sleep=sleep)
    return _allocation(queue, running, output=output, ended_log=ended_log, running=True)


def _allocation(queue: SlurmQueue, job: Job, *, output: str, ended_log: str, running: bool) -> Allocation:
    return Allocation(cluster=queue.cluster, job_id=job.job_id, partition=job.partition,
                      node=job.node if running else "", gpus=job.gpus if running else (),
                      time_limit_s=job.time_limit_s, output=output, ended_log=ended_log)


def still_running(queue: SlurmQueue, allocation: Allocation) -> bool:
    """Whether the allocation's job still runs on its node (up's check after the container has started)."""
    job = queue.job(allocation.job_id)
    return job is not None and job.running and job.node == allocation.node


def release(queue: SlurmQueue, job_id: str, *, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep, timeout_s: float = RELEASE_TIMEOUT_S) -> Job | None:
    """Cancel JOB_ID and wait until Slurm says it has ended (its holder has removed the container by then).
    Returns the ended job (None once Slurm has forgotten it)."""
    queue.cancel(job_id)
    deadline = clock() + timeout_s
    delay = 0.2
    while True:
        job = queue.job(job_id)
        if job is None or job.ended:
            return job
        if clock() >= deadline:
            raise DevagentError(f"job {job_id} on {queue.cluster} did not end within {timeout_s:.0f} s of scancel",
                                hint=f"see what Slurm says: ssh {queue.cluster} scontrol show job {job_id}",
                                status=ExitStatus.SERVER_REFUSED)
        sleep(delay)
        delay = min(delay * 1.5, 2.0)


def ended_lines(queue: SlurmQueue, allocation: Allocation) -> list[str]:
    """The holder's end lines for this allocation's job (when and why it ended), for the notebook and `ls`."""
    result = queue.call(["cat", "--", allocation.ended_log])
    if result.returncode != 0:
        return []
    marker = f" job {allocation.job_id} on "
    return [line for line in result.stdout.decode(errors="replace").splitlines() if marker in line]
