"""The agent's parts that need no container: the supervisor and the commit gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from devagent.agent import agent
from devagent.core import layout
from devagent.core.ssh.sshd import Supported
from devagent.inside import locations
from tests.signals import signal_off_the_main_thread


def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_supervisor_restarts_a_child_that_exits_and_stops_it_on_request(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    child = agent.Supervised("child", [sys.executable, "-c",
                                       f"open({str(starts)!r}, 'a').write('x'); import time; time.sleep(0.05)"],
                             max_backoff=0.1)
    child.start()
    wait_until(lambda: starts.exists() and len(starts.read_text()) >= 3)
    child.stop()
    assert child.restarts >= 2
    count = len(starts.read_text())
    # Stopped means no more restarts: the supervising thread has ended (it alone starts children) and the last
    # child has exited, so nothing can write to STARTS again. Proven here, not hoped for after a sleep.
    assert not child._thread.is_alive()
    assert not child.running
    assert len(starts.read_text()) == count


def test_the_supervisor_terminates_a_long_running_child(tmp_path: Path) -> None:
    child = agent.Supervised("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    child.start()
    wait_until(lambda: child.pid is not None)
    started = time.monotonic()
    child.stop()
    assert time.monotonic() - started < 5
    assert child.restarts == 0


def _spawned(code: str) -> int:
    """A child of this process that no subprocess.Popen knows of: as the container's shell leaves sshd to the
    agent it execs (core/mounts/home.py SSHD_FIRST)."""
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))


def test_the_supervisor_adopts_a_running_child_then_restarts_it_and_stops_it(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    pid = _spawned("import time; time.sleep(60)")
    child = agent.Supervised("child", [sys.executable, "-c",
                                       f"open({str(starts)!r}, 'a').write('x'); import time; time.sleep(60)"],
                             max_backoff=0.1, adopt=agent.Adopted(pid))
    child.start()
    wait_until(lambda: child.pid == pid)
    assert child.running and child.restarts == 0 and not starts.exists()  # adopted, not started anew
    os.kill(pid, signal.SIGKILL)
    wait_until(starts.exists)  # the adopted child's death is seen, and its ARGV started instead
    assert child.restarts == 1 and child.pid != pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind
    started = time.monotonic()
    child.stop()
    assert time.monotonic() - started < 5
    assert not child._thread.is_alive() and not child.running


def test_stopping_an_adopted_child_terminates_and_reaps_it() -> None:
    pid = _spawned("import time; time.sleep(60)")
    child = agent.Supervised("sleeper", ["false"], adopt=agent.Adopted(pid))
    child.start()
    wait_until(lambda: child.pid == pid)
    child.stop()
    assert not child._thread.is_alive() and child.restarts == 0
    assert child._proc is not None and child._proc.returncode == -signal.SIGTERM
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_an_adopted_child_that_ignores_terminate_is_killed_after_the_timeout() -> None:
    pid = _spawned("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
                   "time.sleep(60)")
    adopted = agent.Adopted(pid)
    time.sleep(0.5)  # let it install its handler (a SIGTERM before that would end it anyway)
    adopted.terminate()
    with pytest.raises(subprocess.TimeoutExpired):
        adopted.wait(0.3)
    adopted.kill()
    assert adopted.wait(10) == -signal.SIGKILL


def test_the_sshd_pid_from_the_shell_is_adopted_only_when_it_is_a_child_and_never_passed_on() -> None:
    pid = _spawned("import time; time.sleep(60)")
    try:
        environ = {layout.SSHD_PID_ENV: str(pid), "KEEP": "1"}
        adopted = agent.adopted_sshd(environ)
        assert adopted is not None and adopted.pid == pid
        assert environ == {"KEEP": "1"}  # the agent's own children (sessions, runs) never see it
        for text in ["1", "", "x12", "-5"]:  # pid 1 is not ours; the rest are no pid
            environ = {layout.SSHD_PID_ENV: text}
            assert agent.adopted_sshd(environ) is None and environ == {}
        assert agent.adopted_sshd({}) is None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_an_sshd_that_exited_before_the_agent_started_is_not_adopted() -> None:
    # Adopting it would reap it in the check and then wait for it forever: sshd would never be started again.
    pid = _spawned("pass")
    wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    environ = {layout.SSHD_PID_ENV: str(pid)}
    assert agent.adopted_sshd(environ) is None and environ == {}
    assert not Path(f"/proc/{pid}").exists()  # reaped by the check, no zombie left


def test_the_agent_refuses_to_run_as_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(agent.os, "getuid", lambda: 0)
    assert agent.run(agent.AgentConfig(workspace=tmp_path, sshd_config="/nonexistent")) == 1


class WaitCounting(threading.Event):
    """An Event that counts the waits on it: the worker's progress, seen from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def started_notebook_work(tmp_path: Path) -> tuple[agent.AgentConfig, WaitCounting, threading.Thread]:
    """The agent's notebook worker, started on a workspace in TMP_PATH: its config, stop event and thread."""
    config = agent.AgentConfig(workspace=tmp_path, sshd_config="/nonexistent",
                               launch_context=tmp_path / "no-launch.json")
    notebook = locations.open_notebook(config.notebook_path, config.launch_context)
    stopping = WaitCounting()
    worker = threading.Thread(target=agent._notebook_work, args=(config, notebook, stopping))
    worker.start()
    return config, stopping, worker


