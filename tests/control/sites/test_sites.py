"""Where an environment lives: `open_site` decides (the environment's record, --host, DEVAGENT_HOST unless
--local, devagent.toml's host once agreed to), and `LocalSite`/`ServerSite` answer the same questions, so that no
command asks which kind it has. The server side runs over the recording stand-in for the one ssh login
(tests/control/lifecycle/test_remote_up.py's FakeLink), the adapter boundary."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devagent.control.features.listing import Row
from devagent.control.lifecycle.transaction import Transaction
from devagent.control.paths import Paths
from devagent.control.settings import Settings
from devagent.control.sites import opening, server_site
from devagent.control.sites.local_site import LocalSite
from devagent.control.sites.records import Record, Records
from devagent.control.sites.server_site import ServerSite
from devagent.control.sites.site import Site, SiteName
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine
from tests.control.lifecycle.test_remote_up import FakeLink


class Opened:
    """What open_site did: which server it opened (through server_site.opened), or this machine's site."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.servers: list[str] = []
        self.local = LocalSite(FakeEngine(), paths=Paths.from_environ())

        @contextlib.contextmanager
        def opened(text: str, **_: Any) -> Iterator[Any]:
            self.servers.append(text)
            yield text

        monkeypatch.setattr(server_site, "opened", opened)

    def open(self, settings: Settings | None = None, **given: Any) -> object:
        with opening.open_site(settings=settings or Settings(), paths=Paths.from_environ(),
                               local_site=lambda: self.local, report=lambda _: None, **given) as site:
            return site


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    return Opened(monkeypatch)


class TestOpenSiteDecides:
    def test_nothing_named_is_this_machines_site(self, opened: Opened) -> None:
        assert opened.open() is opened.local
        assert opened.servers == []

    def test_devagent_host_is_used_unless_host_is_typed_or_local_is_asked_for(self, opened: Opened) -> None:
        env = Settings(host="env-server")
        assert opened.open(env) == "env-server"
        assert opened.open(env, host="typed-server") == "typed-server"
        assert opened.open(env, local=True) is opened.local
        # `up` chose already (flag, DEVAGENT_HOST, devagent.toml): its None is this machine, not DEVAGENT_HOST.
        assert opened.open(env, chosen=True) is opened.local
        assert opened.open(env, host="file-server", chosen=True) == "file-server"
        assert opened.servers == ["env-server", "typed-server", "file-server"]

    def test_an_environment_is_on_the_server_its_record_names_else_here_whatever_devagent_host_says(
            self, opened: Opened) -> None:
        Records(Paths.from_environ()).put(Record(name="exp", server="gpu-server", user="dev", workspace="/w"))
        env = Settings(host="env-server")
        assert opened.open(env, name="exp") == "gpu-server"
        assert opened.open(env, name="other") is opened.local
        assert opened.servers == ["gpu-server"]

    def test_a_host_only_a_file_names_is_opened_once_agreed_to_and_not_when_refused(
            self, opened: Opened, tmp_path: Path) -> None:
        asked: list[tuple[str, Path]] = []
        assert opened.open(host="file-server", config_file=tmp_path / "devagent.toml",
                           agree=lambda server, file: asked.append((server, file))) == "file-server"
        assert asked == [("file-server", tmp_path / "devagent.toml")]

        def refuse(server: str, file: Path) -> None:
            raise DevagentError("not agreed", status=ExitStatus.USAGE)

        with pytest.raises(DevagentError):
            opened.open(host="other-server", config_file=tmp_path / "devagent.toml", agree=refuse)
        assert opened.servers == ["file-server"]


def test_settings_are_read_once_and_an_empty_variable_counts_as_unset() -> None:
    settings = Settings.from_environ({"DEVAGENT_HOST": "", "DEVAGENT_DOCKER_SOCKET": "/run/d.sock",
                                      "DEVAGENT_PORTS": "24000-24009", "DEVAGENT_TEST_GPU_INVENTORY": "/g.json"})
    assert (settings.host, settings.docker_socket, settings.ports, settings.gpu_inventory_stand_in) == (
        None, "/run/d.sock", "24000-24009", "/g.json")
    assert Settings.from_environ({"DEVAGENT_HOST": "gpu"}).host == "gpu"


def spec(workspace: str) -> EnvSpec:
    return EnvSpec(name="exp", base_image="base:1", workspace=workspace, user="dev", uid=4242)


