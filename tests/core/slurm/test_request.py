"""The Slurm request: hostile values refused before anything runs, Slurm's time formats, the sbatch argv, and
sbatch's real refusals (fixtures/sbatch-errors.txt, captured from Slurm 22.05) in devagent's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.core.slurm.request import (
    SlurmRequest,
    format_time,
    parse_job_id,
    parse_time,
    sbatch_argv,
    sbatch_error,
    slurm_request,
)
from devagent.errors import DevagentError, ExitStatus

FIXTURES = Path(__file__).parent / "fixtures"


def request(**given: object) -> SlurmRequest:
    values: dict[str, object] = {"partition": "gpu", "gpus": 2, "time": "8:00:00"}
    values.update(given)
    return slurm_request(**values)  # type: ignore[arg-type]


def test_the_sbatch_argv_is_a_list_with_every_value_as_one_word() -> None:
    r = request(cpus="8", memory="32g", account="lab", qos="high", constraint="a100&nvlink", gpu_type="a100")
    assert sbatch_argv(r, job_name="devagent-exp", output="/home/ada/.devagent/slurm/%j.out") == [
        "sbatch", "--parsable", "--job-name=devagent-exp", "--partition=gpu", "--time=0-08:00:00", "--no-requeue",
        "--gres=gpu:a100:2", "--cpus-per-task=8", "--mem=32G", "--account=lab", "--qos=high",
        "--constraint=a100&nvlink", "--signal=B:TERM@60", "--output=/home/ada/.devagent/slurm/%j.out",
        "--open-mode=append"]


def test_a_cpu_job_asks_for_no_gres_and_the_gpus_option_is_offered() -> None:
    argv = sbatch_argv(request(gpus=0, warning_s=None), job_name="devagent-cpu", output="/o")
    assert not [a for a in argv if a.startswith(("--gres", "--gpus", "--signal"))]
    argv = sbatch_argv(request(gpus=4, gpus_option=True), job_name="devagent-x", output="/o")
    assert "--gpus=4" in argv


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 5400), ("0:30", 30), ("10:00", 600), ("1:30:00", 5400), ("8:00:00", 28800), ("2-12", 216000),
    ("1-02:03", 93780), ("1-02:03:04", 93784),
])
def test_slurm_time_formats(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds
    assert parse_time(format_time(seconds)) == seconds


@pytest.mark.parametrize(("text", "words"), [
    ("0", "above zero"), ("0:00:00", "above zero"), ("UNLIMITED", "finite"), ("infinite", "finite"),
    ("1:60:00", "m field 60 is over 59"), ("1-24:00", "h field 24 is over 23"), ("banana", "'banana'"),
    ("8h", "'8h'"), ("-5", "'-5'"), ("1:2:3:4", "'1:2:3:4'"), ("400-00", "over a year"),
    ("8:00\n", "'8:00\\n'"), (" 60", "' 60'"), ("٣", "'٣'"),
])
def test_bad_times_are_refused_with_the_formats_named(text: str, words: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_time(text)
    assert caught.value.status == ExitStatus.USAGE
    assert words in caught.value.message
    assert caught.value.hint is not None


HOSTILE = ["--uid=0", "-p", "gpu;rm -rf ~", "gpu\n#SBATCH --uid=0", "gpu a", "$(id)", "`id`", "gpu|x", "gpu&",
           "'gpu'", '"gpu"', "", "gpu\t", "../gpu", "gpu>x", "ü"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["partition", "account", "qos", "gpu_type"])
def test_hostile_names_are_refused_before_anything_runs(field: str, value: str) -> None:
    with pytest.raises(DevagentError) as caught:
        request(**{field: value})
    assert caught.value.status == ExitStatus.USAGE
    assert repr(value) in caught.value.message


def test_the_messages_of_a_refused_name_say_what_and_how() -> None:
    with pytest.raises(DevagentError) as caught:
        request(partition="--uid=0")
    assert str(caught.value) == ("invalid Slurm partition '--uid=0': it must not start with '-'\n"
                                 "  hint: give --slurm the partition's name as `sinfo` or `sacctmgr` shows it")
    with pytest.raises(DevagentError) as caught:
        request(account="lab;id")
    assert str(caught.value) == ("invalid Slurm account 'lab;id'\n  hint: --account takes 1-64 letters, digits, "
                                 "'_', '.', '-' (no spaces, quotes or shell characters)")


@pytest.mark.parametrize("value", ["a100&", "&a100", "a100 & b", "-a100", "a100;id", "a100\nb", "a100||b", "$(x)"])
def test_hostile_constraints_are_refused(value: str) -> None:
    with pytest.raises(DevagentError) as caught:
        request(constraint=value)
    assert caught.value.status == ExitStatus.USAGE


@pytest.mark.parametrize(("field", "value"), [
    ("gpus", -1), ("gpus", "2; id"), ("gpus", "65"), ("gpus", "two"), ("gpus", "²"), ("cpus", 0), ("cpus", "1e3"),
    ("memory", "32GB"), ("memory", "-1G"), ("memory", "0"), ("memory", "32 G"), ("memory", "1.5G"),
    ("warning_s", 0), ("warning_s", 70000),
])
def test_bad_counts_and_sizes_are_refused(field: str, value: object) -> None:
    with pytest.raises(DevagentError) as caught:
        request(**{field: value})
    assert caught.value.status == ExitStatus.USAGE


def test_a_gpu_type_needs_gpus_and_bad_job_names_or_outputs_are_refused() -> None:
    with pytest.raises(DevagentError, match="without GPUs"):
        request(gpus=0, gpu_type="a100")
    with pytest.raises(DevagentError, match="invalid Slurm job name"):
        sbatch_argv(request(), job_name="-x", output="/o")
    with pytest.raises(DevagentError, match="invalid path for the job's output"):
        sbatch_argv(request(), job_name="devagent-x", output="/o\n#SBATCH --uid=0")


def test_the_job_id_of_sbatch_parsable() -> None:
    assert parse_job_id("17\n") == "17"
    assert parse_job_id("17;cluster\n") == "17"
    with pytest.raises(DevagentError, match="sbatch answered no job id"):
        parse_job_id("Submitted batch job 17\n")


def captured_refusals() -> dict[str, str]:
    """fixtures/sbatch-errors.txt: '## KEY | sbatch ARGS' then sbatch's stderr as Slurm 22.05 wrote it."""
    found: dict[str, str] = {}
    key = ""
    for line in (FIXTURES / "sbatch-errors.txt").read_text().splitlines():
        if line.startswith("## "):
            key = line[3:].split(" | ", 1)[0]
            found[key] = ""
        elif not line.startswith("rc="):
            found[key] += line + "\n"
    return found


