"""The ProxyCommand of an alias to an environment in a Slurm job (core/ssh/job_hop.py): the real /bin/sh runs it,
as ssh would (after ssh's %% expansion), with a stand-in `ssh` first on PATH that plays the login node's answer
to `squeue` and records the hop it is exec'd as. The real `ssh -G` reads it back unchanged."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from devagent.core.ssh.host_entry import HostEntry
from devagent.core.ssh.job_hop import LOGIN_MUX, NODE_MUX, JobCheck, mux_env, parse, proxy_command
from devagent.errors import DevagentError, ExitStatus

CHECK = JobCheck("4812", "gpu", "/home/ada/my ssh/config")
ENDED = ("devagent: environment exp's Slurm job 4812 has ended ({why}); `devagent up exp --host alice@hpc:2222 "
         "--slurm gpu` asks for a new allocation\n")
# The stand-in: the check (`ssh -n …`) prints what the login node's squeue would and exits as ssh would; with
# FAKE_CHECK_AFTER set it first waits (10 s at most) for that file, and records whether it came. The hop (any
# other ssh) writes its argv, one word a line, and what it read on stdin; then it says FAKE_HOP_SAYS on stderr,
# marks hop-ended and exits FAKE_HOP_RC, or with FAKE_HOP_RC=hang stays until it is ended.
FAKE_SSH = """#!/bin/sh
if [ "$1" = "-n" ]; then
  if [ -n "$FAKE_CHECK_AFTER" ]; then
    i=0; while [ ! -e "$FAKE_DIR/$FAKE_CHECK_AFTER" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
    [ -e "$FAKE_DIR/$FAKE_CHECK_AFTER" ] && echo came > "$FAKE_DIR/waited" || echo never > "$FAKE_DIR/waited"
  fi
  printf '%s\\n' "$*" > "$FAKE_DIR/check"
  [ -n "$FAKE_STATE" ] && printf '%s\\n' "$FAKE_STATE"
  exit "$FAKE_RC"
fi
printf '%s\\n' "$@" > "$FAKE_DIR/hop.part"
cat >> "$FAKE_DIR/hop.part"
mv "$FAKE_DIR/hop.part" "$FAKE_DIR/hop"
[ "$FAKE_HOP_RC" = hang ] && exec sleep 120
[ -n "$FAKE_HOP_SAYS" ] && printf '%s\\n' "$FAKE_HOP_SAYS" >&2
: > "$FAKE_DIR/hop-ended"
exit "$FAKE_HOP_RC"
"""
HOP = "-F\n/home/ada/my ssh/config\n-J\nalice@hpc:2222\n-W\n127.0.0.1:40022\nssh://gpu07\nSSH-2.0-client\n"
CHECKED = ("-n -F /home/ada/my ssh/config -o BatchMode=yes -o ConnectTimeout=15 ssh://alice@hpc:2222 squeue -h -t "
           "all -j 4812 -o %T 2>&1\n")
REFUSED = "channel 0: open failed: connect failed: Connection refused"


def command(check: JobCheck = CHECK) -> str:
    return proxy_command(check, name="exp", login="alice@hpc:2222", node="gpu07", port=40022)


def run_hop(tmp_path: Path, state: str, rc: int = 0, *, hop_rc: str = "0", hop_says: str = "",
            check_after: str = "", extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_SSH)
    fake.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in (LOGIN_MUX, NODE_MUX)}
    env.update({"PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path), "FAKE_STATE": state,
                "FAKE_RC": str(rc), "FAKE_HOP_RC": hop_rc, "FAKE_HOP_SAYS": hop_says,
                "FAKE_CHECK_AFTER": check_after, **(extra or {})})
    expanded = command().replace("%%", "%")  # what ssh hands /bin/sh: no other %-token is in it
    return subprocess.run(["/bin/sh", "-c", expanded], input="SSH-2.0-client\n", capture_output=True, text=True,
                          env=env, timeout=60, check=False)


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
def test_an_ended_job_is_said_in_devagents_words_and_the_hop_is_ended(tmp_path: Path, state: str, rc: int,
                                                                      why: str) -> None:
    began = time.monotonic()
    # The hop has started (beside the check) and would stay: the check's answer ends it.
    ran = run_hop(tmp_path, state, rc, hop_rc="hang", check_after="hop")
    assert (ran.returncode, ran.stderr, ran.stdout) == (1, ENDED.format(why=why), "")
    assert time.monotonic() - began < 30  # not the hop's 120 s
    assert (tmp_path / "hop").read_text() == HOP
    # The check reads the user's ssh config, never the connecting ssh's stream (-n), and asks only about the job.
    assert (tmp_path / "check").read_text() == CHECKED


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
    assert (tmp_path / "hop").read_text() == HOP
    assert (tmp_path / "check").read_text() == CHECKED


def test_the_hop_does_not_wait_for_the_check(tmp_path: Path) -> None:
    # The check answers only once the hop has read the connecting ssh's stream: the two run side by side.
    ran = run_hop(tmp_path, "RUNNING", check_after="hop")
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ((tmp_path / "waited").read_text(), (tmp_path / "hop").read_text()) == ("came\n", HOP)


def test_a_failed_hop_exits_as_ssh_does_while_the_job_runs(tmp_path: Path) -> None:
    ran = run_hop(tmp_path, "RUNNING", hop_rc="255", hop_says=REFUSED)
    assert (ran.returncode, ran.stderr) == (255, REFUSED + "\n")


def test_a_hop_that_fails_before_the_check_answers_still_gets_the_ended_jobs_message(tmp_path: Path) -> None:
    # Nothing listens on the node any more: the hop says so first, then the check says why.
    ran = run_hop(tmp_path, "CANCELLED", hop_rc="255", hop_says=REFUSED, check_after="hop-ended")
    assert (tmp_path / "waited").read_text() == "came\n"
    assert (ran.returncode, ran.stderr) == (1, REFUSED + "\n" + ENDED.format(why="it was cancelled"))


def test_ups_own_masters_carry_the_check_and_the_hop_only_when_it_names_them(tmp_path: Path) -> None:
    env = mux_env("/run/user/1000/devagent-link-a/ctl", "/run/user/1000/devagent-link-b/ctl")
    ran = run_hop(tmp_path, "RUNNING", extra=env)
    assert (ran.returncode, ran.stderr) == (0, "")
    assert (tmp_path / "hop").read_text() == ("-oControlPath=/run/user/1000/devagent-link-b/ctl\n"
                                              "-oControlMaster=no\n" + HOP)
    assert (tmp_path / "check").read_text() == CHECKED.replace(
        "-n ", "-n -oControlPath=/run/user/1000/devagent-link-a/ctl -oControlMaster=no ")


@pytest.mark.parametrize(("login", "node"), [
    ("/tmp/a b/ctl", "/tmp/c/ctl"), ("/tmp/a/ctl", "/tmp/*/ctl"), ("/tmp/a%h/ctl", "/tmp/c/ctl"), ("tmp/a", "/b"),
    ("/tmp/a", ""), ("/" + "a" * 201, "/b"),
])
def test_a_control_path_that_is_not_one_plain_word_is_not_named(login: str, node: str) -> None:
    assert mux_env(login, node) == {}
    assert mux_env("/" + "a" * 200, "/b") == {LOGIN_MUX: "/" + "a" * 200, NODE_MUX: "/b"}


def test_what_devagent_wrote_is_read_back_and_anything_else_is_not_its() -> None:
    assert parse(command()) == ("exp", 40022, "alice@hpc:2222,gpu07", CHECK)
    assert parse(command() + " ; rm -rf ~") is None  # one word more
    assert parse(command().replace("& h=$!", "; h=$!")) is None
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