def test_the_notebook_stays_untouched_until_up_commits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(agent, "_gpu_check", lambda config: None)
    config, stopping, worker = started_notebook_work(tmp_path)
    # The worker waits on STOPPING only in its loop that looks for up's commit: twice round it means it has
    # looked, found none and not written (a fixed sleep proves nothing on a slow machine).
    wait_until(lambda: stopping.waits >= 2)
    assert not config.notebook_path.exists()
    locations.ready_flag().parent.mkdir(parents=True, exist_ok=True)
    locations.ready_flag().touch()
    wait_until(config.notebook_path.exists)
    stopping.set()
    worker.join(5)
    assert config.notebook_path.read_text() == "# Lab notebook\n"


def test_the_gpu_check_waits_for_ups_commit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check's torch probe costs seconds of CPU; run while `up` proves its login, it slowed the proof on a
    server with few cores. It runs once the ready flag is there, not before."""
    checked = threading.Event()
    monkeypatch.setattr(agent, "_gpu_check", lambda config: checked.set())
    _config, stopping, worker = started_notebook_work(tmp_path)
    try:
        wait_until(lambda: stopping.waits >= 2)  # round its loop twice: it has looked for the flag, found none
        assert not checked.is_set()
        locations.ready_flag().parent.mkdir(parents=True, exist_ok=True)
        locations.ready_flag().touch()
        assert checked.wait(10)
    finally:
        stopping.set()
        worker.join(5)


KEX = ("curve25519-sha256", "sntrup761x25519-sha512@openssh.com")
CIPHERS = ("aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
MACS = ("hmac-sha2-256-etm@openssh.com",)


def fake_openssh(folder: Path, *, sshd_says: str, sshd_status: int) -> tuple[str, str]:
    """An `ssh` that answers -Q with KEX, CIPHERS and MACS and an `sshd` that prints SSHD_SAYS for -V: their paths."""
    folder.mkdir()
    ssh, sshd = folder / "ssh", folder / "sshd"
    answers = {"kex": KEX, "cipher": CIPHERS, "mac": MACS}
    cases = "".join(f"  {what}) echo '{chr(10).join(names)}' ;;\n" for what, names in answers.items())
    ssh.write_text(f'#!/bin/sh\ncase "$2" in\n{cases}esac\n')
    sshd.write_text(f"#!/bin/sh\necho '{sshd_says}' >&2\nexit {sshd_status}\n")
    ssh.chmod(0o755)
    sshd.chmod(0o755)
    return str(ssh), str(sshd)


@pytest.mark.parametrize(("says", "status", "version"), [
    ("OpenSSH_10.0p2 Debian-7, OpenSSL 3.5.1 1 Jul 2025", 0, (10, 0)),
    # an sshd without -V: the version comes from the usage text it prints instead
    ("unknown option -- V\nOpenSSH_8.2p1 Ubuntu-4ubuntu0.5, OpenSSL 1.1.1f  31 Mar 2020\nusage: sshd [-46DdeiqTt]", 1,
     (8, 2)),
    ("something else entirely", 1, None),
])
def test_the_image_build_learns_sshds_version_from_sshd_itself(tmp_path: Path, says: str, status: int,
                                                                version: tuple[int, int] | None) -> None:
    ssh, sshd = fake_openssh(tmp_path / "bin", sshd_says=says, sshd_status=status)
    assert agent.supported_algorithms(ssh, sshd) == Supported(KEX, CIPHERS, MACS, version)


def test_a_sigterm_that_lands_just_before_the_agent_waits_still_stops_it(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """`docker stop`'s SIGTERM, landing after the agent's last look and before its wait blocked: the wait used to
    have no end, so only docker's SIGKILL 10 s later ended the agent (with its notebook work unflushed)."""
    sshd = tmp_path / "sshd"
    sshd.write_text("#!/bin/sh\nexec sleep 120\n")
    sshd.chmod(0o755)
    monkeypatch.setattr(agent, "SSHD", str(sshd))
    monkeypatch.setattr(agent.os, "getuid", lambda: 1000)  # the agent refuses root; the test may run as root
    for part in ("record_agent", "_start_heartbeat", "_notebook_work", "_observe_runs"):
        monkeypatch.setattr(agent, part, lambda *args, **kwargs: None)
    monkeypatch.setattr(agent, "_start_watcher", lambda config: None)
    monkeypatch.setattr(agent, "open_notebook", lambda *args, **kwargs: SimpleNamespace(pending=False))
    config = agent.AgentConfig(workspace=tmp_path, sshd_config="/nonexistent", launch_context=tmp_path / "none")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    backstop = threading.Timer(30, stop.set)  # the old agent's wait ended only here
    backstop.start()
    try:
        # Sent once the agent's handler is in place (until then SIGTERM would end pytest itself).
        signal_off_the_main_thread(signal.SIGTERM, after=0.5,
                                   when=lambda: signal.getsignal(signal.SIGTERM) not in (before[signal.SIGTERM],))
        started = time.monotonic()
        assert agent.run(config, stop=stop) == 0
        assert time.monotonic() - started < 20
    finally:
        backstop.cancel()
        for s, handler in before.items():
            signal.signal(s, handler)
