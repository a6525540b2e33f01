"""The environment's port is fixed on the engine's 127.0.0.1 for its whole life, against the real engine and OpenSSH:
the alias written by the first `up` keeps working, unchanged, after `docker restart`, after `docker stop` + `up NAME`,
and after `up --recreate`. A port taken while the environment is stopped is exit 18 with the fix; a port taken
before `up` is skipped. (The retries a real engine cannot be made to produce on demand:
tests/control/lifecycle/test_up_port.py.)
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devagent.core.ports import DEFAULT_PORTS
from tests.integration.conftest import Env, container_names, wait_for

pytestmark = pytest.mark.docker


def fixed_port(docker_client, name: str) -> int:  # type: ignore[no-untyped-def]
    """The host port the container was made with (HostConfig), which Docker publishes at each start."""
    [binding] = docker_client.containers.get(name).attrs["HostConfig"]["PortBindings"]["2222/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    return int(binding["HostPort"])


def published_port(docker_client, name: str) -> int:  # type: ignore[no-untyped-def]
    [binding] = docker_client.containers.get(name).attrs["NetworkSettings"]["Ports"]["2222/tcp"]
    return int(binding["HostPort"])


def alias_files(env: Env) -> dict[str, bytes]:
    """Everything the alias is made of: the user's config (its Include line), devagent's config, the pinned key."""
    return {str(p): p.read_bytes() for p in (env.ssh_config, env.home / "ssh_config", env.home / "known_hosts")}


def login_uid(env: Env, name: str) -> str:
    result = env.ssh(name, "id", "-u")
    assert result.returncode == 0, result.output
    return result.stdout.strip()


def logs_in(env: Env, name: str) -> bool:
    return env.ssh(name, "true", options=("-o", "ConnectTimeout=5")).returncode == 0


def listener(port: int) -> socket.socket:
    """A program listening on 127.0.0.1:PORT (as servers do, despite the stopped container's connections left in
    TIME_WAIT there)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def free_ports_below_ephemeral(count: int) -> int:
    """The first of COUNT ports in a row that nothing holds now, below the ephemeral range and outside devagent's
    default range. Ports next to a listener(0) are ephemeral: the connections the ups themselves open (ssh, the
    engine's) took two of three such ports as their source ports in a CI run, and `up` rightly saw them taken."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(500):
        bottom = max(1024, low - 8000)
        first = bottom + secrets.randbelow(low - count - bottom)
        if set(range(first, first + count)) & set(DEFAULT_PORTS):
            continue
        try:
            for port in range(first, first + count):
                listener(port).close()
        except OSError:
            continue
        return first
    raise AssertionError(f"no {count} free ports in a row below {low}")


@pytest.fixture
def made(env: Env, name: str, built_image: str, docker_client) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """An environment made by `up`; yields its port."""
    result = env.up(name)
    port = fixed_port(docker_client, name)
    assert f"sshd on 127.0.0.1:{port}" in result.stdout
    yield port
    env.devagent("down", name)


def test_a_new_environment_is_made_with_a_fixed_port_and_the_alias_names_it(
        env: Env, name: str, made: int, docker_client) -> None:
    assert published_port(docker_client, name) == made
    assert f"  Port {made}\n" in (env.home / "ssh_config").read_text()
    assert 24000 <= made <= 24999  # DEVAGENT_PORTS' default


def test_docker_restart_keeps_the_port_and_the_unchanged_alias_still_logs_in(
        env: Env, name: str, made: int, docker_client) -> None:
    before = alias_files(env)
    docker_client.containers.get(name).restart(timeout=20)
    assert published_port(docker_client, name) == made
    wait_for(lambda: logs_in(env, name), timeout=60, message="the login after docker restart")
    assert login_uid(env, name) == "1000"
    assert alias_files(env) == before  # byte for byte: nothing rewrote it


def test_docker_stop_then_up_starts_it_on_the_same_port_without_touching_the_alias(
        env: Env, name: str, made: int, docker_client) -> None:
    before = alias_files(env)
    docker_client.containers.get(name).stop(timeout=20)
    [row] = [r for r in json.loads(env.devagent("ls", "--json", check=True).stdout)["environments"]
             if r["name"] == name]
    assert (row["state"], row["port"]) == ("exited", made)  # ls shows the port it will come back on
    again = env.up(name)
    assert f"✔ container {name} verified, sshd on 127.0.0.1:{made}" in again.stdout
    assert published_port(docker_client, name) == made
    assert login_uid(env, name) == "1000"
    assert alias_files(env) == before


def test_recreate_gives_the_new_container_the_same_port_and_leaves_the_alias_alone(
        env: Env, name: str, made: int, docker_client) -> None:
    old = docker_client.containers.get(name).id
    before = alias_files(env)
    result = env.up(name, "--pids", "2048", "--recreate")
    assert f"✔ container {name} replaced, sshd on 127.0.0.1:{made}" in result.stdout
    assert f"stopping container {name}, which holds the port" in result.stderr
    assert docker_client.containers.get(name).id != old
    assert container_names(docker_client, name) == [name]
    assert fixed_port(docker_client, name) == made
    assert login_uid(env, name) == "1000"
    assert alias_files(env) == before


def test_a_port_taken_while_the_environment_is_stopped_is_exit_18_with_the_fix_and_changes_nothing(
        env: Env, name: str, made: int, docker_client) -> None:
    container = docker_client.containers.get(name)
    container.stop(timeout=20)
    before = alias_files(env)
    with listener(made):  # another program takes the port meanwhile
        result = env.up(name, check=False)
        assert result.returncode == 18, result.output
        assert (f"Error: environment {name!r} cannot start: its port {made} on 127.0.0.1 is taken by another "
                f"program\n") in result.stderr
        assert (f"  hint: free it (`ss -ltnp 'sport = :{made}'` on the machine of the Docker Engine shows who holds "
                f"it) and run `devagent up {name}` again, or run the same `devagent up` with --recreate: the "
                "environment gets a new port and the alias follows\n") in result.stderr
        assert "address already in use" in result.stderr  # the engine's words, as details
        assert container_names(docker_client, name) == [name]
        container.reload()
        assert container.status == "exited" and docker_client.containers.get(name).id == container.id
        assert alias_files(env) == before
    # Freed, the same command starts it on its port.
    again = env.up(name)
    assert f"✔ container {name} verified, sshd on 127.0.0.1:{made}" in again.stdout
    assert alias_files(env) == before


def test_recreate_moves_an_environment_whose_port_was_taken_and_the_alias_follows(
        env: Env, name: str, made: int, docker_client) -> None:
    docker_client.containers.get(name).stop(timeout=20)
    with listener(made):
        result = env.up(name, "--recreate")
        moved = fixed_port(docker_client, name)
        assert moved != made
        assert f"port {made} is taken on the engine's 127.0.0.1; trying another" in result.stderr
        assert f"the environment moves from port {made} to {moved}: the alias follows" in result.stderr
        assert f"  Port {moved}\n" in (env.home / "ssh_config").read_text()
        assert login_uid(env, name) == "1000"


def test_a_new_environment_skips_a_port_another_program_holds(
        env: Env, name: str, built_image: str, docker_client, monkeypatch: pytest.MonkeyPatch) -> None:
    with listener(0) as held:
        port = held.getsockname()[1]
        monkeypatch.setenv("DEVAGENT_PORTS", f"{port}-{port + 20}")
        try:
            result = env.up(name)
            got = fixed_port(docker_client, name)
            assert port < got <= port + 20
            assert f"port {port} is taken on the engine's 127.0.0.1; trying another" in result.stderr
            assert f"sshd on 127.0.0.1:{got}" in result.stdout
            assert login_uid(env, name) == "1000"
            assert container_names(docker_client, name) == [name]  # the container that could not start is gone
        finally:
            env.devagent("down", name)


def test_concurrent_ups_in_a_range_of_as_many_ports_all_succeed_on_different_ports(
        env: Env, name: str, built_image: str, docker_client, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{name}-{i}" for i in range(3)]
    first = free_ports_below_ephemeral(3)
    monkeypatch.setenv("DEVAGENT_PORTS", f"{first}-{first + 2}")
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda n: env.up(n, "--cpus", "0.5", check=False), names))
        assert [r.returncode for r in results] == [0, 0, 0], "\n".join(r.output for r in results)
        assert sorted(fixed_port(docker_client, n) for n in names) == [first, first + 1, first + 2]
        for n in names:
            assert login_uid(env, n) == "1000"
    finally:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda n: env.devagent("down", n), names))
