"""A partition's nodes and GPUs, and who holds each, from real Slurm 22.05 output (fixtures/)."""

from __future__ import annotations

from pathlib import Path

from devagent.core.slurm.jobs import Job, parse_squeue_json
from devagent.core.slurm.nodes import (
    Node,
    gpu_count,
    parse_scontrol_nodes,
    parse_sinfo_nodes,
    partition_gpus,
    queued,
    render_partition,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_scontrol_show_node_one_line_per_node() -> None:
    nodes = parse_scontrol_nodes((FIXTURES / "scontrol-node.txt").read_text())
    assert [(n.name, n.gpus, n.gpus_used, n.cpus, n.usable) for n in nodes] == [
        ("n1", 2, 2, 2, True), ("n2", 2, 2, 2, True)]
    assert nodes[0].partitions == ("gpu", "restricted", "private")
    assert {n.state for n in nodes} <= {"MIXED", "ALLOCATED"}


def test_states_that_start_no_jobs() -> None:
    for state in ("DOWN", "IDLE+DRAIN", "MIXED+DRAIN", "DOWN+NOT_RESPONDING", "FAIL"):
        assert not Node("n", state, 2, 0, ("gpu",)).usable
    assert Node("n", "IDLE", 2, 0, ("gpu",)).usable


def test_gpu_counts_of_typed_and_untyped_gres() -> None:
    assert gpu_count("gpu:a100:4(S:0-1),gpu:v100:2(S:0)") == 6
    assert gpu_count("gpu:2(IDX:0-1)") == 2
    assert gpu_count("shard:8,gpu:1") == 1
    assert gpu_count("N/A") == 0


def test_who_holds_each_gpu_of_the_partition() -> None:
    nodes = parse_scontrol_nodes((FIXTURES / "scontrol-node.txt").read_text())
    jobs = parse_squeue_json((FIXTURES / "squeue.json").read_text())
    rows = partition_gpus(nodes, jobs, "gpu")
    assert [(r.node, r.index, r.job.job_id if r.job else None, r.environment) for r in rows] == [
        ("n1", 0, "4", "exp"), ("n1", 1, "4", "exp"), ("n2", 0, "5", "b"), ("n2", 1, "8", "e")]
    assert partition_gpus(nodes, jobs, "nope") == []
    assert [job.job_id for job in queued(jobs, "gpu")] == ["9", "10", "6"]


def test_sinfo_agrees_with_scontrol() -> None:
    """fixtures/sinfo-O.txt: `sinfo -N -h -p gpu -O SINFO_FORMAT`, taken a moment after scontrol-node.txt."""
    nodes = parse_sinfo_nodes((FIXTURES / "sinfo-O.txt").read_text(), "gpu")
    assert [(n.name, n.gpus, n.gpus_used, n.state, n.partitions) for n in nodes] == [
        ("n1", 2, 2, "MIXED", ("gpu",)), ("n2", 2, 2, "ALLOCATED", ("gpu",))]
    by_scontrol = parse_scontrol_nodes((FIXTURES / "scontrol-node.txt").read_text())
    assert [(n.name, n.gpus, n.gpus_used) for n in nodes] == [(n.name, n.gpus, n.gpus_used) for n in by_scontrol]
    assert parse_sinfo_nodes("\n|||\n", "gpu") == []


def test_gpus_slurm_shows_what_anyone_named_a_job_escaped_one_row_each() -> None:
    # sbatch -J takes any text: a job name or reason with escapes and line breaks must neither drive the terminal
    # nor start a row of its own.
    nodes = [Node("n1", "MIXED", 1, 1, ("gpu",))]
    jobs = [Job("7", "RUNNING", "None", name="x\x1b[2J\nn1    0    free", user="ada", partition="gpu", node="n1",
                gpus=(0,)),
            Job("8", "PENDING", "Odd\x1b]0;t\x07", name="q\tz", user="bo", partition="gpu")]
    assert render_partition(nodes, jobs, "gpu", now=0) == [
        "partition gpu: 1 node, 1 GPU, 1 held, 1 job queued",
        "NODE  GPU  HOLDER",
        "n1    0    job 7 of ada: not devagent (x␛[2J␊n1    0    free)",
        "queued (highest priority first):",
        "  job 8 of bo (q␉z): Odd␛]0;t␇",
    ]