class TestTheSameQuestionsOnBothSites:
    def sites(self, tmp_path: Path) -> tuple[Site, Site, FakeLink]:
        paths = Paths.from_environ()
        link = FakeLink(FakeEngine(), home=tmp_path / "server-home", server="alice@gpu:2222")
        return (LocalSite(FakeEngine(), paths=paths),
                ServerSite(link, paths=paths, given="gpu"), link)

    def test_the_words_for_messages_and_how_the_alias_reaches_the_port(self, tmp_path: Path) -> None:
        here, there, _ = self.sites(tmp_path)
        assert (here.server, here.given, here.on, here.via, here.loopback, here.proxy_jump) == (
            None, None, "", "", "127.0.0.1", None)
        assert (there.server, there.given, there.on, there.via, there.loopback, there.proxy_jump) == (
            "alice@gpu:2222", "gpu", " on gpu", " via gpu", "gpu's 127.0.0.1", "alice@gpu:2222")

    def test_sshd_is_dialled_here_or_through_the_link(self, tmp_path: Path) -> None:
        here, there, link = self.sites(tmp_path)
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            here.connect(port, timeout=5).close()
            assert here.key_login_socket(port, timeout=5) is None  # paramiko dials 127.0.0.1 itself
            there.connect(port, timeout=5).close()
            sock = there.key_login_socket(port, timeout=5)
            assert sock is not None
            sock.close()
        assert link.connects == 2

    def test_a_command_runs_on_the_sites_machine(self, tmp_path: Path) -> None:
        here, there, link = self.sites(tmp_path)
        assert here.run(["echo", "hi"]).stdout == b"hi\n"
        assert there.run(["echo", "hi"]).stdout == b"hi\n"
        assert link.commands == [["echo", "hi"]]

    def test_only_a_server_site_notes_where_the_environment_lives_and_a_rollback_removes_the_note(
            self, tmp_path: Path) -> None:
        here, there, _ = self.sites(tmp_path)
        records = Records(Paths.from_environ())
        with pytest.raises(RuntimeError), Transaction(lambda _: None) as tx:
            here.note(tx, spec("/w"), port=None)
            assert records.all() == []
            there.note(tx, spec("/w"), port=None)
            assert records.get("exp") == Record(name="exp", server="alice@gpu:2222", user="dev", workspace="/w")
            raise RuntimeError("fail the up")
        assert records.all() == []

    def test_names_are_unique_across_sites(self, tmp_path: Path) -> None:
        here, there, _ = self.sites(tmp_path)
        Records(Paths.from_environ()).put(Record(name="exp", server="other", user="dev", workspace="/w"))
        for site, where in ((here, "on this machine's engine"), (there, "on alice@gpu:2222")):
            with pytest.raises(DevagentError) as err:
                site.claim("exp", lambda: [])
            assert (err.value.message, err.value.status, err.value.hint) == (
                "environment 'exp' exists on other; names are unique across servers", ExitStatus.CONFLICT,
                f"pick another name to make one {where}, or remove that one first: devagent down exp")
        with pytest.raises(DevagentError) as err:
            there.claim("mine", lambda: ["mine"])
        assert err.value.message == ("environment 'mine' exists on this machine's Docker Engine; names are unique "
                                     "across servers")
        here.claim("mine", lambda: ["mine"])  # a local up of a local name: its own

    def test_an_environment_in_a_slurm_job_is_not_made_again_on_the_login_nodes_engine(self, tmp_path: Path) -> None:
        _, there, _ = self.sites(tmp_path)
        Records(Paths.from_environ()).put(Record(name="exp", server="alice@gpu:2222", user="dev", workspace="/w",
                                                 slurm_job="4812", slurm_node="n1", slurm_partition="gpu"))
        with pytest.raises(DevagentError) as err:
            there.claim("exp", lambda: [])
        assert (err.value.message, err.value.status) == (
            "environment 'exp' lives in Slurm job 4812 on alice@gpu:2222, not on alice@gpu:2222's own engine",
            ExitStatus.CONFLICT)

    def test_a_server_undo_opens_the_link_again_when_it_dropped(self, tmp_path: Path) -> None:
        paths = Paths.from_environ()
        link = FakeLink(FakeEngine(), home=tmp_path, drop_after=-1)  # every call fails
        again = FakeLink(FakeEngine(), home=tmp_path)
        said: list[str] = []
        site = ServerSite(link, paths=paths, report=said.append, relink=lambda: again)
        done: list[object] = []
        site.undo_step(lambda: done.append(site.engine))()
        assert done == [again.engine]
        assert said == ["the ssh connection to gpu-server dropped; connecting again to undo"]
        dropped = site.explain_drop(OSError("broken pipe"))
        assert dropped is not None and (dropped.message, dropped.status) == (
            "the ssh connection to gpu-server dropped during `up`; what it had made is removed again",
            ExitStatus.SERVER_UNREACHABLE)

    def test_this_machines_engine_and_ports_are_asked_for_once_when_first_used(self) -> None:
        asked: list[str] = []
        engine = FakeEngine()

        def make_engine() -> Any:
            asked.append("engine")
            return engine

        def ports() -> range:
            asked.append("ports")
            return range(24000, 24010)

        site = LocalSite(make_engine, paths=Paths.from_environ(), ports=ports)
        assert asked == []
        assert (site.ports, site.engine, site.ports, site.engine) == (range(24000, 24010), engine,
                                                                      range(24000, 24010), engine)
        assert asked == ["ports", "engine"]


