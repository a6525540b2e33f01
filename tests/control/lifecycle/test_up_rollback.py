"""`up` undoes everything it made when any step fails, Ctrl-C included — proven step by step against an in-memory
engine (tests/control/fakes.py), the real ssh client and real files, without Docker. The same failures against the
real engine are in tests/integration/test_up_failures.py.

What must hold after every failure: no container of this `up` is left; the user's ssh config, devagent's managed
config and known_hosts are byte for byte what they were (or, for --recreate, point at the old container again); a
host key or workspace this `up` made is gone; the per-environment lock is released; the error names the step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devagent.control.atomic import FileLock
from devagent.control.engine.docker_engine import ContainerInfo
from devagent.control.lifecycle.provision import Provisioner, spec_hash
from devagent.control.paths import Paths
from devagent.control.ssh import keys
from devagent.control.ssh.user_config import SshConfig
from devagent.core.ports import DEFAULT_PORTS
from devagent.core.spec import EnvSpec
from devagent.core.ssh.host_entry import HostEntry
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import BannerServer, FakeContainer, FakeEngine

NAME = "exp"


@pytest.fixture
def paths() -> Paths:
    """devagent's files in the test's temporary HOME, with one environment, "other", already set up: its alias,
    pinned key and the Include line must come through every failure untouched."""
    paths = Paths.from_environ()
    paths.user_ssh_config.write_text("# my own config\nHost build-box\n    User me\n")
    other_key = keys.ensure_keypair(paths.host_key("other"), comment="devagent-host-other")
    SshConfig(paths).install(HostEntry("other", 40001, "dev", str(paths.identity), str(paths.known_hosts)),
                             other_key)
    return paths


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "code"  # missing: `up` creates it, so a failed `up` must remove it


@pytest.fixture
def sshd() -> Iterator[BannerServer]:
    with BannerServer() as server:
        yield server


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def spec(workspace: Path, *, profile: str = "strict") -> EnvSpec:
    return EnvSpec(name=NAME, base_image="base:1", workspace=str(workspace), sshd_profile=profile)


def snapshot(paths: Paths, workspace: Path) -> dict[str, object]:
    def read(path: Path) -> bytes | None:
        return path.read_bytes() if path.exists() else None

    hostkeys = paths.home / "hostkeys"
    return {"user ssh config": read(paths.user_ssh_config), "managed config": read(paths.managed_ssh_config),
            "known_hosts": read(paths.known_hosts),
            "host keys": sorted(p.name for p in hostkeys.iterdir()) if hostkeys.exists() else [],
            "workspace": workspace.exists()}


def only(port: int) -> range:
    """A port range of one port: where `up` must put the environment (a stand-in sshd listens there)."""
    return range(port, port + 1)


def failed_up(engine: FakeEngine, paths: Paths, env: EnvSpec, *, ports: range = DEFAULT_PORTS,
              **kwargs: Any) -> tuple[DevagentError, list[str]]:
    reports: list[str] = []
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=paths, report=reports.append,
                    ports=ports).up(env, **kwargs)
    return err.value, reports


def assert_released(paths: Paths) -> None:
    """Nothing is left for the lock to guard, so its file is gone, and nobody holds it."""
    assert not paths.env_lock(NAME).exists()
    with FileLock(paths.env_lock(NAME), timeout=0):
        pass


def assert_undone(engine: FakeEngine, paths: Paths, workspace: Path, before: dict[str, object]) -> None:
    assert engine.names() == []
    assert snapshot(paths, workspace) == before
    assert_released(paths)


class TestEachStepIsUndone:
    def test_a_create_the_engine_refuses_leaves_no_workspace_host_key_or_lock(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("create", DevagentError("the Docker Engine refused the container: Minimum memory limit "
                                            "allowed is 6MB", status=ExitStatus.USAGE))
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace))
        assert (err.message, err.status) == (
            "the Docker Engine refused the container: Minimum memory limit allowed is 6MB", ExitStatus.USAGE)
        assert_undone(engine, paths, workspace, before)

    def test_an_up_that_loses_the_name_to_another_up_keeps_the_workspace_the_winner_may_mount(
            self, paths: Paths, workspace: Path, sshd: BannerServer) -> None:
        engine = FakeEngine()
        # Another devagent (another DEVAGENT_HOME, so no shared lock) takes the name between our check and the
        # rename that gives our complete container its name.
        engine.fail("rename", DevagentError(f"a container named {NAME!r} already exists",
                                            status=ExitStatus.CONFLICT))
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace), ports=only(sshd.port))
        assert (err.message, err.status) == (f"a container named {NAME!r} already exists", ExitStatus.CONFLICT)
        assert engine.names() == []
        assert snapshot(paths, workspace) == {**before, "workspace": True}
        assert_released(paths)

    def test_a_failure_while_the_host_key_is_copied_in_removes_the_created_container(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("put_files", DevagentError("the engine refused the archive", status=ExitStatus.CONTAINER_FAILED))
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace))
        assert err.message == "the engine refused the archive"
        [(temp_name, _)] = engine.called("create")
        assert temp_name.startswith(f"{NAME}-new-")  # NAME only once it is complete
        assert_undone(engine, paths, workspace, before)

    def test_an_unexpected_error_is_undone_too_and_reaches_the_user_unchanged(
            self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("put_files", ConnectionResetError("the engine went away"))
        before = snapshot(paths, workspace)
        with pytest.raises(ConnectionResetError, match="the engine went away"):
            Provisioner(engine=engine, paths=paths).up(spec(workspace))
        assert_undone(engine, paths, workspace, before)

    def test_a_start_failure_removes_the_container_docker_left_created(self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("start", DevagentError(
            "GPUs were requested but this Docker Engine cannot give them (no NVIDIA runtime)",
            status=ExitStatus.GPU_UNAVAILABLE))
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace))
        assert err.status == ExitStatus.GPU_UNAVAILABLE
        assert_undone(engine, paths, workspace, before)

    def test_a_container_that_publishes_no_port_is_removed(self, paths: Paths, workspace: Path) -> None:
        engine = FakeEngine(publishes=False)
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace))
        assert (err.message, err.status) == ("Docker published no port for sshd", ExitStatus.CONTAINER_FAILED)
        assert_undone(engine, paths, workspace, before)

    def test_a_container_that_exits_while_sshd_starts_is_removed_with_the_alias_written_meanwhile(
            self, paths: Paths, workspace: Path, refused_port: int) -> None:
        def exits(c: FakeContainer) -> None:
            c.status, c.exit_code, c.logs = "exited", 137, "agent: starting sshd\nKilled"

        engine = FakeEngine(on_start=exits)
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace), ports=only(refused_port))
        assert (err.message, err.status) == ("the container exited while starting (exit code 137)",
                                             ExitStatus.CONTAINER_FAILED)
        assert err.details == "agent: starting sshd\nKilled"
        assert engine.called("remove_if_labelled")  # the alias was written before the wait: it is gone again
        assert_undone(engine, paths, workspace, before)

    def test_a_failed_key_login_proof_removes_everything(self, paths: Paths, workspace: Path,
                                                         sshd: BannerServer) -> None:
        engine = FakeEngine()
        before = snapshot(paths, workspace)
        # compat: paramiko speaks curve25519, so the key-login proof runs (against a server that hangs up).
        err, _ = failed_up(engine, paths, spec(workspace, profile="compat"), ports=only(sshd.port))
        assert err.message.startswith(f"the ssh login on 127.0.0.1:{sshd.port} failed: ")
        assert err.status == ExitStatus.LOGIN_FAILED
        assert_undone(engine, paths, workspace, before)

    def test_a_failed_login_through_the_alias_removes_everything(self, paths: Paths, workspace: Path,
                                                                 sshd: BannerServer) -> None:
        engine = FakeEngine()
        before = snapshot(paths, workspace)
        # strict on OpenSSH 9.2: paramiko has no common key exchange, so the real ssh client through the alias
        # is the proof.
        err, _ = failed_up(engine, paths, spec(workspace), ports=only(sshd.port))
        assert (err.message, err.status) == (f"the login through the ssh alias {NAME!r} failed (ssh exit 255)",
                                             ExitStatus.LOGIN_FAILED)
        assert_undone(engine, paths, workspace, before)

    def test_an_ssh_config_that_overrides_devagent_removes_the_container_and_leaves_the_config_as_it_was(
            self, paths: Paths, workspace: Path, sshd: BannerServer) -> None:
        # devagent's Include line, moved by the user below a Host * block: that block's Port wins for every alias.
        text = paths.user_ssh_config.read_text()
        include, rest = text.split("\n", 1)
        paths.user_ssh_config.write_text(f"{rest}Host *\n    Port 2200\n{include}\n")
        engine = FakeEngine()
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace), ports=only(sshd.port))
        assert err.message == (f"your ssh config overrides devagent's Port for {NAME}: 2200 wins over {sshd.port}, "
                               f"set by {paths.user_ssh_config}:5:     Port 2200")
        assert err.status == ExitStatus.SSH_CONFIG
        assert_undone(engine, paths, workspace, before)


class TestCtrlC:
    def test_ctrl_c_while_docker_creates_the_container_still_removes_it(self, paths: Paths,
                                                                       workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("create", KeyboardInterrupt(), after=True)  # Docker made it; we never heard its id
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace))
        assert (err.message, err.status) == ("interrupted; everything `up` had made is removed again",
                                             ExitStatus.INTERRUPTED)
        assert_undone(engine, paths, workspace, before)

    def test_ctrl_c_after_the_alias_is_written_removes_it_with_the_container(
            self, paths: Paths, workspace: Path, refused_port: int) -> None:
        class InterruptedWhileWaiting(FakeEngine):
            alias_written: bool | None = None

            def get(self, name: str) -> ContainerInfo | None:
                if name != NAME:  # by id: up, waiting for sshd, asks how the start goes
                    self.alias_written = NAME in SshConfig(paths).names()
                    raise KeyboardInterrupt
                return super().get(name)

        engine = InterruptedWhileWaiting()
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace), ports=only(refused_port))
        assert err.status == ExitStatus.INTERRUPTED
        assert engine.alias_written is True
        assert_undone(engine, paths, workspace, before)

    def test_ctrl_c_before_anything_is_made_is_still_a_plain_interrupt(self, paths: Paths,
                                                                      workspace: Path) -> None:
        engine = FakeEngine()
        engine.fail("image_digest", KeyboardInterrupt())
        before = snapshot(paths, workspace)
        with pytest.raises(KeyboardInterrupt):
            Provisioner(engine=engine, paths=paths).up(spec(workspace))
        assert engine.called("create") == []
        assert snapshot(paths, workspace) == before
        assert_released(paths)


class TestRecreate:
    @pytest.fixture
    def old(self, paths: Paths, workspace: Path) -> tuple[FakeEngine, FakeContainer]:
        """The environment as an earlier `up` left it: running on port 40002, its alias and pinned key written."""
        workspace.mkdir()
        env = spec(workspace)
        host_public = keys.ensure_keypair(paths.host_key(NAME), comment=f"devagent-host-{NAME}")
        user_public = keys.ensure_keypair(paths.identity, comment="me")
        SshConfig(paths).install(HostEntry(NAME, 40002, "dev", str(paths.identity), str(paths.known_hosts)),
                                 host_public)
        uid = os.getuid() or 1000  # the login user's, who owns the workspace, as `up` requires
        os.chown(workspace, uid, uid)
        engine = FakeEngine(uid=uid)
        container = engine.add(NAME, host_port=40002, labels={
            **env.labels(version="0.1.0", image="devagent/env:old"),
            "devagent.spec-hash": spec_hash(env, user_public)})
        return engine, container

    def test_a_failed_recreate_keeps_the_old_container_and_points_the_alias_at_it_again(
            self, paths: Paths, workspace: Path, old: tuple[FakeEngine, FakeContainer], sshd: BannerServer) -> None:
        engine, container = old
        engine.start_port = sshd.port
        before = snapshot(paths, workspace)
        err, _ = failed_up(engine, paths, spec(workspace), recreate=True, ports=only(sshd.port))
        assert err.status == ExitStatus.LOGIN_FAILED
        [(temp_name, port)] = engine.called("create")
        assert temp_name.startswith(f"{NAME}-new-")
        # Made before devagent fixed ports (Docker picked 40002): the new container gets a fixed one, so the old
        # one, holding no fixed port, was not stopped.
        assert (port, engine.called("stop")) == (sshd.port, [])
        assert list(engine.containers.values()) == [container]  # the new one is gone, the old one untouched
        assert container.status == "running"
        assert snapshot(paths, workspace) == before  # alias back on port 40002, same pinned key, host key kept
        assert paths.env_lock(NAME).exists()  # the environment is still there: its lock file stays
        with FileLock(paths.env_lock(NAME), timeout=0):
            pass


def test_every_undo_step_runs_even_when_one_fails(paths: Paths, workspace: Path) -> None:
    engine = FakeEngine()
    engine.fail("start", DevagentError("the container did not start: boom", status=ExitStatus.CONTAINER_FAILED))
    engine.fail("remove_if_labelled", ConnectionResetError("the engine went away"))
    before = snapshot(paths, workspace)
    err, reports = failed_up(engine, paths, spec(workspace))
    assert err.message == "the container did not start: boom"  # the first error is the one the user sees
    assert "rollback step failed: the engine went away" in reports
    [left] = engine.names()  # that one step could not remove the container ...
    assert left.startswith(f"{NAME}-new-")  # ... which the next up or down removes
    # ... and every other step still ran; the new workspace stays, as the container left behind mounts it.
    assert snapshot(paths, workspace) == {**before, "workspace": True}
