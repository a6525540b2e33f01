"""`share`, `unshare` and `--export` against an in-memory engine: what reaches the container and the record."""

from __future__ import annotations

import base64
import errno
import json
from pathlib import Path

import pytest

from devagent.cli import main
from devagent.control.features import teammates as sharing_module
from devagent.control.features.teammates import OWNER_KEY_LABEL, OWNER_NAME_LABEL, Sharing
from devagent.control.paths import Paths
from devagent.control.ssh import known_hosts
from devagent.core.people import check_public_key, parse_people
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

OWNER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPKCk0UOPzkGVX5ZHLwgwCkKCAQztxFEgaYjmuNupC/C"
ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU alice@laptop"
BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ3bW1wd6MXH1rXkAplDG1Q3Jy4Q0zOtmrDBD5WxQUv"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvc3RrZXlob3N0a2V5aG9zdGtleWhvc3RrZXlob3N0"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """The owner's DEVAGENT_HOME: its key is the one the containers' owner label names."""
    paths = Paths(home=tmp_path / "devagent", user_ssh_config=tmp_path / "config")
    paths.home.mkdir(mode=0o700)
    paths.identity.with_name("id_ed25519.pub").write_text(f"{OWNER} ana@laptop\n")
    return paths


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine()
    engine.add("exp", labels={"devagent.managed": "true", "devagent.name": "exp", "devagent.user": "dev",
                              OWNER_KEY_LABEL: OWNER, OWNER_NAME_LABEL: "ana"}, host_port=49153)
    return engine


def container_file(engine: FakeEngine, name: str) -> str:
    (container,) = engine.containers.values()
    return container.files[f"/etc/devagent/{name}"].data.decode()


def test_sharing_writes_her_bare_key_and_who_is_who_into_the_container_and_the_record(
        engine: FakeEngine, paths: Paths) -> None:
    shared = Sharing(engine=engine, paths=paths).share("exp", ALICE, source="alice.pub")
    assert (shared.person.name, shared.added, shared.kind) == ("alice", True, "ED25519")
    alice = " ".join(ALICE.split()[:2])
    assert container_file(engine, "authorized_keys") == f"{OWNER} ana\n{alice} alice\n"
    people = parse_people(container_file(engine, "people.json"))
    assert [(p.name, p.owner) for p in people] == [("ana", True), ("alice", False)]
    record = json.loads(paths.invitations("exp").read_text())
    assert record["people"] == [{"name": "alice", "key": alice}]
    assert paths.invitations("exp").stat().st_mode & 0o777 == 0o600
    (note,) = engine.called("exec_as")
    assert note[2] == ["devagent", "people-entry", f"alice invited (ED25519 {check_public_key(ALICE).fingerprint})"]


def test_sharing_again_the_same_key_under_the_same_name_changes_nothing(engine: FakeEngine, paths: Paths) -> None:
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    calls = len(engine.calls)
    assert sharing.share("exp", ALICE, source="k.pub", person="alice").added is False
    assert len(engine.called("put_files")) == 1 and len(engine.calls) == calls + 1  # only the lookup


@pytest.mark.parametrize(("key", "person", "status", "message"), [
    (BOB, "alice", ExitStatus.CONFLICT, "alice is invited to 'exp' with another key"),
    (ALICE, "bob", ExitStatus.CONFLICT, "bob.pub is already invited to 'exp', as alice"),
    (OWNER, "bob", ExitStatus.USAGE, "bob.pub is the owner's own key"),
    (BOB, "ana", ExitStatus.USAGE, "'ana' is the owner of 'exp'"),
])
def test_a_second_key_for_a_name_a_second_name_for_a_key_and_the_owner_are_refused(
        engine: FakeEngine, paths: Paths, key: str, person: str, status: ExitStatus, message: str) -> None:
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    before = container_file(engine, "authorized_keys")
    with pytest.raises(DevagentError) as caught:
        sharing.share("exp", key, source=f"{person}.pub", person=person)
    assert (caught.value.status, caught.value.message) == (status, message)
    assert container_file(engine, "authorized_keys") == before


