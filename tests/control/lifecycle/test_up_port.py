"""The environment's host port is fixed when its container is made and kept for its whole life — against the
in-memory engine (tests/control/fakes.py), for the retries and the refusals a real engine cannot be made to produce on
demand. tests/integration/test_stable_port.py proves the same against the real engine and OpenSSH.

A new environment gets the lowest port of the range that no container binds (stopped ones included); when the
engine says the port is taken, `up` makes the container again with the next one, a bounded number of times. A
stopped environment whose port was taken meanwhile is refused with PORT_TAKEN, and nothing changes. `--recreate`
keeps the port: the old container stops while the new one starts, and starts again when the recreate fails.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from devagent.control.engine.docker_engine import ArchiveFile
from devagent.control.lifecycle.provision import Provisioner, spec_hash
from devagent.control.paths import Paths
from devagent.control.ssh import keys
from devagent.control.ssh.user_config import SshConfig
from devagent.core.ports import ATTEMPTS
from devagent.core.spec import EnvSpec
from devagent.core.ssh.host_entry import HostEntry
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import BannerServer, FakeContainer, FakeEngine
from tests.control.lifecycle.test_up_rollback import assert_undone, snapshot

NAME = "exp"
PORTS = range(24000, 24100)
STOPPED_AT_STARTED = "stopped by the test once the container has started"


class StopsOnceStarted(Provisioner):
    """`up` as it is, ended by the test right after its container started (no sshd to log in to here)."""

    def on_step(self, step: str) -> None:
        if step == "started":
            raise DevagentError(STOPPED_AT_STARTED)


@pytest.fixture
def paths() -> Paths:
    """In the test's temporary HOME, with another environment's host key already there."""
    paths = Paths.from_environ()
    keys.ensure_keypair(paths.host_key("other"), comment="devagent-host-other")
    return paths


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "code"


@pytest.fixture
def sshd() -> Iterator[BannerServer]:
    with BannerServer() as server:
        yield server


def spec(workspace: Path) -> EnvSpec:
    return EnvSpec(name=NAME, base_image="base:1", workspace=str(workspace))


def as_made(env: EnvSpec) -> EnvSpec:
    """ENV as `up` completes it before hashing it: the CPU limit of the fake engine's 8 CPUs."""
    return dataclasses.replace(env, limits=dataclasses.replace(env.limits, cpus=8.0))


def other_environment(engine: FakeEngine, name: str, port: int, *, status: str = "running") -> FakeContainer:
    return engine.add(name, status=status, fixed_port=port,
                      labels={"devagent.managed": "true", "devagent.name": name})


def stopped_once_started(engine: FakeEngine, paths: Paths, workspace: Path) -> list[str]:
    reports: list[str] = []
    with pytest.raises(DevagentError) as err:
        StopsOnceStarted(engine=engine, paths=paths, report=reports.append,
                         ports=PORTS).up(spec(workspace))
    assert err.value.message == STOPPED_AT_STARTED
    return reports


def tried_ports(engine: FakeEngine) -> list[int]:
    return [port for _, port in engine.called("create")]


