"""An environment that gave its GPUs back (its agent exited with RELEASED_EXIT for its idle limit) holds no GPU in
the ledger: its leases are free for another environment, `up NAME` leases its GPUs anew before its container
starts (and gives them back when the start fails), a GPU taken meanwhile is refused, and a lease made after the
release (an `up` starting it again) is not reclaimed. An environment stopped any other way keeps its leases.
`devagent gpus` reads each holder's record of its last hour. Against the in-memory engine (tests/control/fakes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devagent.control.engine.engine_data import ArchiveFile, ContainerRow
from devagent.control.engine.gpu_leases import GpuLedger
from devagent.control.lifecycle.provision import GPU_UUIDS_LABEL, Provisioner
from devagent.control.paths import Paths
from devagent.core import layout
from devagent.core.gpu.idle_rule import RELEASED_EXIT, GpuUsage
from devagent.core.gpu.ledger import HolderUsage, envelope, render_table
from devagent.core.spec import EnvSpec, GpuRequest, parse_gpus
from devagent.errors import DevagentError, ExitStatus
from tests.control.engine.test_gpu_leases import INVENTORY, NO_RUNTIME, A, B, lease_for
from tests.control.fakes import FakeContainer, FakeEngine


def env_container(engine: FakeEngine, name: str, gpus: tuple[str, ...], *, status: str = "running"
                  ) -> FakeContainer:
    c = engine.add(name, status=status, labels={"devagent.managed": "true", "devagent.name": name,
                                                "devagent.user": "dev", GPU_UUIDS_LABEL: ",".join(gpus)})
    c.options["gpus"] = GpuRequest("list", gpus)
    return c


def ledger(engine: FakeEngine) -> GpuLedger:
    return GpuLedger(engine, inventory=lambda: INVENTORY, clock_is_ours=True)


def row(c: FakeContainer) -> ContainerRow:
    return ContainerRow(c.id, c.name, c.status, dict(c.labels), c.exit_code)


def test_a_released_environment_holds_no_gpu_and_another_takes_it() -> None:
    engine = FakeEngine()
    idle = env_container(engine, "idle-env", (B,))
    lease_for(engine, B, "idle-env")
    assert [h.name for h in ledger(engine).state().holders[B]] == ["idle-env"]
    engine.exit(idle, RELEASED_EXIT)
    state = ledger(engine).state()
    assert state.holders[B] == [] and [s.environment for s in state.stale] == ["idle-env"]
    env_container(engine, "next-env", (B,), status="created")
    [made] = ledger(engine).take([B], environment="next-env", container_id="x", owner="carol@gpu1", up_id="u2",
                                 shared=False)
    assert [lease.environment for lease in engine.leases()] == ["next-env"] and made.gpu_uuid == B


def test_an_environment_stopped_otherwise_keeps_its_gpus() -> None:
    engine = FakeEngine()
    stopped = env_container(engine, "stopped-env", (B,))
    lease_for(engine, B, "stopped-env")
    engine.stop(stopped.id)  # `docker stop`, a server reboot: exit 143, not the idle limit's
    assert [h.name for h in ledger(engine).state().holders[B]] == ["stopped-env"]
    with pytest.raises(DevagentError) as err:
        ledger(engine).take([B], environment="other", container_id="x", owner="o", up_id="u", shared=False)
    assert err.value.status == ExitStatus.GPU_BUSY


def test_a_lease_made_after_the_release_is_live_and_not_reclaimed() -> None:
    engine = FakeEngine()
    idle = env_container(engine, "idle-env", (B,))
    lease_for(engine, B, "idle-env")
    engine.exit(idle, RELEASED_EXIT)
    [again] = ledger(engine).retake(row(idle), owner="alice@gpu1", up_id="restart")  # `up idle-env`, not started yet
    assert again.up_id == "restart"
    assert ledger(engine).state().holders[B] == []  # `devagent gpus` does not inspect: free, for a moment
    assert engine.called("lifetime") == []
    with pytest.raises(DevagentError) as err:  # another up meanwhile: refused, the fresh lease stays
        ledger(engine).take([B], environment="other", container_id="x", owner="o", up_id="u", shared=False)
    assert err.value.status == ExitStatus.GPU_BUSY
    assert engine.leases() == [again]
    ledger(engine).release("someone-else")  # a `down` of another environment leaves it too
    assert engine.leases() == [again]


def test_retake_refuses_a_gpu_taken_meanwhile_and_leaves_nothing() -> None:
    engine = FakeEngine()
    idle = env_container(engine, "idle-env", (A, B))
    engine.exit(idle, RELEASED_EXIT)
    env_container(engine, "bob-env", (B,))
    lease_for(engine, B, "bob-env")
    with pytest.raises(DevagentError) as err:
        ledger(engine).retake(row(idle), owner="alice@gpu1", up_id="restart")
    assert (err.value.message, err.value.status) == (
        f"GPU ? ({B}) is held by environment bob-env (bob@gpu1, since 2026-12-01T03:00:00+00:00)",
        ExitStatus.GPU_BUSY)
    assert [lease.environment for lease in engine.leases()] == ["bob-env"]  # A's fresh lease went again


def test_up_of_a_released_environment_leases_its_gpus_before_it_starts_and_a_failed_start_gives_them_back(
        tmp_path: Path) -> None:
    seen = []

    def on_start(c: FakeContainer) -> None:
        seen.append([(lease.gpu_uuid, lease.environment) for lease in engine.leases()])
        raise NO_RUNTIME

    engine = FakeEngine(on_start=on_start)
    idle = env_container(engine, "exp", (B,))
    engine.exit(idle, RELEASED_EXIT)
    provisioner = Provisioner(engine=engine, paths=Paths.from_environ(),
                              gpu_inventory=lambda: INVENTORY)
    spec = EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path), gpus=parse_gpus("1"))
    with pytest.raises(DevagentError) as err:
        provisioner._reuse(spec, idle.info(), tmp_path / "id")
    assert err.value.status == ExitStatus.GPU_UNAVAILABLE
    assert seen == [[(B, "exp")]]
    assert engine.leases() == []


def test_devagent_gpus_shows_each_holders_last_hour() -> None:
    engine = FakeEngine()
    busy = env_container(engine, "exp", (B,))
    lease_for(engine, B, "exp")
    record = {"version": 1, "time": "2026-12-07T17:00:00+00:00", "gpus": {
        B: {"mean_utilization_percent": 1.6, "idle_seconds": 2760.0, "samples": 240},
        A: {"mean_utilization_percent": 99.0, "idle_seconds": 0.0, "samples": 240}}}  # not its lease: left out
    path = str(layout.gpu_usage_file(Path("/home/dev")))
    busy.files[path] = ArchiveFile(path, json.dumps(record).encode())
    gpus = ledger(engine)
    state = gpus.state()
    usage = gpus.usage(state)
    assert usage == {B: HolderUsage("exp", GpuUsage(1.6, 2760.0, "2026-12-07T17:00:00+00:00"))}
    assert engine.called("read_file") == [(busy.id, path)]
    lines = render_table(state.inventory, state.holders, usage=usage)
    assert lines[2].endswith("environment exp (bob@gpu1, since 2026-12-01T03:00:00+00:00) · last hour 2%, "
                             "idle 46m")
    assert lines[1].endswith("  free")
    gpu = envelope(state.inventory, state.holders, 1, usage)["gpus"]
    assert gpu[1]["usage"] == {"environment": "exp", "mean_utilization_percent_last_hour": 1.6,  # type: ignore
                               "idle_seconds": 2760.0, "recorded_at": "2026-12-07T17:00:00+00:00"}
    assert gpu[0]["usage"] is None  # type: ignore[index]


def test_a_stopped_holder_or_one_without_a_record_costs_no_read_or_one() -> None:
    engine = FakeEngine()
    env_container(engine, "old-agent", (A,))  # made by a devagent whose agent records nothing
    lease_for(engine, A, "old-agent")
    stopped = env_container(engine, "stopped", (B,))
    lease_for(engine, B, "stopped")
    engine.stop(stopped.id)
    gpus = ledger(engine)
    assert gpus.usage(gpus.state()) == {}
    assert [args[0] for args in engine.called("read_file")] == [engine._find("old-agent").id]  # type: ignore


def test_several_holders_records_are_each_read_and_each_keeps_its_own() -> None:
    engine = FakeEngine()
    uuids = [f"GPU-{i}{i}{i}{i}-many" for i in range(4)]
    path = str(layout.gpu_usage_file(Path("/home/dev")))
    for i, uuid in enumerate(uuids):
        c = env_container(engine, f"env-{i}", (uuid,))
        lease_for(engine, uuid, f"env-{i}")
        record = {"version": 1, "time": "t", "gpus": {u: {"mean_utilization_percent": float(i), "idle_seconds": 0}
                                                      for u in uuids}}  # each says something of every GPU
        c.files[path] = ArchiveFile(path, json.dumps(record).encode())
    gpus = ledger(engine)
    assert gpus.usage(gpus.state()) == {u: HolderUsage(f"env-{i}", GpuUsage(float(i), 0.0, "t"))
                                        for i, u in enumerate(uuids)}


def test_the_record_the_health_check_printed_costs_no_archive_read() -> None:
    """Issue 22: one get_archive (~35 ms) per running holder broke `devagent gpus`'s ≤ 1.2× target; the record
    in the last health check's output comes with one inspect. A cut or missing one falls back to the file."""
    engine = FakeEngine()
    printed = env_container(engine, "printed", (A,))
    lease_for(engine, A, "printed")
    cut = env_container(engine, "cut", (B,))
    lease_for(engine, B, "cut")
    record = {"version": 1, "time": "t", "gpus": {A: {"mean_utilization_percent": 7.0, "idle_seconds": 60.0}}}
    printed.health_log = f"gpu-usage: {json.dumps(record)}\nok\n"
    whole = json.dumps({"version": 1, "time": "t2", "gpus": {B: {"mean_utilization_percent": 1.0,
                                                                 "idle_seconds": 5.0}}})
    cut.health_log = "gpu-usage: " + whole[:20]  # Docker cut the output: no status line after it
    path = str(layout.gpu_usage_file(Path("/home/dev")))
    cut.files[path] = ArchiveFile(path, whole.encode())
    gpus = ledger(engine)
    assert gpus.usage(gpus.state()) == {A: HolderUsage("printed", GpuUsage(7.0, 60.0, "t")),
                                        B: HolderUsage("cut", GpuUsage(1.0, 5.0, "t2"))}
    assert [args[0] for args in engine.called("read_file")] == [cut.id]
    assert printed.info().health_output == ""  # the fake's status; the engine's split is tested below


