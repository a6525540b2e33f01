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


def test_a_node_line_with_fields_missing_and_lines_that_are_no_node() -> None:
    text = ("\nNode n0 not found\nNodeName=n1\n"
            "NodeName=n2 CPUTot=N/A Gres=(null) GresUsed=(null) State=DOWN+NOT_RESPONDING Partitions=(null)\n"
            "NodeName=n3 CPUTot=64 Gres=gpu:h100:8(S:0-1) GresUsed=gpu:h100:3(IDX:0-2) State=MIXED "
            "Partitions=gpu,,debug\n")
    assert parse_scontrol_nodes(text) == [
        Node("n1", "", 0, 0, (), 0), Node("n2", "DOWN+NOT_RESPONDING", 0, 0, (), 0),
        Node("n3", "MIXED", 8, 3, ("gpu", "debug"), 64)]


def test_sinfo_lines_need_four_fields_and_a_name() -> None:
    text = "n0|gpu:2|gpu:1\n|gpu:2|gpu:1|idle|\nn1||(null)|drained|\nn2|gpu:2|gpu:2|allocated\n"
    assert parse_sinfo_nodes(text, "p") == [Node("n1", "DRAINED", 0, 0, ("p",)),
                                            Node("n2", "ALLOCATED", 2, 2, ("p",))]


def test_the_queue_by_priority_then_by_id_and_other_partitions_left_out() -> None:
    jobs = [Job("12", "PENDING", "Priority", partition="gpu", priority=5),
            Job("1", "PENDING", "Priority", partition="gpu", priority=5),
            Job("40", "PENDING", "Priority", partition="gpu", priority=9),
            Job("2", "PENDING", "Priority", partition="cpu", priority=99),
            Job("3", "RUNNING", "None", partition="gpu", priority=99),
            Job("5_1", "PENDING", "Priority", partition="gpu", priority=5)]
    # An id that is no number (an array task, as `squeue -o %i` writes it) sorts first among its priority.
    assert [job.job_id for job in queued(jobs, "gpu")] == ["40", "5_1", "1", "12"]


def test_the_partition_view_of_holders_that_are_not_devagent_and_of_a_drained_node() -> None:
    nodes = [Node("n1", "MIXED", 1, 1, ("gpu", "big")), Node("node-long", "IDLE+DRAIN", 0, 0, ("gpu",)),
             Node("n3", "IDLE", 4, 0, ("cpu",))]
    jobs = [Job("7", "RUNNING", "None", name="train", user="bo", partition="gpu", node="n1", gpus=(0,)),
            Job("9", "PENDING", "SomethingNew", user="cy", partition="gpu"),
            Job("8", "PENDING", "Priority", name="x", user="di", partition="gpu", priority=5)]
    assert render_partition(nodes, jobs, "gpu", now=0) == [
        "partition gpu: 2 nodes, 1 GPU, 1 held, 2 jobs queued",
        "NODE       GPU  HOLDER",
        "n1         0    job 7 of bo: not devagent (train)",
        "node-long: idle+drain (Slurm starts no job there)",
        "queued (highest priority first):",
        "  job 8 of di (x): jobs of higher priority are ahead in the queue",
        "  job 9 of cy: SomethingNew"]
    unnamed = Job("7", "RUNNING", "None", user="bo", partition="big", node="n1", gpus=(0,), end=100)
    assert render_partition(nodes, [unnamed], "big", now=0) == [
        "partition big: 1 node, 1 GPU, 1 held, 0 jobs queued",
        "NODE  GPU  HOLDER",
        "n1    0    job 7 of bo: not devagent, 1 min left"]
    assert render_partition(nodes, [], "none", now=0) == [
        "partition none: 0 nodes, 0 GPUs, 0 held, 0 jobs queued", "NODE  GPU  HOLDER"]
