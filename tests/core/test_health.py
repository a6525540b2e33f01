"""Docker's health check of an environment (core/health.py): the shell test, run with the real /bin/sh against
heartbeat lines the way the agent writes them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from devagent.core import health


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