def test_the_health_check_prints_the_record_then_the_status(tmp_path: Path) -> None:
    """The real shell test (Docker runs it with `sh -c`): the record first, the status line last, and the
    status alone where the record is missing or too long for Docker's 4,096-byte output."""
    import subprocess

    from devagent.core import health

    beat = tmp_path / health.HEALTH_FILE
    beat.parent.mkdir(parents=True)
    uptime = int(float(Path("/proc/uptime").read_text().split()[0]))
    beat.write_text(f"{uptime} ok\n")

    def check() -> tuple[int, str]:
        done = subprocess.run(["sh", "-c", health.HEALTH_TEST], check=False, capture_output=True, text=True,
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
        return done.returncode, done.stdout + done.stderr

    assert check() == (0, "ok\n")  # no record yet: the status only, no error from the missing file
    usage = tmp_path / health.USAGE_FILE
    record = '{"version": 1, "time": "t", "gpus": {}}'
    usage.write_text(record)  # as the agent writes it: one line, no newline at its end
    code, out = check()
    assert (code, out) == (0, f"gpu-usage: {record}\nok\n")
    assert health.split_output(out) == ("ok", record)
    usage.write_text("{" + "x" * health.USAGE_LINE_LIMIT + "}")
    assert check() == (0, "ok\n")


def test_a_record_still_the_last_check_output_is_not_asked_for_again(tmp_path: Path) -> None:
    """Issue 22: one inspect per running holder made `devagent gpus` 3.1× its floor with 8 holders. Docker runs
    no check before the last one's end plus the interval, so until then the record read before is the answer
    an inspect would give: kept beside the ledger's cache, shown the same, asked for again once it may be old."""
    import time

    engine = FakeEngine()
    kept = env_container(engine, "kept", (A,))
    lease_for(engine, A, "kept")
    unknown = env_container(engine, "unknown", (B,))  # an engine elsewhere: until when is not known
    lease_for(engine, B, "unknown")
    def printed(uuid: str, percent: float) -> str:
        record = {"version": 1, "time": "t", "gpus": {uuid: {"mean_utilization_percent": percent,
                                                           "idle_seconds": 6}}}
        return f"gpu-usage: {json.dumps(record)}\nok\n"

    kept.health_log, unknown.health_log = printed(A, 7.0), printed(B, 7.0)
    kept.health_until = time.time() + 3600
    gpus = GpuLedger(engine, inventory=lambda: INVENTORY, clock_is_ours=True,
                     cache=tmp_path / "cache" / "container-gpus.json")
    first = gpus.usage(gpus.state())
    assert first == {A: HolderUsage("kept", GpuUsage(7.0, 6.0, "t")),
                     B: HolderUsage("unknown", GpuUsage(7.0, 6.0, "t"))}
    assert [args[0] for args in engine.called("health_usage")] == [kept.id, unknown.id]
    kept.health_log = printed(A, 9.0)  # cannot happen before `until`: shows that the engine is not asked
    again = GpuLedger(engine, inventory=lambda: INVENTORY, clock_is_ours=True,
                     cache=tmp_path / "cache" / "container-gpus.json")
    assert again.usage(again.state()) == first
    assert [args[0] for args in engine.called("health_usage")] == [kept.id, unknown.id, unknown.id]
    assert engine.called("read_file") == []
    # Once the next check may have run, the engine is asked again.
    cache = tmp_path / "cache" / "gpu-usage-printed.json"
    assert cache.stat().st_mode & 0o777 == 0o600 and list(cache.parent.glob(".*")) == []
    cache.write_text(json.dumps({kept.id: {"record": "{}", "until": time.time() - 1}}))
    assert gpus.usage(gpus.state())[A] == HolderUsage("kept", GpuUsage(9.0, 6.0, "t"))
    assert [args[0] for args in engine.called("health_usage")].count(kept.id) == 2
