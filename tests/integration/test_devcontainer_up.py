"""A repository's devcontainer.json, end to end on the real engine: `up` takes the image, the login user and the
limit flags from it and says what it used and what not; what would weaken the container, and a Feature from a
registry, are refused by name with nothing made."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.conftest import BASE_IMAGE, Env, container_names

pytestmark = pytest.mark.docker


def _checkout(env: Env, name: str, config: dict[str, object]):  # type: ignore[no-untyped-def]
    ws = env.workspace(name)
    (ws / ".devcontainer").mkdir(parents=True)
    os.chown(ws, 1000, 1000)
    text = "// the team's file, with a comment and a trailing comma\n" + json.dumps(config, indent=2)[:-2] + ",\n}\n"
    (ws / ".devcontainer" / "devcontainer.json").write_text(text)
    return ws


def test_up_makes_the_environment_the_devcontainer_json_describes(env: Env, name: str, built_image: str,
                                                                  docker_client) -> None:
    ws = _checkout(env, name, {
        "name": "Team env", "image": BASE_IMAGE, "remoteUser": "alice",
        "runArgs": ["--shm-size", "1g", "--memory=3g"], "hostRequirements": {"gpu": "optional", "memory": "9gb"},
        "containerEnv": {"WHO": "${localEnv:DA_TEST_WHO:nobody}"}, "postCreateCommand": "touch made",
    })
    try:
        result = env.devagent("up", name, "--workspace", str(ws), "--pids", "1024", check=True)
        assert "devcontainer .devcontainer/devcontainer.json (sha256 " in result.stderr
        assert ("used shm size 1g, memory 3g, user alice, base image "
                f"{BASE_IMAGE}\n  read, not applied yet: containerEnv, postCreateCommand\n") in result.stderr
        assert "read, not applied yet: hostRequirements.gpu \"optional\" (no GPU unless --gpus asks)" in result.stderr
        assert "ignored (no devagent meaning): name" in result.stderr
        assert "✔ login verified as alice" in result.stdout
        info = docker_client.api.inspect_container(name)
        assert info["HostConfig"]["Memory"] == 3 * 1024**3  # runArgs beats hostRequirements
        assert info["HostConfig"]["ShmSize"] == 1024**3
        assert info["HostConfig"]["PidsLimit"] == 1024  # the flag
        assert not info["HostConfig"]["Privileged"]
        login = env.ssh(name, "id -un; echo $HOME")
        assert login.stdout.split() == ["alice", "/home/alice"]
    finally:
        env.devagent("down", name)


@pytest.mark.parametrize(("config", "message"), [
    ({"runArgs": ["--privileged"]}, "runArgs '--privileged' is refused: a privileged container can reach every "
     "device and undo every other restriction"),
    ({"features": {"ghcr.io/devcontainers/features/rust:1": {}}}, "feature "
     "'ghcr.io/devcontainers/features/rust:1' is refused: devagent fetches no Feature from a registry"),
])
def test_what_weakens_the_container_is_refused_by_name_and_nothing_is_made(
        env: Env, name: str, built_image: str, docker_client, config: dict[str, object], message: str) -> None:
    ws = _checkout(env, name, {"image": BASE_IMAGE, **config})
    result = env.devagent("up", name, "--workspace", str(ws))
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: .devcontainer/devcontainer.json: {message}"), result.stderr
    assert container_names(docker_client, name) == []
    assert not env.home.exists() or not (env.home / "ssh_config").exists()
