"""`up`'s wait for the holder job to run, and the cancel that leaves nothing when the wait ends any other way.

While the job pends, one line says why, in the issue's words, each time Slurm's reason or the place in the queue
changes:

    ⏳ waiting for 2 GPUs on partition gpu (job 4812, reason: Resources, 3 ahead) … Ctrl-C cancels the request

A reason that means the job will never start as asked (core/slurm/jobs.py's hopeless ones) cancels the job and
says why; so do the wait's timeout and Ctrl-C (or any exception: SIGTERM and SIGHUP arrive as exceptions in
`up`). A job that ends before it runs (someone cancelled it) is an error that says how it ended.

The job counts as started once it runs AND its holder has printed its line into the job's output: its traps are
set then, so a container made after that is removed when the job ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from devagent.control.slurm.queue import SlurmQueue
from devagent.core.slurm.jobs import ENDED_STATES, PENDING_REASONS, Job, format_left, hopeless, queue_position
from devagent.core.slurm.request import SlurmRequest
from devagent.errors import DevagentError, ExitStatus

# An idle cluster starts a job within about a second of sbatch (its scheduler's cycle): Slurm is asked every
# FAST_POLL_S for the first FAST_POLL_FOR_S, as a script would, then from FIRST_POLL_S on, 1.5 times longer each
# time, up to MAX_POLL_S (a queue that holds the job keeps the controller's load low).
FAST_POLL_S = 0.05
FAST_POLL_FOR_S = 2.0
FIRST_POLL_S = 0.2
MAX_POLL_S = 5.0


def asked(request: SlurmRequest) -> str:
    """What REQUEST asks for, as the wait line says it.

    >>> from devagent.core.slurm.request import slurm_request
    >>> asked(slurm_request(partition="gpu", gpus=2, time="10")), asked(slurm_request(partition="cpu", gpus=0,
    ...                                                                                 time="10"))
    ('2 GPUs on partition gpu', 'a node on partition cpu')
    """
    if request.gpus == 0:
        return f"a node on partition {request.partition}"
    return f"{request.gpus} GPU{'s' if request.gpus != 1 else ''} on partition {request.partition}"


def waiting_line(request: SlurmRequest, job: Job, position: int | None) -> str:
    """The line `up` shows while JOB pends.

    >>> from devagent.core.slurm.request import slurm_request
    >>> waiting_line(slurm_request(partition="gpu", gpus=2, time="10"), Job("4812", "PENDING", "Resources"), 3)
    '⏳ waiting for 2 GPUs on partition gpu (job 4812, reason: Resources, 3 ahead) … Ctrl-C cancels the request'
    """
    ahead = f", {position} ahead" if position else ""
    return (f"⏳ waiting for {asked(request)} (job {job.job_id}, reason: {job.reason}{ahead}) … "
            "Ctrl-C cancels the request")


def wait_until_running(queue: SlurmQueue, job_id: str, request: SlurmRequest, *, output: str,
                       report: Callable[[str], None], timeout_s: float | None,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> Job:
    """JOB_ID once it runs with its holder's traps set (its node and GPU indexes filled in). Any other end of
    the wait (a hopeless reason, TIMEOUT_S, Ctrl-C, an error) cancels the job first, then raises."""
    try:
        return _wait(queue, job_id, request, output=output, report=report, timeout_s=timeout_s, clock=clock,
                     sleep=sleep)
    except BaseException:
        queue.cancel(job_id)
        raise


def _wait(queue: SlurmQueue, job_id: str, request: SlurmRequest, *, output: str, report: Callable[[str], None],
          timeout_s: float | None, clock: Callable[[], float], sleep: Callable[[float], None]) -> Job:
    began = clock()
    deadline = None if timeout_s is None else began + timeout_s
    shown: tuple[str, int | None] | None = None
    delay = FIRST_POLL_S
    while True:
        job = queue.job(job_id)
        if job is None:
            raise DevagentError(f"Slurm no longer knows job {job_id} on {queue.cluster}",
                                hint="someone cancelled it long enough ago that Slurm forgot it; run `up` again",
                                status=ExitStatus.CONTAINER_FAILED)
        if job.running:
            if queue.holder_line(output) is not None:
                return job
        elif job.ended:
            how = ENDED_STATES.get(job.state, job.state.lower())
            raise DevagentError(f"job {job_id} ended before the environment was made: {how}",
                                hint="run `up` again for a new request", status=ExitStatus.CONTAINER_FAILED)
        elif job.pending:
            never = hopeless(job)
            if never is not None:
                raise DevagentError(
                    f"Slurm will never start job {job_id} as asked ({job.reason}: {never}): it was cancelled",
                    hint=f"change the request (what partition {request.partition} offers: "
                    f"sinfo -p {request.partition} -o '%N %G %c %m %l')", status=ExitStatus.USAGE)
            position = queue_position(queue.jobs(), job_id) if job.reason in ("Priority", "Resources") else None
            if shown != (job.reason, position):
                shown = (job.reason, position)
                report(waiting_line(request, job, position))
        if deadline is not None and clock() >= deadline:
            words = PENDING_REASONS[job.reason].words if job.reason in PENDING_REASONS else job.reason
            raise DevagentError(
                f"job {job_id} did not start within {format_left(int(timeout_s or 0))} ({words}): it was cancelled",
                hint="wait longer (--wait-timeout), ask for fewer GPUs, or see the queue: "
                f"devagent gpus --host {queue.cluster} --slurm {request.partition}", status=ExitStatus.GPU_BUSY)
        if clock() - began < FAST_POLL_FOR_S:
            sleep(FAST_POLL_S)
            continue
        sleep(delay)
        delay = min(delay * 1.5, MAX_POLL_S)