def test_ls_rows_are_frozen_and_their_json_keeps_its_keys() -> None:
    row = Row(name="exp", state="running", health=None, port=40000, user="dev", image="img", gpus="none",
              workspace="/w", ssh_alias="exp", created="2026", invited=("alice",), owner="ana", mine=True)
    with pytest.raises(AttributeError):
        row.name = "other"  # type: ignore[misc]
    assert list(row.to_json(with_host=False)) == ["name", "state", "health", "port", "user", "image", "gpus",
                                                  "workspace", "ssh_alias", "created", "invited", "owner", "mine"]
    assert list(row.to_json(with_host=True))[-1] == "host"


def test_a_site_is_named_in_messages_as_the_open_sites_name_themselves(tmp_path: Path) -> None:
    link = FakeLink(FakeEngine(), home=tmp_path, server="gpu")
    there = ServerSite(link, paths=Paths.from_environ())
    here = LocalSite(FakeEngine(), paths=Paths.from_environ())
    assert (SiteName("gpu").on, SiteName("gpu").loopback) == (there.on, there.loopback) == (" on gpu",
                                                                                          "gpu's 127.0.0.1")
    assert (SiteName(None).on, SiteName(None).loopback) == (here.on, here.loopback) == ("", "127.0.0.1")
    assert (here.up_flags, there.up_flags) == ((), ("--host", "gpu"))  # what `reproduce` hands its `up`


def test_a_slurm_sites_flags_ask_for_a_job_like_its_own_and_every_run_records_them(tmp_path: Path) -> None:
    """`reproduce` of a run made in a Slurm job asks for a job of the same partition, time limit, account, QOS
    and constraint: the site names them, and the launch record (each run's reproduce block) keeps them."""
    from devagent.control.sites.slurm_site import NodeLink, NodeName, SlurmSite
    from devagent.control.slurm.allocation import Allocation
    from devagent.control.slurm.queue import SlurmQueue
    from devagent.core.notebook import LaunchContext
    from devagent.core.slurm.request import slurm_request

    link = FakeLink(FakeEngine(), home=tmp_path, server="login")
    node = NodeLink(link, NodeName("login", "login", "n1"))  # type: ignore[arg-type]
    allocation = Allocation("login", "7", "gpu", "n1", (0, 1), 28800, "/o", "/e")
    asked = slurm_request(partition="gpu", gpus=2, time="8:00:00", account="lab", constraint="a100")
    slurm = SlurmSite(node, queue=SlurmQueue(link.run, cluster="login"), paths=Paths.from_environ(),
                      allocation=allocation, request=asked)
    assert slurm.job_flags == ("--slurm", "gpu", "--time", "0-08:00:00", "--account", "lab", "--constraint", "a100")
    assert slurm.up_flags == ("--host", "login", *slurm.job_flags)
    recorded = SlurmSite(node, queue=SlurmQueue(link.run, cluster="login"), paths=Paths.from_environ(),
                         allocation=allocation)  # opened from devagent's record: what Slurm says of the job
    assert recorded.job_flags == ("--slurm", "gpu", "--time", "0-08:00:00")
    assert ServerSite(link, paths=Paths.from_environ()).job_flags == ()
    assert LocalSite(FakeEngine(), paths=Paths.from_environ()).job_flags == ()
    context = LaunchContext("exp", "dev", "img", "base", None, "devagent up exp", (), "16g", "none", "exp", "1",
                            "t", slurm_args=slurm.job_flags)
    assert LaunchContext.from_json(context.to_json()) == context


