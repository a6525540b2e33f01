"""`devagent doctor` on the client, against a crafted HOME (tests/conftest.py points HOME, DEVAGENT_HOME and
DEVAGENT_SSH_CONFIG into a temporary folder): the command's output and exit status, VS Code's settings files, file
permissions, the Include line, the OpenSSH client, and an environment's checks without talking to it."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from devagent.cli import main
from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.engine_data import ContainerInfo
from devagent.control.features import doctor_report as hd
from devagent.control.paths import Paths
from devagent.control.ssh import managed_config
from devagent.control.ssh.user_config import SshConfig
from devagent.core import doctor_rules as d
from devagent.core.doctor_rules import Check
from devagent.core.ssh.host_entry import HostEntry
from devagent.core.ssh.job_hop import JobCheck
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

NAME = "pytorch-dev"
PORT = 49153


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    return Paths.from_environ()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# -- the command ----------------------------------------------------------------------------------------------


def _fake_run(checks: list[Check]):  # type: ignore[no-untyped-def]
    def run_checks(paths: Paths, *, name: str | None, environ: Mapping[str, str], servers_used: bool = False,
                   **server: object) -> list[Check]:
        return [*checks, Check("asked for", True, repr(name))]
    return run_checks


def test_the_command_exits_14_when_a_check_fails_and_prints_each_item(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hd, "run_checks", _fake_run([Check("tar", False, "no tar", fix="use a base image")]))
    assert main(["doctor", NAME]) == ExitStatus.DOCTOR_FAILED == 14
    assert capsys.readouterr().out == ("✘ tar — no tar\n  fix: use a base image\n✔ asked for — 'pytorch-dev'\n"
                                       "1 of 2 checks failed\n")


def test_the_command_with_json_prints_the_envelope_and_exits_by_the_same_rule(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hd, "run_checks", _fake_run([Check("tar", None, "not running")]))
    assert main(["doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and doc["ok"] is True
    assert doc["checks"][-1] == {"name": "asked for", "ok": True, "detail": "None", "fix": None}
    monkeypatch.setattr(hd, "run_checks", _fake_run([Check("tar", False, "no tar", fix="f")]))
    assert main(["doctor", "--json"]) == 14
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_the_command_refuses_an_invalid_name_before_checking_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "Bad_Name"]) == ExitStatus.USAGE
    assert capsys.readouterr().err.startswith("Error: invalid environment name 'Bad_Name'\n")


# -- VS Code's settings files -----------------------------------------------------------------------------------


def test_vscode_settings_are_found_read_as_jsonc_and_unreadable_ones_skipped(paths: Paths,
                                                                            isolated_home: Path) -> None:
    environ = {"HOME": str(isolated_home)}
    none = hd.vscode_checks(paths, home=isolated_home, environ=environ)
    assert [(c.name, c.ok) for c in none] == [("VS Code remote.SSH.configFile", None)]
    assert "no VS Code settings.json" in none[0].detail
    code = isolated_home / ".config" / "Code" / "User" / "settings.json"
    code.parent.mkdir(parents=True)
    code.write_text('{\n  // mine\n  "remote.SSH.configFile": "~/elsewhere/config",\n}\n')
    codium = isolated_home / "Library" / "Application Support" / "VSCodium" / "User" / "settings.json"
    codium.parent.mkdir(parents=True)
    codium.write_text('{"remote.SSH.configFile": ')
    checks = hd.vscode_checks(paths, home=isolated_home, environ=environ)
    assert [(c.name, c.ok) for c in checks] == [("VS Code remote.SSH.configFile", False),
                                                ("VSCodium remote.SSH.configFile", None)]
    assert checks[0].fix == f'set "remote.SSH.configFile": "{paths.user_ssh_config}" in {code} (or delete the setting)'
    assert checks[1].detail.startswith(f"{codium} is not JSON with comments devagent can read")


# -- client side on a crafted HOME ------------------------------------------------------------------------------


def _install(paths: Paths, *, port: int = PORT, job: JobCheck | None = None) -> HostEntry:
    """What `up` leaves on the client: a key, devagent's Host block, the pinned key and the Include line. JOB:
    an environment in a Slurm job (a ProxyCommand through hpc and n1 that asks Slurm first)."""
    from devagent.control.ssh import keys

    keys.ensure_keypair(paths.identity, comment="test")
    entry = HostEntry(NAME, port, "dev", str(paths.identity), str(paths.known_hosts),
                      proxy_jump="hpc,n1" if job else None, job_check=job)
    SshConfig(paths).install(entry, keys.ensure_keypair(paths.home / "hostkey", comment="host"))
    return entry


def test_permissions_pass_on_what_devagent_writes(paths: Paths, isolated_home: Path) -> None:
    _install(paths)
    check = hd.permissions_check(paths, home=isolated_home)
    assert check.ok, check
    assert check.detail == ("DEVAGENT_HOME 0700, id_ed25519 0600, known_hosts 0600, ssh_config 0600, ~/.ssh 0700, "
                            "~/.ssh/config 0600")


def test_a_private_key_others_can_read_fails_with_chmod_600(paths: Paths, isolated_home: Path) -> None:
    _install(paths)
    paths.identity.chmod(0o644)
    check = hd.permissions_check(paths, home=isolated_home)
    assert check.ok is False
    assert check.detail == (f"{paths.identity} is 0644: others can read your private key (ssh refuses it: "
                            "UNPROTECTED PRIVATE KEY FILE)")
    assert check.fix == f"chmod 600 {paths.identity}"


def test_every_loose_mode_is_named_with_its_own_fix(paths: Paths, isolated_home: Path) -> None:
    _install(paths)
    paths.home.chmod(0o755)
    paths.known_hosts.chmod(0o664)
    paths.user_ssh_config.chmod(0o620)
    (isolated_home / ".ssh").chmod(0o777)
    check = hd.permissions_check(paths, home=isolated_home)
    assert check.ok is False
    assert check.fix == (f"chmod 700 {paths.home} && chmod go-w {paths.known_hosts} && "
                         f"chmod 700 {isolated_home / '.ssh'} && chmod 600 {paths.user_ssh_config}")
    assert f"{paths.user_ssh_config} is 0620: others can write it (ssh refuses it: Bad owner or permissions)" \
        in check.detail


def test_an_identity_given_to_up_is_checked_too(paths: Paths, isolated_home: Path, tmp_path: Path) -> None:
    from devagent.control.ssh import keys

    _install(paths)
    mine = tmp_path / "my_key"
    keys.ensure_keypair(mine, comment="mine")
    managed_config.put(paths.managed_ssh_config, HostEntry("other", 2, "dev", str(mine), str(paths.known_hosts)))
    mine.chmod(0o640)
    assert hd.permissions_check(paths, home=isolated_home).fix == f"chmod 600 {mine}"


def test_permissions_are_skipped_when_nothing_exists_yet(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path / "none" / "devagent", user_ssh_config=tmp_path / "none" / "config")
    assert hd.permissions_check(paths, home=tmp_path / "none").ok is None


def test_the_include_line_first_passes_comments_and_blank_lines_before_it_allowed(paths: Paths) -> None:
    _install(paths)
    data = paths.user_ssh_config.read_text()
    paths.user_ssh_config.write_text("# my config\n\n" + data + "Host *\n  User ana\n")
    check = hd.include_check(SshConfig(paths))
    assert check.ok, check
    assert check.detail == (f"the first line ssh reads in {paths.user_ssh_config} is "
                            f"`{SshConfig(paths).include_line()}`")


def test_an_include_line_that_is_not_first_fails_with_the_fix_to_move_it(paths: Paths) -> None:
    _install(paths)
    data = paths.user_ssh_config.read_text()
    paths.user_ssh_config.write_text("# mine\nHost pytorch-dev\n  Port 1\n" + data)
    check = hd.include_check(SshConfig(paths))
    include = SshConfig(paths).include_line()
    assert check.ok is False
    assert check.detail == (f"{paths.user_ssh_config}:4 includes devagent's config, but line 2 `Host pytorch-dev` "
                            "comes first")
    assert check.fix == (f"move `{include}` to the top of {paths.user_ssh_config}, above every other line "
                         "(OpenSSH uses the first value it reads)")


def test_a_missing_include_line_fails_once_an_environment_exists_and_is_skipped_before(paths: Paths) -> None:
    assert hd.include_check(SshConfig(paths)).ok is None
    _install(paths)
    paths.user_ssh_config.write_text("Host *\n  User ana\n")
    check = hd.include_check(SshConfig(paths))
    assert check.ok is False
    assert check.detail == f"{paths.user_ssh_config} does not include devagent's config"
    include = SshConfig(paths).include_line()
    assert check.fix is not None and check.fix.startswith(f"add the line `{include}` at the top")
    paths.user_ssh_config.unlink()
    assert hd.include_check(SshConfig(paths)).detail.endswith("does not exist, so ssh does not read devagent's config")


@pytest.mark.parametrize(("version", "ok", "detail"), [
    ((9, 2), True, "OpenSSH 9.2: allows the strict sshd profile (post-quantum key exchange, needs ≥ 8.5)"),
    ((8, 5), True, "OpenSSH 8.5: allows the strict sshd profile (post-quantum key exchange, needs ≥ 8.5)"),
    ((8, 4), True, "OpenSSH 8.4: allows the compat sshd profile only (strict needs ≥ 8.5); `devagent up` picks "
                   "compat"),
    (None, False, "no OpenSSH client (ssh) on PATH; VS Code Remote-SSH and `ssh NAME` use it"),
])
def test_the_openssh_client_check_names_the_profile_it_allows(version: tuple[int, int] | None, ok: bool,
                                                               detail: str) -> None:
    check = hd.openssh_check(version)
    assert (check.ok, check.detail) == (ok, detail)


def test_docker_permission_denied_fails_with_the_docker_group_fix(paths: Paths) -> None:
    def denied() -> EngineApi:
        raise DevagentError("you may not use the Docker Engine's socket (permission denied)",
                            status=ExitStatus.DOCKER_PERMISSION,
                            hint="add yourself to the docker group (sudo usermod -aG docker $USER, then log in again)")

    checks = hd.run_checks(paths, name=None, environ=os.environ, engine_factory=denied)
    assert checks[0] == Check("Docker Engine", False, "you may not use the Docker Engine's socket (permission denied)",
                              fix="add yourself to the docker group (sudo usermod -aG docker $USER, then log in again)")
    assert [c.name for c in checks][1:3] == ["OpenSSH client", "Include line"]


def test_a_laptop_whose_environments_are_on_servers_needs_no_engine_of_its_own(paths: Paths) -> None:
    def absent() -> EngineApi:
        raise DevagentError("no Docker Engine answers", status=ExitStatus.DOCKER_UNAVAILABLE, hint="start it")

    checks = hd.run_checks(paths, name=None, environ=os.environ, engine_factory=absent, servers_used=True)
    assert checks[0] == Check("Docker Engine", None, "no Docker Engine answers; this machine's environments are on "
                              "servers (`devagent doctor NAME` checks one there)")


def test_an_environment_on_a_server_names_that_servers_engine(paths: Paths) -> None:
    def unreachable() -> EngineApi:
        raise DevagentError("ssh could not reach gpu-server", status=ExitStatus.SERVER_UNREACHABLE,
                            hint="check that `ssh gpu-server` works from here")

    checks = hd.run_checks(paths, name="exp", environ=os.environ, engine_factory=unreachable, server="gpu-server",
                           servers_used=True)
    assert checks[0] == Check("Docker Engine on gpu-server", False, "ssh could not reach gpu-server",
                              fix="check that `ssh gpu-server` works from here")
    running = next(c for c in checks if c.name == "container running")
    assert running.detail == "the Docker Engine on gpu-server does not answer (see above)"


# -- an environment, without talking to it ----------------------------------------------------------------------


class Listing(FakeEngine):
    """An engine whose `ls` gives CONTAINERS as they are."""

    def __init__(self, *containers: ContainerInfo) -> None:
        super().__init__()
        self.listed = list(containers)

    def list_managed(self) -> list[ContainerInfo]:
        return self.listed


def container(status: str = "running", port: int | None = PORT, profile: str = "strict", health: str | None = None,
              health_output: str = "") -> ContainerInfo:
    return ContainerInfo(id="c0ffee", name=NAME, status=status, host_port=port if status == "running" else None,
                         labels={"devagent.managed": "true", "devagent.name": NAME, "devagent.sshd-profile": profile,
                                 "devagent.workspace": "/srv/ana/code"},
                         image="devagent/env:x", created="", exit_code=137 if status == "exited" else None,
                         health=health, health_output=health_output)


def test_a_stopped_container_fails_with_up_as_the_fix_and_the_container_side_is_skipped(paths: Paths) -> None:
    _install(paths)
    checks = hd.run_checks(paths, name=NAME, environ=os.environ,
                           engine_factory=lambda: Listing(container("exited")))
    named = by_name(checks)
    assert named["container running"] == Check("container running", False, f"{NAME} is exited (exit code 137)",
                                               fix=f"`devagent up {NAME}` starts it again (`docker logs {NAME}` "
                                               "shows why it stopped)")
    assert named[f"ssh -G {NAME}"].ok, named[f"ssh -G {NAME}"]
    assert [(c.name, c.ok, c.detail) for c in checks if c.name in d.CONTAINER_SIDE] == [
        (item, None, "the container is not running") for item in d.CONTAINER_SIDE]


def test_an_unhealthy_container_fails_with_what_dockers_check_printed(paths: Paths) -> None:
    _install(paths)
    sick = container(health="unhealthy", health_output="sshd is not running (5 restarts; docker logs shows why)")
    checks = by_name(hd.environment_checks(paths, name=NAME, containers=[sick], version=(9, 2), ssh="false"))
    assert checks["container health"] == Check(
        "container health", False, "unhealthy: sshd is not running (5 restarts; docker logs shows why)",
        fix=f"`docker logs {NAME}` shows what the agent and sshd said; `devagent up {NAME} --recreate` starts a "
        "fresh container")
    stopped = by_name(hd.environment_checks(paths, name=NAME, containers=[container("exited", health="unhealthy")],
                                            version=(9, 2)))
    assert stopped["container health"] == Check("container health", None, "the container is not running")


def test_no_container_of_that_name_fails_and_no_engine_skips(paths: Paths) -> None:
    missing = hd.environment_checks(paths, name=NAME, containers=[], version=(9, 2))
    assert missing[0].ok is False and missing[0].fix == f"`devagent ls` lists the environments; `devagent up {NAME}` " \
        "creates it"
    no_engine = hd.environment_checks(paths, name=NAME, containers=None, version=(9, 2))
    assert no_engine[0] == Check("container running", None, "the Docker Engine does not answer (see above)")
    assert no_engine[-1].detail == "the Docker Engine does not answer"


def test_a_strict_container_with_an_old_client_fails_with_the_compat_fix(paths: Paths) -> None:
    _install(paths)
    checks = by_name(hd.environment_checks(paths, name=NAME, containers=[container("exited")], version=(8, 4)))
    assert checks["sshd profile"].ok is False
    assert checks["sshd profile"].fix == (f"upgrade OpenSSH to 8.5 or newer, or `devagent up {NAME} --recreate "
                                          "--sshd-profile compat`")


def test_the_alias_check_catches_a_stale_port_and_a_missing_block(paths: Paths) -> None:
    _install(paths, port=PORT)
    stale = hd.alias_check(paths, name=NAME, info=container(port=PORT + 1))
    assert stale == Check(f"ssh -G {NAME}", False, f"the alias points at port {PORT}, but the container publishes "
                          f"{PORT + 1} (it was restarted outside devagent)",
                          fix=f"`devagent up {NAME}` updates the alias")
    assert hd.alias_check(paths, name=NAME, info=container()).ok
    gone = hd.alias_check(paths, name="other", info=None)
    assert gone.ok is False and gone.fix == "`devagent up other` writes it again"


def test_the_alias_of_an_environment_in_a_slurm_job_is_read_back_from_its_proxycommand(paths: Paths) -> None:
    _install(paths, job=JobCheck("4812", "gpu", str(paths.user_ssh_config)))
    check = hd.alias_check(paths, name=NAME, info=container())
    assert check == Check(f"ssh -G {NAME}", True, f"devagent's values: 127.0.0.1:{PORT} via hpc,n1 (asking Slurm "
                          f"first whether job 4812 still runs) as dev, key {paths.identity}, host key pinned as "
                          f"{NAME}")
    # A ProxyCommand that is not devagent's (edited by hand) is not taken for the alias.
    block = paths.managed_ssh_config.read_text()
    paths.managed_ssh_config.write_text(block.replace("127.0.0.1:$6", "10.1.1.1:$6"))
    edited = hd.alias_check(paths, name=NAME, info=container())
    assert edited.ok is False and edited.detail == (
        f"devagent's Host {NAME} block in {paths.managed_ssh_config} is incomplete (its ProxyCommand is not the "
        "one devagent writes)")


def test_the_alias_check_names_the_users_line_that_overrides_devagent(paths: Paths) -> None:
    _install(paths)
    data = paths.user_ssh_config.read_text()
    paths.user_ssh_config.write_text(f"Host {NAME}\n  Port 1\n" + data)
    check = hd.alias_check(paths, name=NAME, info=container())
    assert check.ok is False
    assert check.detail == (f"your ssh config overrides devagent's Port for {NAME}: 1 wins over {PORT}, set by "
                            f"{paths.user_ssh_config}:2:   Port 1")
    assert check.fix is not None and check.fix.startswith("move devagent's line `Include ")


def test_a_container_an_interrupted_up_left_is_not_taken_for_the_environment(paths: Paths) -> None:
    # It carries NAME's labels under a temporary name (control/lifecycle/provision.py UP_STEPS); it may be half-made.
    leftover = dataclasses.replace(container("created"), id="1eft0", name=f"{NAME}-new-abc123")
    alone = hd.environment_checks(paths, name=NAME, containers=[leftover], version=(9, 2))
    assert alone[0].detail == f"no environment named {NAME}"
    beside = by_name(hd.environment_checks(paths, name=NAME, containers=[leftover, container("exited")],
                                           version=(9, 2)))
    assert beside["container running"].detail == f"{NAME} is exited (exit code 137)"


# -- the container side: one login through the alias -----------------------------------------------------------

FAKE_SSH = """#!{python}
# A stand-in for `ssh ... -L 127.0.0.1:PORT:127.0.0.1:22 NAME sh -s`: logs its arguments, serves BANNER on PORT
# (the forward), runs the probe with this machine's sh, and stays until its stdin closes, like a real session.
import socket, subprocess, sys, threading
with open({log!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
port = int(sys.argv[sys.argv.index("-L") + 1].split(":")[1])
server = socket.create_server(("127.0.0.1", port))
def serve():
    while True:
        conn, _ = server.accept()
        conn.sendall({banner!r})
        conn.close()
threading.Thread(target=serve, daemon=True).start()
if not {banner!r}:
    sys.stderr.write("channel 2: open failed: administratively prohibited: open failed\\n")
sys.exit(subprocess.run(["sh", "-s"]).returncode)
"""


def fake_ssh(tmp_path: Path, banner: bytes) -> tuple[Path, Path]:
    log = tmp_path / "ssh.log"
    script = tmp_path / "ssh"
    script.write_text(FAKE_SSH.format(python=sys.executable, log=str(log), banner=banner))
    script.chmod(0o755)
    return script, log


def test_the_probe_and_the_forward_share_one_login_through_the_alias(paths: Paths, tmp_path: Path) -> None:
    ssh, log = fake_ssh(tmp_path, b"SSH-2.0-OpenSSH_9.2\r\n")
    checks = by_name(hd.container_side_checks(paths, name=NAME, host_workspace=None, ssh=str(ssh)))
    # The probe ran (here as this machine's user) and its answers were read.
    uid, user = os.getuid(), pwd.getpwuid(os.getuid()).pw_name
    assert checks[d.LOGIN].detail == (f"ssh {NAME} landed as root" if uid == 0
                                      else f"ssh {NAME} logs in as {user} (uid {uid})")
    assert checks[d.FORWARDING] == Check(d.FORWARDING, True,
                                         "a local forward reached the container's sshd (SSH-2.0-OpenSSH_9.2)")
    logins = log.read_text().splitlines()
    assert len(logins) == 1 and logins[0].endswith(f" {NAME} sh -s") and " -L 127.0.0.1:" in logins[0]


def test_a_forward_sshd_refuses_fails_with_what_ssh_said(paths: Paths, tmp_path: Path) -> None:
    ssh, log = fake_ssh(tmp_path, b"")
    check = by_name(hd.container_side_checks(paths, name=NAME, host_workspace=None, ssh=str(ssh)))[d.FORWARDING]
    assert check.detail == ("a local forward opened but carried nothing (sshd refused the channel): "
                            "channel 2: open failed: administratively prohibited: open failed")
    assert check.fix == f"devagent's sshd allows local forwarding: `devagent up {NAME} --recreate` restores its " \
        "configuration"
    assert len(log.read_text().splitlines()) == 1


class TestWithoutVSCodeSettings:
    """With no settings.json, Remote-SSH reads ~/.ssh/config: when DEVAGENT_SSH_CONFIG is another file that
    ~/.ssh/config does not include, VS Code finds no environment. That was skipped ("all checks passed")."""

    def test_another_ssh_config_that_the_default_one_does_not_include_is_a_warning(
            self, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(tmp_path / "other_config"))
        (isolated_home / ".ssh" / "config").write_text("Host *\n    ServerAliveInterval 30\n")
        [check] = hd.vscode_checks(Paths.from_environ(), home=isolated_home, environ={"HOME": str(isolated_home)})
        default = isolated_home / ".ssh" / "config"
        assert check == Check(
            "VS Code remote.SSH.configFile", None,
            f"no VS Code settings.json under {isolated_home} (Code, Code - Insiders, VSCodium); Remote-SSH then reads "
            f"{default}, which does not include devagent's config (it is in {tmp_path}/other_config, "
            "DEVAGENT_SSH_CONFIG): VS Code will not find the environments",
            fix=f'set "remote.SSH.configFile": "{tmp_path}/other_config" in VS Code\'s settings, or add the line '
            f"`Include {tmp_path}/other_config` at the top of {default}", warning=True)
        assert d.render([check])[0].startswith("! VS Code remote.SSH.configFile — no VS Code settings.json")
        assert d.summary([Check("a", True, ""), check]) == "all 1 checks passed, 1 warning"
        assert d.envelope([check])["checks"] == [{"name": check.name, "ok": None, "detail": check.detail,
                                                  "fix": check.fix, "warning": True}]

    @pytest.mark.parametrize("line", ["Include {config}", "include ~/.ssh/devagent/ssh_config",
                                      'Include "{config}"', "Include devagent/ssh_config"])
    def test_a_default_config_that_includes_it_is_skipped_as_before(
            self, line: str, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEVAGENT_SSH_CONFIG", str(tmp_path / "other_config"))
        (isolated_home / ".ssh" / "config").write_text(line.format(config=tmp_path / "other_config") + "\n")
        [check] = hd.vscode_checks(Paths.from_environ(), home=isolated_home, environ={"HOME": str(isolated_home)})
        assert (check.ok, check.warning) == (None, False)
