"""Every failure a user can cause or meet during `up`: a clear message, a documented exit code, and nothing
left behind — no container, no ssh entry, no pinned key, no host key."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_IMAGE, Env, assert_nothing_left, container_names, wait_for
from tests.signals import starting_with

pytestmark = pytest.mark.docker


def stand_in_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> list[str]:
    """COUNT stand-in GPUs (the test-only DEVAGENT_TEST_GPU_INVENTORY; this machine has none), UUIDs of this test's
    own. Returns their UUIDs."""
    tag = secrets.token_hex(4)
    uuids = [f"GPU-{tag}-0000-4000-8000-00000000000{i}" for i in range(count)]
    (tmp_path / "gpus.json").write_text(json.dumps(
        {"gpus": "".join(f"{i}, {u}, Stand-in GPU, 0, 81920, 0\n" for i, u in enumerate(uuids))}))
    monkeypatch.setenv("DEVAGENT_TEST_GPU_INVENTORY", str(tmp_path / "gpus.json"))
    return uuids


def test_gpus_on_an_engine_without_the_nvidia_runtime_fail_clearly_and_leave_nothing(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuids = stand_in_gpus(tmp_path, monkeypatch, 2)  # the ledger gives both; the engine cannot
    result = env.up(name, "--gpus", "all", check=False)
    assert result.returncode == 8
    assert "Error: GPUs were requested but this Docker Engine cannot give them (no NVIDIA runtime)" in result.stderr
    assert "could not select device driver" in result.stderr
    assert "hint: install the NVIDIA Container Toolkit" in result.stderr
    assert_nothing_left(env, name, docker_client)
    assert container_names(docker_client, f"devagent-gpu-{uuids[0][:12]}") == []  # its leases were given back


def test_gpus_on_a_server_whose_gpus_devagent_cannot_see_are_refused_before_anything_is_made(
    env: Env, name: str, docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_gpus(tmp_path, monkeypatch, 0)
    result = env.up(name, "--gpus", "any:1", check=False)
    assert result.returncode == 8
    assert result.stderr.endswith(
        "Error: GPUs were requested but this server has none devagent can see\n"
        "  hint: check the NVIDIA driver (nvidia-smi, `devagent gpus`), or run without GPUs: --gpus none\n")
    assert_nothing_left(env, name, docker_client)


def test_a_container_that_exits_while_starting_shows_its_exit_code_and_leaves_nothing(
    env: Env, name: str, built_image: str, docker_client
) -> None:
    # 8 MiB is below what Python needs to start the agent: the kernel kills it (exit 137).
    result = env.devagent("up", name, "--base-image", BASE_IMAGE, "--workspace", str(env.workspace(name)),
                          "--memory", "8m")
    assert result.returncode == 7
    assert "Error: the container exited while starting (exit code 137)" in result.stderr
    assert "raise --memory" in result.stderr
    assert_nothing_left(env, name, docker_client)


def test_a_missing_base_image_names_how_to_get_it(env: Env, name: str, docker_client) -> None:
    # A registry on 127.0.0.1 that is not there: the engine's pull is refused at once, and nothing leaves
    # this machine.
    missing = "127.0.0.1:1/devagent-missing:none"
    result = env.devagent("up", name, "--base-image", missing, "--workspace", str(env.workspace(name)))
    assert result.returncode == 5
    assert f"Error: the base image {missing} is not here and could not be pulled" in result.stderr
    assert "connection refused" in result.stderr
    assert "make base-image" in result.stderr
    assert_nothing_left(env, name, docker_client)


def test_a_user_ssh_config_that_does_not_parse_is_refused_untouched(
    env: Env, name: str, built_image: str, docker_client
) -> None:
    env.ssh_config.write_text("Host box\n  Port notanumber\n")
    before = env.ssh_config.read_bytes()
    result = env.up(name, check=False)
    assert result.returncode == 9
    assert "Bad port 'notanumber'" in result.stderr
    assert env.ssh_config.read_bytes() == before
    assert_nothing_left(env, name, docker_client)


def test_a_user_ssh_config_that_already_defines_the_name_is_refused_untouched(
    env: Env, name: str, built_image: str, docker_client
) -> None:
    env.ssh_config.write_text(f"Host {name}\n  HostName example.invalid\n")
    before = env.ssh_config.read_bytes()
    result = env.up(name, check=False)
    assert result.returncode == 9
    assert f"your ssh config already defines Host {name}" in result.stderr
    assert env.ssh_config.read_bytes() == before
    assert_nothing_left(env, name, docker_client)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_ctrl_c_in_the_middle_of_up_rolls_everything_back(
    env: Env, name: str, built_image: str, docker_client, sigint: str
) -> None:
    command = [sys.executable, "-m", "devagent", "up", name, "--base-image", BASE_IMAGE,
               "--workspace", str(env.workspace(name)), "--memory", "2g"]
    # "ignored": as a shell script's background job (`devagent up … &`, a CI runner) starts it: Python then installs
    # no KeyboardInterrupt handler of its own, and this Ctrl-C used to be lost — up went on and finished.
    # "default": as in a terminal session, whatever the shell that ran pytest left it.
    command = [*starting_with(ignored=(signal.SIGINT, signal.SIGQUIT) if sigint == "ignored" else ()), *command]
    proc = subprocess.Popen(command, env=env.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupt once the container exists (under its temporary name): the middle of the transaction.
        wait_for(lambda: container_names(docker_client, name),
                 timeout=120, interval=0.05, message="the container to be created")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted; everything `up` had made is removed again" in stderr
    assert container_names(docker_client, name) == [], stderr
    assert_nothing_left(env, name, docker_client)


def test_no_docker_engine_is_exit_3_with_a_hint(env: Env) -> None:
    result = subprocess.run([sys.executable, "-m", "devagent", "ls"], capture_output=True, text=True,
                            env={**env.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}, check=False)
    assert result.returncode == 3
    assert result.stderr.startswith("Error: no Docker Engine answers")
    assert "hint: start it" in result.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run the CLI as another user")
def test_no_permission_on_the_docker_socket_is_exit_4_with_a_hint(env: Env) -> None:
    env.root.chmod(0o755)
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-m", "devagent", "ls"], capture_output=True, text=True,
                            env={**env.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"}, check=False,
                            cwd="/")
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("Error: you may not use the Docker Engine's socket (permission denied)")
    assert "docker group" in result.stderr


def test_an_invalid_name_is_refused_before_anything_happens(env: Env) -> None:
    result = env.devagent("up", "Bad Name!")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: invalid environment name 'Bad Name!'")
    assert not env.home.exists()


def test_two_concurrent_ups_of_one_name_take_turns_and_both_succeed(
    env: Env, name: str, built_image: str, docker_client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: env.up(name, check=False), range(2)))
        # One makes the environment; the other waits for it (the per-environment lock), then verifies it.
        assert [r.returncode for r in results] == [0, 0], [r.output for r in results]
        assert sum(f"container {name} created" in r.stdout for r in results) == 1, [r.output for r in results]
        assert container_names(docker_client, name) == [name]
        assert env.ssh(name, "true").returncode == 0
    finally:
        env.devagent("down", name)


def test_two_users_racing_for_one_name_and_workspace_leave_one_working_environment(
    env: Env, tmp_path: Path, name: str, built_image: str, docker_client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    other = Env(tmp_path / "other")  # another DEVAGENT_HOME: no shared lock, only the engine decides
    (other.root / ".ssh").mkdir(parents=True, mode=0o700)
    # A shared workspace that exists, as the login user's (uid 1000). Had neither made it, the one that did not
    # would meet a folder it may not hand to uid 1000 (exit 2, with the chown to run): also no harm done.
    env.workspace(name).mkdir(parents=True)
    os.chown(env.workspace(name), 1000, 1000)
    workspace = str(env.workspace(name))
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda user: user.devagent(
                "up", name, "--base-image", BASE_IMAGE, "--workspace", workspace, "--memory", "2g"), (env, other)))
        codes = sorted(r.returncode for r in results)
        # The loser meets the winner's container: a conflict with its fix, and nothing of the winner's undone.
        assert codes == [0, 12], [r.output for r in results]
        loser = results[[r.returncode for r in results].index(12)]
        # Either it met the winner's container at create, or found it up front (made with another user's key:
        # someone else's environment, never reused nor replaced).
        assert (f"Error: a container named {name!r} already exists" in loser.stderr
                or f"Error: environment {name!r} belongs to root (key SHA256:" in loser.stderr), loser.stderr
        winner = (env, other)[[r.returncode for r in results].index(0)]
        assert container_names(docker_client, name) == [name]
        assert winner.ssh(name, "test -w ~/workspace").returncode == 0
    finally:
        for user in (env, other):
            user.devagent("down", name)


def test_a_container_devagent_did_not_make_is_never_touched(env: Env, name: str, built_image: str,
                                                             docker_client) -> None:
    docker_client.containers.create(BASE_IMAGE, name=name, command=["sleep", "1"])
    try:
        up = env.up(name, check=False)
        assert up.returncode == 12
        assert f"Error: a container named {name!r} exists and devagent did not make it" in up.stderr
        down = env.devagent("down", name)
        assert down.returncode == 12
        assert f"Error: the container {name!r} was not made by devagent; leaving it alone" in down.stderr
        assert container_names(docker_client, name) == [name]
    finally:
        docker_client.api.remove_container(name, force=True)
