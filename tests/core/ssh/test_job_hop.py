"""The ProxyCommand of an alias to an environment in a Slurm job (core/ssh/job_hop.py): the real /bin/sh runs it,
as ssh would (after ssh's %% expansion), with a stand-in `ssh` first on PATH that plays the login node's answer
to `squeue` and records the hop it is exec'd as. The real `ssh -G` reads it back unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devagent.core.ssh.host_entry import HostEntry
from devagent.core.ssh.job_hop import JobCheck, parse, proxy_command
from devagent.errors import DevagentError, ExitStatus

CHECK = JobCheck("4812", "gpu", "/home/ada/my ssh/config")
ENDED = ("devagent: environment exp's Slurm job 4812 has ended ({why}); `devagent up exp --host alice@hpc:2222 "
         "--slurm gpu` asks for a new allocation\n")
# The stand-in: the check (`ssh -n …`) prints what the login node's squeue would and exits as ssh would; the hop
# (any other ssh) writes its argv, one word a line, and what it read on stdin.
FAKE_SSH = """#!/bin/sh
if [ "$1" = "-n" ]; then
  printf '%s\\n' "$*" > "$FAKE_DIR/check"
  [ -n "$FAKE_STATE" ] && printf '%s\\n' "$FAKE_STATE"
  exit "$FAKE_RC"
fi
printf '%s\\n' "$@" > "$FAKE_DIR/hop"
cat >> "$FAKE_DIR/hop"
"""


def command(check: JobCheck = CHECK) -> str:
    return proxy_command(check, name="exp", login="alice@hpc:2222", node="gpu07", port=40022)


def run_hop(tmp_path: Path, state: str, rc: int = 0) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_SSH)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
           "FAKE_STATE": state, "FAKE_RC": str(rc)}
    expanded = command().replace("%%", "%")  # what ssh hands /bin/sh: no other %-token is in it
    return subprocess.run(["/bin/sh", "-c", expanded], input="SSH-2.0-client\n", capture_output=True, text=True,
                          env=env, timeout=30, check=False)


@pytest.mark.parametrize(("state", "rc", "why"), [
    ("CANCELLED", 0, "it was cancelled"),
    ("CANCELLED by 1000", 0, "it was cancelled"),
    ("COMPLETING", 0, "it is ending"),
    ("TIMEOUT", 0, "it reached its time limit"),
    ("PREEMPTED", 0, "it was preempted"),
    ("NODE_FAIL", 0, "its node failed"),
    ("OUT_OF_MEMORY", 0, "Slurm says OUT_OF_MEMORY"),
    ("slurm_load_jobs error: Invalid job id specified", 1, "Slurm no longer knows it"),
    ("", 0, "Slurm no longer knows it"),
])
def test_an_ended_job_is_said_in_devagents_words_and_the_hop_is_not_made(tmp_path: Path, state: str, rc: int,
                                                                         why: str) -> None:
    ran = run_hop(tmp_path, state, rc)
    assert (ran.returncode, ran.stderr, ran.stdout) == (1, ENDED.format(why=why), "")
    assert not (tmp_path / "hop").exists()
    # The check reads the user's ssh config, never the connecting ssh's stream (-n), and asks only about the job.
    assert (tmp_path / "check").read_text() == ("-n -F /home/ada/my ssh/config -o BatchMode=yes -o "
                                                "ConnectTimeout=15 ssh://alice@hpc:2222 squeue -h -t all -j 4812 -o %T "
                                                "2>&1\n")


@pytest.mark.parametrize(("state", "rc"), [
    ("RUNNING", 0),
    ("SUSPENDED", 0),
    ("", 255),  # the login node could not be asked: the hop then says why in ssh's words
    ("slurm_load_jobs error: Unable to contact slurm controller (connect failure)", 1),  # not known to be over
])
def test_a_running_or_unknown_job_makes_the_same_two_hops_as_proxyjump(tmp_path: Path, state: str,
                                                                       rc: int) -> None:
    ran = run_hop(tmp_path, state, rc)
    assert (ran.returncode, ran.stderr) == (0, "")
    assert (tmp_path / "hop").read_text() == ("-F\n/home/ada/my ssh/config\n-J\nalice@hpc:2222\n-W\n"
                                              "127.0.0.1:40022\nssh://gpu07\nSSH-2.0-client\n")


def test_what_devagent_wrote_is_read_back_and_anything_else_is_not_its() -> None:
    assert parse(command()) == ("exp", 40022, "alice@hpc:2222,gpu07", CHECK)
    assert parse(command() + " ; rm -rf ~") is None  # one word more
    assert parse(command().replace("exec ssh", "exec nc")) is None
    assert parse(command().replace(" 4812 ", " 48;12 ")) is None
    assert parse("ssh -W %h:%p hpc") is None


def test_the_alias_holds_the_proxycommand_and_ssh_g_prints_it_as_written(tmp_path: Path) -> None:
    entry = HostEntry("exp", 40022, "dev", "/h/id", "/h/kh", proxy_jump="alice@hpc:2222,gpu07", job_check=CHECK)
    options = dict(entry.options())
    assert "ProxyJump" not in options and options["ProxyCommand"] == command()
    config = tmp_path / "config"
    config.write_text("Host exp\n" + "".join(f"  {key} {value}\n" for key, value in entry.options()))
    printed = subprocess.run(["ssh", "-G", "-F", str(config), "exp"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, check=True).stdout
    effective = dict(line.split(" ", 1) for line in printed.splitlines())
    for key, value in entry.expected_effective().items():
        assert effective[key] == value, key
    assert "proxyjump" not in entry.expected_effective()


@pytest.mark.parametrize(("check", "jump", "message"), [
    (JobCheck("12;x", "gpu", "/c"), "a,b", "invalid Slurm job check for 'exp': job '12;x', partition 'gpu', "
                                           "hops 'a,b'"),
    (JobCheck("12", "g%pu", "/c"), "a,b", "invalid Slurm job check for 'exp': job '12', partition 'g%pu', "
                                          "hops 'a,b'"),
    (JobCheck("12", "gpu", "/c"), "a", "invalid Slurm job check for 'exp': job '12', partition 'gpu', hops 'a'"),
    (JobCheck("12", "gpu", "/c%d"), "a,b", "ssh config path '/c%d' contains '%' (OpenSSH expands %-tokens in "
                                           "paths)"),
])
def test_values_that_could_change_the_command_are_refused(check: JobCheck, jump: str, message: str) -> None:
    with pytest.raises(DevagentError) as info:
        HostEntry("exp", 40022, "dev", "/h/id", "/h/kh", proxy_jump=jump, job_check=check)
    assert (info.value.message, info.value.status) == (message, ExitStatus.USAGE)
    if "ssh config path" in message:
        assert info.value.hint == "set DEVAGENT_SSH_CONFIG to a plain absolute path (letters, digits, '/', '.', '_', " \
                                  "'-', ' ')"
