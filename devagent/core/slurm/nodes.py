"""A partition's nodes and GPUs from Slurm's own commands, and who holds each GPU: `devagent gpus --slurm`.

Pure: the text of `scontrol -o -d show node` (one line per node) and the jobs (jobs.py) come in; rows come out.
Slurm is the ledger: a GPU is held by the running job whose GRES indexes on that node name it, and that job is a
devagent environment when its name starts with JOB_PREFIX (devagent names its holder jobs so).

>>> nodes = parse_scontrol_nodes("NodeName=n1 CPUTot=2 Gres=gpu:2 GresUsed=gpu:1 State=MIXED Partitions=gpu\\n")
>>> nodes[0].name, nodes[0].gpus, nodes[0].gpus_used, nodes[0].partitions
('n1', 2, 1, ('gpu',))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from devagent.core.slurm.jobs import Job, scontrol_fields

JOB_PREFIX = "devagent-"  # the name devagent gives its holder jobs: devagent-<environment>

_GPU_COUNT_RE = re.compile(r"gpu(?::[^:(,\s]+)?:(\d+)")


@dataclass(frozen=True)
class Node:
    name: str
    state: str  # IDLE, MIXED, ALLOCATED, DOWN, DRAINED, ... (+DRAIN and the like appended)
    gpus: int
    gpus_used: int
    partitions: tuple[str, ...]
    cpus: int = 0

    @property
    def usable(self) -> bool:
        """Whether Slurm may start jobs on it (not down, drained, draining or failing)."""
        return not any(word in self.state for word in ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "INVAL"))


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres text: `gpu:2`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:1`; 0 for `(null)`.

    >>> gpu_count("gpu:2"), gpu_count("gpu:a100:4(S:0-1)"), gpu_count("gpu:a100:2,gpu:v100:1"), gpu_count("(null)")
    (2, 4, 3, 0)
    """
    return sum(int(n) for n in _GPU_COUNT_RE.findall(gres))


def parse_scontrol_nodes(text: str) -> list[Node]:
    """The nodes in `scontrol -o -d show node` (one node per line)."""
    nodes = []
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        fields = scontrol_fields(line)
        partitions = fields.get("Partitions", "")
        nodes.append(Node(name=fields["NodeName"], state=fields.get("State", ""),
                          gpus=gpu_count(fields.get("Gres", "")), gpus_used=gpu_count(fields.get("GresUsed", "")),
                          partitions=tuple(p for p in partitions.split(",") if p and p != "(null)"),
                          cpus=int(fields["CPUTot"]) if fields.get("CPUTot", "").isdigit() else 0))
    return nodes


# `sinfo -N -h -p PARTITION -O SINFO_FORMAT`: one line per node of the partition, fields ended by '|'.
SINFO_FORMAT = "NodeList:|,Gres:|,GresUsed:|,StateLong:|"


def parse_sinfo_nodes(text: str, partition: str) -> list[Node]:
    """The nodes in `sinfo -N -h -p PARTITION -O SINFO_FORMAT` (all of them in PARTITION; no CPU count).

    >>> [(n.name, n.gpus, n.gpus_used, n.state) for n in parse_sinfo_nodes("n1|gpu:2|gpu:1|mixed|\\n", "gpu")]
    [('n1', 2, 1, 'MIXED')]
    """
    nodes = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 4 or not fields[0]:
            continue
        name, gres, used, state = fields[:4]
        nodes.append(Node(name=name, state=state.upper(), gpus=gpu_count(gres), gpus_used=gpu_count(used),
                          partitions=(partition,)))
    return nodes


@dataclass(frozen=True)
class GpuRow:
    """One GPU of a partition's node and who holds it."""

    node: str
    index: int
    job: Job | None  # the running job holding it; None: free

    @property
    def environment(self) -> str | None:
        """The devagent environment that holds it (from the job's name), or None."""
        if self.job is not None and self.job.name.startswith(JOB_PREFIX):
            return self.job.name[len(JOB_PREFIX):]
        return None


def partition_gpus(nodes: Sequence[Node], jobs: Sequence[Job], partition: str) -> list[GpuRow]:
    """Every GPU of PARTITION's nodes with the running job that holds it (by GRES index)."""
    holders = {(job.node, index): job for job in jobs if job.running for index in job.gpus}
    return [GpuRow(node.name, index, holders.get((node.name, index)))
            for node in nodes if partition in node.partitions for index in range(node.gpus)]


def queued(jobs: Sequence[Job], partition: str) -> list[Job]:
    """PARTITION's pending jobs, highest priority first."""
    return sorted((job for job in jobs if job.pending and job.partition == partition),
                  key=lambda job: (-job.priority, int(job.job_id) if job.job_id.isdigit() else 0))


def render_partition(nodes: Sequence[Node], jobs: Sequence[Job], partition: str, *, now: float) -> list[str]:
    """`devagent gpus --slurm PARTITION`'s lines: every GPU of the partition and its holder (job, user, devagent
    environment or not, time left), then the queue.

    >>> nodes = [Node("n1", "MIXED", 2, 1, ("gpu",))]
    >>> jobs = [Job("7", "RUNNING", "None", name="devagent-exp", user="ada", partition="gpu", node="n1", gpus=(1,),
    ...             end=1000), Job("8", "PENDING", "Resources", name="train", user="bo", partition="gpu")]
    >>> print("\\n".join(render_partition(nodes, jobs, "gpu", now=400)))
    partition gpu: 1 node, 2 GPUs, 1 held, 1 job queued
    NODE  GPU  HOLDER
    n1    0    free
    n1    1    job 7 of ada: devagent environment exp, 10 min left
    queued (highest priority first):
      job 8 of bo (train): waiting for the GPUs, CPUs or memory asked for: other jobs hold them
    """
    from devagent.core.markdown import cell
    from devagent.core.slurm.jobs import PENDING_REASONS, format_left

    rows = partition_gpus(nodes, jobs, partition)
    waiting = queued(jobs, partition)
    held = sum(1 for row in rows if row.job is not None)
    ours = [node for node in nodes if partition in node.partitions]
    lines = [f"partition {partition}: {len(ours)} node{'s' if len(ours) != 1 else ''}, {len(rows)} GPU"
             f"{'s' if len(rows) != 1 else ''}, {held} held, {len(waiting)} job{'s' if len(waiting) != 1 else ''}"
             " queued"]
    width = max([4, *(len(node.name) for node in ours)])
    lines.append(f"{'NODE':{width}}  GPU  HOLDER")
    for row in rows:
        if row.job is None:
            holder = "free"
        else:
            # A job's name and user are anyone's words (sbatch -J): shown through cell(), never raw.
            what = (f"devagent environment {cell(row.environment)}" if row.environment is not None
                    else f"not devagent ({cell(row.job.name)})" if row.job.name else "not devagent")
            left = row.job.time_left_s(now)
            holder = f"job {cell(row.job.job_id)} of {cell(row.job.user)}: {what}" + (
                f", {format_left(left)} left" if left is not None else "")
        lines.append(f"{row.node:{width}}  {row.index:<3}  {holder}")
    for node in ours:
        if not node.usable:
            lines.append(f"{node.name}: {node.state.lower()} (Slurm starts no job there)")
    if waiting:
        lines.append("queued (highest priority first):")
        for job in waiting:
            reason = PENDING_REASONS[job.reason].words if job.reason in PENDING_REASONS else cell(job.reason)
            name = f" ({cell(job.name)})" if job.name else ""
            lines.append(f"  job {cell(job.job_id)} of {cell(job.user)}{name}: {reason}")
    return lines
