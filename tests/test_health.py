"""The environment's health: the agent's heartbeat and the shell test Docker runs on it (core/health.py,
container/health.py), and how `devagent doctor` shows Docker's verdict."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from devagent.container import health as beat
from devagent.core import health
from devagent.core.doctor import HEALTH, Check, health_check


def boot_seconds() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def run_test(home: Path) -> subprocess.CompletedProcess[str]:
    """HEALTH_TEST as Docker runs it (CMD-SHELL: /bin/sh -c), with HOME=HOME."""
    return subprocess.run(["/bin/sh", "-c", health.HEALTH_TEST], env={"HOME": str(home), "PATH": "/nonexistent"},
                          capture_output=True, text=True, timeout=10, check=False)


def write(home: Path, line: str) -> None:
    path = home / health.HEALTH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line)


def test_a_fresh_ok_heartbeat_passes_with_sh_builtins_alone(tmp_path: Path) -> None:
    write(tmp_path, health.heartbeat_line(boot_seconds(), []))
    result = run_test(tmp_path)  # PATH leads nowhere: the test starts no program
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_a_fresh_heartbeat_with_a_problem_fails_and_prints_it(tmp_path: Path) -> None:
    write(tmp_path, health.heartbeat_line(boot_seconds(), ["sshd does not listen on port 2222"]))
    result = run_test(tmp_path)
    assert (result.returncode, result.stdout) == (1, "sshd does not listen on port 2222\n")


@pytest.mark.parametrize("offset", [health.STALE_SECONDS + 5, -3600])  # an agent that stopped; a previous boot's
def test_a_stale_heartbeat_fails_whatever_it_says(tmp_path: Path, offset: int) -> None:
    write(tmp_path, health.heartbeat_line(boot_seconds() - offset, []))
    result = run_test(tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("the agent's last report is ") and result.stdout.endswith(
        " s old: it is stuck or gone\n")


def test_no_heartbeat_fails_saying_the_agent_has_not_reported(tmp_path: Path) -> None:
    result = run_test(tmp_path)
    assert (result.returncode, result.stdout) == (1, "the agent has not reported yet\n")


def test_the_agent_beats_until_it_stops_and_then_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / health.HEALTH_FILE
    answers = iter([[], ["sshd is not running (1 restart; docker logs shows why)"], []])
    clock = iter([100.0, 110.5, 120.9])
    stopping = threading.Event()
    seen: list[str] = []  # the file as each beat finds it: what the beat before wrote

    def problems() -> list[str]:
        if path.exists():
            seen.append(path.read_text())
        if len(seen) == 2:
            stopping.set()  # the third beat is the last
        return next(answers)

    thread = threading.Thread(target=beat.keep_beating, args=(path, problems, stopping),
                              kwargs={"every": 0.01, "clock": lambda: next(clock)})
    thread.start()
    thread.join(5)
    assert seen == ["100 ok\n", "110 sshd is not running (1 restart; docker logs shows why)\n"]
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no temporary file left either


def test_listening_reads_ipv4_and_ipv6_listeners_and_ignores_connections(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(header + "   0: 0100007F:1F90 0100007F:08AE 01 00000000:00000000 00:00000000 "
                                  "00000000  1000        0 1 1\n")
    assert not beat.listening(2222, tmp_path)  # a connection *to* 2222 is not a listener; no tcp6 file is fine
    (tmp_path / "tcp6").write_text(header + "   0: 00000000000000000000000000000000:08AE "
                                   "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
                                   "00000000  1000        0 2 1\n")
    assert beat.listening(2222, tmp_path)
    assert not beat.listening(22, tmp_path)


def test_the_doctor_shows_dockers_verdict_with_the_reason_and_a_fix() -> None:
    assert health_check("healthy", "ok", name="dev") == Check(HEALTH, True,
                                                             "healthy: sshd listens and the agent reports")
    assert health_check("unhealthy", "sshd does not listen on port 2222", name="dev") == Check(
        HEALTH, False, "unhealthy: sshd does not listen on port 2222",
        fix="`docker logs dev` shows what the agent and sshd said; `devagent up dev --recreate` starts a fresh "
        "container")
    assert health_check("starting", "", name="dev") == Check(
        HEALTH, None, "Docker has not checked it yet (the first check runs 30 s after the start)")
    assert health_check(None, "", name="dev") == Check(
        HEALTH, None, "the container has no health check (an older devagent made it); `devagent up dev "
        "--recreate` adds one")
