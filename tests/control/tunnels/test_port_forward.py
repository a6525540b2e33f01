"""`devagent forward`, `jupyter` and `tensorboard` before and around the login, with the real OpenSSH client and
no Docker: the arguments, an unknown environment, a taken local port, an alias whose sshd does not answer. The
home, ssh config and devagent home are the temp ones tests/conftest.py sets. Traffic: 127.0.0.1 only.

tests/integration/test_forward.py and test_notebook_servers.py run them against real environments.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from devagent.cli import main
from devagent.control.lifecycle.interrupts import Stopped, StopSignals
from devagent.control.tunnels.notebook_servers import RemoteServer
from devagent.control.tunnels.port_forward import SshForward
from devagent.errors import ExitStatus
from tests.signals import signal_off_the_main_thread


def alias_to(port: int, name: str = "env1") -> None:
    """A devagent alias NAME whose HostName:Port is 127.0.0.1:PORT, in the temp configs."""
    home = Path(os.environ["DEVAGENT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    managed = home / "ssh_config"
    managed.write_text(f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User dev\n"
                       f"  UserKnownHostsFile {home / 'known_hosts'}\n  StrictHostKeyChecking yes\n")
    Path(os.environ["DEVAGENT_SSH_CONFIG"]).write_text(f"Include {managed}\n")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["forward", "env1", "8888"], ["jupyter", "env1"], ["tensorboard", "env1"]])
def test_an_unknown_environment_is_exit_11(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command) == ExitStatus.NOT_FOUND
    assert capsys.readouterr().err == ("Error: no environment named 'env1'\n"
                                       "  hint: list them with `devagent ls`, or make it first: devagent up env1\n")


@pytest.mark.parametrize(("ports", "message"), [
    ("x", "port 'x' is not a port number (1-65535)"),
    ("0", "port '0' is not a port number (1-65535)"),
    ("8888:65536", "local port '65536' is not a port number (0 (any free port) or 1-65535)"),
    ("8888:", "local port '' is not a port number (0 (any free port) or 1-65535)"),
    ("127.0.0.1:8888", "port '127.0.0.1' is not a port number (1-65535)"),
])
def test_ports_are_numbers_and_no_address_can_be_given(ports: str, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # The addresses are always 127.0.0.1 on both ends: there is no syntax to bind another.
    alias_to(closed_port())
    assert main(["forward", "env1", ports]) == ExitStatus.USAGE
    assert capsys.readouterr().err == f"Error: {message}\n  hint: give PORT or PORT:LOCAL, e.g. 8888 or 8888:9999\n"


@pytest.mark.parametrize("command", [["forward", "env1", "8888:{port}"], ["jupyter", "env1", "--port", "{port}"],
                                     ["tensorboard", "env1", "--port", "{port}"]])
def test_a_taken_local_port_is_exit_18_naming_it_before_ssh_starts(command: list[str],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    alias_to(closed_port())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main([part.format(port=port) for part in command]) == ExitStatus.PORT_TAKEN
    assert capsys.readouterr().err == (
        f"Error: port {port} on this machine's 127.0.0.1 is taken by another program\n"
        "  hint: pick another local port (PORT:LOCAL, or --port), or 0 for any free one; "
        f"`ss -ltnp 'sport = :{port}'` shows who holds it\n")


def test_an_alias_whose_sshd_does_not_answer_is_exit_10_with_what_ssh_said(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    alias_to(port)
    assert main(["forward", "env1", "8888:0"]) == ExitStatus.LOGIN_FAILED
    err = capsys.readouterr().err
    assert err.startswith(f"ssh: connect to host 127.0.0.1 port {port}: Connection refused\n"  # as it came
                          "Error: ssh through the alias 'env1' ended (exit 255)\n"
                          f"  | ssh: connect to host 127.0.0.1 port {port}: Connection refused\n"
                          "  hint: `devagent doctor env1` checks the environment and the login\n"), err


def test_a_stop_signal_before_the_forward_is_up_ends_ssh_and_exits_128_plus_n(
        capsys: pytest.CaptureFixture[str]) -> None:
    # An sshd that accepts and never answers: ssh waits for its banner until devagent is stopped.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        alias_to(silent.getsockname()[1])
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        try:
            assert main(["forward", "env1", "8888:0"]) == ExitStatus.TERMINATED
        finally:
            timer.cancel()
    assert capsys.readouterr().err == "forward closed\n"


def test_a_stop_signal_that_lands_just_before_the_wait_for_ssh_ends_the_forward_at_once(tmp_path: Path) -> None:
    # Its handler ran only once the main thread's wait returned: with a plain waitpid, when ssh ended by itself.
    ssh = tmp_path / "ssh"
    ssh.write_text("#!/bin/sh\nexec sleep 60\n")
    ssh.chmod(0o755)
    forward = SshForward(tmp_path / "config", "env1", local=8888, remote=8888, ssh=str(ssh))
    started = time.monotonic()
    try:
        with StopSignals(), pytest.raises(Stopped):
            forward.start()
            signal_off_the_main_thread(signal.SIGTERM)
            forward.wait()
    finally:
        forward.close()
    assert time.monotonic() - started < 30
    assert forward.process is not None and forward.process.poll() is not None


@pytest.mark.slow
def test_a_stop_signal_that_lands_while_waiting_for_the_server_inside_ends_the_wait_at_once(
        tmp_path: Path) -> None:
    # The wait read ssh's stdout in the main thread: the handler ran only once the server said something.
    ssh = tmp_path / "ssh"
    ssh.write_text("#!/bin/sh\nexec sleep 60\n")  # a server inside that takes its time to start
    ssh.chmod(0o755)
    server = RemoteServer(tmp_path / "config", "env1", "jupyter", token="t", ssh=str(ssh))  # noqa: S106
    started = time.monotonic()
    try:
        with StopSignals(), pytest.raises(Stopped):
            server.start()
            signal_off_the_main_thread(signal.SIGTERM)
            server.wait_ready()
    finally:
        server.stop(timeout=5)
    assert time.monotonic() - started < 30


def test_the_token_goes_to_the_server_on_stdin_never_into_an_argument() -> None:
    server = RemoteServer(Path("/cfg"), "env1", "jupyter", token="s3cret-token")  # noqa: S106 - the test's own value
    assert not any("s3cret" in arg for arg in server.argv)
    assert server.argv[-2:] == ["env1", "devagent serve jupyter"]


def test_a_logdir_reaches_the_server_as_one_quoted_word() -> None:
    server = RemoteServer(Path("/cfg"), "env1", "tensorboard", logdir="my runs; rm -rf ~")
    assert server.argv[-1] == "devagent serve tensorboard --logdir 'my runs; rm -rf ~'"
