"""A repository's devcontainer.json, end to end on the real engine: `up` takes the image, the login user and the
limit flags from it and says what it used and what not; what would weaken the container, and a Feature from a
registry, are refused by name with nothing made."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devagent.control.tunnels.port_forward import any_free_port
from tests.integration.conftest import BASE_IMAGE, Env, Result, container_names
from tests.integration.forwarding import Forward
from tests.integration.test_forward import get, start_http_server
from tests.integration.topology import Topology

pytestmark = pytest.mark.docker

FILE_PORT = any_free_port()  # the file's forwardPorts: free here, so the forward can take the same number


def _checkout(env: Env, name: str, config: dict[str, object]):  # type: ignore[no-untyped-def]
    ws = env.workspace(name)
    (ws / ".devcontainer").mkdir(parents=True)
    os.chown(ws, 1000, 1000)
    text = "// the team's file, with a comment and a trailing comma\n" + json.dumps(config, indent=2)[:-2] + ",\n}\n"
    (ws / ".devcontainer" / "devcontainer.json").write_text(text)
    return ws


def _remove_base(docker_client, tag: str) -> None:  # type: ignore[no-untyped-def]
    """The base image a test built, and the derived images made from it."""
    for image in docker_client.images.list(filters={"label": f"devagent.base-image={tag}"}):
        with contextlib.suppress(Exception):
            docker_client.api.remove_image(image.id, force=True)
    docker_client.api.remove_image(tag)


def test_up_makes_the_environment_the_devcontainer_json_describes(env: Env, name: str, built_image: str,
                                                                  docker_client) -> None:
    ws = _checkout(env, name, {
        "name": "Team env", "image": BASE_IMAGE, "remoteUser": "alice",
        "runArgs": ["--shm-size", "1g", "--memory=3g"], "hostRequirements": {"gpu": "optional", "memory": "9gb"},
        "containerEnv": {"WHO": "${localEnv:DA_TEST_WHO:nobody}"},
        "remoteEnv": {"GREET": 'say "hi" \\ there', "PATH": "/opt/extra:${containerEnv:PATH}", "LANG": None},
        "postCreateCommand": "id -un > made-by && echo created", "postAttachCommand": ["sh", "-c", "echo attached"],
        "customizations": {"vscode": {"extensions": ["ms-python.python"], "settings": {"editor.rulers": [100]}}},
    })
    (ws / ".vscode").mkdir()
    (ws / ".vscode" / "settings.json").write_text('{"editor.rulers": [80]}')  # the user's own value stays
    try:
        result = env.devagent("up", name, "--workspace", str(ws), "--pids", "1024", check=True)
        assert "devcontainer .devcontainer/devcontainer.json (sha256 " in result.stderr
        assert ("used containerEnv, remoteEnv, shm size 1g, memory 3g, user alice, base image "
                f"{BASE_IMAGE}\n"
                "  run in the environment as the login user: postCreateCommand, postAttachCommand\n") in result.stderr
        assert ('  hostRequirements.gpu "optional": one GPU if the engine has a free one, else none\n'
                in result.stderr)
        # This machine has no GPU (the real-GPU check is still to do): none is taken, and up goes on.
        assert 'hostRequirements.gpu "optional": 0 free GPU(s) on this engine, none taken\n' in result.stderr
        assert "ignored (no devagent meaning): name" in result.stderr
        assert "  VS Code extensions and settings: into the workspace's .vscode/\n" in result.stderr
        assert json.loads((ws / ".vscode" / "extensions.json").read_text()) == {"recommendations": ["ms-python.python"]}
        assert json.loads((ws / ".vscode" / "settings.json").read_text()) == {"editor.rulers": [80]}
        assert "  .vscode/settings.json: settings already in place\n" in result.stderr
        assert "✔ login verified as alice" in result.stdout
        info = docker_client.api.inspect_container(name)
        assert info["HostConfig"]["Memory"] == 3 * 1024**3  # runArgs beats hostRequirements
        assert info["HostConfig"]["ShmSize"] == 1024**3
        assert info["HostConfig"]["PidsLimit"] == 1024  # the flag
        assert not info["HostConfig"]["Privileged"]
        login = env.ssh(name, "id -un; echo $HOME")
        assert login.stdout.split() == ["alice", "/home/alice"]
        # containerEnv: the container's environment and every ssh session's; remoteEnv: the sessions' only, with
        # ${containerEnv:PATH} read in the container; null unsets.
        assert "WHO=nobody" in info["Config"]["Env"]
        assert not any(e.startswith("GREET=") for e in info["Config"]["Env"])
        assert env.ssh(name, "printenv WHO GREET").stdout == 'nobody\nsay "hi" \\ there\n'
        image_path = next(e for e in info["Config"]["Env"] if e.startswith("PATH=")).split("=", 1)[1]
        assert env.ssh(name, "printenv PATH").stdout == f"/opt/extra:{image_path}\n"
        assert env.ssh(name, "printenv LANG").stdout == ""
        # postCreateCommand ran once, as the login user, in the workspace; its output is in a log and the notebook.
        assert "devcontainer postCreateCommand: running as alice\n" in result.stderr
        assert (ws / "made-by").read_text() == "alice\n"
        assert (ws / ".devagent" / "lifecycle" / "postCreateCommand.log").read_text() == "created\n"
        notebook = (ws / "lab-notebook.md").read_text()
        assert "· devcontainer · postCreateCommand · ✅ exit 0\n`sh -c 'id -un > made-by && echo created'` · " \
               "output: `.devagent/lifecycle/postCreateCommand.log`\n" in notebook
        assert "(sha256 " in notebook.split("\n## ", 1)[0]  # the header's launch line names the file
        again = env.devagent("up", name, "--workspace", str(ws), "--pids", "1024", check=True)
        assert "postCreateCommand" not in again.stderr.split("\n", 4)[-1]  # once only
        assert "devcontainer postAttachCommand: running as alice\n" in again.stderr
        assert (ws / ".devagent" / "lifecycle" / "postAttachCommand.log").read_text() == "attached\nattached\n"
    finally:
        env.devagent("down", name)


def test_forward_with_no_port_takes_the_files_forward_ports(env: Env, name: str, built_image: str,
                                                            docker_client) -> None:
    ws = _checkout(env, name, {"image": BASE_IMAGE, "forwardPorts": [FILE_PORT, 6006]})
    try:
        result = env.devagent("up", name, "--workspace", str(ws), check=True)
        assert f"used forwardPorts, base image {BASE_IMAGE}\n" in result.stderr
        assert (f"  forwardPorts {FILE_PORT}, 6006: `devagent forward NAME` with no port forwards them\n"
                in result.stderr)
        # Recorded on the container: forward needs no workspace.
        labels = docker_client.api.inspect_container(name)["Config"]["Labels"]
        assert labels["devagent.forward-ports"] == f"{FILE_PORT},6006"
        start_http_server(env, name, FILE_PORT)
        (ws / "page.txt").write_text("through the file's port\n")
        forward = Forward(env, name)
        try:
            assert forward.url() == f"http://127.0.0.1:{FILE_PORT}/"
            assert get(f"http://127.0.0.1:{FILE_PORT}/page.txt", forward) == "through the file's port\n"
            code, said = forward.stop()
            assert code == 130
            assert (f"forwardPorts of {name}'s devcontainer.json: {FILE_PORT}, 6006; forwarding {FILE_PORT} "
                    f"(`devagent forward {name} PORT` in another terminal for each other one)\n") in said
        finally:
            forward.kill()
    finally:
        env.devagent("down", name)


def test_a_local_feature_runs_its_install_script_as_root_at_build_with_its_options(
        env: Env, name: str, built_image: str, docker_client) -> None:
    ws = _checkout(env, name, {"image": BASE_IMAGE, "features": {"./hello": {"greeting": "bonjour"}}})
    feature = ws / ".devcontainer" / "hello"
    feature.mkdir()
    (feature / "devcontainer-feature.json").write_text(
        '{"id": "hello", // a comment\n "options": {"greeting": {"type": "string", "default": "hi"},'
        ' "target": {"type": "string", "default": "/etc/hello-feature"}}}')
    (feature / "install.sh").write_text('#!/bin/sh\nset -e\necho "$GREETING from $(id -un)" > "$TARGET"\n')
    tag = None
    try:
        result = env.devagent("up", name, "--workspace", str(ws), check=True)
        assert f"used features, base image {BASE_IMAGE}\n" in result.stderr, result.stderr
        built = [line for line in result.stderr.splitlines() if line.startswith("building base image ")]
        assert built and built[0].endswith(f": {BASE_IMAGE} with the Features of .devcontainer/devcontainer.json")
        tag = built[0].split()[3].rstrip(":")
        assert env.ssh(name, "cat /etc/hello-feature; test -e /tmp/devagent-features/0 || echo gone").stdout == (
            "bonjour from root\ngone\n")  # the copied folder is removed by the same RUN
        again = env.devagent("up", name, "--workspace", str(ws), "--recreate", check=True)
        assert f"base image {tag} (cached, {BASE_IMAGE} with the Features of .devcontainer/devcontainer.json)\n" \
            in again.stderr
    finally:
        env.devagent("down", name)
        if tag is not None:
            _remove_base(docker_client, tag)


def test_a_local_feature_outside_the_files_folder_is_refused(env: Env, name: str, docker_client) -> None:
    ws = _checkout(env, name, {"image": BASE_IMAGE, "features": {"./../elsewhere": {}}})
    result = env.devagent("up", name, "--workspace", str(ws))
    assert result.returncode == 2, result.output
    assert result.stderr.endswith(
        "Error: .devcontainer/devcontainer.json: feature './../elsewhere' is not a folder inside .devcontainer/\n"
        "  hint: keep a local Feature in the devcontainer.json's folder and name it \"./FOLDER\"\n")
    assert container_names(docker_client, name) == []


def test_a_dockerfile_build_with_an_arg_is_the_base_image_built_once(env: Env, name: str, built_image: str,
                                                                     docker_client) -> None:
    ws = _checkout(env, name, {
        "build": {"dockerfile": "Dockerfile", "context": "..", "args": {"GREETING": "hello-from-arg"}},
        "remoteUser": "alice", "hostRequirements": {"gpu": "optional"},
        "containerEnv": {"WHO": "me"}, "postCreateCommand": "cat /etc/greeting > greeting-seen",
        "customizations": {"vscode": {"extensions": ["ms-python.python"]}},
    })
    (ws / ".devcontainer" / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nARG GREETING=unset\nRUN echo \"$GREETING {name}\" > /etc/greeting\n")
    tag = None
    try:
        result = env.devagent("up", name, "--workspace", str(ws), check=True)
        assert "used containerEnv, user alice, build (the base image)\n" in result.stderr, result.stderr
        built = [line for line in result.stderr.splitlines() if line.startswith("building base image ")]
        assert built and built[0].endswith(" from .devcontainer/Dockerfile (.devcontainer/devcontainer.json)")
        tag = built[0].split()[3]
        assert env.ssh(name, "cat /etc/greeting; id -un").stdout == f"hello-from-arg {name}\nalice\n"
        assert (ws / "greeting-seen").read_text() == f"hello-from-arg {name}\n"
        assert json.loads((ws / ".vscode" / "extensions.json").read_text()) == {"recommendations": ["ms-python.python"]}
        assert docker_client.api.inspect_container(name)["HostConfig"].get("DeviceRequests") in (None, [])

        again = env.devagent("up", name, "--workspace", str(ws), "--recreate", check=True)
        assert f"base image {tag} (cached, from .devcontainer/devcontainer.json)\n" in again.stderr
    finally:
        env.devagent("down", name)
        if tag is not None:
            _remove_base(docker_client, tag)


def test_a_failing_post_create_command_fails_up_and_removes_the_container(env: Env, name: str, built_image: str,
                                                                           docker_client) -> None:
    ws = _checkout(env, name, {"image": BASE_IMAGE, "postCreateCommand": "echo about to fail; exit 3"})
    result = env.devagent("up", name, "--workspace", str(ws))
    assert result.returncode == 7, result.output
    assert (f"Error: devcontainer.json's postCreateCommand failed (exit 3); environment {name!r} was removed "
            "again\n") in result.stderr
    assert "about to fail" in result.stderr
    assert container_names(docker_client, name) == []
    assert (ws / ".devagent" / "lifecycle" / "postCreateCommand.log").read_text() == "about to fail\n"
    assert "· devcontainer · postCreateCommand · ❌ exit 3" in (ws / "lab-notebook.md").read_text()

    try:  # --keep-going: reported, and the environment stays
        kept = env.devagent("up", name, "--workspace", str(ws), "--keep-going", check=True)
        assert "devcontainer postCreateCommand failed (exit 3); going on (--keep-going): about to fail\n" in kept.stderr
        assert container_names(docker_client, name) == [name]
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


class TestThroughAServer:
    """The same from a laptop with `--host`: the file is read from the checkout on the laptop (the current
    folder), the environment is made on the server (tests/integration/topology.py)."""

    @pytest.fixture
    def server_workspace(self, name: str) -> Iterator[Path]:
        path = Path("/home/devagent-srv") / "devagent" / name
        yield path
        shutil.rmtree(path, ignore_errors=True)

    def test_up_through_the_server_uses_the_file_and_refuses_by_name(
            self, topology: Topology, name: str, server_workspace: Path, docker_client) -> None:
        laptop = topology.laptop
        checkout = laptop.root / f"checkout-{name}"
        (checkout / ".devcontainer").mkdir(parents=True)
        config = checkout / ".devcontainer" / "devcontainer.json"

        def up() -> Result:  # in the checkout (nsenter starts in /): the file is read from the current folder
            return laptop.run(["sh", "-c", f'cd "{checkout}" && exec "$0" -m devagent up {name} --host gpu-server '
                               '--memory 2g', sys.executable], timeout=900)

        usable = json.dumps({"image": BASE_IMAGE, "remoteUser": "alice", "runArgs": ["--shm-size=1g"],
                             "containerEnv": {"WHO": "on-the-server"}, "remoteEnv": {"VIA": "${containerEnv:WHO}"},
                             "customizations": {"vscode": {"extensions": ["ms-python.python"]}}})
        config.write_text(usable[:-1] + ', // a comment\n "privileged": true,}\n')
        refused = up()
        assert refused.returncode == 2
        assert refused.stderr.startswith("Error: .devcontainer/devcontainer.json: privileged is refused: a "
                                         "privileged container can reach every device"), refused.stderr
        assert container_names(docker_client, name) == []
        assert not (laptop.devagent_home / "environments" / f"{name}.json").exists()
        assert not server_workspace.exists()

        config.write_text(usable)
        try:
            made = up()
            assert made.returncode == 0, made.output
            assert (f"used containerEnv, remoteEnv, shm size 1g, user alice, base image {BASE_IMAGE}\n"
                    in made.stderr)
            assert f"✔ ssh alias {name} via gpu-server (host key pinned)\n" in made.stdout
            assert laptop.ssh(name, "id", "-un").stdout == "alice\n"
            assert laptop.ssh(name, "printenv", "WHO", "VIA").stdout == "on-the-server\non-the-server\n"
            # forward with no port asks the server's engine for the file's ports: this file names none.
            none = laptop.devagent("forward", name, timeout=120)
            assert (none.returncode, none.stderr) == (2, (
                f"ssh gpu-server\nError: environment {name!r} names no port to forward (no forwardPorts in a "
                f"devcontainer.json it was made from)\n"
                f"  hint: give the port: devagent forward {name} PORT[:LOCAL]\n")), none.output
            assert docker_client.api.inspect_container(name)["HostConfig"]["ShmSize"] == 1024**3
            recommended = server_workspace / ".vscode" / "extensions.json"  # written on the server, as alice there
            assert json.loads(recommended.read_text()) == {"recommendations": ["ms-python.python"]}
            assert recommended.stat().st_uid == server_workspace.stat().st_uid
        finally:
            laptop.devagent("down", name, timeout=300)
        assert container_names(docker_client, name) == []

    def test_a_dockerfile_build_through_the_server_and_a_registry_feature_refused(
            self, topology: Topology, name: str, server_workspace: Path, docker_client) -> None:
        laptop = topology.laptop
        checkout = laptop.root / f"checkout-{name}"
        (checkout / ".devcontainer").mkdir(parents=True)
        (checkout / ".devcontainer" / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nARG MARK=unset\nRUN echo \"$MARK\" > /etc/mark\n")
        config = checkout / ".devcontainer" / "devcontainer.json"
        build = {"build": {"dockerfile": "Dockerfile", "args": {"MARK": f"built-{name}"}},
                 "postCreateCommand": "cat /etc/mark > mark-seen"}

        def up() -> Result:
            return laptop.run(["sh", "-c", f'cd "{checkout}" && exec "$0" -m devagent up {name} --host gpu-server '
                               '--memory 2g', sys.executable], timeout=900)

        config.write_text(json.dumps({**build, "features": {"ghcr.io/devcontainers/features/rust:1": {}}}))
        images_before = {i.id for i in docker_client.images.list(filters={"label": "devagent.devcontainer"})}
        refused = up()
        assert refused.returncode == 2
        assert refused.stderr.startswith("Error: .devcontainer/devcontainer.json: feature "
                                         "'ghcr.io/devcontainers/features/rust:1' is refused"), refused.stderr
        assert container_names(docker_client, name) == []
        assert not server_workspace.exists()
        assert {i.id for i in docker_client.images.list(filters={"label": "devagent.devcontainer"})} == images_before

        config.write_text(json.dumps(build))
        tag = None
        try:
            made = up()
            assert made.returncode == 0, made.output
            built = [line for line in made.stderr.splitlines() if line.startswith("building base image ")]
            assert built, made.stderr
            tag = built[0].split()[3]
            assert laptop.ssh(name, "cat", "/etc/mark").stdout == f"built-{name}\n"
            assert (server_workspace / "mark-seen").read_text() == f"built-{name}\n"  # postCreateCommand, there
        finally:
            laptop.devagent("down", name, timeout=300)
            if tag is not None:
                _remove_base(docker_client, tag)
        assert container_names(docker_client, name) == []
