"""The GPU ledger against the real Docker Engine: holders made as real containers (created with GPU requests, never
started), `devagent gpus` naming them, `up` refusing a held GPU, two users racing for the last free GPU, a lease
released by `down` and a stale one reclaimed.

This machine has no GPU: its inventory is the test-only stand-in DEVAGENT_TEST_GPU_INVENTORY (a JSON file in
nvidia-smi's columns, see core/gpu/ledger.py's stand_in_inventory); everything else is real. Its engine has no NVIDIA
runtime, so an `up` that gets past the ledger fails at start (GPU_UNAVAILABLE, 8) and rolls its lease back: the race
is observed with `up` paused (tests/integration/paused_devagent.py) right after it took its lease.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_IMAGE, Env, container_names, wait_for

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("paused_devagent.py")
EVE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ3bW1wd6MXH1rXkAplDG1Q3Jy4Q0zOtmrDBD5WxQUv"  # a key of someone else's


class Server:
    """Two stand-in GPUs with UUIDs of this test's own (lease names are per GPU, so other runs cannot meet them)."""

    def __init__(self, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
        tag = secrets.token_hex(4)
        self.uuids = [f"GPU-{tag}-0000-4000-8000-00000000000{i}" for i in range(2)]
        self.inventory = tmp_path / "gpus.json"
        self.inventory.write_text(json.dumps({"gpus": "".join(
            f"{i}, {u}, Stand-in GPU, {1024 * (2 - i)}, 81920, 0\n" for i, u in enumerate(self.uuids))}))
        self.client = docker_client
        self.made: list[str] = []

    def holder(self, name: str, *options: str) -> None:
        """A container of someone else's that holds GPUs: created, not started (this engine could not start it)."""
        subprocess.run(["docker", "create", "--name", name, *options, BASE_IMAGE, "true"], check=True,
                       capture_output=True)
        self.made.append(name)

    def environ(self, env: Env) -> dict[str, str]:
        return {**env.environ, "DEVAGENT_TEST_GPU_INVENTORY": str(self.inventory), "PYTHONPATH": str(REPO)}

    def leases(self) -> dict[str, str]:
        """GPU UUID → the environment its lease names."""
        rows = self.client.api.containers(all=True, filters={"label": "devagent.gpu-lease"})
        return {r["Labels"]["devagent.gpu-lease"]: r["Labels"]["devagent.lease-env"] for r in rows
                if r["Labels"]["devagent.gpu-lease"] in self.uuids}

    def cleanup(self) -> None:
        names = self.made + [f"devagent-gpu-{u}" for u in self.uuids]
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)


@pytest.fixture
def server(tmp_path: Path, docker_client) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    s = Server(tmp_path, docker_client)
    yield s
    s.cleanup()


def devagent(server: Server, env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devagent", *args], capture_output=True, text=True,
                          env=server.environ(env), timeout=300, check=False)


def up_args(env: Env, name: str, *extra: str) -> list[str]:
    return ["up", name, "--base-image", BASE_IMAGE, "--workspace", str(env.workspace(name)), "--memory", "2g",
            *extra]


