"""The holder job's batch script, run by bash with stand-ins for `docker` and `scontrol` on PATH (the real
Slurm and Docker Engine run it in tests/integration/test_slurm_cluster.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devagent.core.slurm.holder import end_entry, holder_script, parse_holder_line
from devagent.errors import DevagentError, ExitStatus


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\necho \"{name} $*\" >>{folder}/calls\n{body}\n")
    path.chmod(0o755)


# A Docker CLI stand-in: one container of the job's label (abc123) until `docker rm -f abc123` removes it; the
# environment's login user is DOCKER_USER (label devagent.user); `docker exec` fails with DOCKER_EXEC_FAILS,
# hangs with DOCKER_EXEC_HANGS.
DOCKER = """case "$1" in
  inspect) echo "${DOCKER_USER-dev}" ;;
  exec) [ -z "${DOCKER_EXEC_HANGS:-}" ] || exec sleep 60; [ -z "${DOCKER_EXEC_FAILS:-}" ] || exit 1 ;;
  ps) if [[ "$*" == *label=* ]] && [ ! -e "$(dirname "$0")/removed" ]; then echo abc123; fi ;;
  rm) if [ "$3" = abc123 ]; then touch "$(dirname "$0")/removed"; fi ;;
esac"""
INSPECT = "docker inspect -f {{index .Config.Labels \"devagent.user\"}} exp-1"
NO_DOCKER = """echo 'permission denied while trying to connect to the Docker daemon socket' >&2; exit 1"""


def start(tmp_path: Path, scontrol_state: str, docker: str = DOCKER,
          **env: str) -> tuple[subprocess.Popen[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "docker", docker)
    stub(bin_dir, "scontrol", f'echo "   JobState={scontrol_state} Dependency=(null)"\n'
                              f'echo "     Nodes=n1 CPU_IDs=0 Mem=0 GRES=gpu:2(IDX:2-3)"')
    ended = tmp_path / "ended.log"
    script = tmp_path / "holder.sh"
    script.write_text(holder_script(name="exp-1", ended_log=str(ended)))
    environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "12", "SLURMD_NODENAME": "n1", **env}
    process = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, text=True, env=environ)
    return process, ended


def left_behind(tmp_path: Path) -> list[int]:
    """Processes still running with this test's PATH (the holder's waiting sleep, say)."""
    marker = f"PATH={tmp_path}/bin:".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(v.startswith(marker) for v in (entry / "environ").read_bytes().split(b"\0")):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()


@pytest.mark.parametrize(("state", "why"), [
    ("COMPLETING Reason=None", "the job was cancelled (devagent down or scancel)"),
    ("COMPLETING Reason=TimeLimit", "the job reached its time limit"),
    ("PREEMPTED Reason=None", "the job was preempted by a job of higher priority"),
    ("RUNNING Reason=None", "Slurm sent SIGTERM (the time limit is near, or the job is being ended)"),
    ("FAILED Reason=NonZeroExitCode", "the job ended (FAILED, NonZeroExitCode)"),
])
def test_on_sigterm_the_notebook_hears_why_then_the_container_goes_then_the_log_says_it(tmp_path: Path, state: str,
                                                                                     why: str) -> None:
    process, ended = start(tmp_path, state, SLURM_JOB_GPUS="0,1")
    line = first_line(process)
    started = line.rsplit("=", 1)[1].strip()
    assert parse_holder_line(line) == {"job": "12", "node": "n1", "gpus": "0,1", "started": started}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls[0].startswith("scontrol show job 12")
    said = ended.read_text()
    assert said.endswith(f" job 12 on n1: environment exp-1 ended: {why} [noted]\n") and said.count("\n") == 1
    # The running container's own devagent appends the same line to the notebook, as the login user.
    end_line = said.removesuffix(" [noted]\n")
    assert calls[1:3] == [INSPECT, f"docker exec -u dev exp-1 devagent job-ended {end_line}"]
    assert calls[3:] == ["docker rm -f exp-1", "docker ps -aq --filter label=devagent.slurm-job=12",
                         "docker rm -f abc123", "docker ps -aq --filter name=^/exp-1$",
                         "docker ps -aq --filter label=devagent.slurm-job=12"]
    assert end_entry(said.strip()) == (f"\n## {said[:10]} {said[11:19]} UTC · environment ended\n"
                                       f"job 12 on n1: environment exp-1 ended: {why}\n")
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize(("env", "execs"), [
    ({"DOCKER_EXEC_FAILS": "1"}, True),  # no notebook writer answered: down or up takes the line in later
    ({"DOCKER_EXEC_HANGS": "1"}, True),  # the container does not answer: cut after 2 s, the container still goes
    ({"DOCKER_USER": "x;id"}, False),  # a user label devagent did not write: nothing runs in the container
    ({"DOCKER_USER": ""}, False),  # no such container or no label
])
def test_a_notebook_that_did_not_hear_it_leaves_the_line_unmarked_and_the_container_still_goes(
        tmp_path: Path, env: dict[str, str], execs: bool) -> None:
    process, ended = start(tmp_path, "COMPLETING Reason=None", **env)
    first_line(process)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - signalled < 10  # bounded: the exec is cut after 2 s (generous for a loaded machine)
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert any(call.startswith("docker exec") for call in calls) is execs
    assert "docker rm -f exp-1" in calls
    assert ended.read_text().endswith(" ended: the job was cancelled (devagent down or scancel)\n")


def test_a_container_that_could_not_be_removed_is_said_so(tmp_path: Path) -> None:
    process, ended = start(tmp_path, "COMPLETING Reason=None", docker=NO_DOCKER)
    first_line(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert ended.read_text().endswith(
        " job 12 on n1: environment exp-1 ended: the job was cancelled (devagent down or scancel); the container "
        "could NOT be removed, remove it: docker rm -f exp-1\n")


def test_gpus_from_cuda_visible_devices_then_from_scontrol(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    process, _ = start(tmp_path / "a", "RUNNING Reason=None", CUDA_VISIBLE_DEVICES="1")
    assert "gpus=1 " in first_line(process)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    (tmp_path / "b").mkdir()
    process, _ = start(tmp_path / "b", "RUNNING Reason=None")
    assert "gpus=2-3 " in first_line(process)
    os.kill(process.pid, signal.SIGHUP)
    assert process.wait(timeout=30) == 0
    assert left_behind(tmp_path / "a") == left_behind(tmp_path / "b") == []


def test_the_script_waits_until_signalled(tmp_path: Path) -> None:
    process, ended = start(tmp_path, "COMPLETING Reason=None")
    first_line(process)
    time.sleep(0.5)
    assert process.poll() is None
    assert not ended.exists()
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=30) == 0
    assert ended.exists()


@pytest.mark.parametrize("name", ["-rf", "a b", "a;id", "a\nb", "$(id)", "", "ü"])
def test_hostile_container_names_are_refused(name: str) -> None:
    with pytest.raises(DevagentError) as caught:
        holder_script(name=name, ended_log="/tmp/x.log")
    assert caught.value.status == ExitStatus.USAGE


@pytest.mark.parametrize("path", ["relative.log", "/a b", "/a\n", "/a;id", "/a/../etc/passwd", "/$(id)", "/a'b"])
def test_hostile_ended_log_paths_are_refused(path: str) -> None:
    with pytest.raises(DevagentError) as caught:
        holder_script(name="exp", ended_log=path)
    assert caught.value.status == ExitStatus.USAGE


def test_no_holder_line_yet() -> None:
    assert parse_holder_line("") is None
    assert parse_holder_line("slurmstepd: error: *** JOB 2 ON n1 CANCELLED AT 2026-12-07T19:05:43 ***\n") is None


def test_the_holder_line_as_a_real_job_wrote_it() -> None:
    """fixtures/holder-8.out: the output of job 8 on the test cluster (one GPU, index 1 of node n2)."""
    text = (Path(__file__).parent / "fixtures" / "holder-8.out").read_text()
    assert parse_holder_line(text) == {"job": "8", "node": "n2", "gpus": "1", "started": "2026-12-07T19:06:12Z"}


def test_a_refused_name_or_path_says_what_to_give() -> None:
    with pytest.raises(DevagentError) as caught:
        holder_script(name="a b", ended_log="/tmp/x.log")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "invalid container name for the Slurm job: 'a b'",
        "use letters, digits, '_', '.', '-', starting with a letter or digit", ExitStatus.USAGE)
    with pytest.raises(DevagentError) as caught:
        holder_script(name="exp", ended_log="/a/../b")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "invalid path for the Slurm job's ended log: '/a/../b'",
        "give an absolute path of letters, digits and _.,+@%/~- (no '..')", ExitStatus.USAGE)


def test_the_scripts_header_comment_names_the_environment() -> None:
    """Who reads `scontrol show job`'s script (or the admin's `sacct -B`) sees whose environment it holds."""
    script = holder_script(name="exp-1", ended_log="/home/ada/.devagent/slurm/exp-1.ended")
    assert [line for line in script.splitlines() if line.startswith("# ") and "exp-1" in line]
    assert "name=exp-1\n" in script and "ended_log=/home/ada/.devagent/slurm/exp-1.ended\n" in script


def test_a_holder_field_keeps_an_equals_sign_in_its_value_and_words_without_one_are_skipped() -> None:
    assert parse_holder_line("devagent-holder: job=3 note=a=b stray node=n1\n") == {
        "job": "3", "note": "a=b", "node": "n1"}
    assert parse_holder_line("starting\ndevagent-holder: job=4\ndevagent-holder: job=5\n") == {"job": "4"}
