"""Integration tests against the real Docker Engine, the offline base image and the real OpenSSH client.

Everything a test creates carries a per-run name prefix and is force-removed at the end of the session. In CI
(CI=true) a missing engine or base image is a failure, never a skip.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BASE_IMAGE = "devagent-base:bookworm"
# Debian 13's OpenSSH 10: for what sshd >= 9.8 does differently (PerSourcePenalties). `make test-images` builds it.
NEWER_OPENSSH_BASE_IMAGE = "devagent-base:trixie"
RUN_PREFIX = f"t{secrets.token_hex(2)}-"

pytestmark = pytest.mark.docker


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs every test this machine can run: `make test` sets it up)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        _unavailable(f"no Docker Engine: {exc}")
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        _unavailable(f"the offline base image {BASE_IMAGE} is missing: run `make base-image`")
    yield client
    for name in container_names(client, RUN_PREFIX):
        client.api.remove_container(name, force=True, v=True)
    for volume in home_volumes(client, RUN_PREFIX):  # the homes of environments a failed test left behind
        client.api.remove_volume(volume, force=True)


def home_volumes(client, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of the home volumes of environments whose names start with PREFIX."""
    rows = client.api.volumes(filters={"name": f"devagent-home-{prefix}"}).get("Volumes") or []
    return sorted(v["Name"] for v in rows if v["Name"].startswith(f"devagent-home-{prefix}"))


def container_names(client, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of all containers starting with PREFIX, from one list call (no per-container inspect that
    could race with a container going away)."""
    rows = client.api.containers(all=True, filters={"name": prefix})
    return sorted(n.lstrip("/") for row in rows for n in row["Names"] if n.lstrip("/").startswith(prefix))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Env:
    """One isolated user: HOME, DEVAGENT_HOME and DEVAGENT_SSH_CONFIG in a temp folder."""

    root: Path

    @property
    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.root), DEVAGENT_HOME=str(self.home),
                   DEVAGENT_SSH_CONFIG=str(self.ssh_config))
        return env

    @property
    def home(self) -> Path:
        return self.root / ".ssh" / "devagent"

    @property
    def ssh_config(self) -> Path:
        return self.root / ".ssh" / "config"

    def paths_lock(self, name: str) -> Path:
        """The per-environment lock `up` and `down` hold."""
        return self.home / "locks" / f"{name}.lock"

    def workspace(self, name: str) -> Path:
        return self.root / "workspaces" / name

    def devagent(self, *args: str, timeout: float = 300, check: bool = False) -> Result:
        proc = subprocess.run([sys.executable, "-m", "devagent", *args], capture_output=True, text=True,
                              env=self.environ, timeout=timeout, check=False)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"devagent {' '.join(args)} failed ({proc.returncode}):\n{result.output}")
        return result

    def up(self, name: str, *extra: str, check: bool = True, base_image: str = BASE_IMAGE) -> Result:
        return self.devagent("up", name, "--base-image", base_image, "--workspace", str(self.workspace(name)),
                             "--memory", "2g", *extra, check=check)

    def ssh(self, name: str, *command: str, options: tuple[str, ...] = (), timeout: float = 60) -> Result:
        proc = subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", *options, name, *command],
                              capture_output=True, text=True, env=self.environ, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def env(tmp_path: Path, docker_client: object) -> Env:
    root = tmp_path / "user"
    (root / ".ssh").mkdir(parents=True, mode=0o700)
    return Env(root)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"{RUN_PREFIX}{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def built_image(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the derived image once for the session, so each test's `up` measures the rest."""
    root = tmp_path_factory.mktemp("builder")
    (root / ".ssh").mkdir(mode=0o700)
    result = Env(root).devagent("image", "build", "--base-image", BASE_IMAGE, check=True, timeout=900)
    return result.stdout.split()[2]


@pytest.fixture(scope="session")
def newer_openssh_image(docker_client, tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    """The derived image of NEWER_OPENSSH_BASE_IMAGE, built once for the session."""
    try:
        docker_client.images.get(NEWER_OPENSSH_BASE_IMAGE)
    except Exception:
        _unavailable(f"the base image {NEWER_OPENSSH_BASE_IMAGE} is missing: run `make test-images`")
    root = tmp_path_factory.mktemp("builder-newer-openssh")
    (root / ".ssh").mkdir(mode=0o700)
    result = Env(root).devagent("image", "build", "--base-image", NEWER_OPENSSH_BASE_IMAGE, check=True, timeout=900)
    return result.stdout.split()[2]


def wait_for(condition: Callable[[], object], *, timeout: float = 30, interval: float = 0.2,
             message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def assert_nothing_left(env: Env, name: str, docker_client, *, workspace_kept: bool = False) -> None:  # type: ignore[no-untyped-def]
    """No container of NAME (also none under a temporary name), no home volume, no ssh entry, no pinned key, no
    host key, no lock;
    and no workspace folder, unless WORKSPACE_KEPT (`down` keeps it, files and all)."""
    assert container_names(docker_client, name) == []
    assert home_volumes(docker_client, name) == []
    if env.ssh_config.exists():
        assert "devagent" not in env.ssh_config.read_text()
    managed = env.home / "ssh_config"
    assert not managed.exists() or name not in managed.read_text()
    known = env.home / "known_hosts"
    assert not known.exists() or name not in known.read_text()
    assert not list((env.home / "hostkeys").glob(f"{name}*")) if (env.home / "hostkeys").exists() else True
    assert not env.paths_lock(name).exists()
    assert env.workspace(name).exists() == workspace_kept


@pytest.fixture
def topology(docker_client: object) -> Iterator[object]:
    """The laptop -> GPU server topology (tests/integration/topology.py): a laptop in its own network and mount
    namespaces, two test sshds on this machine's loopback (aliases gpu-server, gpu-server2, gpu-nodock)."""
    from tests.integration.topology import open_topology

    yield from open_topology()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[object]:
    """One real two-node Slurm for the session's Slurm tests (tests/integration/slurm_cluster.py)."""
    from tests.integration.slurm_cluster import open_cluster

    yield from open_cluster()


@pytest.fixture
def cluster(slurm_cluster: Any, docker_client: object) -> Iterator[Any]:
    """The session's Slurm cluster, with no job left by the test before or after (also when it fails)."""
    slurm_cluster.cancel_all()
    yield slurm_cluster
    slurm_cluster.cancel_all()
