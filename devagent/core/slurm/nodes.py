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