class PausedUp:
    """`up` paused right after it took its GPU leases (or ended before that)."""

    def __init__(self, server: Server, env: Env, name: str, *extra: str) -> None:
        self.marker = env.root / f"paused-{name}"
        self.marker.unlink(missing_ok=True)  # left by an up of the same name that was killed while paused
        environ = {**server.environ(env), "DEVAGENT_TEST_PAUSE_AT": "leased",
                   "DEVAGENT_TEST_PAUSED_FILE": str(self.marker)}
        self.proc = subprocess.Popen([sys.executable, str(HARNESS), *up_args(env, name, *extra)], env=environ,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> bool:
        """True once paused with its leases, False once it ended."""
        wait_for(lambda: self.marker.exists() or self.proc.poll() is not None, timeout=120, interval=0.02,
                 message="up to take its lease or end")
        return self.marker.exists()

    def resume(self) -> tuple[int, str]:
        self.marker.unlink()
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err

    def result(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err


def test_devagent_gpus_names_every_container_that_holds_a_gpu(
        server: Server, env: Env, name: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    server.holder(f"{name}-one", "--gpus", "device=1")
    server.holder(f"{name}-all", "--gpus", "all")
    server.holder(f"{name}-priv", "--privileged")
    server.holder(f"{name}-zero", "--gpus", "device=0")
    server.holder(f"{name}-none")
    result = devagent(server, env, "gpus")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["GPU", "UUID", "NAME", "MEMORY", "(GiB)", "UTIL", "HELD", "BY"]
    assert lines[1].startswith(f"0    {server.uuids[0]}  Stand-in GPU  2.0 / 80.0")
    text = result.stdout
    assert f"container {name}-one (created, --gpus device=1)" in text
    assert f"container {name}-priv (created, privileged)" in text
    assert text.count(f"container {name}-all (created, --gpus all)") == 2  # on both GPUs
    assert f"{name}-none" not in text
    envelope = json.loads(devagent(server, env, "gpus", "--json").stdout)
    assert envelope["version"] == 1
    assert [sorted(h["name"] for h in g["holders"] if h["name"].startswith(name)) for g in envelope["gpus"]] == [
        [f"{name}-all", f"{name}-priv", f"{name}-zero"], [f"{name}-all", f"{name}-one", f"{name}-priv"]]


def test_up_refuses_a_gpu_another_container_holds_and_makes_nothing(
        server: Server, env: Env, name: str, built_image: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    server.holder(f"{name}-bob", "--gpus", f"device={server.uuids[1]}")
    result = devagent(server, env, *up_args(env, name, "--gpus", "1"))
    assert result.returncode == 19, result.stderr
    assert (f"Error: GPU 1 ({server.uuids[1]}) is held by container {name}-bob (created, "
            f"--gpus device={server.uuids[1]})\n  hint: `devagent gpus` shows who holds what") in result.stderr
    assert container_names(docker_client, name) == [f"{name}-bob"]
    assert server.leases() == {}


def test_any_n_gets_past_the_ledger_to_the_engine_and_its_failed_start_gives_the_lease_back(
        server: Server, env: Env, name: str, built_image: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    up = PausedUp(server, env, name, "--gpus", "any:1")
    assert up.wait()
    assert server.leases() == {server.uuids[1]: name}  # GPU 1: the most free memory
    [made] = [n for n in container_names(docker_client, name)]
    inspect = docker_client.api.inspect_container(made)
    assert inspect["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [server.uuids[1]]  # by UUID, never Count
    code, err = up.resume()
    assert code == 8, err
    assert "no NVIDIA runtime" in err
    assert server.leases() == {}
    assert container_names(docker_client, name) == []


def test_two_users_racing_for_the_last_free_gpu_one_gets_it_and_the_other_is_refused(
        server: Server, tmp_path: Path, name: str, built_image: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    server.holder(f"{name}-bob", "--gpus", "device=0")  # GPU 1 is the last free one
    users = []
    for who in ("alice", "carol"):
        root = tmp_path / who
        (root / ".ssh").mkdir(parents=True, mode=0o700)
        users.append(Env(root))
    for run in range(20):
        ups = [PausedUp(server, user, f"{name}-{who}{run}", "--gpus", "any:1")
               for user, who in zip(users, ("a", "c"), strict=True)]
        paused = [up.wait() for up in ups]
        assert sorted(paused) == [False, True], f"run {run}: {[up.proc.poll() for up in ups]}"
        winner, loser = (ups[0], ups[1]) if paused[0] else (ups[1], ups[0])
        code, err = loser.result()
        assert code == 19, f"run {run}: {err}"
        assert "devagent gpus" in err
        assert server.leases() == {server.uuids[1]: f"{name}-{'a' if winner is ups[0] else 'c'}{run}"}
        code, err = winner.resume()
        assert code == 8, f"run {run}: {err}"
        assert server.leases() == {}


def test_down_releases_the_lease_a_killed_up_left_and_a_stale_lease_is_reclaimed(
        server: Server, env: Env, name: str, built_image: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    first = PausedUp(server, env, name, "--gpus", "1")
    assert first.wait()
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.communicate()
    assert server.leases() == {server.uuids[1]: name}  # SIGKILL: nothing undone
    shown = devagent(server, env, "gpus").stdout
    assert f"environment {name} (" in shown
    result = devagent(server, env, "down", name)
    assert result.returncode == 0, result.stderr
    assert f"✔ removed GPU lease {server.uuids[1]}" in result.stdout
    assert server.leases() == {}

    # Killed again; this time the container is removed by hand: the lease is stale, and the next up takes it over.
    second = PausedUp(server, env, name, "--gpus", "1")
    assert second.wait()
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.communicate()
    left = container_names(docker_client, name)
    assert left, server.leases()
    subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=True)
    other = f"{name}-next"
    third = PausedUp(server, env, other, "--gpus", "1")
    assert third.wait()
    assert server.leases() == {server.uuids[1]: other}
    code, _ = third.resume()
    assert code == 8
    assert server.leases() == {}
    devagent(server, env, "down", name)  # the alias and host key the killed up left


FAKE_NVIDIA_SMI = """#!/bin/sh
# TEST STAND-IN for the server's nvidia-smi (this machine has no GPU): the two queries devagent asks.
case "$*" in
  *--query-gpu=*) printf '%s\\n' {gpus} ;;
  *--query-compute-apps=*) printf '%s\\n' '{uuid1}, 4242, python, 2048' ;;
  *) exit 6 ;;
esac
"""


def test_devagent_gpus_host_reads_the_servers_engine_and_nvidia_smi_over_ssh(
        topology, server: Server, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """From the laptop (which reaches neither the engine nor the server's loopback but through ssh): the server's
    containers and a stand-in `nvidia-smi` first on the server user's PATH (the test sshd's SetEnv)."""
    fakebin = Path(topology.root) / "fakebin"
    fakebin.mkdir(mode=0o755)
    rows = " ".join(f"'{i}, {u}, Stand-in GPU, 0, 81920, {i * 10}'" for i, u in enumerate(server.uuids))
    (fakebin / "nvidia-smi").write_text(FAKE_NVIDIA_SMI.format(gpus=rows, uuid1=server.uuids[1]))
    (fakebin / "nvidia-smi").chmod(0o755)
    sshd = topology.start_sshd(extra=[f"SetEnv PATH={fakebin}:/usr/local/bin:/usr/bin:/bin"])
    topology.laptop.add_alias("gpu-fake", sshd, user="devagent-srv")
    server.holder(f"{name}-bob", "--gpus", f"device={server.uuids[0]}")
    result = topology.laptop.devagent("gpus", "--host", "gpu-fake")
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith(f"0    {server.uuids[0]}  Stand-in GPU  0.0 / 80.0      0%  container {name}-bob ")
    assert lines[2].startswith(f"1    {server.uuids[1]}  Stand-in GPU  0.0 / 80.0     10%  pid 4242 (python, "
                               "host pid, 2.0 GiB)")

    # DEVAGENT_HOST names the server when --host does not, as for up.
    assert topology.laptop.devagent("gpus", env={"DEVAGENT_HOST": "gpu-fake"}).stdout == result.stdout

    # A server without nvidia-smi: said so, and the containers that ask for GPUs are still listed.
    result = topology.laptop.devagent("gpus", "--host", "gpu-server")
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("no GPU inventory: nvidia-smi exited with 127")
    assert f"container {name}-bob (created) asks for {server.uuids[0]}: --gpus device={server.uuids[0]}" \
        in result.stdout


def test_the_engine_says_until_when_a_checks_printed_record_stays_the_last(
        server: Server, name: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    """Issue 22: `devagent gpus` keeps a holder's printed record until Docker's next check can have run (its
    last check's end plus the interval, on this machine's clock), instead of one inspect per call."""
    import time

    from devagent.control.engine.docker_engine import Engine
    from devagent.core import health

    record = '{"version": 1, "gpus": {}}'
    server.made.append(f"{name}-checked")
    subprocess.run(["docker", "run", "-d", "--name", f"{name}-checked", "--health-cmd",
                    f"echo '{health.USAGE_MARK}{record}'; echo ok", "--health-interval", "2s", BASE_IMAGE,
                    "sleep", "600"], check=True, capture_output=True)
    engine = Engine()
    # Read between two checks (under load one may be running right now: its result not stored yet).
    printed = wait_for(lambda: (p := engine.health_usage(f"{name}-checked", clock_is_ours=True)).until > 0 and p,
                       timeout=60, message="a first health check")
    assert isinstance(printed, health.Printed) and printed.record == record
    assert printed.until <= time.time() + 2
    assert engine.health_usage(f"{name}-checked", clock_is_ours=False) == health.Printed(record)  # a server's


def test_ls_all_and_gpus_show_the_labels_anyone_wrote_escaped(
        server: Server, env: Env, name: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    """Anyone on the engine can label a container: its owner, workspace and lease labels reach `ls --all` and
    `devagent gpus` shown as Control Pictures, one row each, never as ESC sequences or line breaks."""
    osc52 = "\x1b]52;c;ZXZpbA==\x07"
    forged = f"\n{name}-forged         running    healthy     40001  dev"
    uuid = server.uuids[0]
    server.holder(name, "--label", "devagent.managed=true", "--label", f"devagent.name={name}",
                  "--label", f"devagent.owner-name=eve{osc52}", "--label", f"devagent.workspace=/w{forged}",
                  "--label", f"devagent.owner-key={EVE}",
                  "--label", "devagent.user=dev\t\x9b2J")
    server.holder(f"devagent-gpu-{uuid}", "--label", f"devagent.gpu-lease={uuid}", "--label",
                  f"devagent.lease-env={name}", "--label", f"devagent.lease-owner=eve{osc52}{forged}", "--label",
                  "devagent.lease-since=now", "--label", "devagent.lease-shared=false", "--label",
                  "devagent.lease-up-id=x")
    listed = devagent(server, env, "ls", "--all")
    assert listed.returncode == 0, listed.stderr
    assert_inert(listed.stdout)
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(name)]
    assert row == (f"{name:20} created    -               -  dev␉\\x9b2J None     -            eve␛]52;c;ZXZpbA==␇ "
                   f"/w␊{name}-forged         running    healthy     40001  dev")
    held = devagent(server, env, "gpus")
    assert held.returncode == 0, held.stderr
    assert_inert(held.stdout)
    assert held.stdout.splitlines()[1].endswith(
        f"environment {name} (eve␛]52;c;ZXZpbA==␇␊{name}-forged         running    healthy     40001  dev, "
        "since now)")
    envelope = json.loads(devagent(server, env, "gpus", "--json").stdout)  # JSON escapes them itself
    assert envelope["gpus"][0]["holders"][0]["detail"] == f"eve{osc52}{forged}, since now"


def assert_inert(text: str) -> None:
    """TEXT holds no character a terminal acts on but the line breaks between rows."""
    assert [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F] == [], text
