"""`SlurmQueue`: Slurm's commands on a cluster's login node, through a `run` callable.

`run(argv, *, input=None, timeout=60)` runs ARGV (a list of words, each quoted for the remote shell) and returns a
CompletedProcess of bytes: a ServerLink to the login node offers it (`link.run`), and the tests pass one that
runs the command as a test user on this machine. A command that fails comes back, not raised; what it means is
said here, in devagent's words (the texts are read by core/slurm/).

The holder job's script goes on `sbatch`'s stdin: no file of devagent's on the login node.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Protocol

from devagent.core.slurm.holder import holder_script, parse_holder_line
from devagent.core.slurm.jobs import Job, find_job, parse_scontrol_job, parse_squeue_json
from devagent.core.slurm.nodes import JOB_PREFIX, Node, parse_scontrol_nodes
from devagent.core.slurm.request import SlurmRequest, parse_job_id, sbatch_argv, sbatch_error
from devagent.errors import DevagentError, ExitStatus

COMMAND_TIMEOUT_S = 60.0
_NOT_FOUND = 127  # the shell's status for a command it cannot find


class Run(Protocol):
    def __call__(self, argv: Sequence[str], *, input: bytes | None = None,
                 timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]: ...


def job_name(environment: str) -> str:
    """The holder job's name for ENVIRONMENT: `devagent gpus --slurm` and a later `up` find it by this name.

    >>> job_name("exp")
    'devagent-exp'
    """
    return f"{JOB_PREFIX}{environment}"


class SlurmQueue:
    """Slurm on the cluster whose login node is CLUSTER (its name in messages), through RUN."""

    def __init__(self, run: Run | Callable[..., subprocess.CompletedProcess[bytes]], *, cluster: str) -> None:
        self._run = run
        self.cluster = cluster

    def call(self, argv: Sequence[str], *, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        result = self._run(list(argv), input=input, timeout=COMMAND_TIMEOUT_S)
        if result.returncode == _NOT_FOUND:
            raise DevagentError(f"no Slurm on {self.cluster}: `{argv[0]}` was not found there",
                                hint=f"--host must name the cluster's login node (where `{argv[0]}` runs); "
                                "if Slurm's commands are in a module, load it in your shell's profile there",
                                status=ExitStatus.USAGE)
        return result

    def _failed(self, argv: Sequence[str], result: subprocess.CompletedProcess[bytes]) -> DevagentError:
        return DevagentError(f"`{' '.join(argv)}` failed on {self.cluster} (exit {result.returncode})",
                             details=_text(result.stderr or result.stdout)[-2000:] or None,
                             hint=f"run the same command on {self.cluster} to see what Slurm says",
                             status=ExitStatus.SERVER_REFUSED)

    # -- one environment's job --------------------------------------------------------------------------------------

    def submit(self, request: SlurmRequest, *, environment: str, output: str, ended_log: str) -> str:
        """Submit the holder job of ENVIRONMENT (its container's name) and return its id; Slurm's refusal is a
        DevagentError in devagent's words (core/slurm/request.py)."""
        argv = sbatch_argv(request, job_name=job_name(environment), output=output)
        script = holder_script(name=environment, ended_log=ended_log)
        result = self.call(argv, input=script.encode())
        if result.returncode != 0:
            raise sbatch_error(request, _text(result.stderr))
        return parse_job_id(_text(result.stdout))

    def job(self, job_id: str) -> Job | None:
        """JOB_ID as `scontrol -d show job` says (its node and GPU indexes); None once Slurm has forgotten it."""
        argv = ["scontrol", "-d", "show", "job", _checked_id(job_id)]
        result = self.call(argv)
        if result.returncode != 0:
            if "Invalid job id" in _text(result.stderr):
                return None
            raise self._failed(argv, result)
        return parse_scontrol_job(_text(result.stdout))

    def holder_line(self, output: str) -> dict[str, str] | None:
        """The holder's line in the job's OUTPUT file (on the shared home): it is there once the job's traps are
        set, so the container may be made. None before."""
        result = self.call(["cat", "--", output])
        return parse_holder_line(_text(result.stdout)) if result.returncode == 0 else None

    def cancel(self, job_id: str) -> None:
        """`scancel JOB_ID` (the holder then removes the container). A job Slurm has already ended is no error."""
        argv = ["scancel", _checked_id(job_id)]
        result = self.call(argv)
        if result.returncode != 0 and "Invalid job id" not in _text(result.stderr) \
                and "already completing or completed" not in _text(result.stderr):
            raise self._failed(argv, result)

    # -- the queue ----------------------------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """Every job Slurm knows (22.05's `squeue --json` ignores -u/-p: callers filter the rows)."""
        argv = ["squeue", "--json"]
        result = self.call(argv)
        if result.returncode != 0:
            raise self._failed(argv, result)
        return parse_squeue_json(_text(result.stdout))

    def live_job(self, environment: str, user: str) -> Job | None:
        """USER's pending or running holder job of ENVIRONMENT (a `--no-wait` request a later `up` picks up)."""
        name = job_name(environment)
        # Pending or running only: a job that is COMPLETING is ending (scancel'd), its holder removing what it had.
        live = [job for job in self.jobs() if job.name == name and job.user == user and (job.pending or job.running)]
        return max(live, key=lambda job: int(job.job_id)) if live else None

    def nodes(self, partition: str) -> list[Node]:
        """PARTITION's nodes, with their GPUs; a DevagentError when Slurm has no such partition."""
        argv = ["scontrol", "-o", "-d", "show", "node"]
        result = self.call(argv)
        if result.returncode != 0:
            raise self._failed(argv, result)
        nodes = [node for node in parse_scontrol_nodes(_text(result.stdout)) if partition in node.partitions]
        if not nodes:
            raise DevagentError(f"Slurm has no partition {partition!r} on {self.cluster} (or it has no nodes)",
                                hint=f"list the partitions: ssh {self.cluster} sinfo -s", status=ExitStatus.USAGE)
        return nodes

    def find(self, job_id: str) -> Job | None:
        return find_job(self.jobs(), job_id)


def _checked_id(job_id: str) -> str:
    if not job_id.isascii() or not job_id.isdigit():
        raise DevagentError(f"invalid Slurm job id {job_id!r}", hint="a job id is a number",
                            status=ExitStatus.USAGE)
    return job_id


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
