"""The Slurm client and `up`'s wait, against a scripted Slurm at the `run` boundary: the error paths a real
cluster cannot be made to produce on demand (a hopeless reason, a clock past the timeout, Ctrl-C at a given poll,
no Slurm on the login node). tests/integration/test_slurm_queue.py runs the same code against a real Slurm."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from devagent.control.slurm.allocation import allocate
from devagent.control.slurm.queue import SlurmQueue
from devagent.control.slurm.waiting import FAST_POLL_FOR_S, FAST_POLL_S, wait_until_running
from devagent.core.slurm.request import slurm_request
from devagent.errors import DevagentError, ExitStatus

REQUEST = slurm_request(partition="gpu", gpus=2, time="10")
OUTPUT = "/home/ada/.devagent/slurm/exp.out"


def scontrol(state: str, reason: str, *, node: str = "", gres: str = "") -> str:
    return (f"JobId=12 JobName=devagent-exp\n   UserId=ada(1000) GroupId=ada(1000)\n   Priority=100\n"
            f"   JobState={state} Reason={reason} Dependency=(null)\n   Partition=gpu AllocNode:Sid=login:1\n"
            f"   NodeList={node}\n   BatchHost={node}\n     Nodes={node} CPU_IDs=0 Mem=0 GRES={gres}\n")


class ScriptedSlurm:
    """`run` for SlurmQueue: each `scontrol show job` answers the next of STATES; every call is recorded."""

    def __init__(self, states: Sequence[str], *, holder: str = "devagent-holder: job=12 node=n1 gpus=0,1\n",
                 missing: str | None = None) -> None:
        self.states = list(states)
        self.holder = holder
        self.missing = missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, input: bytes | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == self.missing:
            return subprocess.CompletedProcess(argv, 127, b"", f"sh: {argv[0]}: not found".encode())
        if argv[:2] == ["scontrol", "-d"]:
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return subprocess.CompletedProcess(argv, 0, state.encode(), b"")
        if argv[0] == "cat":
            return subprocess.CompletedProcess(argv, 0, self.holder.encode(), b"")
        if argv[:2] == ["squeue", "--json"]:
            return subprocess.CompletedProcess(argv, 0, b'{"jobs": []}', b"")
        if argv[0] == "sbatch":
            return subprocess.CompletedProcess(argv, 0, b"12\n", b"")
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    @property
    def cancels(self) -> list[list[str]]:
        return [call for call in self.calls if call[0] == "scancel"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(slurm: ScriptedSlurm, *, timeout_s: float | None = None, report: object = None) -> tuple[object, list[str]]:
    lines: list[str] = []
    clock = Clock()
    job = wait_until_running(SlurmQueue(slurm, cluster="hpc-login"), "12", REQUEST, output=OUTPUT,
                             report=report or lines.append, timeout_s=timeout_s,  # type: ignore[arg-type]
                             clock=clock, sleep=clock.sleep)
    return job, lines


def test_the_wait_shows_each_new_reason_once_and_returns_the_running_job_with_its_gpus() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Priority"), scontrol("PENDING", "Resources"),
                           scontrol("PENDING", "Resources"),
                           scontrol("RUNNING", "None", node="n1", gres="gpu:2(IDX:0-1)")])
    job, lines = wait(slurm)
    assert (job.node, job.gpus) == ("n1", (0, 1))  # type: ignore[attr-defined]
    assert lines == [
        "⏳ waiting for 2 GPUs on partition gpu (job 12, reason: Priority) … Ctrl-C cancels the request",
        "⏳ waiting for 2 GPUs on partition gpu (job 12, reason: Resources) … Ctrl-C cancels the request"]
    assert slurm.cancels == []


def test_slurm_is_asked_often_in_the_first_seconds_then_less_and_less() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")] * 60 + [scontrol("RUNNING", "None", node="n1")])
    clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        clock.sleep(seconds)

    wait_until_running(SlurmQueue(slurm, cluster="hpc-login"), "12", REQUEST, output=OUTPUT, report=lambda _: None,
                       timeout_s=None, clock=clock, sleep=sleep)
    fast = round(FAST_POLL_FOR_S / FAST_POLL_S)  # 40 polls 50 ms apart: what a script would do
    assert slept[:fast] == [FAST_POLL_S] * fast
    assert slept[fast:fast + 4] == [0.2, 0.3, 0.45, 0.675]


def test_running_is_not_started_until_the_holder_has_set_its_traps() -> None:
    slurm = ScriptedSlurm([scontrol("RUNNING", "None", node="n1")], holder="")
    with pytest.raises(DevagentError) as caught:
        wait(slurm, timeout_s=30)
    assert caught.value.status == ExitStatus.GPU_BUSY
    assert slurm.cancels == [["scancel", "12"]]


def test_a_hopeless_reason_cancels_the_job_and_says_why() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "PartitionTimeLimit")])
    with pytest.raises(DevagentError) as caught:
        wait(slurm)
    assert caught.value.message == ("Slurm will never start job 12 as asked (PartitionTimeLimit: the time asked "
                                    "is over the partition's limit): it was cancelled")
    assert caught.value.status == ExitStatus.USAGE
    assert slurm.cancels == [["scancel", "12"]]


def test_the_timeout_cancels_the_job() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")])
    with pytest.raises(DevagentError) as caught:
        wait(slurm, timeout_s=60)
    assert caught.value.message == ("job 12 did not start within 1 min (waiting for the GPUs, CPUs or memory "
                                    "asked for: other jobs hold them): it was cancelled")
    assert caught.value.status == ExitStatus.GPU_BUSY
    assert caught.value.hint == ("wait longer (--wait-timeout), ask for fewer GPUs, or see the queue: devagent "
                                 "gpus --host hpc-login --slurm gpu")
    assert slurm.cancels == [["scancel", "12"]]


def test_ctrl_c_while_waiting_cancels_the_job() -> None:
    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")])
    with pytest.raises(KeyboardInterrupt):
        wait(slurm, report=interrupt)
    assert slurm.cancels == [["scancel", "12"]]


def test_a_job_cancelled_from_outside_before_it_ran_says_how_it_ended() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources"), scontrol("CANCELLED", "None")])
    with pytest.raises(DevagentError) as caught:
        wait(slurm)
    assert caught.value.message == ("job 12 ended before the environment was made: the job was cancelled "
                                    "(devagent down or scancel)")
    assert caught.value.status == ExitStatus.CONTAINER_FAILED


def test_no_slurm_on_the_login_node_is_a_usage_error_naming_the_fix() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")], missing="sbatch")
    with pytest.raises(DevagentError) as caught:
        SlurmQueue(slurm, cluster="hpc-login").submit(REQUEST, environment="exp", output=OUTPUT,
                                                      ended_log="/home/ada/.devagent/slurm/exp.ended")
    assert caught.value.message == "no Slurm on hpc-login: `sbatch` was not found there"
    assert caught.value.status == ExitStatus.USAGE


def test_submit_sends_the_holder_script_on_stdin_and_reads_the_id() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")])
    job_id = SlurmQueue(slurm, cluster="hpc-login").submit(REQUEST, environment="exp", output=OUTPUT,
                                                           ended_log="/home/ada/.devagent/slurm/exp.ended")
    assert job_id == "12"
    assert slurm.calls[0][:3] == ["sbatch", "--parsable", "--job-name=devagent-exp"]


def test_a_hostile_job_id_never_reaches_slurm() -> None:
    slurm = ScriptedSlurm([scontrol("PENDING", "Resources")])
    with pytest.raises(DevagentError) as caught:
        SlurmQueue(slurm, cluster="hpc-login").cancel("12;rm -rf ~")
    assert caught.value.status == ExitStatus.USAGE
    assert slurm.calls == []


def test_a_later_up_picks_up_a_pending_or_running_job_of_the_environment_never_an_ending_one() -> None:
    import json

    def row(job_id: int, state: str, name: str = "devagent-exp", user: str = "ada") -> dict[str, object]:
        return {"job_id": job_id, "job_state": state, "state_reason": "None", "name": name, "user_name": user,
                "partition": "gpu"}

    def queue(*rows: dict[str, object]) -> SlurmQueue:
        def run(argv: Sequence[str], *, input: bytes | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
            return subprocess.CompletedProcess(list(argv), 0, json.dumps({"jobs": list(rows)}).encode(), b"")
        return SlurmQueue(run, cluster="hpc-login")

    assert queue(row(7, "COMPLETING"), row(8, "CANCELLED")).live_job("exp", "ada") is None
    found = queue(row(7, "COMPLETING"), row(9, "PENDING"), row(10, "RUNNING", user="bo"),
                  row(11, "RUNNING", name="devagent-other")).live_job("exp", "ada")
    assert found is not None and found.job_id == "9"


@pytest.mark.parametrize(("live", "asked"), [("ask", 1), (None, 0)])
def test_the_live_job_is_asked_for_once_when_up_has_just_asked(live: str | None, asked: int) -> None:
    # up's `opened` asks Slurm for the environment's live job itself (to keep it on a failure) and hands it on.
    slurm = ScriptedSlurm([scontrol("RUNNING", "None", node="n1", gres="gpu:2(IDX:0-1)")])
    clock = Clock()
    made = allocate(SlurmQueue(slurm, cluster="hpc-login"), REQUEST, environment="exp", user="ada", home="/home/ada",
                    report=lambda _: None, timeout_s=None, live=live, clock=clock,  # type: ignore[arg-type]
                    sleep=clock.sleep)
    assert (made.job_id, made.node) == ("12", "n1")
    assert [call[:2] for call in slurm.calls].count(["squeue", "--json"]) == asked
    assert [call[0] for call in slurm.calls if call[0] != "scontrol"] == (
        ["squeue"] * asked + ["mkdir", "sbatch", "cat"])
