"""ServerLink from the laptop, through the topology (tests/integration/topology.py): one login per command, the
server's engine on a forwarded socket, commands and streams through the master; each failure with its exit code
and ssh's own words; nothing left behind after the command, Ctrl-C or SIGKILL."""

from __future__ import annotations

import hashlib
import json
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import wait_for
from tests.integration.topology import Laptop, Topology, descendants, running
from tests.signals import starting_with

pytestmark = pytest.mark.docker


def probe(laptop: Laptop, mode: str, server: str, *args: str, env: dict[str, str] | None = None
          ) -> tuple[int, dict[str, Any]]:
    result = laptop.python("-m", "tests.integration.link_probe", mode, server, *args, env=env)
    lines = result.stdout.splitlines()
    assert lines, f"the probe printed nothing ({result.returncode}):\n{result.stderr}"
    return result.returncode, json.loads(lines[-1])


def logins(topology: Topology, index: int = 0) -> int:
    return topology.sshds[index].log.count("Accepted publickey for ")


def sessions(topology: Topology) -> list[int]:
    """The server side of every ssh connection still open (sshd's per-connection processes and below)."""
    return [pid for pid in descendants([s.process.pid for s in topology.sshds]) if running(pid)]


@pytest.fixture
def listener() -> Iterator[int]:
    """An echo server on this machine's (the server's) 127.0.0.1: the laptop cannot reach it but through ssh."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"echo: " + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_one_login_gives_the_servers_facts_its_engine_and_its_commands(topology: Topology,
                                                                      docker_client: Any) -> None:
    # The paths to resolve (up's workspace) ride on the probe: no command, no login of their own.
    status, out = probe(topology.laptop, "facts", "gpu-server", env={"PROBE_RESOLVE": "~/devagent/x|code/../y|/"})
    assert status == 0, out
    srv = pwd.getpwnam("devagent-srv")
    assert out["facts"] == {"user": "devagent-srv", "uid": srv.pw_uid, "gid": srv.pw_gid, "home": srv.pw_dir,
                            "docker_socket": "/var/run/docker.sock",
                            "resolved": {"~/devagent/x": f"{srv.pw_dir}/devagent/x", "code/../y": f"{srv.pw_dir}/y",
                                         "/": "/"}}
    assert out["engine_id"] == docker_client.info()["ID"]  # the server's own engine answered
    assert out["run"] == [0, "a b|$HOME|-x|'|"]  # each word arrived as one argument, unexpanded
    assert logins(topology) == 1
    assert not Path(out["folder"]).exists()
    wait_for(lambda: not sessions(topology), timeout=10, message="the server side of the link to end")


def test_a_second_server_user_on_another_sshd_is_another_link(topology: Topology) -> None:
    status, out = probe(topology.laptop, "facts", "gpu-server2")
    assert (status, out["facts"]["user"]) == (0, "devagent-srv2")
    assert (logins(topology, 0), logins(topology, 1)) == (0, 1)


def test_a_stream_reaches_a_port_on_the_servers_loopback_and_a_closed_port_is_a_connection_error(
        topology: Topology, listener: int) -> None:
    assert probe(topology.laptop, "connect", "gpu-server", str(listener)) == (0, {"data": "echo: hello\n"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    status, out = probe(topology.laptop, "connect", "gpu-server", str(closed))
    assert status == 0
    assert out["connection_error"].startswith(f"gpu-server's 127.0.0.1:{closed}: channel ")
    assert out["connection_error"].endswith("open failed: connect failed: Connection refused")


def test_a_docker_context_with_an_ssh_endpoint_names_the_server(topology: Topology) -> None:
    laptop = topology.laptop
    meta = laptop.home / ".docker" / "contexts" / "meta" / hashlib.sha256(b"work").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "work", "Metadata": {},
                                                "Endpoints": {"docker": {"Host": "ssh://gpu-server2"}}}))
    status, out = probe(laptop, "facts", "work")
    assert (status, out["server"], out["facts"]["user"]) == (0, "ssh://gpu-server2", "devagent-srv2")


def test_a_hostile_server_is_refused_before_ssh_runs(topology: Topology, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    status, out = probe(topology.laptop, "facts", f"-oProxyCommand=touch {marker}")
    assert status == 2
    assert out["error"] == f"server '-oProxyCommand=touch {marker}' is not usable: it starts with '-' (ssh would " \
                           "read an option)"
    assert not marker.exists()


# -- failures ----------------------------------------------------------------------------------------------------


def test_an_unknown_server_name(topology: Topology) -> None:
    status, out = probe(topology.laptop, "facts", "no-such-server")
    assert status == 15
    assert out["error"] == "ssh does not know the server no-such-server"
    assert "Could not resolve hostname no-such-server" in out["details"]
    assert out["hint"].startswith("check the name: a Host in your ssh config (")


def test_a_server_that_refuses_the_connection(topology: Topology) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Inside the laptop nothing listens on its own loopback.
    topology.laptop.ssh_config.write_text(topology.laptop.ssh_config.read_text()
                                          + f"Host closed\n  HostName 127.0.0.1\n  Port {port}\n")
    status, out = probe(topology.laptop, "facts", "closed")
    assert (status, out["error"]) == (15, "ssh could not reach closed")
    assert f"connect to host 127.0.0.1 port {port}: Connection refused" in out["details"]


def test_a_server_that_never_answers_times_out(topology: Topology) -> None:
    laptop = topology.laptop
    laptop.add_alias("silent", topology.sshds[0], user="devagent-srv", proxy_command="sleep 60")
    status, out = probe(laptop, "facts", "silent", env={"PROBE_CONNECT_TIMEOUT": "2"})
    assert (status, out["error"]) == (15, "ssh could not reach silent")
    assert "Connection timed out during banner exchange" in out["details"]


def test_a_key_the_server_does_not_accept_is_an_authentication_failure(topology: Topology) -> None:
    laptop = topology.laptop
    other = laptop.root / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    laptop.add_alias("wrong-key", topology.sshds[0], user="devagent-srv", identity=other)
    status, out = probe(laptop, "facts", "wrong-key")
    assert status == 16
    assert out["error"] == "ssh could not log in to wrong-key (authentication failed; devagent never prompts)"
    assert "devagent-srv@127.0.0.1: Permission denied (publickey)." in out["details"]


def test_an_sshd_that_refuses_socket_forwarding_is_named_with_its_setting(topology: Topology) -> None:
    sshd = topology.start_sshd(allow_stream_local_forwarding="no")
    topology.laptop.add_alias("strict", sshd, user="devagent-srv")
    status, out = probe(topology.laptop, "facts", "strict")
    assert status == 17, out
    assert out["error"] == "the sshd on strict refuses to forward the Docker Engine's Unix socket"
    assert out["hint"] == ("devagent needs it: set AllowStreamLocalForwarding yes (or local) in the server's "
                           "sshd_config (and no DisableForwarding yes), then reload sshd")
    assert out["details"].endswith("open failed: connect failed: open failed")  # ssh's words: they say no more


@pytest.mark.parametrize("setting", [{"allow_tcp_forwarding": "no"}, {"disable_forwarding": "yes"}])
def test_an_sshd_that_refuses_all_forwarding_is_named_with_its_settings(topology: Topology,
                                                                        setting: dict[str, str]) -> None:
    sshd = topology.start_sshd(**setting)
    topology.laptop.add_alias("strict", sshd, user="devagent-srv")
    status, out = probe(topology.laptop, "facts", "strict")
    assert status == 17, out
    assert out["error"] == "the sshd on strict refuses forwarding (TCP and Unix sockets)"
    assert out["hint"] == ("devagent needs it: set AllowTcpForwarding yes (or local) in the server's sshd_config "
                           "(and no DisableForwarding yes), then reload sshd")
    assert out["details"].endswith("open failed: administratively prohibited: open failed")


def test_a_server_user_outside_the_docker_group(topology: Topology) -> None:
    status, out = probe(topology.laptop, "facts", "gpu-nodock")
    assert status == 4
    assert out["error"] == ("devagent-nodock on gpu-nodock may not use the Docker Engine's socket "
                            "/var/run/docker.sock (permission denied)")
    assert out["hint"] == ("on gpu-nodock, add them to the docker group (sudo usermod -aG docker devagent-nodock, "
                           "then log in again); that group is root-equivalent on that server")


def test_no_engine_socket_where_the_user_said(topology: Topology) -> None:
    status, out = probe(topology.laptop, "facts", "gpu-server", env={"PROBE_SOCKET": "/run/no-such-docker.sock"})
    assert status == 3
    assert out["error"] == "no Docker Engine socket on gpu-server at /run/no-such-docker.sock"
    assert "looked at /run/no-such-docker.sock" in out["hint"]


# -- nothing left behind -------------------------------------------------------------------------------------------


def _hold(laptop: Laptop, *, ignored: tuple[int, ...] = ()) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A link held open in the laptop, started with the stop signals' default actions except IGNORED."""
    proc = laptop.popen([*starting_with(ignored=ignored), sys.executable, "-m", "tests.integration.link_probe",
                         "hold", "gpu-server"],
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


# As in a terminal session, and as a shell script's background job or a CI runner starts it (SIGINT ignored).
@pytest.mark.parametrize("ignored", [(), (signal.SIGINT, signal.SIGQUIT)], ids=["terminal", "background-job"])
def test_ctrl_c_in_the_middle_closes_the_link(topology: Topology, ignored: tuple[int, ...]) -> None:
    proc, held = _hold(topology.laptop, ignored=ignored)
    assert Path(held["folder"], "docker.sock").exists() and running(held["master_pid"])
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert not running(held["master_pid"])
    assert not Path(held["folder"]).exists()
    wait_for(lambda: not sessions(topology), timeout=10, message="the server side of the link to end")


def test_sigkill_takes_the_ssh_master_with_it_and_the_next_link_removes_the_folder(topology: Topology) -> None:
    proc, held = _hold(topology.laptop)
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not running(held["master_pid"]), timeout=10, message="the ssh master to die with devagent")
    wait_for(lambda: not sessions(topology), timeout=10, message="the server side of the link to end")
    assert Path(held["folder"]).exists()  # nobody could remove it ...
    status, out = probe(topology.laptop, "facts", "gpu-server")
    assert status == 0, out
    assert not Path(held["folder"]).exists()  # ... until the next link


def test_a_socket_no_engine_listens_on_is_no_engine(topology: Topology) -> None:
    stale = Path(tempfile.mkdtemp(prefix="dvt-", dir="/tmp")) / "docker.sock"
    try:
        stale.parent.chmod(0o755)
        with socket.socket(socket.AF_UNIX) as s:  # bound, never listening: what a dead engine leaves
            s.bind(str(stale))
            stale.chmod(0o666)
            status, out = probe(topology.laptop, "facts", "gpu-server", env={"PROBE_SOCKET": str(stale)})
    finally:
        shutil.rmtree(stale.parent)
    assert status == 3, out
    assert out["error"] == f"no Docker Engine answers on gpu-server at {stale}"
    assert f"Cannot connect to the Docker daemon at unix://{stale}" in out["details"]
