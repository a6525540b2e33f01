"""Team images through a real registry (Debian's Distribution registry on 127.0.0.1): `image build --tag --push`,
`up --image` by tag and by digest (pulled when missing, never rebuilt, the digest in the notebook header), and each
way it can fail — wrong credentials, an unknown tag, an image devagent did not make, a registry that does not
answer — with its exact error and nothing left behind."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_IMAGE, Env, assert_nothing_left, wait_for
from tests.integration.registry import Registry, push_plain_image, running_registry

pytestmark = pytest.mark.docker

PINNED = re.compile(r"^✔ pushed (?P<ref>\S+)@(?P<digest>sha256:[0-9a-f]{64})$", re.M)


def with_docker_config(environ: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`devagent ARGS…` run with ENVIRON (a DOCKER_CONFIG of the test's own), its output captured."""
    def devagent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devagent", *args], capture_output=True, text=True,
                              env=environ, timeout=600, check=False)

    return devagent


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry-open")) as registry:
        yield registry


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry-locked"), user="team",
                          password=secrets.token_hex(8)) as registry:
        yield registry


@pytest.fixture
def untag(docker_client) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Image names a test made on the engine, removed by name at its end (the image goes with its last name)."""
    names: list[str] = []
    yield names
    for ref in names:
        with contextlib.suppress(Exception):  # already gone is fine
            docker_client.api.remove_image(ref)


def header(workspace: Path) -> str:
    path = workspace / "lab-notebook.md"
    return wait_for(lambda: path.exists() and "# Lab notebook" in path.read_text() and path.read_text(),
                    timeout=60, message="the notebook header")  # type: ignore[return-value]


def test_a_pushed_team_image_starts_by_tag_and_by_digest_and_the_header_records_the_digest(
        env: Env, name: str, built_image: str, locked_registry: Registry, docker_client, untag: list[str],
        tmp_path: Path) -> None:
    target = f"{locked_registry.address}/devagent-test/env:{name}"
    untag.append(target)
    team = {**env.environ, "DOCKER_CONFIG": str(locked_registry.docker_config(tmp_path / "docker-config"))}
    devagent = with_docker_config(team)

    pushed = devagent("image", "build", "--base-image", BASE_IMAGE, "--tag", target, "--push")
    assert pushed.returncode == 0, pushed.stderr
    assert f"✔ image {built_image} (cached)" in pushed.stdout
    match = PINNED.search(pushed.stdout)
    assert match and match["ref"] == target, pushed.stdout
    digest = match["digest"]
    assert f"  devagent up NAME --image {target}@{digest}" in pushed.stdout
    assert f"pushing {target}" in pushed.stderr

    # Gone from the engine by that name: `up --image` pulls it (its layers are still here under the content tag).
    docker_client.api.remove_image(target)
    by_tag = devagent("up", name, "--image", target, "--workspace", str(env.workspace(name)), "--memory", "2g")
    assert by_tag.returncode == 0, by_tag.stderr
    assert f"pulling image {target}" in by_tag.stderr
    assert "building image" not in by_tag.stderr
    assert f"✔ image {target}" in by_tag.stdout
    short = f"`@{digest[:19]}…`"  # sha256: and 12 hex digits, as the header shows digests
    assert f"| image | `{target}` {short} · base `{BASE_IMAGE}` `@sha256:" in header(env.workspace(name))
    assert devagent("down", name).returncode == 0

    second = f"{name}-d"
    by_digest = devagent("up", second, "--image", f"{target}@{digest}", "--workspace",
                         str(env.workspace(second)), "--memory", "2g")
    assert by_digest.returncode == 0, by_digest.stderr
    assert f"| image | `{target}` {short} ·" in header(env.workspace(second))
    assert devagent("down", second).returncode == 0


def test_wrong_credentials_are_refused_on_push_and_on_pull_and_leave_nothing(
        env: Env, name: str, built_image: str, locked_registry: Registry, docker_client, tmp_path: Path) -> None:
    target = f"{locked_registry.address}/devagent-test/env:{name}"
    wrong = {**env.environ, "DOCKER_CONFIG": str(locked_registry.docker_config(tmp_path / "wrong", password="wrong"))}  # noqa: S106
    devagent = with_docker_config(wrong)

    push = devagent("image", "build", "--base-image", BASE_IMAGE, "--tag", target, "--push")
    assert push.returncode == 20, push.stderr
    assert f"Error: the registry {locked_registry.address} refused the credentials for {target}\n" in push.stderr
    assert f"  hint: log in with `docker login {locked_registry.address}` (devagent uses Docker's credentials" \
        in push.stderr
    assert not docker_client.images.list(name=target.rsplit(":", 1)[0])  # the tag it made is gone again

    up = devagent("up", name, "--image", target, "--workspace", str(env.workspace(name)), "--memory", "2g")
    assert up.returncode == 20, up.stderr
    assert f"Error: the registry {locked_registry.address} refused the credentials for {target}\n" in up.stderr
    assert_nothing_left(env, name, docker_client)


def test_an_unknown_tag_is_a_registry_error_and_leaves_nothing(env: Env, name: str, open_registry: Registry,
                                                                docker_client) -> None:
    ref = f"{open_registry.address}/devagent-test/env:never-pushed"
    result = env.devagent("up", name, "--image", ref, "--workspace", str(env.workspace(name)))
    assert result.returncode == 20, result.stderr
    assert f"Error: the registry {open_registry.address} has no image {ref}\n" in result.stderr
    assert f"  hint: check the tag (devagent image build --tag {ref} --push makes it)" in result.stderr
    assert_nothing_left(env, name, docker_client)


def test_a_registry_that_does_not_answer_is_a_registry_error(env: Env, name: str, docker_client) -> None:
    from tests.integration.registry import free_port

    ref = f"127.0.0.1:{free_port()}/devagent-test/env:v1"  # nothing listens there
    result = env.devagent("up", name, "--image", ref, "--workspace", str(env.workspace(name)))
    assert result.returncode == 20, result.stderr
    assert f"Error: the registry {ref.split('/', maxsplit=1)[0]} does not answer\n" in result.stderr
    assert_nothing_left(env, name, docker_client)


def test_an_image_devagent_did_not_make_is_refused_and_removed_again(env: Env, name: str, open_registry: Registry,
                                                                      docker_client, untag: list[str]) -> None:
    ref = f"{open_registry.address}/devagent-test/plain:{name}"
    untag.append(ref)
    push_plain_image(docker_client, ref)

    result = env.devagent("up", name, "--image", ref, "--workspace", str(env.workspace(name)))
    assert result.returncode == 2, result.stderr
    assert f"Error: {ref} is not a devagent image (it has no devagent.* labels)\n" in result.stderr
    assert not docker_client.images.list(name=ref.rsplit(":", 1)[0])  # pulled to be looked at, then removed
    assert_nothing_left(env, name, docker_client)
