"""The Docker adapter (control/engine/docker_engine.py) against a fake SDK client: the shared environment network —
made once with traffic between containers off, found again by name and label, never taken over from someone else —
what a refused start says, and which host ports the containers on the engine hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from devagent.control.engine.docker_engine import ENV_NETWORK, ENV_NETWORK_OPTIONS, Engine, _explain_connection_error
from devagent.errors import DevagentError, ExitStatus

OURS = {"devagent.managed": "true"}


class FakeApi:
    """The calls of the SDK's low-level client that these tests make Engine use."""

    def __init__(self, *networks: dict[str, Any], refuse: docker.errors.APIError | None = None) -> None:
        self.rows = list(networks)
        self.refuse = refuse
        self.created: list[dict[str, Any]] = []
        self.listed: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any] | None]] = {}

    def networks(self, names: list[str]) -> list[dict[str, Any]]:
        # Docker's name filter matches substrings, as the real engine does
        return [n for n in self.rows if any(name in n["Name"] for name in names)]

    def create_network(self, name: str, **options: Any) -> dict[str, str]:
        if self.refuse is not None:
            raise self.refuse
        self.created.append({"name": name, **options})
        row = {"Name": name, "Id": f"new{len(self.created)}", "Created": "2026-12-01T00:00:00Z",
               "Labels": options["labels"]}
        self.rows.append(row)
        return {"Id": row["Id"]}


    def start(self, container_id: str) -> None:
        raise self.refuse or AssertionError("start() needs an error to raise")

    def containers(self, all: bool) -> list[dict[str, Any]]:
        assert all
        return [{"Id": cid, "State": state, "Ports": ports} for cid, (state, ports, _) in self.listed.items()]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if container_id not in self.listed:
            raise docker.errors.NotFound(f"No such container: {container_id}")
        return {"HostConfig": {"PortBindings": self.listed[container_id][2]}}


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


def network(name: str = ENV_NETWORK, id_: str = "n1", created: str = "2026-11-01T00:00:00Z",
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"Name": name, "Id": id_, "Created": created, "Labels": OURS if labels is None else labels}


def api_error(status: int, text: str) -> docker.errors.APIError:
    class Response:
        status_code = status
        reason = text

    return docker.errors.APIError(text, response=Response(), explanation=text)


