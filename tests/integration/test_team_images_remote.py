"""Team images from the laptop through the server's engine (tests/integration/topology.py): `image build --host
--tag --push`, `up --host --image` by tag and by digest (devagent.toml's `host` and `image`), with a real
registry behind htpasswd on this machine's 127.0.0.1 — the server's side: the laptop cannot reach it, the server's
engine pushes and pulls. Credentials come from the Docker config on the laptop (its ~/.docker/config.json and a
credential helper there, or DOCKER_CONFIG), go to the server's engine as X-Registry-Auth through the forwarded
socket, and are never written on the server. Wrong credentials and an image devagent did not make are refused
with nothing left on either side."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devagent.control.paths import Paths
from devagent.control.sites.consent import TrustedServers
from devagent.errors import ExitStatus
from tests.integration.conftest import BASE_IMAGE, container_names, wait_for
from tests.integration.registry import Registry, free_port, push_plain_image, running_registry
from tests.integration.topology import Laptop, Topology, open_topology

pytestmark = pytest.mark.docker

SERVER_HOME = Path("/home/devagent-srv")  # gpu-server's user
TEAMMATE_HOME = Path("/home/devagent-srv2")  # gpu-server2's: another user of the same engine, another uid
PINNED = re.compile(r"^✔ pushed (?P<ref>\S+)@(?P<digest>sha256:[0-9a-f]{64})$", re.M)

# A credential helper on the laptop (docker-credential-<name> on its PATH, as `docker login` with a credsStore
# or credHelpers uses): it notes each question, then answers with the registry's user and password.
HELPER = """#!/bin/sh
read -r server
echo "$1 $server" >> {log}
printf '{{"ServerURL": "%s", "Username": "{user}", "Secret": "{password}"}}' "$server"
"""


@pytest.fixture(scope="module")
def topology(docker_client: object) -> Iterator[Topology]:
    """One laptop and its servers for the module (each test uses its own names)."""
    yield from open_topology()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry-remote"), user="team",
                          password=secrets.token_hex(8)) as running:
        yield running


@pytest.fixture
def server_leftovers(name: str, docker_client) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Image names a test made on the engine; gpu-server's workspaces of NAME; both removed at the end."""
    images: list[str] = []
    yield images
    for ref in images:
        with contextlib.suppress(Exception):  # already gone is fine
            docker_client.api.remove_image(ref)
    for home in (SERVER_HOME, TEAMMATE_HOME):
        for suffix in ("", "-d"):
            shutil.rmtree(home / "devagent" / f"{name}{suffix}", ignore_errors=True)


def nothing_left(laptop: Laptop, name: str, docker_client, *,  # type: ignore[no-untyped-def]
                 workspace_kept: bool = False) -> None:
    """No container on the server, no record, alias or key on the laptop; and no workspace made on the server,
    unless WORKSPACE_KEPT (`down` keeps it, files and all)."""
    assert container_names(docker_client, name) == []
    assert (SERVER_HOME / "devagent" / name).exists() == workspace_kept
    assert not (laptop.devagent_home / "environments" / f"{name}.json").exists()
    managed = laptop.devagent_home / "ssh_config"
    assert not managed.exists() or f"Host {name}\n" not in managed.read_text()
    known = laptop.devagent_home / "known_hosts"
    assert not known.exists() or name not in known.read_text()


def no_credentials_on_the_server(registry: Registry) -> None:
    """Nothing under the server user's home holds the registry password, and there is no Docker config there."""
    assert registry.password
    assert not (SERVER_HOME / ".docker").exists()
    for path in SERVER_HOME.rglob("*"):
        with contextlib.suppress(OSError):  # other tests' files may come and go
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                assert registry.password.encode() not in path.read_bytes(), path


def docker_login_on_the_laptop(laptop: Laptop, registry: Registry) -> tuple[dict[str, str], Path]:
    """The laptop user's `docker login` with a credential helper: ~/.docker/config.json names it, and the PATH
    devagent gets has it. Returns that environment and the file where the helper notes each question."""
    bin_dir, asked = laptop.root / "bin", laptop.root / "helper-asked"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / "docker-credential-devagenttest"
    helper.write_text(HELPER.format(log=asked, user=registry.user, password=registry.password))
    helper.chmod(0o700)
    (laptop.home / ".docker").mkdir(exist_ok=True)
    (laptop.home / ".docker" / "config.json").write_text(
        json.dumps({"credHelpers": {registry.address: "devagenttest"}}))
    return {"PATH": f"{bin_dir}:{laptop.environ['PATH']}"}, asked


