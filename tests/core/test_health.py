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


# --- the pure parts: the check's output, the last check's record and how long it stays the last -------------------

SECOND = 1_000_000_000  # Docker's durations are nanoseconds


def inspect_of(output: object = "gpu-usage: {}\nok\n", *, end: str | None = "1970-01-01T00:01:40Z",
               status: str = "healthy", **healthcheck: int) -> dict[str, object]:
    """A container's inspect whose last check ended at END (100 s after the epoch) and printed OUTPUT."""
    log = {"Output": output} if end is None else {"End": end, "Output": output}
    return {"Config": {"Healthcheck": healthcheck}, "State": {"Health": {"Status": status, "Log": [{}, log]}}}


class TestSplitOutput:
    def test_the_status_may_take_several_lines_after_the_record(self) -> None:
        assert health.split_output('gpu-usage: {"gpus": {}}\nsshd is not running\nsecond line\n') == (
            "sshd is not running\nsecond line", '{"gpus": {}}')

    def test_without_a_record_every_line_is_the_status(self) -> None:
        assert health.split_output("a\nb\n") == ("a\nb", None)
        assert health.split_output("") == ("", None)


class TestPrinted:
    def test_the_record_holds_until_one_interval_after_the_last_check_ended(self) -> None:
        inspect = inspect_of(Interval=10 * SECOND)
        assert health.printed(inspect, now=105.0, local=True) == health.Printed("{}", 110.0)

    def test_without_an_interval_dockers_default_of_30_s_counts(self) -> None:
        assert health.printed(inspect_of(), now=101.0, local=True) == health.Printed("{}", 130.0)
        assert health.printed(inspect_of(Interval=0), now=101.0, local=True) == health.Printed("{}", 130.0)

    def test_once_the_interval_has_passed_a_newer_check_may_be_there(self) -> None:
        assert health.printed(inspect_of(Interval=10 * SECOND), now=110.0, local=True) == health.Printed("{}", 0.0)
        assert health.printed(inspect_of(Interval=10 * SECOND), now=109.5, local=True).until == 110.0

    def test_a_check_that_ended_after_now_by_our_clock_still_holds_one_interval_at_most(self) -> None:
        assert health.printed(inspect_of(Interval=10 * SECOND), now=50.0, local=True).until == 60.0

    @pytest.mark.parametrize(("status", "start_interval", "until"), [
        ("starting", 5 * SECOND, 105.0),  # still starting: the start interval
        ("starting", 60 * SECOND, 130.0),  # whichever is shorter
        ("starting", 1, 0.0),  # one nanosecond: a newer check may be there already
        ("starting", 0, 130.0), ("healthy", 5 * SECOND, 130.0), ("unhealthy", 5 * SECOND, 130.0)])
    def test_a_container_still_starting_checks_every_start_interval(self, status: str, start_interval: int,
                                                                   until: float) -> None:
        inspect = inspect_of(status=status, Interval=30 * SECOND, StartInterval=start_interval)
        assert health.printed(inspect, now=100.5, local=True) == health.Printed("{}", until)

    def test_a_start_interval_without_an_interval_is_weighed_against_the_default(self) -> None:
        inspect = inspect_of(status="starting", StartInterval=45 * SECOND)
        assert health.printed(inspect, now=100.5, local=True).until == 130.0

    @pytest.mark.parametrize("inspect", [
        inspect_of(end=None), inspect_of(end="yesterday"),  # no time the check ended
        inspect_of("the agent has not reported yet\n"), inspect_of(None), inspect_of('gpu-usage: {"gp')])  # no record
    def test_without_an_end_time_or_a_whole_record_nothing_is_held(self, inspect: dict[str, object]) -> None:
        assert health.printed(inspect, now=101.0, local=True).until == 0.0

    def test_the_record_is_read_from_the_last_check_only(self) -> None:
        inspect = inspect_of("the agent has not reported yet\n")
        inspect["State"]["Health"]["Log"][0] = {"End": "1970-01-01T00:01:30Z",  # type: ignore[index]
                                                 "Output": "gpu-usage: {}\nok\n"}
        assert health.printed(inspect, now=101.0, local=True) == health.Printed(None)
        assert health.printed({"State": {"Health": {"Log": []}}}, now=1.0, local=True) == health.Printed(None)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1970-01-01T00:01:40Z", 100.0), ("1970-01-01T00:01:40.25Z", 100.25), ("1970-01-01T01:01:40+01:00", 100.0),
    ("1970-01-01T00:01:40-00:30", 1900.0), ("1970-01-01T00:01:40.1234567891Z", 100.123456),
    ("1970-01-01T00:01:40", None), ("1970-01-01 00:01:40Z", None), (None, None), (100, None)])
def test_dockers_times_read_as_seconds_since_the_epoch(text: object, seconds: float | None) -> None:
    assert health._seconds(text) == seconds


def test_a_heartbeat_joins_its_problems_on_one_line() -> None:
    assert health.heartbeat_line(7.0, ["sshd is not running\n(see docker logs)", "sshd does not listen"]) == (
        "7 sshd is not running (see docker logs); sshd does not listen\n")


def test_listening_ports_are_those_of_sockets_in_the_listen_state() -> None:
    text = """  sl  local_address rem_address   st tx_queue rx_queue
   0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000
   1: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000
   2: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A
   3: 0100007F:0050 0100007F:0000
   4: 0100007F:0051 00000000:0000 0B
   5: 0100007F 00000000:0000 0A
   6: 0000:0000:0035 0000:0000 0A
"""
    assert health.listening_ports(text) == {2222, 22, 53}
    assert health.listening_ports("  sl  local_address\n   0: 00000000:0016\n") == set()


@pytest.mark.parametrize(("restarts", "said"), [(0, "0 restarts"), (1, "1 restart"), (2, "2 restarts")])
def test_sshd_not_running_counts_its_restarts(restarts: int, said: str) -> None:
    assert health.sshd_problems(running=False, restarts=restarts, listening=True, port=22) == [
        f"sshd is not running ({said}; docker logs shows why)"]