def test_unsharing_takes_the_key_out_and_ends_her_sessions_by_that_key(engine: FakeEngine, paths: Paths) -> None:
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    sharing.share("exp", BOB, source="bob.pub")
    ended, not_noted = sharing.unshare("exp", "alice")
    assert (ended, not_noted) == (1, None)
    assert container_file(engine, "authorized_keys") == f"{OWNER} ana\n{BOB} bob\n"
    end = [args for args in engine.called("exec_as") if args[2][1] == "end-sessions"]
    assert end == [(next(iter(engine.containers)), "dev", ["devagent", "end-sessions", " ".join(ALICE.split()[:2])])]
    assert [p["name"] for p in json.loads(paths.invitations("exp").read_text())["people"]] == ["bob"]
    sharing.unshare("exp", "bob")
    assert not paths.invitations("exp").exists()
    with pytest.raises(DevagentError, match="alice is not invited to 'exp'") as caught:
        sharing.unshare("exp", "alice")
    assert caught.value.status == ExitStatus.NOT_FOUND


def test_a_stopped_environment_gets_the_keys_but_has_no_sessions_to_end(engine: FakeEngine, paths: Paths) -> None:
    (container,) = engine.containers.values()
    container.status = "exited"
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    assert sharing.unshare("exp", "alice") == (0, None)
    assert engine.called("exec_as") == []
    assert container_file(engine, "authorized_keys") == f"{OWNER} ana\n"


def test_when_the_record_cannot_be_written_the_container_gets_the_old_keys_back(
        engine: FakeEngine, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sharing_module, "atomic_write", full_disk)
    with pytest.raises(DevagentError, match=r"cannot write .*: No space left on device") as caught:
        Sharing(engine=engine, paths=paths).share("exp", ALICE, source="alice.pub")
    assert caught.value.status == ExitStatus.USAGE
    assert container_file(engine, "authorized_keys") == f"{OWNER} ana\n"


def test_an_environment_without_a_recorded_owner_must_be_recreated_once(paths: Paths) -> None:
    engine = FakeEngine()
    engine.add("old", labels={"devagent.managed": "true", "devagent.name": "old"})
    with pytest.raises(DevagentError, match="did not record its owner") as caught:
        Sharing(engine=engine, paths=paths).share("old", ALICE, source="alice.pub")
    assert caught.value.hint == "recreate it once: devagent up old --recreate (files are kept)"
    assert engine.called("put_files") == []


def test_the_export_uses_the_port_the_user_and_the_pinned_host_key(engine: FakeEngine, paths: Paths) -> None:
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    with pytest.raises(DevagentError, match="no host key is pinned"):
        sharing.export("exp", "alice")
    known_hosts.pin(paths.known_hosts, "exp", HOST_KEY + " devagent-host-exp")
    text = sharing.export("exp", "alice")
    assert "  Port 49153\n  User dev\n  HostKeyAlias exp\n" in text
    assert text.endswith(f"\nexp {HOST_KEY}\n")
    with pytest.raises(DevagentError, match="bob is not invited to 'exp'"):
        sharing.export("exp", "bob")


def test_the_export_of_an_environment_in_a_slurm_job_says_why_it_prints_nothing(engine: FakeEngine,
                                                                                paths: Paths) -> None:
    """It was refused with "refusing to print a Host block with the ProxyJump 'hpc,gpu07'", which blamed the
    container's labels; the alias's job check (a ProxyCommand) is what cannot be passed on."""
    sharing = Sharing(engine=engine, paths=paths, jump="hpc,gpu07", job=("4812", "gpu", "hpc"))
    sharing.share("exp", ALICE, source="alice.pub")
    known_hosts.pin(paths.known_hosts, "exp", HOST_KEY + " devagent-host-exp")
    calls = len(engine.calls)
    with pytest.raises(DevagentError) as caught:
        sharing.export("exp", "alice")
    assert caught.value.status == ExitStatus.CONFLICT
    assert str(caught.value) == (
        "no Host block for a teammate: environment 'exp' runs in Slurm job 4812, and its alias reaches it through "
        "a job check (a ProxyCommand that asks Slurm first), which devagent never passes on: it would run on her "
        "machine\n  hint: she makes her own environment in her own job (devagent up NAME --host hpc --slurm gpu), "
        "or, if she has a login on the cluster and node gpu07 lets her in, writes ProxyJump hpc,gpu07 into her own "
        "Host block")
    assert len(engine.calls) == calls  # the engine is not asked: the job may have ended


