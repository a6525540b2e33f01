"""Reading Slurm's jobs from the real outputs of Slurm 22.05 (fixtures/, captured from
tests/integration/slurm_cluster.py with jobs running, pending, held, cancelled and timed out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devagent.core.slurm.jobs import (
    ENDED_STATES,
    SQUEUE_FORMAT,
    Job,
    describe,
    find_job,
    format_left,
    gres_indexes,
    hopeless,
    parse_duration,
    parse_scontrol_job,
    parse_squeue_json,
    parse_squeue_lines,
    queue_position,
    scontrol_fields,
)
from devagent.errors import DevagentError, ExitStatus

FIXTURES = Path(__file__).parent / "fixtures"


def squeue() -> list[Job]:
    return parse_squeue_json((FIXTURES / "squeue.json").read_text())


def test_squeue_json_states_reasons_nodes_and_gpu_indexes() -> None:
    jobs = {job.job_id: job for job in squeue()}
    assert {k: (j.state, j.reason, j.node, j.gpus) for k, j in jobs.items()} == {
        "1": ("CANCELLED", "None", "n1", ()),
        "2": ("TIMEOUT", "TimeLimit", "n1", ()),
        "3": ("CANCELLED", "None", "n1", ()),
        "4": ("RUNNING", "None", "n1", (0, 1)),
        "5": ("RUNNING", "None", "n2", (0,)),
        "6": ("PENDING", "JobHeldUser", "", ()),
        "7": ("CANCELLED", "Priority", "", ()),
        "8": ("RUNNING", "None", "n2", (1,)),
        "9": ("PENDING", "Resources", "", ()),
        "10": ("PENDING", "Priority", "", ()),
    }
    exp = jobs["4"]
    assert (exp.name, exp.user, exp.partition, exp.time_limit_s) == ("devagent-exp", "devagent-srv", "gpu", 1800)
    assert exp.end is not None and exp.start is not None and exp.end - exp.start == 1800
    assert exp.time_left_s(exp.start + 60) == 1740
    assert exp.time_left_s(exp.end + 5) == 0
    assert jobs["9"].time_left_s(exp.start) is None
    assert (jobs["9"].pending, jobs["4"].running, jobs["2"].ended, jobs["4"].ended) == (True, True, True, False)


def test_squeue_json_that_is_not_slurms_is_a_clear_error() -> None:
    with pytest.raises(DevagentError) as caught:
        parse_squeue_json("slurm_load_jobs error: Unable to contact slurm controller")
    assert caught.value.message == "squeue --json answered something devagent cannot read"
    assert caught.value.status == ExitStatus.SERVER_REFUSED


def test_squeue_lines_agree_with_the_json() -> None:
    assert SQUEUE_FORMAT.startswith("%i|%T|%r|%N|%L|%b|%u|%P|%Q")  # the fixture's format, plus the job name
    lines = parse_squeue_lines((FIXTURES / "squeue-o.txt").read_text())
    from_json = {j.job_id: (j.state, j.reason, j.node, j.user, j.partition, j.priority) for j in squeue()}
    assert {j.job_id: (j.state, j.reason, j.node, j.user, j.partition, j.priority) for j in lines} == from_json


@pytest.mark.parametrize(("job_id", "state", "reason", "node", "gpus", "limit"), [
    ("4", "RUNNING", "None", "n1", (0, 1), 1800),
    ("8", "RUNNING", "None", "n2", (1,), 600),
    ("9", "PENDING", "Resources", "", (), 600),
    ("6", "PENDING", "JobHeldUser", "", (), 600),
    ("2", "TIMEOUT", "TimeLimit", "n1", (), 60),
    ("3", "CANCELLED", "None", "n1", (), 300),
])
def test_scontrol_show_job_d(job_id: str, state: str, reason: str, node: str, gpus: tuple[int, ...],
                             limit: int) -> None:
    job = parse_scontrol_job((FIXTURES / f"scontrol-job-{job_id}.txt").read_text())
    assert (job.job_id, job.state, job.reason, job.node, job.gpus, job.time_limit_s) == (
        job_id, state, reason, node, gpus, limit)
    assert job.partition == "gpu"
    assert job.user.startswith("devagent-srv")


def test_scontrol_without_a_job() -> None:
    with pytest.raises(DevagentError) as caught:
        parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n")
    assert caught.value.status == ExitStatus.NOT_FOUND


@pytest.mark.parametrize(("text", "indexes"), [
    ("GRES=gpu:2(IDX:0-1)", (0, 1)), ("gpu:1(IDX:1)", (1,)), ("gpu:a100:3(IDX:0,2-3)", (0, 2, 3)),
    ("gpu:a100:1(IDX:5),gpu:v100:1(IDX:7)", (5, 7)), ("gpu:1(IDX:N/A)", ()), ("gpu:2", ()), ("", ()),
    ("Nodes=n1 CPU_IDs=0 Mem=0 GRES=", ()), ("gpu:2(IDX:x-1)", ()),
])
def test_gres_indexes(text: str, indexes: tuple[int, ...]) -> None:
    assert gres_indexes(text) == indexes


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:10:00", 600), ("1-02:00:00", 93600), ("05:00", 300), ("UNLIMITED", None), ("N/A", None), ("", None),
    ("INVALID", None), ("x-01:00:00", None),
])
def test_durations_as_scontrol_prints_them(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_queue_position_counts_the_pending_jobs_ahead_and_not_held_ones() -> None:
    jobs = squeue()
    assert queue_position(jobs, "9") == 0  # 6 is held (priority 0): not ahead
    assert queue_position(jobs, "10") == 1  # 9 is ahead
    assert queue_position(jobs, "4") is None  # running
    assert queue_position(jobs, "404") is None
    assert find_job(jobs, "404") is None


def test_descriptions_in_devagents_words() -> None:
    jobs = {job.job_id: job for job in squeue()}
    assert describe(jobs["10"], position=1) == (
        "job 10 pending on partition gpu: jobs of higher priority are ahead in the queue (1 ahead)")
    assert describe(jobs["9"], position=0) == (
        "job 9 pending on partition gpu: waiting for the GPUs, CPUs or memory asked for: other jobs hold them")
    assert describe(jobs["6"]) == (
        "job 6 pending on partition gpu: held by its owner (scontrol release JOBID lets it go)")
    exp = jobs["4"]
    assert exp.start is not None
    assert describe(exp, now=exp.start + 60) == "job 4 running on node n1: GPUs 0,1 · 29 min left"
    assert describe(jobs["2"]) == "job 2 ended on n1: the job reached its time limit"
    assert describe(jobs["1"]) == "job 1 ended on n1: the job was cancelled (devagent down or scancel)"
    assert describe(Job("5", "PENDING", "QOSMaxGRESPerUser", partition="gpu")) == (
        "job 5 pending on partition gpu: your QOS caps the GPUs you may hold at once: it starts when one of your "
        "jobs ends")
    assert describe(Job("5", "PENDING", "SomethingNew", partition="gpu")) == (
        "job 5 pending on partition gpu: Slurm's reason: SomethingNew")
    assert describe(Job("5", "NODE_FAIL", "NodeDown", node="n2")) == "job 5 ended on n2: the node failed"
    assert describe(Job("5", "PREEMPTED", "None", node="n2")) == (
        "job 5 ended on n2: the job was preempted by a job of higher priority")
    assert describe(Job("5", "COMPLETING", "None")) == "job 5 completing"
    assert set(ENDED_STATES) >= {"CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL"}


def test_hopeless_reasons_are_the_ones_that_never_start() -> None:
    assert hopeless(Job("5", "PENDING", "PartitionTimeLimit")) == "the time asked is over the partition's limit"
    assert hopeless(Job("5", "PENDING", "PartitionConfig")) is not None
    assert hopeless(Job("5", "PENDING", "Resources")) is None
    assert hopeless(Job("5", "PENDING", "Priority")) is None
    assert hopeless(Job("5", "RUNNING", "PartitionTimeLimit")) is None


def test_scontrol_show_job_whole_rows() -> None:
    assert parse_scontrol_job((FIXTURES / "scontrol-job-4.txt").read_text()) == Job(
        "4", "RUNNING", "None", name="devagent-exp", user="devagent-srv", partition="gpu", node="n1", gpus=(0, 1),
        time_limit_s=1800, priority=4294901756)
    assert parse_scontrol_job((FIXTURES / "scontrol-job-9.txt").read_text()) == Job(
        "9", "PENDING", "Resources", name="devagent-f", user="devagent-srv2", partition="gpu", time_limit_s=600,
        priority=4294901751)
    assert parse_scontrol_job("JobId=7\n") == Job("7", "", "")


@pytest.mark.parametrize(("nodes", "node"), [
    ("NodeList=n[1-2] BatchHost=n2", "n2"), ("NodeList=n1,n3", ""), ("NodeList=n[1-2]", ""),
    ("NodeList=(null)", ""), ("NodeList=(null) BatchHost=(null)", ""), ("NodeList=n3", "n3"),
    ("BatchHost=n4", "n4"), ("NodeList=n5 BatchHost=n5", "n5"),
])
def test_the_node_of_a_job_is_its_batch_host_else_its_only_node(nodes: str, node: str) -> None:
    assert parse_scontrol_job(f"JobId=5 JobState=RUNNING\n   {nodes}\n").node == node


def test_scontrol_without_a_job_says_so_with_what_it_answered() -> None:
    text = "slurm_load_jobs error: Invalid job id specified" + "." * 600
    with pytest.raises(DevagentError) as caught:
        parse_scontrol_job(text)
    assert (caught.value.message, caught.value.hint, caught.value.details) == (
        "scontrol show job answered no job",
        "is the job id right? ended jobs stay visible for MinJobAge seconds only", text[:500])


@pytest.mark.parametrize("key", ["Command", "WorkDir", "StdErr", "StdIn", "StdOut", "Comment"])
def test_paths_and_commands_run_to_the_end_of_their_line(key: str) -> None:
    text = f"JobId=3 JobName=x\n   {key}=/home/a b/run.sh --lr=0.1 Reason=no\n   Partition=gpu\n"
    assert scontrol_fields(text) == {"JobId": "3", "JobName": "x", key: "/home/a b/run.sh --lr=0.1 Reason=no",
                                     "Partition": "gpu"}


def test_a_line_that_is_only_a_key_is_no_field_and_the_first_value_wins() -> None:
    assert scontrol_fields("Command\n JobId=1 JobId=2 Weird Reason=None\n") == {"JobId": "1", "Reason": "None"}


def test_squeue_lines_with_the_job_name_node_lists_and_odd_priorities() -> None:
    text = ("short|line\n"
            "11|RUNNING|None|n[1-2]|1:00|N/A|ada|gpu|N/A|devagent-exp\n"
            "12|RUNNING|None|n1,n2|1:00|N/A|ada|gpu|7\n"
            "13|PENDING|Priority||1:00|N/A|bo|gpu|0|train|more\n")
    assert parse_squeue_lines(text) == [
        Job("11", "RUNNING", "None", name="devagent-exp", user="ada", partition="gpu"),
        Job("12", "RUNNING", "None", user="ada", partition="gpu", priority=7),
        Job("13", "PENDING", "Priority", name="train", user="bo", partition="gpu")]


def test_squeue_json_rows_with_fields_missing_or_zero() -> None:
    text = json.dumps({"jobs": [
        {"job_id": 21},
        {"job_id": 22, "job_state": "PENDING", "time_limit": 0, "start_time": 0, "end_time": -1, "priority": 1,
         "gres_detail": 5},
        {"job_id": 23, "time_limit": "60", "start_time": 1, "priority": "9",
         "gres_detail": ["gpu:1(IDX:0)", "gpu:1(IDX:3)"]},
    ]})
    assert parse_squeue_json(text) == [
        Job("21", "", ""), Job("22", "PENDING", "", priority=1), Job("23", "", "", gpus=(0, 3), start=1)]


@pytest.mark.parametrize("text", ['{"no": "jobs"}', "[1, 2]", "{" + "x" * 600])
def test_squeue_json_that_is_not_slurms_shows_what_it_was(text: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_squeue_json(text)
    assert (caught.value.message, caught.value.hint, caught.value.details, caught.value.status) == (
        "squeue --json answered something devagent cannot read",
        "run `squeue --json` on the login node; devagent reads Slurm 22.05's format", text[:500],
        ExitStatus.SERVER_REFUSED)


def test_gres_indexes_skip_a_bad_range_and_read_on() -> None:
    assert gres_indexes("gpu:3(IDX:x,1-2,4-y,6)") == (1, 2, 6)


def test_durations_of_one_field_and_of_too_many() -> None:
    assert (parse_duration("5"), parse_duration("1:2:3:4"), parse_duration("2-1:00")) == (5, None, 172860)


def test_the_queue_ahead_of_a_job() -> None:
    jobs = [Job(str(i), "PENDING", "Priority", partition="gpu", priority=p)
            for i, p in ((11, 5), (12, 5), (13, 5), (14, 0), (15, 0), (16, 1))]
    jobs.append(Job("10", "PENDING", "Priority", partition="cpu", priority=9))
    assert [queue_position(jobs, i) for i in ("11", "12", "13", "14", "15", "16")] == [0, 1, 2, 4, 4, 3]


@pytest.mark.parametrize(("job", "now", "line"), [
    (Job("5", "RUNNING", "None", node="n2"), None, "job 5 running on node n2"),
    (Job("5", "RUNNING", "None", node="n2", gpus=(3,), end=1000), None, "job 5 running on node n2: GPUs 3"),
    (Job("5", "RUNNING", "None", node="n2", end=1000), 940, "job 5 running on node n2 · 1 min left"),
    (Job("5", "RUNNING", "None", node="n2"), 940, "job 5 running on node n2"),
    (Job("5", "FAILED", "NonZeroExitCode"), None, "job 5 ended: the job failed on the node"),
    (Job("5", "SPECIAL_EXIT", "None", node="n1"), None, "job 5 ended on n1: special_exit"),
])
def test_descriptions_of_running_and_ended_jobs(job: Job, now: float | None, line: str) -> None:
    assert describe(job, now=now) == line


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"), (3660, "1 h 1 min"),
    (86399, "23 h 59 min"), (86400, "1 d"), (90000, "1 d 1 h"), (24 * 3600 + 3599, "1 d"), (25 * 3600, "1 d 1 h"),
])
def test_time_left_in_devagents_words(seconds: int, text: str) -> None:
    assert format_left(seconds) == text
