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


NAME_HINT = "takes 1-64 letters, digits, '_', '.', '-' (no spaces, quotes or shell characters)"
TIME_HINT = ("give a Slurm time: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or "
             "DAYS-HOURS:MINUTES:SECONDS (e.g. 8:00:00 or 1-00:00:00)")


@pytest.mark.parametrize(("given", "message", "hint"), [
    ({"gpus": "65"}, "invalid GPU count for Slurm: '65'", "give --gpus a whole number from 0 to 64"),
    ({"gpus": -1}, "invalid GPU count for Slurm: -1", "give --gpus a whole number from 0 to 64"),
    ({"cpus": 0}, "invalid CPU count for Slurm: 0", "give --cpus a whole number from 1 to 4096"),
    ({"cpus": "4097"}, "invalid CPU count for Slurm: '4097'", "give --cpus a whole number from 1 to 4096"),
    ({"memory": "32GB"}, "invalid Slurm memory '32GB'",
     "give a whole number with an optional unit K, M, G or T (e.g. 32G; Slurm's default is M)"),
    ({"gpu_type": "a 100"}, "invalid Slurm GPU type 'a 100'", f"--gpu-type {NAME_HINT}"),
    ({"gpu_type": "-a100"}, "invalid Slurm GPU type '-a100': it must not start with '-'",
     "give --gpu-type the GPU type's name as `sinfo` or `sacctmgr` shows it"),
    ({"gpus": 0, "gpu_type": "a100"}, "a GPU type (a100) without GPUs", "ask for at least one GPU with --gpus"),
    ({"qos": "hi gh"}, "invalid Slurm QOS 'hi gh'", f"--qos {NAME_HINT}"),
    ({"qos": "-high"}, "invalid Slurm QOS '-high': it must not start with '-'",
     "give --qos the QOS's name as `sinfo` or `sacctmgr` shows it"),
    ({"account": "-lab"}, "invalid Slurm account '-lab': it must not start with '-'",
     "give --account the account's name as `sinfo` or `sacctmgr` shows it"),
    ({"constraint": "a100&"}, "invalid Slurm constraint 'a100&'",
     "give feature names joined by '&' (all) or '|' (any), e.g. a100&nvlink (no spaces or '-' first)"),
    ({"warning_s": 0}, "invalid warning time 0", "give 1-65535 seconds"),
    ({"warning_s": 65536}, "invalid warning time 65536", "give 1-65535 seconds"),
    ({"time": "INFINITE"}, "invalid Slurm time 'INFINITE': devagent asks for a finite time limit",
     "the environment lives as long as the job; give the longest time the partition allows"),
    ({"time": " unlimited "}, "invalid Slurm time ' unlimited ': devagent asks for a finite time limit",
     "the environment lives as long as the job; give the longest time the partition allows"),
    ({"time": "5:60"}, "invalid Slurm time '5:60': s field 60 is over 59", TIME_HINT),
    ({"time": "0:0:60"}, "invalid Slurm time '0:0:60': s field 60 is over 59", TIME_HINT),
    ({"time": "2-24"}, "invalid Slurm time '2-24': h field 24 is over 23", TIME_HINT),
    ({"time": "365-00:00:01"}, "invalid Slurm time '365-00:00:01': over a year", TIME_HINT),
    ({"time": "0:00"}, "invalid Slurm time '0:00': the environment needs a time limit above zero", TIME_HINT),
])
def test_each_refusal_says_what_was_wrong_and_what_to_give(given: dict[str, object], message: str,
                                                           hint: str) -> None:
    with pytest.raises(DevagentError) as caught:
        request(**given)
    assert (caught.value.message, caught.value.hint, caught.value.status) == (message, hint, ExitStatus.USAGE)


def test_the_edges_of_each_range_are_accepted() -> None:
    edges = request(gpus=64, cpus=1, time="365-00:00:00", warning_s=1)
    assert (edges.gpus, edges.cpus, edges.time_s, edges.warning_s) == (64, 1, 365 * 86400, 1)
    assert request(gpus=0, cpus="4096", time="0:01", warning_s=65535).time_s == 1
    assert (parse_time("59:59"), parse_time("23:59:59"), parse_time("1-23")) == (3599, 86399, 169200)
    assert parse_time("90:00:00") == 90 * 3600  # the first field is bounded by nothing but the year