def notebook_header(workspace: Path) -> str:
    path = workspace / "lab-notebook.md"
    return wait_for(lambda: path.exists() and "# Lab notebook" in path.read_text() and path.read_text(),
                    timeout=60, message="the notebook header on the server")  # type: ignore[return-value]


def test_a_team_image_is_built_and_pushed_through_the_server_and_started_there_by_tag_and_by_digest(
        topology: Topology, name: str, registry: Registry, docker_client, server_leftovers: list[str]) -> None:
    laptop = topology.laptop
    target = f"{registry.address}/team/pytorch:{name}"
    server_leftovers.append(target)
    path, asked = docker_login_on_the_laptop(laptop, registry)

    pushed = laptop.devagent("image", "build", "--host", "gpu-server", "--base-image", BASE_IMAGE, "--tag", target,
                             "--push", env=path, timeout=900)
    assert pushed.returncode == 0, pushed.output
    assert re.search(r"^✔ image devagent/env:\S+ \((built|cached)\) on gpu-server$", pushed.stdout, re.M)
    match = PINNED.search(pushed.stdout)
    assert match and match["ref"] == target, pushed.stdout
    digest = match["digest"]
    server_leftovers.append(f"{target}@{digest}")
    assert f"  devagent up NAME --image {target}@{digest}\n" in pushed.stdout
    assert f"pushing {target}\n" in pushed.stderr
    assert re.search(r"^  \w+ (Pushed|Layer already exists)$", pushed.stderr, re.M), pushed.stderr  # progress
    assert f"get {registry.address}" in asked.read_text().splitlines()  # asked on the laptop

    # Gone from the server's engine by that name: up pulls it there (its layers stay under the content tag).
    docker_client.api.remove_image(target)
    by_tag = laptop.devagent("up", name, "--host", "gpu-server", "--image", target, "--memory", "2g", env=path,
                             timeout=900)
    assert by_tag.returncode == 0, by_tag.output
    assert f"pulling image {target}\n" in by_tag.stderr
    assert f"  Digest: {digest}\n" in by_tag.stderr  # the pull's progress, as the server's engine reports it
    assert "building image" not in by_tag.stderr
    assert f"✔ image {target} on gpu-server\n" in by_tag.stdout
    assert laptop.ssh(name, "id", "-un").stdout == "dev\n"  # the alias jumps through gpu-server
    short = f"`@{digest[:19]}…`"  # sha256: and 12 hex digits, as the header shows digests
    assert f"| image | `{target}` {short} · base `{BASE_IMAGE}` `@sha256:" in notebook_header(
        SERVER_HOME / "devagent" / name)
    laptop.devagent("down", name, check=True)
    nothing_left(laptop, name, docker_client, workspace_kept=True)

    # By digest, from the team's devagent.toml in the laptop's checkout: host and image both come from it.
    second, checkout = f"{name}-d", laptop.root / f"checkout-{name}"
    checkout.mkdir()
    (checkout / "devagent.toml").write_text(f'host = "gpu-server"\nimage = "{target}@{digest}"\nmemory = "2g"\n')
    # The file alone may not choose a server: this user agreed to gpu-server once before (in a terminal).
    TrustedServers(Paths(home=laptop.devagent_home, user_ssh_config=laptop.ssh_config)).add("gpu-server")
    docker_client.api.remove_image(target)
    by_digest = laptop.run(["sh", "-c", f'cd "{checkout}" && exec "$0" -m devagent up {second}',
                            sys.executable], env=path, timeout=900)
    assert by_digest.returncode == 0, by_digest.output
    assert f"pulling image {target}@{digest}\n" in by_digest.stderr
    assert f"| image | `{target}` {short} ·" in notebook_header(SERVER_HOME / "devagent" / second)
    assert laptop.ssh(second, "id", "-un").stdout == "dev\n"
    laptop.devagent("down", second, check=True)
    nothing_left(laptop, second, docker_client, workspace_kept=True)
    no_credentials_on_the_server(registry)


