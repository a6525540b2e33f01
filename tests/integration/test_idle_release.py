"""`up --idle-release` against the real Docker Engine and OpenSSH: an environment whose GPUs idle is never stopped
while someone is logged in through the alias or a `devagent run` runs in it; once nobody is, it gives its GPUs
back — the agent writes the notebook's line and exits 75, the container stops and stays stopped, the ledger counts
its lease free — and `up` again starts it.

This machine has no GPU and its engine no NVIDIA runtime: the environment is made with --gpus none, its GPU's
utilisation comes from the test-only stand-in NVML (DEVAGENT_TEST_NVML, a JSON file in its workspace), the
inventory from DEVAGENT_TEST_GPU_INVENTORY, and its lease is made by hand as `up` would have made it. The limit is
4 s (DEVAGENT_TEST_MIN_IDLE_RELEASE lowers the 5-minute minimum). The same on a real GPU is still to do.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devagent.core.gpu.ledger import lease_name
from tests.integration.conftest import BASE_IMAGE, Env, wait_for

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
LIMIT = 4.0


class Stand:
    def __init__(self, env: Env, name: str, tmp_path: Path) -> None:
        self.env, self.name = env, name
        self.uuid = f"GPU-{secrets.token_hex(4)}-0000-4000-8000-000000000000"
        self.workspace = env.workspace(name)
        self.workspace.mkdir(parents=True)
        self.workspace.chmod(0o777)  # the login user (uid 1000) may write it: the test runs as root
        self.nvml = self.workspace / "nvml.json"
        self.set_utilization(90)
        self.inventory = tmp_path / "gpus.json"
        self.inventory.write_text(json.dumps({"gpus": f"0, {self.uuid}, Stand-in GPU, 0, 81920, 0\n"}))
        self.environ = {**env.environ, "PYTHONPATH": str(REPO), "DEVAGENT_TEST_MIN_IDLE_RELEASE": "1",
                        "DEVAGENT_TEST_NVML": "/home/dev/workspace/nvml.json",
                        "DEVAGENT_TEST_GPU_INVENTORY": str(self.inventory)}

    def set_utilization(self, percent: int) -> None:
        tmp = self.nvml.with_suffix(".tmp")
        tmp.write_text(json.dumps({self.uuid: percent}))
        tmp.chmod(0o644)
        tmp.replace(self.nvml)

    def devagent(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devagent", *args], capture_output=True, text=True,
                              env=self.environ, timeout=300, check=False)

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.devagent("up", self.name, "--base-image", BASE_IMAGE, "--workspace", str(self.workspace),
                             "--memory", "2g", "--idle-release", f"{LIMIT:g}s")

    def record(self) -> dict[str, object]:
        out = subprocess.run(["docker", "exec", self.name, "cat", "/home/dev/.cache/devagent/gpu-usage.json"],
                             capture_output=True, text=True, check=False).stdout
        return json.loads(out) if out.strip() else {}

    def idle_seconds(self) -> float:
        gpus = self.record().get("gpus") or {}
        return float(gpus.get(self.uuid, {}).get("idle_seconds", 0.0)) if isinstance(gpus, dict) else 0.0

    def state(self, docker_client) -> dict[str, object]:  # type: ignore[no-untyped-def]
        return dict(docker_client.api.inspect_container(self.name)["State"])


@pytest.fixture
def stand(env: Env, name: str, tmp_path: Path, docker_client):  # type: ignore[no-untyped-def]
    s = Stand(env, name, tmp_path)
    yield s
    subprocess.run(["docker", "rm", "-f", lease_name(s.uuid)], capture_output=True, check=False)
    s.devagent("down", name)


def test_an_idle_environment_gives_its_gpus_back_only_once_nobody_is_logged_in_or_running(
        stand: Stand, env: Env, name: str, built_image: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    assert (result := stand.up()).returncode == 0, result.stderr
    from devagent.control.engine.docker_engine import Engine
    from devagent.control.engine.engine_data import LEASE_LABEL  # the lease `up --gpus` would have made

    assert Engine().create_lease(lease_name(stand.uuid), {
        LEASE_LABEL: stand.uuid, "devagent.lease-env": name, "devagent.lease-owner": "test@here",
        "devagent.lease-since": "2026-12-07T17:00:00+00:00", "devagent.lease-shared": "false",
        "devagent.lease-up-id": "test"}) is not None

    # Logged in through the alias (a real OpenSSH session): the GPU idles far past the limit, nothing stops.
    session = subprocess.Popen(["ssh", "-F", str(env.ssh_config), "-o", "BatchMode=yes", name, "sleep", "600"],
                               env=env.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["docker", "exec", name, "pgrep", "-f", "sleep 600"],
                                        capture_output=True, check=False).returncode == 0,
                 timeout=60, message="the ssh session to start")
        stand.set_utilization(0)
        wait_for(lambda: stand.idle_seconds() > 3 * LIMIT, timeout=120, message="the GPU to idle for 3 limits")
        assert stand.state(docker_client)["Running"] is True
        shown = stand.devagent("gpus")
        assert shown.returncode == 0, shown.stderr
        assert f"environment {name} (test@here, since 2026-12-07T17:00:00+00:00) · last hour " in shown.stdout
        envelope = json.loads(stand.devagent("gpus", "--json").stdout)
        assert envelope["gpus"][0]["usage"]["environment"] == name
        assert envelope["gpus"][0]["usage"]["idle_seconds"] > 3 * LIMIT
        # Docker's own health check, run in the real image, prints the agent's record: `gpus` reads it with one
        # inspect instead of a get_archive (a check every 30 s: wait for one).
        from devagent.core.gpu.idle_rule import parse_usage

        container = docker_client.containers.get(name).id
        wait_for(lambda: Engine().health_usage(container, clock_is_ours=True).record is not None, timeout=120,
                 message="a health check that prints the usage record")
        printed = parse_usage(Engine().health_usage(container, clock_is_ours=True).record or "")
        assert set(printed) == {stand.uuid} and printed[stand.uuid].idle_seconds > 0

        # A `devagent run` (started outside any ssh session) holds it as well, after the session ends.
        run = subprocess.Popen(["docker", "exec", name, "devagent", "run", "--", "sleep", "40"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["docker", "exec", name, "pgrep", "-f", "devagent run"],
                                        capture_output=True, check=False).returncode == 0,
                 timeout=60, message="devagent run to start")
    finally:
        session.terminate()
        session.wait(30)
    time.sleep(3 * LIMIT)  # nobody logged in, the GPU idle: only the run holds it now
    assert run.poll() is None, "the run ended too early for this check"
    assert stand.state(docker_client)["Running"] is True
    run.wait(120)
    wait_for(lambda: stand.state(docker_client)["Running"] is not True, timeout=120, interval=0.5,
             message="the environment to give its GPUs back")

    state = stand.state(docker_client)
    assert state["ExitCode"] == 75 and state["OOMKilled"] is False
    inspect = docker_client.api.inspect_container(name)
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "no"  # nothing brings it back on its own
    notebook = (stand.workspace / "lab-notebook.md").read_text()
    assert "· GPUs given back\n\nThe GPUs were idle for 4s with no ssh session open" in notebook
    assert f"`devagent up {name}` takes GPUs anew." in notebook
    shown = stand.devagent("gpus").stdout
    assert shown.splitlines()[1].endswith("  free"), shown  # its lease no longer holds the GPU
    time.sleep(2 * LIMIT)
    assert stand.state(docker_client)["Running"] is not True

    # `up` again starts it, workspace and home as they were.
    stand.set_utilization(90)
    assert (result := stand.up()).returncode == 0, result.stderr
    assert stand.state(docker_client)["Running"] is True
    assert env.ssh(name, "test", "-f", "/home/dev/.cache/devagent/gpu-usage.json").returncode == 0
