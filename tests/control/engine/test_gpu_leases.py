"""`up` and `down` with the GPU ledger, against the in-memory engine (tests/control/fakes.py) and a hand-made
inventory: the choice, the refusal before anything is made, the lease taken after the container and given back by
the rollback, a lease lost to a race, a stale lease reclaimed, `--recreate` keeping its GPUs, `down` releasing.
The same against the real engine, two users racing included: tests/integration/test_gpu_ledger.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devagent.cli import main
from devagent.control.engine.engine_data import LEASE_LABEL
from devagent.control.engine.gpu_leases import nvidia_smi_inventory
from devagent.control.lifecycle.provision import GPU_UUIDS_LABEL, Provisioner
from devagent.control.paths import Paths
from devagent.core import layout
from devagent.core.gpu.ledger import GIB, Gpu, GpuProcess, Inventory, Lease, lease_name
from devagent.core.spec import EnvSpec, GpuRequest, parse_gpus
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeContainer, FakeEngine

A, B = "GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111"
INVENTORY = Inventory((Gpu(0, A, "H200", 10 * GIB, 80 * GIB), Gpu(1, B, "H200", 1 * GIB, 80 * GIB)))
NO_RUNTIME = DevagentError("GPUs were requested but this Docker Engine cannot give them (no NVIDIA runtime)",
                           status=ExitStatus.GPU_UNAVAILABLE)


def spec(tmp_path: Path, gpus: str, *, share: bool = False) -> EnvSpec:
    return EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path / "code"), gpus=parse_gpus(gpus),
                   share_gpus=share)


def lease_for(engine: FakeEngine, uuid: str, environment: str) -> Lease:
    lease = engine.create_lease(lease_name(uuid), {
        LEASE_LABEL: uuid, "devagent.lease-env": environment, "devagent.lease-owner": "bob@gpu1",
        "devagent.lease-since": "2026-12-01T03:00:00+00:00", "devagent.lease-shared": "false",
        "devagent.lease-up-id": "bob-up"})
    assert lease is not None
    return lease


def environment(engine: FakeEngine, name: str, *, gpus: tuple[str, ...] = ()) -> None:
    c = engine.add(name, labels={"devagent.managed": "true", "devagent.name": name,
                                 GPU_UUIDS_LABEL: ",".join(gpus)})
    c.options["gpus"] = GpuRequest("list", gpus)


class Harness:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.seen: dict[str, list[Lease]] = {}
        self.provisioner = Provisioner(engine=engine, paths=Paths.from_environ(),
                                       gpu_inventory=lambda: INVENTORY)
        self.provisioner.on_step = self.on_step  # type: ignore[method-assign]
        self.hooks: dict[str, object] = {}

    def on_step(self, step: str) -> None:
        self.seen[step] = self.engine.leases()
        hook = self.hooks.get(step)
        if callable(hook):
            hook()

    def up(self, env: EnvSpec, **kwargs: Any) -> DevagentError:
        with pytest.raises(DevagentError) as err:
            self.provisioner.up(env, **kwargs)
        return err.value


def test_any_n_leases_the_free_gpu_with_most_free_memory_by_uuid_and_a_failed_start_gives_it_back(
        tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.fail("start", NO_RUNTIME)
    h = Harness(engine)
    err = h.up(spec(tmp_path, "any:1"))
    assert err.status == ExitStatus.GPU_UNAVAILABLE  # this engine has no NVIDIA runtime: past the ledger, at start
    [lease] = h.seen["leased"]
    assert (lease.gpu_uuid, lease.environment) == (B, "exp")  # GPU 1: 79 GiB free against 70
    assert len(engine.called("start")) == 1
    assert [c for c, _ in engine.calls].index("create_lease") > [c for c, _ in engine.calls].index("create")
    assert engine.leases() == [] and engine.names() == []  # rolled back: container and lease


def test_a_listed_gpu_another_environment_leases_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    engine = FakeEngine()
    environment(engine, "bob-env", gpus=(B,))
    lease_for(engine, B, "bob-env")
    err = Harness(engine).up(spec(tmp_path, "0,1"))
    assert (err.message, err.status) == (
        f"GPU 1 ({B}) is held by environment bob-env (bob@gpu1, since 2026-12-01T03:00:00+00:00)",
        ExitStatus.GPU_BUSY)
    assert engine.called("create") == [] and engine.called("build") == []


def test_a_gpu_leased_by_another_up_between_the_choice_and_the_lease_is_refused_and_rolled_back(
        tmp_path: Path) -> None:
    engine = FakeEngine()
    h = Harness(engine)

    def other_up_wins() -> None:  # another user's up, from another DEVAGENT_HOME, at this moment
        environment(engine, "alice-env", gpus=(B,))
        lease_for(engine, B, "alice-env")
    h.hooks["created"] = other_up_wins
    err = h.up(spec(tmp_path, "1"))
    assert (err.message, err.status) == (
        f"GPU 1 ({B}) is held by environment alice-env (bob@gpu1, since 2026-12-01T03:00:00+00:00)",
        ExitStatus.GPU_BUSY)
    assert engine.names() == ["alice-env"]
    assert [lease.environment for lease in engine.leases()] == ["alice-env"]


def test_a_lease_whose_environment_is_gone_is_reclaimed(tmp_path: Path) -> None:
    engine = FakeEngine()
    stale = lease_for(engine, B, "removed-by-hand")  # no container of that environment is left
    engine.fail("start", NO_RUNTIME)
    h = Harness(engine)
    h.up(spec(tmp_path, "1"))
    [lease] = h.seen["leased"]
    assert (lease.environment, lease.id != stale.id) == ("exp", True)


def test_recreate_keeps_the_gpus_any_n_gave_and_its_rollback_keeps_the_old_lease(tmp_path: Path) -> None:
    engine = FakeEngine()
    environment(engine, "exp", gpus=(A,))
    old = lease_for(engine, A, "exp")
    engine.fail("start", NO_RUNTIME)
    h = Harness(engine)
    h.up(spec(tmp_path, "any:1"), recreate=True)
    [made] = [c for c in engine.containers.values() if c.name != "exp"] or [None]
    assert made is None  # rolled back; but it was made for the GPU the environment has, and leased nothing new:
    # the old lease made above, then up's attempt, which found the environment's own lease and kept it
    assert engine.called("create_lease") == [(lease_name(A),), (lease_name(A),)]
    assert h.seen["leased"] == [old]
    assert engine.leases() == [old]


def test_share_gpus_takes_a_gpu_another_holds_without_taking_its_lease(tmp_path: Path) -> None:
    engine = FakeEngine()
    environment(engine, "bob-env", gpus=(B,))
    bobs = lease_for(engine, B, "bob-env")
    engine.fail("start", NO_RUNTIME)
    h = Harness(engine)
    h.up(spec(tmp_path, "0,1", share=True))
    assert {(x.gpu_uuid, x.environment, x.shared) for x in h.seen["leased"]} == {
        (A, "exp", True), (B, "bob-env", False)}
    assert engine.leases() == [bobs]


def test_down_releases_the_environments_leases_and_reclaims_stale_ones(tmp_path: Path) -> None:
    engine = FakeEngine()
    environment(engine, "exp", gpus=(A,))
    environment(engine, "bob-env", gpus=(B,))
    lease_for(engine, A, "exp")
    bobs = lease_for(engine, B, "bob-env")
    lease_for(engine, "GPU-cccccccc-2222", "gone")
    removed = Provisioner(engine=engine, paths=Paths.from_environ()).down("exp")
    assert removed == ["container exp", f"GPU lease {A}"]
    assert engine.leases() == [bobs]


def test_a_remote_servers_inventory_comes_from_its_nvidia_smi() -> None:
    asked: list[list[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:  # as ServerLink.run answers
        asked.append(list(argv))
        if "--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu" in argv:
            return subprocess.CompletedProcess(argv, 0, f"0, {A}, NVIDIA H200, 1024, 143771, 7\n".encode(), b"")
        return subprocess.CompletedProcess(argv, 0, f"{A}, 4242, python, 1000\n".encode(), b"")
    inventory = nvidia_smi_inventory(run)
    assert [g.uuid for g in inventory.gpus] == [A] and [p.pid for p in inventory.processes] == [4242]
    assert asked[0][0] == "nvidia-smi" and asked[0][-1] == "--format=csv,noheader,nounits"

    def missing(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 127, b"", b"bash: line 1: nvidia-smi: command not found\n")
    assert nvidia_smi_inventory(missing) == Inventory(
        error="nvidia-smi exited with 127: bash: line 1: nvidia-smi: command not found")


def test_the_notebook_header_gets_what_was_asked_and_given_by_uuid_and_says_when_it_shares(tmp_path: Path) -> None:
    engine = FakeEngine()
    environment(engine, "bob-env", gpus=(A,))
    lease_for(engine, A, "bob-env")
    h = Harness(engine)
    contexts: list[dict[str, object]] = []

    def keep_context_then_fail(c: FakeContainer) -> None:
        contexts.extend(json.loads(f.data) for path, f in c.files.items() if path.endswith(layout.LAUNCH_CONTEXT))
        raise NO_RUNTIME
    engine.on_start = keep_context_then_fail
    h.up(spec(tmp_path, "0,1", share=True))
    assert [c["gpus"] for c in contexts] == [
        f"0,1 → GPU 0 {A}, GPU 1 {B} · shared knowingly (--share-gpus)"]
    assert [x.environment for x in engine.leases()] == ["bob-env"]  # the holder keeps its lease; exp's is gone


def test_a_ctrl_c_just_as_a_lease_is_made_gives_it_back(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.fail("create_lease", KeyboardInterrupt(), after=True)  # the engine made it; we never heard back
    h = Harness(engine)
    err = h.up(spec(tmp_path, "any:1"))
    assert err.status == ExitStatus.INTERRUPTED
    assert engine.leases() == [] and engine.names() == []


def test_a_lease_a_killed_up_of_the_same_environment_left_is_reclaimed_not_adopted(tmp_path: Path) -> None:
    """Adopting it would let a concurrent up, which saw it stale a moment before, remove it under us."""
    engine = FakeEngine()
    left = lease_for(engine, B, "exp")  # its up was killed; its container is gone
    engine.fail("start", NO_RUNTIME)
    h = Harness(engine)
    h.up(spec(tmp_path, "1"))
    [lease] = h.seen["leased"]
    assert (lease.environment, lease.id != left.id, lease.up_id != "bob-up") == ("exp", True, True)
    assert engine.leases() == []  # this up's own lease, given back by its rollback


def test_devagent_gpus_shows_labels_others_wrote_escaped_one_row_each(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # Anyone on the engine can make a lease container and label it, and name a process as they like: an owner
    # that writes the clipboard (OSC 52), an environment whose line break forges a row, a process with a CSI.
    engine = FakeEngine()
    lease = engine.create_lease(lease_name(A), {
        LEASE_LABEL: A, "devagent.lease-env": "exp\n1    GPU-x  H200  free", "devagent.lease-since": "now\t",
        "devagent.lease-owner": "bob\x1b]52;c;ZXZpbA==\x07", "devagent.lease-shared": "false",
        "devagent.lease-up-id": "u"})
    assert lease is not None
    environment(engine, "exp\n1    GPU-x  H200  free")  # its environment is there: the lease is live
    hostile = Inventory((Gpu(0, A, "H200\x9b2J", 10 * GIB, 80 * GIB, 5),),
                        (GpuProcess(A, 7, "py\x1b[2J", 1 * GIB, container=""),))
    site = SimpleNamespace(engine=engine, gpu_inventory=lambda: hostile, engine_clock_is_ours=True)
    monkeypatch.setattr("devagent.cli.site_options.open_site", lambda **_: contextlib.nullcontext(site))
    assert main(["gpus"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "GPU  UUID               NAME        MEMORY (GiB)  UTIL  HELD BY",
        "0    GPU-aaaaaaaa-0000  H200\\x9b2J  10.0 / 80.0     5%  "
        "environment exp␊1    GPU-x  H200  free (bob␛]52;c;ZXZpbA==␇, since now␉)",
        "                                                        pid 7 (py␛[2J, outside containers, 1.0 GiB)"]
    assert main(["gpus", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out  # JSON escapes them itself
    holders = json.loads(out)["gpus"][0]["holders"]
    assert [(h["name"], h["detail"]) for h in holders] == [
        ("exp\n1    GPU-x  H200  free", "bob\x1b]52;c;ZXZpbA==\x07, since now\t"),
        ("7", "py\x1b[2J, outside containers, 1.0 GiB")]

    # Without an inventory the containers that ask for GPUs are listed on their own: their device ids too.
    broken = Inventory(error="nvidia-smi exited with 9: \x1b[31mno driver")
    site.gpu_inventory = lambda: broken
    other = engine.add("train", labels={})
    other.options["gpus"] = GpuRequest("list", ("1\n0    GPU-y",))
    assert main(["gpus"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no GPU inventory: nvidia-smi exited with 9: ␛[31mno driver",
        "container train (running) asks for 1␊0    GPU-y: --gpus 1␊0    GPU-y"]
