"""`up --host` over a stand-in for the one ssh login to a server (a FakeLink: commands run here in a temporary
"server home", streams go to this machine's loopback), an in-memory engine, the real ssh client and real files.

What it proves without a server: the alias jumps through the server (ProxyJump, validated with `ssh -G`), the
workspace is made on the server side and refused where it must be, devagent's record of where the environment lives
is written before anything is made and removed again by a failed up, names are unique across servers, and every
failure leaves nothing on either side. The same against a real sshd and engine: tests/integration/test_remote_up.py.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devagent.control.engine.wheels import payload_fingerprint
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.control.sites.records import Record, Records
from devagent.control.sites.server_site import ServerSite
from devagent.control.sites.server_workspace import WALK
from devagent.control.ssh import managed_config
from devagent.core.dockerfile import FORMAT_LABEL, IMAGE_FORMAT, ImageSpec
from devagent.core.spec import SSHD_PORT, EnvSpec
from devagent.core.ssh.destination import Server
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import BannerServer, FakeEngine

NAME = "exp"


@dataclass(frozen=True)
class FakeFacts:
    user: str
    uid: int
    gid: int
    home: str
    docker_socket: str = "/var/run/docker.sock"
    resolved: Mapping[str, str] = field(default_factory=dict)


class FakeLink:
    """ServerLink's interface over this machine: RUN runs the command here, CONNECT dials 127.0.0.1. DROP_AFTER:
    the link dies (as when ssh's master connection drops) after that many connects: every call fails from then."""

    def __init__(self, engine: FakeEngine, *, home: Path, server: str = "gpu-server", uid: int | None = None,
                 drop_after: int | None = None) -> None:
        self.server = Server(server)
        self.facts = FakeFacts(user="alice", uid=os.getuid() if uid is None else uid, gid=os.getgid(),
                               home=str(home))
        self.engine = engine
        self.commands: list[list[str]] = []
        self.connects = 0
        self.drop_after = drop_after

    def _dropped(self) -> None:
        if self.drop_after is not None and self.connects > self.drop_after:
            raise DevagentError(f"the ssh connection to {self.server.text} dropped",
                                status=ExitStatus.SERVER_UNREACHABLE)

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        self._dropped()
        self.commands.append(list(argv))
        return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        self.connects += 1
        self._dropped()
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def first_statement(argv: Sequence[str]) -> str:
    """What a server command (sh -c WALK + SCRIPT) does first, after the shell functions every one defines."""
    return argv[2].removeprefix(WALK).split(";")[0]


@pytest.fixture
def server_home(tmp_path: Path) -> Path:
    home = tmp_path / "server-home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    return home


@pytest.fixture
def sshd() -> Iterator[BannerServer]:
    with BannerServer() as server:
        yield server


def spec(workspace: str = "~/devagent/exp") -> EnvSpec:
    return EnvSpec(name=NAME, base_image="base:1", workspace=workspace, sshd_profile="compat")


def up(link: FakeLink, paths: Paths, env: EnvSpec) -> DevagentError:
    with pytest.raises(DevagentError) as err:
        Provisioner(site=ServerSite(link, paths=paths), paths=paths).up(env)  # type: ignore[arg-type]
    return err.value


def leftovers(link: FakeLink, paths: Paths, server_home: Path) -> dict[str, object]:
    return {"containers": link.engine.names(), "record": Records(paths).get(NAME),
            "alias": managed_config.hosts(paths.managed_ssh_config),
            "known_hosts": paths.known_hosts.read_text() if paths.known_hosts.exists() else "",
            "workspace": (server_home / "devagent" / NAME).exists(),
            "host keys": sorted(p.name for p in (paths.home / "hostkeys").glob("[!.]*")),
            "lock": paths.env_lock(NAME).exists()}


NOTHING = {"containers": [], "record": None, "alias": [], "known_hosts": "", "workspace": False, "host keys": [],
           "lock": False}


class TestTheAliasJumpsThroughTheServer:
    def test_the_written_alias_has_proxyjump_and_ssh_G_agrees_before_the_login_fails_and_all_is_undone(
            self, server_home: Path, sshd: BannerServer) -> None:
        paths = Paths.from_environ()
        link = FakeLink(FakeEngine(start_port=sshd.port), home=server_home, server="alice@gpu:2222")
        seen: dict[str, object] = {}

        class Watching(Provisioner):
            def on_step(self, step: str) -> None:
                if step == "alias":  # written, validated with ssh -G; the login against the banner server fails next
                    seen["block"] = managed_config.options(paths.managed_ssh_config, NAME)
                    seen["record"] = Records(paths).get(NAME)
                    seen["mounts"] = next(iter(link.engine.containers.values())).options["mounts"]

        with pytest.raises(DevagentError) as err:
            Watching(site=ServerSite(link, paths=paths), paths=paths,  # type: ignore[arg-type]
                     ports=range(sshd.port, sshd.port + 1)).up(spec())
        assert err.value.status == ExitStatus.LOGIN_FAILED
        block = seen["block"]
        assert isinstance(block, dict)
        assert (block["hostname"], block["port"], block["proxyjump"], block["hostkeyalias"]) == (
            "127.0.0.1", str(sshd.port), "alice@gpu:2222", NAME)
        workspace = str(server_home / "devagent" / NAME)
        assert seen["record"] == Record(name=NAME, server="alice@gpu:2222", user="dev", workspace=workspace)
        assert seen["mounts"] == [(workspace, "/home/dev/workspace", "rw")]
        assert link.connects >= 1  # the banner was read through the link, not from this machine's loopback
        assert leftovers(link, paths, server_home) == NOTHING

    @pytest.mark.parametrize(("server_uid", "login_uid"), [(4242, 4242), (0, 1000)])
    def test_the_login_user_gets_the_server_users_uid_and_root_there_becomes_1000_owning_the_workspace(
            self, server_home: Path, server_uid: int, login_uid: int) -> None:
        if os.getuid() != 0:
            pytest.skip("making folders of another uid needs root")
        paths = Paths.from_environ()
        engine = FakeEngine()
        engine.fail("create", DevagentError("stop here", status=ExitStatus.USAGE))
        link = FakeLink(engine, home=server_home, uid=server_uid)
        seen: dict[str, object] = {}

        class Watching(Provisioner):
            def on_step(self, step: str) -> None:
                if step == "workspace":
                    seen["owner"] = (server_home / "devagent" / NAME).stat().st_uid

        with pytest.raises(DevagentError):
            Watching(site=ServerSite(link, paths=paths), paths=paths).up(spec())  # type: ignore[arg-type]
        wanted = ImageSpec(base_image="base:1", base_id=engine.images["base:1"], user="dev", uid=login_uid,
                           sshd_port=SSHD_PORT, payload=payload_fingerprint()).tag
        assert ("image_id", (wanted,)) in engine.calls  # the derived image's user has the server user's uid
        # Made by the server user (a root login gives it to 1000 with one chown); a non-root login's folder is its
        # own already (here the test runs as root, so only the root case shows the chown).
        assert seen["owner"] == (login_uid if server_uid == 0 else os.getuid())
        assert leftovers(link, paths, server_home) == NOTHING


class TestTheServerWorkspace:
    @pytest.mark.parametrize(("workspace", "message"), [
        ("~", "is the home folder of your login there"),
        (".", "is the home folder of your login there"),
        ("/", "is a system folder: no environment may mount it"),
        ("~/.ssh/x", "is inside"),
    ])
    def test_the_server_home_and_its_ssh_folder_are_refused_before_anything_is_made(
            self, server_home: Path, workspace: str, message: str) -> None:
        paths = Paths.from_environ()
        link = FakeLink(FakeEngine(), home=server_home)
        err = up(link, paths, spec(workspace))
        assert err.status == ExitStatus.USAGE
        assert message in err.message and "on gpu-server" in err.message
        assert link.engine.calls == [] and leftovers(link, paths, server_home) == NOTHING

    def test_an_existing_workspace_the_login_user_cannot_write_is_refused_and_kept(
            self, server_home: Path, sshd: BannerServer) -> None:
        paths = Paths.from_environ()
        folder = server_home / "locked"
        folder.mkdir(mode=0o755)
        os.chown(folder, 0, 0) if os.getuid() == 0 else None
        link = FakeLink(FakeEngine(start_port=sshd.port, uid=4242), home=server_home)
        err = up(link, paths, spec("locked"))
        assert (err.message, err.status) == (
            f"workspace {folder} on gpu-server is not writable by uid 4242, the login user inside the container",
            ExitStatus.USAGE)
        assert err.hint == f"give it to that user on the server (chown -R 4242 {folder}) or pass --workspace a " \
            "folder you own there"
        assert folder.is_dir() and leftovers(link, paths, server_home) == NOTHING

    def test_a_team_image_whose_user_has_another_uid_than_the_server_user_is_refused_and_its_workspace_removed(
            self, server_home: Path) -> None:
        class TeamEngine(FakeEngine):  # the registry's image: devagent's, built by a teammate (uid 4243)
            def image_labels(self, ref: str) -> dict[str, str] | None:
                found = super().image_labels(ref)
                return None if found is None else {"devagent.managed": "true", "devagent.user": "dev",
                                                   FORMAT_LABEL: IMAGE_FORMAT}

        paths = Paths.from_environ()
        engine = TeamEngine(uid=4243)
        engine.images["reg.example:5000/team/env:v1"] = "sha256:" + "1" * 64  # pulled already
        link = FakeLink(engine, home=server_home, uid=4242)
        team = dataclasses.replace(spec(), image="reg.example:5000/team/env:v1")
        err = up(link, paths, team)
        folder = server_home / "devagent" / NAME
        assert (err.message, err.status) == (
            f"workspace {folder} on gpu-server is not writable by uid 4243, the login user of the team image "
            "reg.example:5000/team/env:v1 (your user there is uid 4242)", ExitStatus.USAGE)
        assert err.hint == "pass --workspace a folder on gpu-server that uid 4243 may write, or start a team image " \
            "built for uid 4242 (`devagent image build --host gpu-server --tag … --push` as that user)"
        assert leftovers(link, paths, server_home) == NOTHING  # the workspace this up made is gone again


    def test_a_workspace_the_probe_resolved_costs_one_command_on_the_server_to_make(
            self, server_home: Path) -> None:
        paths = Paths.from_environ()
        engine = FakeEngine()
        engine.fail("create", DevagentError("stop here", status=ExitStatus.USAGE))
        link = FakeLink(engine, home=server_home)
        link.facts = FakeFacts(user="alice", uid=os.getuid(), gid=os.getgid(), home=str(server_home),
                               resolved={"~/devagent/exp": str(server_home / "devagent" / NAME)})
        assert up(link, paths, spec()).message == "stop here"
        assert [first_statement(argv) for argv in link.commands] == [
            'if [ -e "$1" ] || [ -L "$1" ]',  # make (the probe resolved the path)
            'enter "$(dirname -- "$1")" 2>/dev/null || exit 0']  # the rollback's removal of the folder it made
        assert leftovers(link, paths, server_home) == NOTHING

    def test_an_existing_workspace_is_judged_from_what_making_it_saw_without_another_command(
            self, server_home: Path) -> None:
        paths = Paths.from_environ()
        (server_home / "mine").mkdir()
        (server_home / "mine").chmod(0o777)  # writable by whichever uid the login user gets
        engine = FakeEngine()
        engine.fail("put_files", DevagentError("stop here", status=ExitStatus.USAGE))  # right after the check
        link = FakeLink(engine, home=server_home)
        assert up(link, paths, spec("mine")).message == "stop here"
        assert [first_statement(argv) for argv in link.commands] == [
            'realpath -m -- "$1"',  # the probe was not asked (a FakeLink's facts resolve nothing)
            'if [ -e "$1" ] || [ -L "$1" ]']  # make: there, with its owner and mode; no stat of its own
        assert (server_home / "mine").is_dir() and leftovers(link, paths, server_home) == NOTHING


class TestNamesAreUniqueAcrossServers:
    def test_an_up_of_a_name_held_on_another_server_is_refused_naming_it(self, server_home: Path) -> None:
        paths = Paths.from_environ()
        Records(paths).put(Record(name=NAME, server="gpu-server2", user="dev", workspace="/w", port=40000))
        link = FakeLink(FakeEngine(), home=server_home)
        err = up(link, paths, spec())
        assert (err.message, err.status) == (
            f"environment {NAME!r} exists on gpu-server2; names are unique across servers", ExitStatus.CONFLICT)
        assert err.hint == ("pick another name to make one on gpu-server, or remove that one first: "
                            f"devagent down {NAME}")
        assert Records(paths).get(NAME) == Record(name=NAME, server="gpu-server2", user="dev", workspace="/w",
                                                  port=40000)

    def test_a_local_up_of_a_name_held_on_a_server_is_refused(self, tmp_path: Path) -> None:
        paths = Paths.from_environ()
        Records(paths).put(Record(name=NAME, server="gpu-server", user="dev", workspace="/w"))
        with pytest.raises(DevagentError) as err:
            Provisioner(engine=FakeEngine(), paths=paths).up(
                EnvSpec(name=NAME, base_image="base:1", workspace=str(tmp_path / "w")))
        assert (err.value.message, err.value.status) == (
            f"environment {NAME!r} exists on gpu-server; names are unique across servers", ExitStatus.CONFLICT)


class TestTheLinkDropping:
    def test_a_dropped_link_is_opened_again_for_the_rollback_on_the_server(
            self, server_home: Path, sshd: BannerServer) -> None:
        paths = Paths.from_environ()
        engine = FakeEngine(start_port=sshd.port)
        link = FakeLink(engine, home=server_home, drop_after=0)
        again = FakeLink(engine, home=server_home)
        reports: list[str] = []
        with pytest.raises(DevagentError) as err:
            Provisioner(site=ServerSite(link, paths=paths, report=reports.append,  # type: ignore[arg-type]
                                        relink=lambda: again),  # type: ignore[arg-type,return-value]
                        paths=paths, report=reports.append, ports=range(sshd.port, sshd.port + 1)).up(spec())
        assert err.value.status == ExitStatus.SERVER_UNREACHABLE
        assert "the ssh connection to gpu-server dropped; connecting again to undo" in reports
        assert again.commands  # the workspace was removed through the new link
        assert leftovers(link, paths, server_home) == NOTHING

    def test_when_the_server_cannot_be_reached_again_the_record_stays_for_down(
            self, server_home: Path, sshd: BannerServer) -> None:
        paths = Paths.from_environ()
        engine = FakeEngine(start_port=sshd.port)
        link = FakeLink(engine, home=server_home, drop_after=0)

        def unreachable() -> FakeLink:
            raise DevagentError("ssh could not reach gpu-server", status=ExitStatus.SERVER_UNREACHABLE)

        reports: list[str] = []
        with pytest.raises(DevagentError):
            Provisioner(site=ServerSite(link, paths=paths, report=reports.append,  # type: ignore[arg-type]
                                        relink=unreachable),  # type: ignore[arg-type]
                        paths=paths, report=reports.append, ports=range(sshd.port, sshd.port + 1)).up(spec())
        record = Records(paths).get(NAME)
        assert record is not None and record.server == "gpu-server"
        assert f"devagent keeps its record of {NAME} on gpu-server: `devagent down {NAME}` removes what is left " \
            "there once the server answers" in reports
        # The laptop side is undone all the same.
        left = leftovers(link, paths, server_home)
        assert (left["alias"], left["known_hosts"], left["host keys"]) == ([], "", [])
