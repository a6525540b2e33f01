"""A real environment's container against the CIS Docker Benchmark v1.6.0, section 5 (container runtime), and the
isolation, log bound, open-file limit and health check devagent gives it.

Each section-5 item that is about how a container is configured is checked on `docker inspect`, by its number and
title, the way docker-bench-security's tests/5_container_runtime.sh checks it. Not checked here, and why
(docs/explanation/security-model.md says more):

- 5.1 swarm mode, 5.23/5.24 `docker exec` options, 5.28 image version pinning: about the engine and how people use
  it, not about a container devagent makes;
- 5.2 AppArmor, 5.3 SELinux: depend on the host; devagent never turns either off (checked below);
- 5.7 "sshd is not run within containers": sshd in the container is the product.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devagent.core import health
from tests.integration.conftest import RUN_PREFIX, Env, wait_for

pytestmark = pytest.mark.docker

SENSITIVE_HOST_DIRS = {"/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr"}  # 5.6, as docker-bench lists


@dataclass
class Made:
    env: Env
    name: str
    attrs: dict[str, Any]  # docker inspect of the container
    networks: list[dict[str, Any]]  # docker network inspect of each network it is on


@pytest.fixture(scope="module")
def made(docker_client: Any, built_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("hardening") / "user"
    (root / ".ssh").mkdir(parents=True, mode=0o700)
    env, name = Env(root), f"{RUN_PREFIX}{secrets.token_hex(3)}"
    env.up(name)
    try:
        attrs = docker_client.api.inspect_container(name)
        networks = [docker_client.api.inspect_network(n["NetworkID"])
                    for n in attrs["NetworkSettings"]["Networks"].values()]
        yield Made(env, name, attrs, networks)
    finally:
        env.devagent("down", name)


def _host(m: Made) -> dict[str, Any]:
    return m.attrs["HostConfig"]


def _bindings(m: Made) -> list[dict[str, str]]:
    return [b for bs in (m.attrs["NetworkSettings"]["Ports"] or {}).values() for b in bs or []]


# (number and title, what passes) — the titles are the benchmark's.
CIS_SECTION_5: dict[str, Callable[[Made], bool]] = {
    "5.2 AppArmor/5.3 SELinux are not turned off (whether a profile applies depends on the host)":
        lambda m: not any(o.replace("=", ":") in ("apparmor:unconfined", "label:disable")
                          for o in _host(m)["SecurityOpt"] or []),
    "5.4 Linux kernel capabilities are restricted within containers":
        lambda m: not _host(m)["CapAdd"] and _host(m)["CapDrop"] == ["ALL"],
    "5.5 privileged containers are not used": lambda m: _host(m)["Privileged"] is False,
    "5.6 sensitive host system directories are not mounted on containers":
        lambda m: not {mount["Source"].rstrip("/") or "/" for mount in m.attrs["Mounts"] if mount["Type"] == "bind"}
        & SENSITIVE_HOST_DIRS,  # a volume's source is the engine's; a tmpfs has none
    "5.8 privileged ports are not mapped within containers":
        lambda m: all(int(b["HostPort"]) > 1024 for b in _bindings(m)),
    "5.9 only needed ports are open on the container (sshd's)":
        lambda m: set(m.attrs["Config"]["ExposedPorts"]) == {"2222/tcp"},
    "5.10 the host's network namespace is not shared": lambda m: _host(m)["NetworkMode"] != "host",
    "5.11 the memory usage for containers is limited": lambda m: _host(m)["Memory"] > 0,
    "5.12 CPU priority is set appropriately on containers":
        lambda m: _host(m)["NanoCpus"] > 0 or _host(m)["CpuShares"] > 0,
    "5.13 the container's root filesystem is mounted as read only":
        lambda m: _host(m)["ReadonlyRootfs"] is True,
    "5.14 incoming container traffic is bound to a specific host interface (127.0.0.1)":
        lambda m: bool(_bindings(m)) and {b["HostIp"] for b in _bindings(m)} == {"127.0.0.1"},
    "5.15 the 'on-failure' container restart policy is set to '5' (or no restarts)":
        lambda m: _host(m)["RestartPolicy"]["Name"] in ("no", "on-failure")
        and _host(m)["RestartPolicy"]["MaximumRetryCount"] <= 5,
    "5.16 the host's process namespace is not shared": lambda m: _host(m)["PidMode"] != "host",
    "5.17 the host's IPC namespace is not shared": lambda m: _host(m)["IpcMode"] != "host",
    "5.18 host devices are not directly exposed to containers": lambda m: not _host(m)["Devices"],
    "5.19 the default ulimit is overwritten at runtime (nofile)":
        lambda m: _host(m)["Ulimits"] == [{"Name": "nofile", "Soft": 16384, "Hard": 16384}],
    "5.20 mount propagation mode is not set to shared":
        lambda m: all("shared" not in mount.get("Propagation", "") for mount in m.attrs["Mounts"]),
    "5.21 the host's UTS namespace is not shared": lambda m: _host(m)["UTSMode"] != "host",
    "5.22 the default seccomp profile is not disabled":
        lambda m: not any("unconfined" in o and "seccomp" in o for o in _host(m)["SecurityOpt"] or []),
    "5.25 cgroup usage is confirmed (no --cgroup-parent)": lambda m: not _host(m)["CgroupParent"],
    "5.26 the container is restricted from acquiring additional privileges":
        lambda m: "no-new-privileges:true" in (_host(m)["SecurityOpt"] or []),
    "5.27 container health is checked at runtime":
        lambda m: m.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD-SHELL" and "Health" in m.attrs["State"],
    "5.29 the PIDs cgroup limit is used": lambda m: (_host(m)["PidsLimit"] or 0) > 0,
    "5.30 Docker's default bridge 'docker0' is not used":
        lambda m: bool(m.networks) and all(n["Options"].get("com.docker.network.bridge.name") != "docker0"
                                           and n["Name"] != "bridge" for n in m.networks),
    "5.31 the host's user namespaces are not shared": lambda m: "host" not in (_host(m)["UsernsMode"] or ""),
    "5.32 the Docker socket is not mounted inside any containers":
        lambda m: not any("docker.sock" in mount["Source"] for mount in m.attrs["Mounts"]),
}


@pytest.mark.parametrize("item", sorted(CIS_SECTION_5, key=lambda k: [int(x) for x in k.split()[0].split("/")[0]
                                                                      .split(".")]))
def test_the_container_passes_cis_docker_benchmark_section_5(made: Made, item: str) -> None:
    assert CIS_SECTION_5[item](made), json.dumps({"HostConfig": _host(made), "Mounts": made.attrs["Mounts"]})


def test_on_the_read_only_root_the_login_user_can_write_only_the_mount_points_of_home_and_temp_folders(
        made: Made) -> None:
    # 5.13: each of these is a file system of its own (find -xdev stops at it); the host key, writable by the
    # login user as before, is on the /etc/devagent volume (tests/integration/test_home.py checks the rest).
    result = made.env.ssh(made.name, "find / -xdev -writable 2>/dev/null | grep -v -e '^/proc' | sort")
    assert result.stdout.split() == ["/home/dev", "/run/lock", "/tmp", "/var/lock", "/var/tmp"], result.output


def test_the_containers_log_is_bounded(made: Made) -> None:
    assert _host(made)["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


def test_every_process_gets_the_open_file_limit(made: Made) -> None:
    result = made.env.ssh(made.name, "ulimit -n; ulimit -Hn")
    assert result.returncode == 0, result.output
    assert result.stdout.split() == ["16384", "16384"]


def test_the_environments_network_keeps_containers_apart_but_lets_traffic_out(made: Made) -> None:
    [network] = made.networks
    assert network["Name"] == "devagent" and network["Driver"] == "bridge"
    assert network["Labels"] == {"devagent.managed": "true"}
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    # outbound: NAT as on the default bridge (not switched off), not an internal network, and a default route
    assert network["Internal"] is False
    assert network["Options"].get("com.docker.network.bridge.enable_ip_masquerade", "true") == "true"
    routes = made.env.ssh(made.name, "cat /proc/net/route")
    assert any(line.split()[1] == "00000000" for line in routes.stdout.splitlines()[1:]), routes.output


def test_one_environment_cannot_reach_anothers_sshd(made: Made, docker_client: Any) -> None:
    other = f"{RUN_PREFIX}{secrets.token_hex(3)}"
    made.env.up(other)
    try:
        [address] = [n["IPAddress"] for n in
                     docker_client.api.inspect_container(other)["NetworkSettings"]["Networks"].values()]
        # The other sshd answers on its container address (from the host, which routes to the bridge)...
        with socket.create_connection((address, 2222), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(256).startswith(b"SSH-2.0-")
        # ...but not to a neighbour: the connection from inside the first environment goes nowhere.
        probe = ("python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], 2222), timeout=5)' "
                 f"{address}")
        result = made.env.ssh(made.name, probe)
        assert result.returncode == 1, result.output
        assert "TimeoutError: timed out" in result.stderr
    finally:
        made.env.devagent("down", other)


def test_docker_finds_it_healthy_and_ls_and_doctor_say_so(made: Made, docker_client: Any) -> None:
    container = docker_client.containers.get(made.name)

    def status() -> str | None:
        container.reload()
        return str((container.attrs["State"].get("Health") or {}).get("Status"))

    # Docker's first check runs INTERVAL_SECONDS after the start.
    assert wait_for(lambda: status() == "healthy", timeout=health.INTERVAL_SECONDS + 30, interval=1,
                    message="Docker's health check") is True
    listed = json.loads(made.env.devagent("ls", "--json", check=True).stdout)["environments"]
    assert [r["health"] for r in listed if r["name"] == made.name] == ["healthy"]
    text = made.env.devagent("ls", check=True).stdout.splitlines()
    assert text[0].split() == ["NAME", "STATE", "HEALTH", "PORT", "USER", "GPUS", "INVITED", "WORKSPACE"]
    assert [line.split()[:3] for line in text if line.startswith(made.name)] == [[made.name, "running", "healthy"]]
    doctor = made.env.devagent("doctor", made.name)
    assert "✔ container health — healthy: sshd listens and the agent reports" in doctor.stdout.splitlines()


def test_the_health_check_reports_an_sshd_that_cannot_start(made: Made, docker_client: Any) -> None:
    container = docker_client.containers.get(made.name)
    test = container.attrs["Config"]["Healthcheck"]["Test"]
    assert test == ["CMD-SHELL", health.HEALTH_TEST]

    def check() -> tuple[int, str]:
        result = container.exec_run(["/bin/sh", "-c", test[1]])  # as Docker runs it: the login user, its HOME
        return result.exit_code, result.output.decode()

    assert check() == (0, "ok\n")
    # The login user owns the host key (sshd runs as that user): unreadable, no sshd can start.
    assert container.exec_run(["chmod", "000", "/etc/devagent/ssh_host_ed25519_key"]).exit_code == 0
    listener = container.exec_run(["sh", "-c", "ps -o pid=,args= -u dev | grep '[l]istener' | awk '{print $1}'"])
    assert container.exec_run(["kill", listener.output.decode().split()[0]]).exit_code == 0

    def failing() -> tuple[int, str] | None:
        found = check()
        return found if found[0] != 0 else None

    code, output = wait_for(failing, timeout=30, message="the health check noticing")  # type: ignore[misc]
    assert code == 1
    assert re.fullmatch(r"sshd is not running \(\d+ restarts?; docker logs shows why\)\n", output), output
    assert container.exec_run(["chmod", "600", "/etc/devagent/ssh_host_ed25519_key"]).exit_code == 0
    wait_for(lambda: check() == (0, "ok\n"), timeout=60, interval=1, message="sshd back and reported")
    assert subprocess.run(["ssh", "-F", str(made.env.ssh_config), "-o", "BatchMode=yes", made.name, "true"],
                          env=made.env.environ, capture_output=True, timeout=60, check=False).returncode == 0
