"""What a killed `up` leaves under a temporary name (NAME-new-xxxxxx, never NAME: the name is given only to a
complete container) and who removes it: the next `up` of the same DEVAGENT_HOME, which holds NAME's lock and so
knows no `up` of its own is still running; `down NAME`, whoever made it; `ls` and `doctor` never take it for the
environment. Against the in-memory engine; tests/integration/test_up_stopped.py kills real `up`s at each step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.lifecycle.provision import HOME_ID_LABEL, UP_ID_LABEL, Provisioner
from devagent.control.paths import Paths
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

NAME = "exp"


def spec(workspace: Path) -> EnvSpec:
    return EnvSpec(name=NAME, base_image="base:1", workspace=str(workspace))


def leftover(engine: FakeEngine, suffix: str, *, home_id: str, status: str = "created") -> str:
    """A container a killed `up` left: NAME's labels, a temporary name."""
    name = f"{NAME}-new-{suffix}"
    engine.add(name, status=status, labels={
        **spec(Path("/srv/code")).labels(version="0.1.0", image="devagent/env:x"),
        UP_ID_LABEL: suffix, HOME_ID_LABEL: home_id})
    return name


@pytest.fixture
def paths() -> Paths:
    return Paths.from_environ()  # in the test's temporary HOME


def test_up_removes_what_an_up_of_its_own_left_and_leaves_another_devagents(paths: Paths, tmp_path: Path) -> None:
    engine = FakeEngine(publishes=False)  # this up fails after the leftovers are dealt with
    reports: list[str] = []
    provisioner = Provisioner(engine=engine, paths=paths, report=reports.append)
    ours = leftover(engine, "aaaaaa", home_id=provisioner._home_id())
    theirs = leftover(engine, "bbbbbb", home_id="0123456789ab")  # its up may be running now
    with pytest.raises(DevagentError) as err:
        provisioner.up(spec(tmp_path / "code"))
    assert err.value.message == "Docker published no port for sshd"
    assert engine.names() == [theirs]
    assert f"removing container {ours}, left behind by an interrupted up" in reports


def test_a_container_is_named_only_once_it_is_complete(paths: Paths, tmp_path: Path) -> None:
    engine = FakeEngine(publishes=False)
    with pytest.raises(DevagentError):
        Provisioner(engine=engine, paths=paths).up(spec(tmp_path / "code"))
    [(created_as, _)] = engine.called("create")
    assert created_as.startswith(f"{NAME}-new-")
    assert engine.called("rename") == []  # it never got that far


def test_down_removes_every_container_an_interrupted_up_of_name_left_whoevers(paths: Paths) -> None:
    engine = FakeEngine()
    engine.add(NAME, labels={**spec(Path("/srv/code")).labels(version="0.1.0", image="devagent/env:x")})
    ours = leftover(engine, "aaaaaa", home_id="0123456789ab")
    theirs = leftover(engine, "bbbbbb", home_id="ba9876543210", status="running")
    unrelated = engine.add("exp2-new-cccccc", labels={"devagent.managed": "true", "devagent.name": "exp2"})
    removed = Provisioner(engine=engine, paths=paths).down(NAME)
    assert removed == [f"container {NAME}", f"container {ours}, left behind by an interrupted up",
                       f"container {theirs}, left behind by an interrupted up"]
    assert engine.names() == [unrelated.name]


def test_down_of_only_leftovers_succeeds(paths: Paths) -> None:
    engine = FakeEngine()
    left = leftover(engine, "aaaaaa", home_id="0123456789ab")
    assert Provisioner(engine=engine, paths=paths).down(NAME) == [
        f"container {left}, left behind by an interrupted up"]
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=paths).down(NAME)
    assert err.value.status == ExitStatus.NOT_FOUND


def test_ls_lists_environments_not_leftovers(paths: Paths) -> None:
    engine = FakeEngine()
    engine.add(NAME, labels={**spec(Path("/srv/code")).labels(version="0.1.0", image="devagent/env:x")})
    leftover(engine, "aaaaaa", home_id="0123456789ab")
    rows = Provisioner(engine=engine, paths=paths).ls()
    assert [r.name for r in rows] == [NAME]
