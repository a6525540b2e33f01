"""The laptop -> server topology itself (tests/integration/topology.py): the laptop reaches the server only through
ssh, the server users are who they should be, ProxyJump works as a user's would, and nothing outlives it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.integration.topology import Topology, descendants, open_topology, running

pytestmark = pytest.mark.docker

CONNECT = """
import socket, sys
family, address = (socket.AF_UNIX, sys.argv[1]) if sys.argv[1].startswith("/") else (
    socket.AF_INET, ("127.0.0.1", int(sys.argv[1])))
s = socket.socket(family)
s.settimeout(5)
try:
    s.connect(address)
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""


def test_the_laptop_cannot_reach_the_engine_nor_the_servers_loopback_except_through_ssh(topology: Topology) -> None:
    laptop, sshd = topology.laptop, topology.sshds[0]
    for socket_path in ("/var/run/docker.sock", "/run/docker.sock"):
        assert laptop.python("-c", CONNECT, socket_path).stdout == "ConnectionRefusedError\n"
    assert laptop.python("-c", CONNECT, str(sshd.port)).stdout == "ConnectionRefusedError\n"
    docker_ping = laptop.python("-c", "import docker; docker.from_env().ping()")
    assert docker_ping.returncode != 0 and "Connection refused" in docker_ping.stderr
    links = laptop.run(["ip", "-o", "link"]).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    # The same checks outside the laptop do connect: they can tell the difference.
    outside = topology.laptop.environ
    for target in ("/var/run/docker.sock", str(sshd.port)):
        out = subprocess.run([sys.executable, "-c", CONNECT, target], capture_output=True, text=True, env=outside,
                             check=True)
        assert out.stdout == "connected\n"


def test_each_alias_logs_in_to_its_server_user_through_its_relay(topology: Topology) -> None:
    laptop = topology.laptop
    assert laptop.ssh("gpu-server", "id", "-un").stdout == "devagent-srv\n"
    assert laptop.ssh("gpu-server2", "id", "-un").stdout == "devagent-srv2\n"
    assert "docker" in laptop.ssh("gpu-server", "id", "-nG").stdout.split()
    assert "docker" not in laptop.ssh("gpu-nodock", "id", "-nG").stdout.split()
    assert topology.sshds[0].port != topology.sshds[1].port


def test_a_host_key_other_than_the_pinned_one_is_refused(topology: Topology) -> None:
    laptop = topology.laptop
    laptop.known_hosts.write_text(f"{topology.sshds[0].host_key_alias} {topology.sshds[1].host_public_key}\n")
    result = laptop.ssh("gpu-server", "true")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_proxy_jump_through_an_alias_works_because_ssh_hands_its_config_file_to_the_jump(
        topology: Topology) -> None:
    # The environment aliases P writes say `ProxyJump gpu-server`: the jump ssh must read the same -F file, since
    # gpu-server is defined only there. Here the jump's target is the server's own sshd, on its loopback.
    laptop, sshd = topology.laptop, topology.sshds[0]
    result = laptop.ssh("-J", "gpu-server", "-o", f"HostKeyAlias={sshd.host_key_alias}", "-o",
                        f"UserKnownHostsFile={laptop.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                        "-i", str(laptop.key), "-p", str(sshd.port), "devagent-srv2@127.0.0.1", "id", "-un")
    assert (result.returncode, result.stdout) == (0, "devagent-srv2\n"), result.stderr


def test_closing_the_topology_leaves_no_process_and_no_folder(docker_client: object) -> None:
    opened = open_topology()
    topology = next(opened)
    session = topology.laptop.popen(["ssh", "-F", str(topology.laptop.ssh_config), "gpu-server", "sleep", "300"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    try:
        server_side: list[int] = []

        def sleeping() -> bool:
            server_side[:] = descendants(topology.pids)
            return any(Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")
                       for pid in server_side if Path(f"/proc/{pid}").exists())

        wait_for(sleeping, timeout=30, message="the server-side session")
        started = [*topology.pids, *server_side]
        root = topology.root
        with contextlib.suppress(StopIteration):
            next(opened)
    finally:
        session.kill()
        session.wait()
    assert [pid for pid in started if running(pid)] == []
    assert not root.exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"devagent-topology-{os.getpid()}-*"))