REFUSALS = captured_refusals()


@pytest.mark.parametrize(("key", "given", "message", "status"), [
    ("partition", {"partition": "nope"}, "Slurm has no partition 'nope'", ExitStatus.USAGE),
    ("gpus", {"gpus": 3}, "no node of partition 'gpu' can ever give 3 GPUs: the request can never start",
     ExitStatus.GPU_UNAVAILABLE),
    ("gpus-option", {"gpus": 5, "gpus_option": True},
     "no node of partition 'gpu' can ever give 5 GPUs: the request can never start", ExitStatus.GPU_UNAVAILABLE),
    ("memory", {"gpus": 1, "memory": "5000"},
     "no node of partition 'gpu' can ever give 1 GPU and 5000 of memory: the request can never start",
     ExitStatus.GPU_UNAVAILABLE),
    ("cpus", {"gpus": 1, "cpus": 8}, "partition 'gpu' has no node with 8 CPUs", ExitStatus.USAGE),
    ("time", {"gpus": 1, "time": "2:00:00"}, "the time limit 0-02:00:00 is over what partition 'gpu' allows",
     ExitStatus.USAGE),
    ("account", {"partition": "restricted", "gpus": 1, "account": "nosuch"},
     "Slurm refused the account 'nosuch' for partition 'restricted'", ExitStatus.USAGE),
    ("group", {"partition": "private", "gpus": 1}, "you may not use Slurm partition 'private'", ExitStatus.USAGE),
    ("constraint", {"gpus": 1, "constraint": "nofeature"},
     "no node of partition 'gpu' has the features 'nofeature'", ExitStatus.USAGE),
    ("gpu-type", {"gpus": 1, "gpu_type": "h100"},
     "no node of partition 'gpu' can ever give 1 GPU of type h100: the request can never start",
     ExitStatus.GPU_UNAVAILABLE),
])
def test_real_sbatch_refusals_in_devagents_words(key: str, given: dict[str, object], message: str,
                                                  status: ExitStatus) -> None:
    stderr = REFUSALS[key]
    error = sbatch_error(request(**given), stderr)
    assert error.message == message
    assert error.status == status
    assert error.hint
    assert error.details is not None and "Batch job submission failed" in error.details


def test_refusals_slurm_gives_only_with_slurmdbd_and_unknown_ones() -> None:
    # The texts of libslurm 22.05's error table (strings /usr/lib/x86_64-linux-gnu/slurm-wlm/libslurmfull.so):
    # the test cluster has no slurmdbd, so it cannot make Slurm say them.
    qos = sbatch_error(request(qos="nosuch"), "sbatch: error: Batch job submission failed: Invalid qos specification\n")
    assert (qos.message, qos.status) == ("Slurm refused the QOS 'nosuch'", ExitStatus.USAGE)
    policy = sbatch_error(request(), "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy"
                          " (job submit limit, user's size and/or time limits)\n")
    assert (policy.message, policy.status) == ("the request is over a limit of your account or QOS",
                                               ExitStatus.GPU_BUSY)
    other = sbatch_error(request(), "sbatch: error: Batch job submission failed: Something new\n")
    assert (other.message, other.status) == ("Slurm refused the job", ExitStatus.USAGE)
    assert other.details == "sbatch: error: Batch job submission failed: Something new"