def test_wrong_credentials_on_the_laptop_and_a_registry_the_server_cannot_reach_are_registry_errors_leaving_nothing(
        topology: Topology, name: str, registry: Registry, docker_client, server_leftovers: list[str]) -> None:
    laptop = topology.laptop
    target = f"{registry.address}/team/pytorch:{name}"
    server_leftovers.append(target)
    wrong = {"DOCKER_CONFIG": str(registry.docker_config(laptop.root / f"wrong-{name}", password="wrong"))}  # noqa: S106

    push = laptop.devagent("image", "build", "--host", "gpu-server", "--base-image", BASE_IMAGE, "--tag", target,
                           "--push", env=wrong, timeout=900)
    assert push.returncode == ExitStatus.REGISTRY, push.output
    assert f"Error: the registry {registry.address} refused the credentials for {target}\n" in push.stderr
    assert f"  hint: log in on this machine with `docker login {registry.address}` (devagent hands this machine's " \
        "Docker credentials to gpu-server's engine for the push and pull, and never writes them)\n" in push.stderr
    assert not docker_client.images.list(name=target.rsplit(":", 1)[0])  # the tag it made is gone again

    up = laptop.devagent("up", name, "--host", "gpu-server", "--image", target, "--memory", "2g", env=wrong,
                         timeout=900)
    assert up.returncode == ExitStatus.REGISTRY, up.output
    assert f"Error: the registry {registry.address} refused the credentials for {target}\n" in up.stderr
    assert not docker_client.images.list(name=target.rsplit(":", 1)[0])  # nothing pulled
    nothing_left(laptop, name, docker_client)
    no_credentials_on_the_server(registry)

    silent = f"127.0.0.1:{free_port()}"  # nothing listens there, on the server's loopback
    up = laptop.devagent("up", name, "--host", "gpu-server", "--image", f"{silent}/team/pytorch:v1", env=wrong,
                         timeout=900)
    assert up.returncode == ExitStatus.REGISTRY, up.output
    assert f"Error: the registry {silent} does not answer gpu-server's engine\n" in up.stderr
    assert "  hint: check its address as gpu-server sees it (127.0.0.1 there is gpu-server itself) and that it " \
        "runs;" in up.stderr
    nothing_left(laptop, name, docker_client)


def test_an_image_devagent_did_not_make_is_refused_through_the_server_and_removed_there_again(
        topology: Topology, name: str, registry: Registry, docker_client, server_leftovers: list[str]) -> None:
    laptop = topology.laptop
    ref = f"{registry.address}/team/plain:{name}"
    server_leftovers.append(ref)
    push_plain_image(docker_client, ref, auth={"username": str(registry.user), "password": str(registry.password)})
    right = {"DOCKER_CONFIG": str(registry.docker_config(laptop.root / f"right-{name}"))}

    result = laptop.devagent("up", name, "--host", "gpu-server", "--image", ref, env=right, timeout=900)
    assert result.returncode == ExitStatus.USAGE, result.output
    assert f"pulling image {ref}\n" in result.stderr  # it came through the server's engine, with the credentials
    assert f"Error: {ref} is not a devagent image (it has no devagent.* labels)\n" in result.stderr
    assert not docker_client.images.list(name=ref.rsplit(":", 1)[0])  # pulled on the server, then removed
    nothing_left(laptop, name, docker_client)


def test_a_teammate_whose_server_uid_differs_from_the_images_is_told_before_anything_is_left(
        topology: Topology, name: str, registry: Registry, docker_client, server_leftovers: list[str]) -> None:
    laptop = topology.laptop
    target = f"{registry.address}/team/pytorch:{name}"
    server_leftovers.append(target)
    path, _ = docker_login_on_the_laptop(laptop, registry)
    laptop.devagent("image", "build", "--host", "gpu-server", "--base-image", BASE_IMAGE, "--tag", target, "--push",
                    env=path, timeout=900, check=True)  # for devagent-srv's uid
    uid = int(subprocess.run(["id", "-u", "devagent-srv"], capture_output=True, text=True, check=True).stdout)
    theirs = int(subprocess.run(["id", "-u", "devagent-srv2"], capture_output=True, text=True, check=True).stdout)

    refused = laptop.devagent("up", name, "--host", "gpu-server2", "--image", target, "--memory", "2g", env=path,
                              timeout=900)
    assert refused.returncode == ExitStatus.USAGE, refused.output
    workspace = TEAMMATE_HOME / "devagent" / name
    assert (f"Error: workspace {workspace} on gpu-server2 is not writable by uid {uid}, the login user of the team "
            f"image {target} (your user there is uid {theirs})\n") in refused.stderr
    assert (f"  hint: pass --workspace a folder on gpu-server2 that uid {uid} may write, or start a team image "
            f"built for uid {theirs} (`devagent image build --host gpu-server2 --tag … --push` as that user)\n"
            ) in refused.stderr
    assert container_names(docker_client, name) == []
    assert not workspace.exists()
    assert not (laptop.devagent_home / "environments" / f"{name}.json").exists()
