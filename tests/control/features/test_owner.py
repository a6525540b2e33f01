"""A name whose environment is gone may now be someone else's: `down`, `up`, `share` and `unshare` act only on a
container whose owner label names one of the caller's keys. Against the in-memory engine; the real engine with two
callers is tests/integration/test_share.py's test_a_stale_name_never_reaches_the_new_owners_environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.features.teammates import OWNER_KEY_LABEL, OWNER_NAME_LABEL, Sharing, caller_keys, owned_by
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.core.people import fingerprint
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ3bW1wd6MXH1rXkAplDG1Q3Jy4Q0zOtmrDBD5WxQUv"
CAROL = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU carol@laptop"
BOBS = f"key {fingerprint(BOB.split()[1])}"


@pytest.fixture
def alice() -> Paths:
    return Paths.from_environ()  # the test's temporary HOME: Alice's DEVAGENT_HOME, with her own key


@pytest.fixture
def engine() -> FakeEngine:
    """Bob's `exp`: the name Alice's stale record still knows."""
    engine = FakeEngine()
    labels = EnvSpec(name="exp", base_image="base:1", workspace="/srv/bob").labels(version="0.1.0", image="i")
    engine.add("exp", labels={**labels, OWNER_KEY_LABEL: BOB, OWNER_NAME_LABEL: "bob"}, host_port=49153)
    return engine


def test_down_of_a_stale_name_leaves_the_new_owners_container_and_forgets_only_the_callers_own_files(
        engine: FakeEngine, alice: Paths) -> None:
    alice.invitations("exp").parent.mkdir(parents=True)
    alice.invitations("exp").write_text('{"version": 1, "people": []}')
    with pytest.raises(DevagentError) as caught:
        Provisioner(engine=engine, paths=alice).down("exp")
    assert str(caught.value) == (
        f"environment 'exp' belongs to bob ({BOBS}), not to you: `devagent down exp` leaves it alone\n"
        "  | removed your invitations\n"
        "  hint: ask its owner; if it is yours, made with another DEVAGENT_HOME or --identity, run `devagent down "
        "exp` from there")
    assert caught.value.status == ExitStatus.CONFLICT
    assert engine.names() == ["exp"]
    assert engine.called("remove") == []
    assert not alice.invitations("exp").exists()


def test_up_never_replaces_a_container_someone_else_owns(engine: FakeEngine, alice: Paths, tmp_path: Path) -> None:
    with pytest.raises(DevagentError) as caught:
        Provisioner(engine=engine, paths=alice).up(
            EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path / "code")), recreate=True)
    assert caught.value.message == (
        f"environment 'exp' belongs to bob ({BOBS}), not to you: `devagent up exp` leaves it alone")
    assert caught.value.status == ExitStatus.CONFLICT
    assert engine.names() == ["exp"]
    assert engine.called("create") == [] and engine.called("remove") == []


@pytest.mark.parametrize(("command", "act"), [
    ("share", lambda s: s.share("exp", CAROL, source="carol.pub")),
    ("unshare", lambda s: s.unshare("exp", "carol")),
    ("share --export", lambda s: s.export("exp", "carol")),
])
def test_share_and_unshare_refuse_an_environment_someone_else_owns(engine: FakeEngine, alice: Paths, command: str,
                                                                   act: object) -> None:
    with pytest.raises(DevagentError) as caught:
        act(Sharing(engine=engine, paths=alice))  # type: ignore[operator]
    assert caught.value.message == (
        f"environment 'exp' belongs to bob ({BOBS}), not to you: `devagent {command}` leaves it alone")
    assert caught.value.status == ExitStatus.CONFLICT
    assert engine.called("put_files") == [] and engine.called("exec_as") == []
    assert not alice.invitations("exp").exists()


def test_the_callers_keys_are_devagents_own_and_the_identity_its_alias_names(alice: Paths, tmp_path: Path) -> None:
    assert caller_keys(alice, "exp") == frozenset()
    alice.home.mkdir(parents=True, exist_ok=True)
    alice.identity.with_name("id_ed25519.pub").write_text(f"{BOB} bob@laptop\n")
    assert caller_keys(alice, "exp") == {BOB}
    info = FakeEngine().add("exp", labels={OWNER_KEY_LABEL: BOB + " comment"})
    assert owned_by(info, {BOB}) and not owned_by(info, set())
    assert owned_by(FakeEngine().add("old", labels={}), set())  # an older devagent recorded no owner
