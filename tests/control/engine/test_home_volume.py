"""The home volume's life around `up` and `down` (devagent/control/engine/home_volume.py) against the in-memory engine:
what a failed `up` removes, what `down` and `down --keep-home` do and say, and a home of another uid. The real
engine: tests/integration/test_home.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.core.mounts import home
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeContainer, FakeEngine

NAME = "exp"
VOLUME = f"devagent-home-{NAME}"


def spec(workspace: Path) -> EnvSpec:
    return EnvSpec(name=NAME, base_image="base:1", workspace=str(workspace))


@pytest.fixture
def paths() -> Paths:
    return Paths.from_environ()  # in the test's temporary HOME


def test_up_mounts_the_named_home_on_a_read_only_root_and_a_failed_first_up_removes_the_home_it_made(
        paths: Paths, tmp_path: Path) -> None:
    seen: list[FakeContainer] = []
    engine = FakeEngine(publishes=False, on_start=seen.append)  # the up fails once the container has started
    with pytest.raises(DevagentError):
        Provisioner(engine=engine, paths=paths).up(spec(tmp_path / "code"))
    [container] = seen
    assert container.options["read_only"] is True
    assert [(m.target, m.volume) for m in container.options["volumes"]] == [
        ("/home/dev", VOLUME), ("/tmp", None), ("/var/tmp", None), ("/etc/devagent", None), ("/run/lock", None)]
    # The home check, sshd started by the shell (a derived image's agent adopts it), then the agent.
    assert container.options["command"][:3] == ["sh", "-c", home.SSHD_FIRST] and container.options["command"][
        4:7] == ["/etc/devagent/sshd_config.strict", "devagent", "agent"]
    assert engine.volumes == {}  # made by this up (with its id), removed by its undo after the container


def test_a_failed_recreate_leaves_the_home_it_found(paths: Paths, tmp_path: Path) -> None:
    engine = FakeEngine(publishes=False)
    engine.volumes[VOLUME] = home.home_labels(NAME, up_id="earlier")
    with pytest.raises(DevagentError):
        Provisioner(engine=engine, paths=paths).up(spec(tmp_path / "code"))
    assert engine.volumes == {VOLUME: home.home_labels(NAME, up_id="earlier")}


def test_a_container_that_finds_a_home_of_another_uid_is_a_conflict_that_names_the_fix(
        paths: Paths, tmp_path: Path) -> None:
    def refuse(c: FakeContainer) -> None:
        c.logs = "devagent: the home /home/dev belongs to uid 4242, not to dev (uid 1000)\n"
        engine.exit(c, home.HOME_NOT_YOURS_EXIT)

    engine = FakeEngine(on_start=refuse)
    engine.volumes[VOLUME] = home.home_labels(NAME, up_id="earlier")
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=paths).up(spec(tmp_path / "code"))
    assert err.value.status == ExitStatus.CONFLICT
    assert err.value.message.startswith(f"the home of {NAME!r} (the volume {VOLUME}) belongs to another user than "
                                        "the login user 'dev' of ")
    assert err.value.details == "devagent: the home /home/dev belongs to uid 4242, not to dev (uid 1000)"
    assert f"-v {VOLUME}:/h --entrypoint chown " in (err.value.hint or "")
    assert engine.names() == [] and VOLUME in engine.volumes  # the container went, the home it found stayed


def test_down_removes_the_home_and_says_its_size_and_keep_home_keeps_it(paths: Paths) -> None:
    engine = FakeEngine()
    reports: list[str] = []
    provisioner = Provisioner(engine=engine, paths=paths, report=reports.append)
    engine.volumes[VOLUME] = home.home_labels(NAME, up_id="u")
    with pytest.raises(DevagentError) as err:  # nothing else of NAME: the kept home alone is not an environment
        provisioner.down(NAME, keep_home=True)
    assert err.value.status == ExitStatus.NOT_FOUND
    assert reports == [f"kept the home volume {VOLUME} (4.0 KiB): `devagent up {NAME}` mounts it again, "
                       f"`devagent down {NAME}` removes it"]
    assert provisioner.down(NAME) == [f"home volume {VOLUME} (4.0 KiB)"]
    assert engine.volumes == {}


def test_down_leaves_a_volume_of_that_name_devagent_did_not_make(paths: Paths) -> None:
    engine = FakeEngine()
    engine.volumes[VOLUME] = {"owner": "someone"}
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=paths).down(NAME)
    assert err.value.status == ExitStatus.NOT_FOUND
    assert VOLUME in engine.volumes