def test_the_first_environment_makes_the_network_with_inter_container_traffic_off() -> None:
    api = FakeApi(network(name="devagent-other", id_="x"))  # a name that merely contains ours is not ours
    assert Engine(client=FakeClient(api)).environment_network() == "new1"
    assert api.created == [{"name": "devagent", "driver": "bridge", "labels": OURS, "check_duplicate": True,
                            "options": {"com.docker.network.bridge.enable_icc": "false",
                                        "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}}]
    assert ENV_NETWORK_OPTIONS["com.docker.network.bridge.enable_icc"] == "false"


def test_later_environments_join_the_one_that_is_there() -> None:
    api = FakeApi(network(id_="n1"))
    assert Engine(client=FakeClient(api)).environment_network() == "n1"
    assert api.created == []


def test_two_networks_made_by_a_race_on_an_old_engine_resolve_to_the_oldest_for_everyone() -> None:
    api = FakeApi(network(id_="n2", created="2026-11-02T00:00:00Z"), network(id_="n1", created="2026-11-01T00:00:00Z"))
    assert Engine(client=FakeClient(api)).environment_network() == "n1"


def test_a_concurrent_up_that_made_it_first_is_fine() -> None:
    api = FakeApi(refuse=api_error(409, "network with name devagent already exists"))
    original = api.networks
    calls = 0

    def networks(names: list[str]) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        return original(names) if calls == 1 else [network(id_="theirs")]

    api.networks = networks  # type: ignore[method-assign]
    assert Engine(client=FakeClient(api)).environment_network() == "theirs"


def test_a_network_of_that_name_devagent_did_not_make_is_refused() -> None:
    api = FakeApi(network(labels={}))
    with pytest.raises(DevagentError) as caught:
        Engine(client=FakeClient(api)).environment_network()
    assert caught.value.status == ExitStatus.CONFLICT
    assert caught.value.message == "a Docker network named 'devagent' exists and devagent did not make it"
    assert caught.value.hint == ("remove or rename it (docker network rm devagent); devagent makes its own, with "
                                 "traffic between containers turned off")
    assert api.created == []


def test_an_engine_out_of_address_pools_says_how_to_free_one() -> None:
    text = "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    api = FakeApi(refuse=api_error(400, text))
    with pytest.raises(DevagentError) as caught:
        Engine(client=FakeClient(api)).environment_network()
    assert caught.value.status == ExitStatus.CONTAINER_FAILED
    assert caught.value.message == f"the Docker Engine refused to create the network 'devagent': {text}"
    assert caught.value.hint == ("the engine's address pools may be used up: `docker network prune` removes unused "
                                 "networks")


def test_an_engine_whose_own_open_file_limit_is_too_low_is_named_with_the_fix() -> None:
    text = ("failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
            "process: error during container init: error setting rlimits for ready process: error setting rlimit "
            "type 7: operation not permitted: unknown")
    engine = Engine(client=FakeClient(FakeApi(refuse=api_error(500, text))))
    with pytest.raises(DevagentError) as caught:
        engine.start("c0ffee")
    assert caught.value.status == ExitStatus.CONTAINER_FAILED
    assert caught.value.message == "the container did not start: the Docker Engine cannot give it 16384 open files"
    assert caught.value.hint == ("its own limit is lower and it may not raise it: start dockerd with a limit of at "
                                 "least 16384 (LimitNOFILE= in its systemd unit, or `ulimit -n` in the shell that "
                                 "starts it)")
    assert caught.value.details == text


def test_an_engine_on_a_server_that_does_not_answer_names_the_server_not_the_local_engine(tmp_path: Path) -> None:
    with pytest.raises(DevagentError) as caught:
        Engine.at(f"unix://{tmp_path}/docker.sock", server="gpu-server", timeout=5)
    assert caught.value.status == ExitStatus.DOCKER_UNAVAILABLE
    assert caught.value.message == "no Docker Engine answers on gpu-server (through the ssh link to it)"
    assert str(caught.value.hint).startswith("check it there: ssh gpu-server docker info")


def test_a_server_engine_that_refuses_the_user_says_add_them_to_the_docker_group_there() -> None:
    error = _explain_connection_error(PermissionError(13, "Permission denied"), "gpu-server")
    assert error.message == "your user on gpu-server may not use its Docker Engine's socket (permission denied)"
    assert error.hint == ("on gpu-server, add them to the docker group (sudo usermod -aG docker USER, then log in "
                          "again); that group is root-equivalent on that server")


@pytest.mark.parametrize("text", [
    "driver failed programming external connectivity on endpoint exp-new-a1b2c3 (0f3e): Bind for 127.0.0.1:24000 "
    "failed: port is already allocated",
    "driver failed programming external connectivity on endpoint exp-new-a1b2c3 (0f3e): Error starting userland "
    "proxy: listen tcp4 127.0.0.1:24000: bind: address already in use",
], ids=["another-container", "another-program"])
def test_a_start_refused_for_a_taken_host_port_is_port_taken(text: str) -> None:
    engine = Engine(client=FakeClient(FakeApi(refuse=api_error(500, text))))
    with pytest.raises(DevagentError) as caught:
        engine.start("c0ffee")
    assert (caught.value.status, caught.value.message) == (ExitStatus.PORT_TAKEN,
                                                           "the container did not start: its host port is taken")
    assert caught.value.details == text


def test_bound_ports_are_running_containers_ports_and_every_other_containers_fixed_ones() -> None:
    api = FakeApi()
    api.listed = {
        "running": ("running", [{"IP": "127.0.0.1", "PrivatePort": 2222, "PublicPort": 24000, "Type": "tcp"},
                                {"PrivatePort": 80, "Type": "tcp"}], None),  # an exposed port, not published
        "stopped": ("exited", [], {"2222/tcp": [{"HostIp": "127.0.0.1", "HostPort": "24001"}]}),
        "made": ("created", [], {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),  # any address holds the port
        "unpinned": ("exited", [], {"2222/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
        "none": ("exited", [], None),
    }
    original = api.containers

    def containers(all: bool) -> list[dict[str, Any]]:
        return [*original(all), {"Id": "gone", "State": "exited", "Ports": []}]  # removed before its inspect

    api.containers = containers  # type: ignore[method-assign]
    assert Engine(client=FakeClient(api)).bound_ports() == {24000, 24001, 8080}


@pytest.mark.parametrize(("docker_host", "expected"), [
    (None, "False False True"),  # no paramiko, no ssh:// transport; paramiko itself still imports afterwards
    ("ssh://alice@gpu", "True True True"),  # the SDK's ssh:// transport, when DOCKER_HOST asks for it
])
def test_the_sdk_is_imported_without_paramiko_unless_docker_host_is_ssh(docker_host: str | None,
                                                                        expected: str) -> None:
    code = ("import sys, devagent.control.engine.docker_engine, docker.transport as t; a = 'paramiko' in sys.modules; "
            "b = hasattr(t, 'SSHHTTPAdapter'); import paramiko; print(a, b, 'paramiko' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == expected

