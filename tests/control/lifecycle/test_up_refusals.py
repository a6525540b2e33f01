"""What `up` refuses before it makes anything: no container is created, no file of the user's or devagent's is
written, the lock is released."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.atomic import FileLock
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine


def test_a_name_the_users_ssh_config_sends_to_a_real_host_is_refused_before_anything_is_made(
        tmp_path: Path) -> None:
    paths = Paths.from_environ()  # the real ssh client reads this temporary config, through DEVAGENT_SSH_CONFIG
    paths.user_ssh_config.write_text("Host gpu-*\n    HostName 10.1.2.3\n    User ana\n")
    before = paths.user_ssh_config.read_bytes()
    engine = FakeEngine()
    workspace = tmp_path / "code"
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=paths).up(
            EnvSpec(name="gpu-server", base_image="base:1", workspace=str(workspace)))
    assert str(err.value) == (
        f"your ssh config sends gpu-server to 10.1.2.3: {paths.user_ssh_config}:2:     HostName 10.1.2.3\n"
        "  hint: an environment named gpu-server would take `ssh gpu-server` over: pick another name, "
        "e.g. dev-gpu-server")
    assert err.value.status == ExitStatus.SSH_CONFIG
    assert [method for method, _ in engine.calls if method not in ("cpu_count", "get")] == []
    assert paths.user_ssh_config.read_bytes() == before
    assert not paths.managed_ssh_config.exists() and not paths.known_hosts.exists()
    assert not workspace.exists() and not paths.identity.exists()
    with FileLock(paths.env_lock("gpu-server"), timeout=0):
        pass


def test_a_devagent_home_openssh_would_misread_is_refused_before_anything_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DEVAGENT_HOME with '#' was refused only once the container ran, leaving the new home and a fresh key."""
    home = tmp_path / "keys#1"
    monkeypatch.setenv("DEVAGENT_HOME", str(home))
    engine = FakeEngine()
    workspace = tmp_path / "code"
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=engine, paths=Paths.from_environ()).up(
            EnvSpec(name="exp", base_image="base:1", workspace=str(workspace)))
    assert str(err.value) == (
        f"IdentityFile path '{home}/id_ed25519' contains '#' (sshconf cuts the value there)\n"
        "  hint: set DEVAGENT_HOME to a plain absolute path (letters, digits, '/', '.', '_', '-', ' ') for "
        "IdentityFile")
    assert err.value.status == ExitStatus.USAGE
    assert engine.calls == []
    assert not home.exists() and not workspace.exists()


def test_down_of_a_name_that_does_not_exist_removes_a_lock_file_left_by_an_older_devagent() -> None:
    paths = Paths.from_environ()
    paths.env_lock("nope").parent.mkdir(parents=True)
    paths.env_lock("nope").touch()  # what `share nope` left behind before
    with pytest.raises(DevagentError) as err:
        Provisioner(engine=FakeEngine(), paths=paths).down("nope")
    assert (err.value.message, err.value.status) == ("no environment named 'nope'", ExitStatus.NOT_FOUND)
    assert not paths.env_lock("nope").exists()


def test_up_says_when_the_login_is_proven_with_openssh_alone(tmp_path: Path) -> None:
    """The tutorial and the security model show this line; with bookworm's OpenSSH 9.2 (no key exchange paramiko
    speaks) and the strict profile `up` returned before saying it."""
    lines: list[str] = []
    provisioner = Provisioner(engine=FakeEngine(), paths=Paths.from_environ(),
                              report=lines.append)
    spec = EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path), sshd_profile="strict")
    provisioner._prove(spec, banner="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10", port=1, identity=tmp_path / "id",
                       host_public="")
    assert lines == ["paramiko speaks none of this sshd's key exchanges; the login is proven with OpenSSH"]