def test_a_slurm_site_notes_without_asking_slurm_and_renote_rolls_up_back_once_the_job_has_ended(
        tmp_path: Path) -> None:
    """`note`, before anything is made, writes the record at once (the job was seen running a moment before);
    `renote`, once the container runs, asks Slurm and refuses when the job has ended meanwhile."""
    from devagent.control.sites.slurm_site import NodeLink, NodeName, SlurmSite
    from devagent.control.slurm.allocation import Allocation
    from devagent.control.slurm.queue import SlurmQueue
    from tests.control.slurm.test_waiting import ScriptedSlurm, scontrol

    paths = Paths.from_environ()
    link = FakeLink(FakeEngine(), home=tmp_path, server="login")
    node = NodeLink(link, NodeName("login", "login", "n1"))  # type: ignore[arg-type]
    slurm = ScriptedSlurm([scontrol("RUNNING", "None", node="n1"), scontrol("CANCELLED", "None", node="n1")])
    site = SlurmSite(node, queue=SlurmQueue(slurm, cluster="login"), paths=paths,
                     allocation=Allocation("login", "12", "gpu", "n1", (), None, "/o", "/e"))
    env = EnvSpec(name="exp", base_image="base:1", workspace="~/devagent/exp")
    site.note(Transaction(lambda _: None), env, port=None)
    assert slurm.calls == []
    noted = Records(paths).get("exp")
    assert noted is not None and (noted.slurm_job, noted.slurm_node, noted.port) == ("12", "n1", None)
    site.renote(env, 40022)  # RUNNING
    assert Records(paths).get("exp").port == 40022  # type: ignore[union-attr]
    with pytest.raises(DevagentError) as ended:
        site.renote(env, 40022)  # CANCELLED
    assert (ended.value.message, ended.value.status, ended.value.hint) == (
        "job 12 ended while `up` was making the environment: the job was cancelled (devagent down or scancel)",
        ExitStatus.CONTAINER_FAILED, "run `up` again for a new job; what this up made is removed")


def test_each_site_says_whether_its_engines_clock_is_ours(tmp_path: Path) -> None:
    """Issue 22's kept health record (until the engine's next check, compared with this machine's clock) is for
    this machine's engine only: a server's or a Slurm node's clock is another machine's. The site decides."""
    import time

    from devagent.control.engine.gpu_leases import GpuLedger
    from devagent.control.lifecycle.provision import Provisioner
    from devagent.control.sites.slurm_site import NodeLink, NodeName, SlurmSite
    from devagent.control.slurm.allocation import Allocation
    from devagent.control.slurm.queue import SlurmQueue
    from tests.control.engine.test_gpu_leases import INVENTORY, A, environment, lease_for

    engine = FakeEngine()
    environment(engine, "exp", gpus=(A,))
    lease_for(engine, A, "exp")
    (held,) = engine.containers.values()
    record = {"version": 1, "time": "t", "gpus": {A: {"mean_utilization_percent": 7.0, "idle_seconds": 6}}}
    held.health_log = f"gpu-usage: {json.dumps(record)}\nok\n"
    held.health_until = time.time() + 3600
    paths = Paths.from_environ()
    link = FakeLink(engine, home=tmp_path, server="login")
    node = NodeLink(link, NodeName("login", "login", "n1"))  # type: ignore[arg-type]
    slurm = SlurmSite(node, queue=SlurmQueue(link.run, cluster="login"), paths=paths,
                      allocation=Allocation("login", "7", "gpu", "n1", (0,), None, "/o", "/e"))
    state = GpuLedger(engine, inventory=lambda: INVENTORY, clock_is_ours=True).state()
    kept = paths.gpu_cache.with_name("gpu-usage-printed.json")
    for site in (ServerSite(link, paths=paths), slurm):
        Provisioner(site=site, paths=paths).gpus.usage(state)  # type: ignore[arg-type]
        assert not kept.exists()
    Provisioner(site=LocalSite(engine, paths=paths), paths=paths).gpus.usage(state)
    assert list(json.loads(kept.read_text())) == [held.id]
    assert engine.called("health_usage") == [(held.id, False), (held.id, False), (held.id, True)]