def test_job_names_and_outputs_sbatch_would_misread_are_refused_with_the_fix() -> None:
    with pytest.raises(DevagentError) as caught:
        sbatch_argv(request(), job_name="devagent-" + "a" * 60, output="/o")
    assert (caught.value.message, caught.value.hint) == (
        f"invalid Slurm job name 'devagent-{'a' * 60}'", f"the environment's name {NAME_HINT}")
    with pytest.raises(DevagentError) as caught:
        sbatch_argv(request(), job_name="devagent-x", output="slurm/%j.out")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "invalid path for the job's output: 'slurm/%j.out'", "give an absolute path on one line", ExitStatus.USAGE)


def test_a_typed_gpu_count_with_the_gpus_option() -> None:
    argv = sbatch_argv(request(gpus=4, gpu_type="a100", gpus_option=True), job_name="devagent-x", output="/o")
    assert argv[6:8] == ["--gpus=a100:4", "--signal=B:TERM@60"]


def test_the_job_id_is_the_first_field_and_an_answer_without_one_is_shown_cut() -> None:
    assert parse_job_id("17;cluster;extra\n") == "17"
    with pytest.raises(DevagentError) as caught:
        parse_job_id("x" * 300 + "\n")
    assert (caught.value.message, caught.value.hint) == (
        f"sbatch answered no job id: '{'x' * 200}'", "run the same sbatch on the login node to see what it says")


def test_memory_in_the_largest_binary_unit_that_holds_it_whole() -> None:
    from devagent.core.slurm.request import slurm_memory

    assert [slurm_memory(n) for n in (1024**4, 2 * 1024**4, 1025 * 1024**3, 1023 * 1024**2, 1)] == [
        "1T", "2T", "1025G", "1023M", "1M"]


@pytest.mark.parametrize(("given", "stderr", "message", "hint"), [
    ({"gpus": 0, "cpus": 8, "memory": "5000"}, "Requested node configuration is not available",
     "no node of partition 'gpu' can ever give 8 CPUs and 5000 of memory: the request can never start",
     "ask for fewer GPUs, CPUs or less memory (what a node has: sinfo -p gpu -o '%N %G %c %m')"),
    ({"gpus": 0}, "Requested node configuration is not available",
     "no node of partition 'gpu' can ever give this request: the request can never start",
     "ask for fewer GPUs, CPUs or less memory (what a node has: sinfo -p gpu -o '%N %G %c %m')"),
    ({}, "Invalid account or account/partition combination specified",
     "Slurm refused the account '(your default)' for partition 'gpu'",
     "give the account you may charge with --account (yours: sacctmgr show assoc user=$USER format=account)"),
    ({}, "Invalid qos specification", "Slurm refused the QOS '(your default)'",
     "give a QOS you may use with --qos (yours: sacctmgr show assoc user=$USER format=qos)"),
    ({"gpu_type": "h100"}, "Invalid generic resource (gres) specification",
     "the cluster has no such GPU resource (gpu:h100)", "check the GPU type's name (sinfo -p gpu -o '%N %G')"),
    ({}, "Invalid generic resource (gres) specification", "the cluster has no such GPU resource (gpu)",
     "check the GPU type's name (sinfo -p gpu -o '%N %G')"),
    ({}, "Something new", "Slurm refused the job",
     "Slurm's words are above; change the request, or ask the cluster's admins"),
])
def test_refusals_with_the_requests_defaults_in_their_words(given: dict[str, object], stderr: str, message: str,
                                                            hint: str) -> None:
    error = sbatch_error(request(**given), f"sbatch: error: Batch job submission failed: {stderr}\n")
    assert (error.message, error.hint) == (message, hint)


def test_the_details_are_slurms_last_five_lines() -> None:
    stderr = "".join(f"  line {i}  \n" for i in range(1, 8))
    assert sbatch_error(request(), stderr).details == "line 3\nline 4\nline 5\nline 6\nline 7"
    assert sbatch_error(request(), " \n").details is None