def test_share_needs_exactly_one_of_key_and_export(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["share", "exp"]) == ExitStatus.USAGE
    assert main(["share", "exp", "--key", "a.pub", "--export", "alice"]) == ExitStatus.USAGE
    assert capsys.readouterr().err.count("Error: give either --key FILE (invite) or --export PERSON") == 2


@pytest.mark.parametrize(("login", "name"), [("ana", "ana"), ("Ana.M", "ana.m"), ("jürgen", "j-rgen"),
                                              ("42", "owner"), ("", "owner")])
def test_the_owner_goes_by_their_login_name_made_valid(monkeypatch: pytest.MonkeyPatch, login: str,
                                                       name: str) -> None:
    monkeypatch.setattr(sharing_module.pwd, "getpwuid", lambda uid: type("pw", (), {"pw_name": login})())
    assert sharing_module.owner_name() == name


def test_an_ecdsa_key_whose_point_is_not_on_its_curve_is_refused(engine: FakeEngine, paths: Paths) -> None:
    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    blob = string(b"ecdsa-sha2-nistp256") + string(b"nistp256") + string(b"\x04" + b"\x01" * 64)
    line = "ecdsa-sha2-nistp256 " + base64.b64encode(blob).decode()
    with pytest.raises(DevagentError, match=r"bob\.pub is not a usable public key") as caught:
        Sharing(engine=engine, paths=paths).share("exp", line, source="bob.pub")
    assert caught.value.status == ExitStatus.USAGE
    assert engine.called("put_files") == []


@pytest.mark.parametrize("command", ["share", "unshare"])
def test_share_and_unshare_of_a_name_that_does_not_exist_leave_no_lock_behind(
        command: str, engine: FakeEngine, paths: Paths) -> None:
    """They left DEVAGENT_HOME/locks/NAME.lock behind, for a name no environment has."""
    sharing = Sharing(engine=engine, paths=paths)
    with pytest.raises(DevagentError) as err:
        if command == "share":
            sharing.share("nope", ALICE, source="alice.pub")
        else:
            sharing.unshare("nope", "alice")
    assert (err.value.message, err.value.status) == ("no environment named 'nope'", ExitStatus.NOT_FOUND)
    assert not paths.env_lock("nope").exists()
    with pytest.raises(DevagentError, match="is not invited"):  # an environment that exists keeps its lock file
        sharing.unshare("exp", "alice")
    assert paths.env_lock("exp").exists()


@pytest.mark.parametrize(("label", "value", "what"), [
    ("devagent.user", "dev\n  ProxyCommand sh -c 'id > /tmp/pwned'", "a login name"),
    ("devagent.server", "gpu\n  LocalCommand id", "a server as ProxyJump names it"),
])
def test_an_export_refuses_labels_that_devagent_did_not_write(paths: Paths, label: str, value: str,
                                                               what: str) -> None:
    engine = FakeEngine()
    engine.add("exp", labels={"devagent.managed": "true", "devagent.name": "exp", "devagent.user": "dev",
                              OWNER_KEY_LABEL: OWNER, OWNER_NAME_LABEL: "ana", label: value}, host_port=49153)
    sharing = Sharing(engine=engine, paths=paths)
    sharing.share("exp", ALICE, source="alice.pub")
    known_hosts.pin(paths.known_hosts, "exp", HOST_KEY + " devagent-host-exp")
    with pytest.raises(DevagentError) as caught:
        sharing.export("exp", "alice")
    assert str(caught.value) == (
        f"environment 'exp' has a {label} label that is not {what} ({value!r}): its labels are not devagent's, so "
        "no Host block is printed for it\n"
        "  hint: recreate it with devagent (devagent up exp --recreate), or ask who changed its labels")
    assert caught.value.status == ExitStatus.CONFLICT