class TestANewEnvironmentsPort:
    def test_is_the_lowest_of_the_range_no_container_binds_stopped_ones_included(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        other_environment(engine, "running-one", 24000)
        other_environment(engine, "stopped-one", 24001, status="exited")  # keeps its port while stopped
        engine.add("someone-elses", labels={}, host_port=24002)  # Docker picked it; it holds it while it runs
        before = snapshot(paths, workspace)
        stopped_once_started(engine, paths, workspace)
        assert tried_ports(engine) == [24003]
        assert engine.called("start")  # it did start there
        assert engine.names() == ["running-one", "someone-elses", "stopped-one"]  # ours was removed again
        assert_undone_but(engine, paths, workspace, before, kept=3)

    def test_skips_a_port_the_engine_says_another_program_holds_and_makes_the_container_again(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.taken = {24000, 24001}  # listeners outside Docker: only the engine's start finds them
        reports = stopped_once_started(engine, paths, workspace)
        assert tried_ports(engine) == [24000, 24001, 24002]
        assert "port 24000 is taken on the engine's 127.0.0.1; trying another" in reports
        assert "port 24001 is taken on the engine's 127.0.0.1; trying another" in reports
        # Each container that could not start was removed before the next was made, under the same temporary name.
        [first, second, third] = [name for name, _ in engine.called("create")]
        assert first == second == third and first.startswith(f"{NAME}-new-")
        assert len(engine.called("remove")) == 2

    def test_a_concurrent_up_that_won_the_port_makes_this_one_take_the_next_not_fail(
            self, paths: Paths, workspace: Path) -> None:
        class RacedEngine(FakeEngine):
            """Another devagent's up starts its container on the same port between our list and our start."""

            def put_files(self, container_id: str, dest: str, files: Iterable[ArchiveFile]) -> None:
                super().put_files(container_id, dest, files)
                if len(self.called("put_files")) == 1:
                    other_environment(self, "other", self.containers[container_id].fixed_port or 0)

        engine = RacedEngine()
        reports = stopped_once_started(engine, paths, workspace)
        assert tried_ports(engine) == [24000, 24001]  # the list is asked again: 24000 is bound now
        assert "port 24000 is taken on the engine's 127.0.0.1; trying another" in reports
        assert engine.containers[next(iter(engine.containers))].name == "other"  # the winner is untouched

    def test_gives_up_after_a_bounded_number_of_taken_ports_naming_them_and_leaves_nothing(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.taken = set(PORTS)
        before = snapshot(paths, workspace)
        reports: list[str] = []
        with pytest.raises(DevagentError) as err:
            Provisioner(engine=engine, paths=paths, report=reports.append,
                        ports=PORTS).up(spec(workspace))
        taken = ", ".join(str(p) for p in range(24000, 24000 + ATTEMPTS))
        assert (err.value.message, err.value.status) == (
            f"no free port for {NAME!r}: the engine said {taken} were all taken", ExitStatus.PORT_TAKEN)
        assert err.value.hint == ("free some of them, or choose another range: DEVAGENT_PORTS=FIRST-LAST "
                                  "(now 24000-24099)")
        assert len(tried_ports(engine)) == ATTEMPTS
        assert_undone(engine, paths, workspace, before)

    def test_a_range_every_port_of_which_is_bound_is_refused_before_a_container_is_made(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        other_environment(engine, "a", 24000, status="exited")
        other_environment(engine, "b", 24001)
        before = snapshot(paths, workspace)
        with pytest.raises(DevagentError) as err:
            Provisioner(engine=engine, paths=paths, ports=range(24000, 24002)).up(
                spec(workspace))
        assert (err.value.message, err.value.status) == (
            f"no free port for {NAME!r}: every port of 24000-24001 is bound by a container or was taken",
            ExitStatus.PORT_TAKEN)
        assert err.value.hint == ("remove environments you no longer need (devagent down NAME), or choose a wider "
                                  "range: DEVAGENT_PORTS=FIRST-LAST")
        assert engine.called("create") == []
        assert engine.names() == ["a", "b"]
        assert snapshot(paths, workspace) == before


def assert_undone_but(engine: FakeEngine, paths: Paths, workspace: Path, before: dict[str, object], *,
                      kept: int) -> None:
    """What `up` made is gone; the KEPT containers of others are still there."""
    assert len(engine.containers) == kept
    assert all(not c.name.startswith(f"{NAME}-") for c in engine.containers.values())
    assert snapshot(paths, workspace) == before


@pytest.fixture
def made(paths: Paths, workspace: Path) -> tuple[FakeEngine, HostEntry]:
    """The environment as an `up` of this version left it: a fixed port, its alias and pinned key written."""
    workspace.mkdir()
    uid = os.getuid() or 1000  # the login user's, who owns the workspace, as `up` requires
    os.chown(workspace, uid, uid)
    host_public = keys.ensure_keypair(paths.host_key(NAME), comment=f"devagent-host-{NAME}")
    user_public = keys.ensure_keypair(paths.identity, comment="me")
    engine = FakeEngine(uid=uid)
    engine.add(NAME, fixed_port=24005, status="exited", labels={
        **spec(workspace).labels(version="0.1.0", image="devagent/env:old"),
        "devagent.spec-hash": spec_hash(as_made(spec(workspace)), user_public)})
    entry = HostEntry(NAME, 24005, "dev", str(paths.identity), str(paths.known_hosts))
    SshConfig(paths).install(entry, host_public)
    return engine, entry


class TestAStoppedEnvironment:
    @pytest.mark.parametrize("holder", ["program", "container"])
    def test_whose_port_was_taken_meanwhile_is_refused_with_the_fix_and_left_as_it_was(
            self, paths: Paths, workspace: Path, made: tuple[FakeEngine, HostEntry], holder: str) -> None:
        engine, _ = made
        if holder == "program":
            engine.taken = {24005}
        else:
            engine.add("someone-elses", labels={}, host_port=24005)
        before = snapshot(paths, workspace)
        containers_before = set(engine.containers)
        with pytest.raises(DevagentError) as err:
            Provisioner(engine=engine, paths=paths, ports=PORTS).up(spec(workspace))
        assert (err.value.message, err.value.status) == (
            f"environment {NAME!r} cannot start: its port 24005 on 127.0.0.1 is taken by another {holder}",
            ExitStatus.PORT_TAKEN)
        assert err.value.hint == (
            "free it (`ss -ltnp 'sport = :24005'` on the machine of the Docker Engine shows who holds it) and run "
            f"`devagent up {NAME}` again, or run the same `devagent up` with --recreate: the environment gets a new "
            "port and the alias follows")
        assert "127.0.0.1:24005" in (err.value.details or "")  # the engine's own words
        assert set(engine.containers) == containers_before
        assert engine._find(NAME).status == "exited"  # type: ignore[union-attr]
        assert engine.called("create") == []
        assert snapshot(paths, workspace) == before  # the alias, byte for byte
        assert paths.env_lock(NAME).exists()  # the environment is still there: its lock file stays


class TestRecreate:
    def test_keeps_the_port_stopping_the_old_container_first_and_starts_it_again_when_the_recreate_fails(
            self, paths: Paths, workspace: Path, sshd: BannerServer) -> None:
        workspace.mkdir()
        uid = os.getuid() or 1000
        os.chown(workspace, uid, uid)
        host_public = keys.ensure_keypair(paths.host_key(NAME), comment=f"devagent-host-{NAME}")
        keys.ensure_keypair(paths.identity, comment="me")
        engine = FakeEngine(uid=uid)
        old = engine.add(NAME, fixed_port=sshd.port, labels={
            **spec(workspace).labels(version="0.1.0", image="devagent/env:old"), "devagent.spec-hash": "older"})
        SshConfig(paths).install(HostEntry(NAME, sshd.port, "dev", str(paths.identity), str(paths.known_hosts)),
                                 host_public)
        before = snapshot(paths, workspace)
        alias_mtime = paths.managed_ssh_config.stat().st_mtime_ns
        reports: list[str] = []
        with pytest.raises(DevagentError) as err:
            # Everything else is bound by someone: the port can only be the old one.
            Provisioner(engine=engine, paths=paths, report=reports.append,
                        ports=range(1, 1)).up(spec(workspace), recreate=True)
        # The stand-in sshd on the kept port answers the new container's banner, then fails the login.
        assert err.value.status == ExitStatus.LOGIN_FAILED
        [(_, port)] = engine.called("create")
        assert port == sshd.port
        order = [(m, args[0]) for m, args in engine.calls if m in ("stop", "start", "remove", "remove_if_labelled")]
        assert order[:2] == [("stop", old.id), ("start", next(a[0] for m, a in engine.calls if m == "put_files"))]
        # Undone in this order: the new container goes (it holds the port), then the old one starts again.
        assert order[-1] == ("start", old.id)
        assert [c for c in engine.containers.values()] == [old] and old.status == "running"
        assert old.host_port == sshd.port
        assert f"stopping container {NAME}, which holds the port" in reports
        assert snapshot(paths, workspace) == before
        assert paths.managed_ssh_config.stat().st_mtime_ns == alias_mtime  # never rewritten, not even the same bytes

    def test_of_a_stopped_environment_whose_port_was_taken_moves_it_and_the_alias_follows(
            self, paths: Paths, workspace: Path, made: tuple[FakeEngine, HostEntry], sshd: BannerServer) -> None:
        engine, _ = made
        engine.taken = {24005}
        before = snapshot(paths, workspace)
        reports: list[str] = []
        with pytest.raises(DevagentError) as err:
            Provisioner(engine=engine, paths=paths, report=reports.append,
                        ports=range(sshd.port, sshd.port + 1)).up(spec(workspace), recreate=True)
        assert err.value.status == ExitStatus.LOGIN_FAILED  # at the stand-in sshd, on the new port
        assert tried_ports(engine) == [24005, sshd.port]
        assert "port 24005 is taken on the engine's 127.0.0.1; trying another" in reports
        assert f"the environment moves from port 24005 to {sshd.port}: the alias follows" in reports
        assert engine.called("stop") == []  # it was not running
        assert [c.name for c in engine.containers.values()] == [NAME]  # the old one, still stopped
        assert engine._find(NAME).status == "exited"  # type: ignore[union-attr]
        assert snapshot(paths, workspace) == before  # the alias points at 24005 again
