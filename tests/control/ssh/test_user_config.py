"""The ssh config contract: one Include line in the user's file, devagent's values win, other bytes stay.

The real OpenSSH client (`ssh -G`) judges every effective value. HOME, DEVAGENT_HOME and DEVAGENT_SSH_CONFIG
point into a temporary folder (tests/conftest.py); tests/control/fixtures/ssh_config/ holds one file per scenario.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from devagent.control.paths import Paths
from devagent.control.ssh import known_hosts, managed_config
from devagent.control.ssh.user_config import SshConfig, parse_line
from devagent.core.ssh.host_entry import HostEntry
from devagent.errors import DevagentError, ExitStatus

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ssh_config"
NAME = "pytorch-dev"
PORT = 49153
USER = "dev"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz8kR0v0dG5rYw2t8uJm3eS1Y4lY6Xh3cQ2v2cS7b0T devagent-host"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9Ld0Lr2mO0n3p4q5r6s7t8u9v0w1x2y3z4A5B6C7D8"

PARSEABLE = [
    "host_star_first.conf",
    "global_options.conf",
    "match_blocks.conf",
    "include_glob.conf",
    "crlf.conf",
    "key_value.conf",
    "no_trailing_newline.conf",
    "empty.conf",
    "conflict_defines_name.conf",  # parses; install refuses it, remove must still leave it alone
]


# -- helpers -------------------------------------------------------------------------------------------------


def entry_for(paths: Paths, name: str = NAME, port: int = PORT, user: str = USER) -> HostEntry:
    return HostEntry(name=name, port=port, user=user, identity_file=str(paths.identity),
                     known_hosts_file=str(paths.known_hosts))


def use_fixture(paths: Paths, home: Path, fixture: str) -> bytes:
    """Copy FIXTURE to the user's ssh config (and conf.d beside it); return its bytes."""
    data = (FIXTURES / fixture).read_bytes()
    paths.user_ssh_config.write_bytes(data)
    paths.user_ssh_config.chmod(0o600)
    shutil.copytree(FIXTURES / "conf.d", home / ".ssh" / "conf.d", dirs_exist_ok=True)
    return data


def ssh_g(config: Path, host: str) -> dict[str, list[str]]:
    """Every value `ssh -G -F CONFIG HOST` prints, by keyword."""
    result = subprocess.run(["ssh", "-G", "-F", str(config), host], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=True)
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, []).append(value)
    return values


def assert_ssh_uses_devagents_values(paths: Paths, entry: HostEntry) -> None:
    effective = ssh_g(paths.user_ssh_config, entry.name)
    assert effective["hostname"] == ["127.0.0.1"]
    assert effective["port"] == [str(entry.port)]
    assert effective["user"] == [entry.user]
    assert effective["identityfile"][0] == entry.identity_file
    assert effective["identitiesonly"] == ["yes"]
    assert effective["hostkeyalias"] == [entry.name]
    assert effective["userknownhostsfile"] == [entry.known_hosts_file]
    assert effective["stricthostkeychecking"] == ["true"]
    assert effective["forwardagent"] == ["no"]
    assert effective["forwardx11"] == ["no"]
    assert effective["serveraliveinterval"] == ["30"]


def include_line(paths: Paths) -> bytes:
    return f"Include {paths.managed_ssh_config}".encode()


def raised(call, *args) -> DevagentError:  # type: ignore[no-untyped-def]
    with pytest.raises(DevagentError) as info:
        call(*args)
    return info.value


# -- devagent's own files ------------------------------------------------------------------------------------


class TestManagedConfig:
    def test_the_file_starts_with_a_header_and_ends_with_a_newline(self, paths: Paths) -> None:
        managed_config.put(paths.managed_ssh_config, entry_for(paths))
        text = paths.managed_ssh_config.read_text()
        assert text.startswith("# Managed by devagent")
        assert text.endswith("  ServerAliveInterval 30\n")
        assert stat.S_IMODE(paths.managed_ssh_config.stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.home.stat().st_mode) == 0o700

    def test_put_replaces_a_block_of_the_same_name_instead_of_adding_a_second(self, paths: Paths) -> None:
        managed_config.put(paths.managed_ssh_config, entry_for(paths, "a", port=1000))
        managed_config.put(paths.managed_ssh_config, entry_for(paths, "b"))
        managed_config.put(paths.managed_ssh_config, entry_for(paths, "a", port=2000))
        assert managed_config.hosts(paths.managed_ssh_config) == ["b", "a"]
        text = paths.managed_ssh_config.read_text()
        assert "Port 1000" not in text and "Port 2000" in text
        assert "\n\n\n" not in text

    def test_repeated_puts_and_removes_do_not_grow_the_file(self, paths: Paths) -> None:
        managed_config.put(paths.managed_ssh_config, entry_for(paths, "keep"))
        size = paths.managed_ssh_config.stat().st_size
        for _ in range(5):
            managed_config.put(paths.managed_ssh_config, entry_for(paths, "tmp"))
            assert managed_config.remove(paths.managed_ssh_config, "tmp")
        assert paths.managed_ssh_config.stat().st_size == size

    def test_remove_reports_whether_the_host_was_there_and_deletes_an_empty_file(self, paths: Paths) -> None:
        assert managed_config.remove(paths.managed_ssh_config, "a") is False
        managed_config.put(paths.managed_ssh_config, entry_for(paths, "a"))
        assert managed_config.remove(paths.managed_ssh_config, "a") is True
        assert not paths.managed_ssh_config.exists()

    def test_a_hand_made_duplicate_block_is_refused_instead_of_deleting_what_lies_between(
            self, paths: Paths) -> None:
        paths.home.mkdir(parents=True)
        paths.managed_ssh_config.write_text("Host a\n  Port 1\n\nHost b\n  Port 2\n\nHost a\n  Port 3\n")
        error = raised(managed_config.remove, paths.managed_ssh_config, "a")
        assert error.message == (
            f"devagent's ssh config {paths.managed_ssh_config} defines Host a more than once")
        assert error.status == ExitStatus.SSH_CONFIG
        assert "Host b" in paths.managed_ssh_config.read_text()


class TestKnownHosts:
    def test_pin_writes_the_name_then_the_key_without_its_comment(self, paths: Paths) -> None:
        known_hosts.pin(paths.known_hosts, NAME, HOST_KEY)
        assert paths.known_hosts.read_text() == f"{NAME} {HOST_KEY.rsplit(' ', 1)[0]}\n"
        assert known_hosts.lookup(paths.known_hosts, NAME) == HOST_KEY.rsplit(" ", 1)[0]
        assert stat.S_IMODE(paths.known_hosts.stat().st_mode) == 0o600

    def test_pin_replaces_the_key_of_the_same_name_and_keeps_others(self, paths: Paths) -> None:
        known_hosts.pin(paths.known_hosts, "a", HOST_KEY)
        known_hosts.pin(paths.known_hosts, "b", HOST_KEY)
        known_hosts.pin(paths.known_hosts, "a", OTHER_KEY)
        assert known_hosts.lookup(paths.known_hosts, "a") == OTHER_KEY
        assert known_hosts.lookup(paths.known_hosts, "b") == HOST_KEY.rsplit(" ", 1)[0]
        assert len(paths.known_hosts.read_text().splitlines()) == 2

    def test_unpin_is_idempotent(self, paths: Paths) -> None:
        known_hosts.pin(paths.known_hosts, "a", HOST_KEY)
        assert known_hosts.unpin(paths.known_hosts, "a") is True
        assert known_hosts.unpin(paths.known_hosts, "a") is False
        assert known_hosts.lookup(paths.known_hosts, "a") is None

    def test_openssh_finds_the_key_under_the_alias_and_not_under_host_and_port(self, paths: Paths) -> None:
        known_hosts.pin(paths.known_hosts, NAME, HOST_KEY)
        found = subprocess.run(["ssh-keygen", "-F", NAME, "-f", str(paths.known_hosts)],
                               capture_output=True, text=True, check=False)
        assert found.returncode == 0 and f"{NAME} ssh-ed25519" in found.stdout
        by_port = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{PORT}", "-f", str(paths.known_hosts)],
                                 capture_output=True, text=True, check=False)
        assert by_port.returncode == 1

    def test_a_line_that_is_not_a_public_key_is_a_bug(self, paths: Paths) -> None:
        with pytest.raises(ValueError, match="not an OpenSSH public key line"):
            known_hosts.pin(paths.known_hosts, NAME, "ssh-ed25519 not*base64")


# -- checking the user's config ------------------------------------------------------------------------------


class TestCheckUserConfig:
    def test_a_missing_user_config_is_fine(self, sshconfig: SshConfig, paths: Paths) -> None:
        paths.user_ssh_config.unlink(missing_ok=True)
        assert sshconfig.check_user_config(NAME) is None  # it raises to refuse

    @pytest.mark.parametrize("fixture", [f for f in PARSEABLE if f != "conflict_defines_name.conf"])
    def test_every_parseable_fixture_passes(self, sshconfig: SshConfig, paths: Paths, isolated_home: Path,
                                            fixture: str) -> None:
        use_fixture(paths, isolated_home, fixture)
        assert sshconfig.check_user_config(NAME) is None  # it raises to refuse

    def test_a_config_with_a_bad_port_is_refused_with_ssh_s_own_words(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "bad_port.conf")
        config = paths.user_ssh_config
        error = raised(sshconfig.check_user_config, NAME)
        assert str(error) == (
            f"your ssh config {config} does not parse (ssh -G exits with status 255)\n"
            f"  | {config} line 3: Bad port 'notanumber'.\n"
            f"  | {config}: terminating, 1 bad configuration options\n"
            f"  hint: fix the line named above, check with `ssh -G -F {config} {NAME}`, "
            "then run devagent again"
        )
        assert error.status == ExitStatus.SSH_CONFIG
        assert config.read_bytes() == original

    def test_a_config_with_an_unknown_keyword_is_refused_and_install_changes_nothing(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "bad_unknown_keyword.conf")
        config = paths.user_ssh_config
        error = raised(sshconfig.install, entry_for(paths), HOST_KEY)
        assert error.message == f"your ssh config {config} does not parse (ssh -G exits with status 255)"
        assert error.details == (f"{config}: line 3: Bad configuration option: colour\n"
                                 f"{config}: terminating, 1 bad configuration options")
        assert error.status == ExitStatus.SSH_CONFIG
        assert config.read_bytes() == original
        assert not paths.managed_ssh_config.exists() and not paths.known_hosts.exists()
        assert not paths.backups.exists()

    def test_a_config_that_already_defines_the_name_is_refused_naming_the_line(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "conflict_defines_name.conf")
        config = paths.user_ssh_config
        error = raised(sshconfig.install, entry_for(paths), HOST_KEY)
        assert str(error) == (
            f"your ssh config already defines Host {NAME}: {config}:4: Host old-box {NAME}\n"
            f"  hint: pick another environment name, or rename or delete that Host block in {config}"
        )
        assert error.status == ExitStatus.SSH_CONFIG
        assert config.read_bytes() == original
        assert not paths.managed_ssh_config.exists()

    @pytest.mark.parametrize("text", [
        f"Host={NAME}\n  User x\n",
        f"host = other {NAME}\n",
        f"\tHOST\t{NAME}\r\n  User x\r\n",
        f'Host "{NAME}"\n',
        f"Host *\n  User x\nMatch all\n  Port 22\nHost {NAME} # mine\n",
    ])
    def test_the_name_is_found_in_any_syntax_openssh_accepts(self, sshconfig: SshConfig, paths: Paths,
                                                              text: str) -> None:
        paths.user_ssh_config.write_text(text, newline="")
        assert raised(sshconfig.check_user_config, NAME).message.startswith(
            f"your ssh config already defines Host {NAME}: {paths.user_ssh_config}:")

    def test_the_name_is_found_in_a_file_the_config_includes(self, sshconfig: SshConfig, paths: Paths,
                                                              isolated_home: Path) -> None:
        use_fixture(paths, isolated_home, "include_glob.conf")
        extra = isolated_home / ".ssh" / "conf.d" / "zz.conf"
        extra.write_text(f"Host {NAME}\n  User me\n")
        assert raised(sshconfig.check_user_config, NAME).message == (
            f"your ssh config already defines Host {NAME}: {extra}:1: Host {NAME}")

    @pytest.mark.parametrize("text", [
        "Host *\n  User x\n",
        f"Host {NAME}-2 {NAME}.example.com\n",
        f"Host !{NAME} *\n",
        f"# Host {NAME}\n",
        f"Match host {NAME}\n  User x\n",
        f"Host other\n  HostName {NAME}\n",
    ])
    def test_patterns_comments_and_other_keywords_do_not_count_as_defining_the_name(
            self, sshconfig: SshConfig, paths: Paths, text: str) -> None:
        paths.user_ssh_config.write_text(text)
        assert sshconfig.check_user_config(NAME) is None  # it raises to refuse


class TestANameYourConfigSendsElsewhere:
    """A new alias must not take over a host the user reaches by that name (`ssh -G NAME` names another HostName)."""

    @pytest.mark.parametrize(("text", "line", "free"), [
        # gpu-server-dev would match `gpu-*` too: the suggestion is a name the config leaves alone.
        ("Host gpu-*\n    HostName 10.1.2.3\n", 2, "dev-gpu-server"),
        ("Match originalhost gpu-server\n    HostName 10.1.2.3\n", 2, "gpu-server-dev"),
        ("# mine\nHost gpu-server? !gpu-x *-server\n  hostname=10.1.2.3\n", 3, "gpu-server-dev"),
    ])
    def test_a_host_your_config_sends_elsewhere_is_refused_naming_the_line_and_a_free_name(
            self, sshconfig: SshConfig, paths: Paths, text: str, line: int, free: str) -> None:
        paths.user_ssh_config.write_text(text)
        before = paths.user_ssh_config.read_bytes()
        error = raised(sshconfig.install, entry_for(paths, name="gpu-server"), HOST_KEY)
        setter = text.splitlines()[line - 1]
        assert error.message == (f"your ssh config sends gpu-server to 10.1.2.3: {paths.user_ssh_config}:{line}: "
                                 f"{setter}")
        assert error.hint == "an environment named gpu-server would take `ssh gpu-server` over: pick another name, " \
            f"e.g. {free}"
        assert error.status == ExitStatus.SSH_CONFIG
        assert paths.user_ssh_config.read_bytes() == before
        assert not paths.managed_ssh_config.exists() and not paths.known_hosts.exists()

    def test_a_catch_all_that_makes_every_name_a_host_refuses_every_name_and_says_how_to_exempt_one(
            self, sshconfig: SshConfig, paths: Paths) -> None:
        paths.user_ssh_config.write_text("Host *\n    HostName %h.corp.example\n")
        error = raised(sshconfig.check_user_config, "box")
        assert error.message == f"your ssh config sends box to box.corp.example: {paths.user_ssh_config}:2:     " \
            "HostName %h.corp.example"
        assert error.hint == "an environment named box would take `ssh box` over: pick another name, or keep it " \
            "out of the block that sends it elsewhere (e.g. `Host * !box`)"
        paths.user_ssh_config.write_text("Host * !box\n    HostName %h.corp.example\n")
        sshconfig.check_user_config("box")

    @pytest.mark.parametrize("text", [
        "HostName jump.example.com\n",  # before any Host line: every name goes there, none is singled out
        "Host *\n    HostName jump.example.com\n",
        "Host g*\n    HostName %h\n",  # sends the name to itself
        "Host other\n    HostName gpu-server\n",
    ])
    def test_a_catch_all_to_one_host_or_a_hostname_that_is_the_name_is_fine(self, sshconfig: SshConfig,
                                                                              paths: Paths, text: str) -> None:
        paths.user_ssh_config.write_text(text)
        assert sshconfig.check_user_config("gpu-server") is None  # it raises to refuse

    def test_devagents_own_alias_is_not_taken_for_the_users(self, sshconfig: SshConfig, paths: Paths) -> None:
        sshconfig.install(entry_for(paths, name="gpu-server"), HOST_KEY)
        assert ssh_g(paths.user_ssh_config, "gpu-server")["hostname"] == ["127.0.0.1"]
        sshconfig.check_user_config("gpu-server")  # up again on the same environment
        sshconfig.install(entry_for(paths, name="gpu-server", port=PORT + 1), HOST_KEY)


# -- install and remove on every hostile fixture -------------------------------------------------------------


class TestInstallOnHostileConfigs:
    @pytest.mark.parametrize("fixture", [f for f in PARSEABLE if f != "conflict_defines_name.conf"])
    def test_install_adds_one_line_on_top_and_ssh_then_uses_devagents_values(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path, fixture: str) -> None:
        original = use_fixture(paths, isolated_home, fixture)
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        newline = b"\r\n" if original.startswith(b"Host *\r\n") else b"\n"
        assert paths.user_ssh_config.read_bytes() == include_line(paths) + newline + original
        assert_ssh_uses_devagents_values(paths, entry)
        sshconfig.verify_effective(entry)

    @pytest.mark.parametrize("fixture", PARSEABLE)
    def test_install_then_remove_leaves_the_users_file_byte_identical(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path, fixture: str) -> None:
        original = use_fixture(paths, isolated_home, fixture)
        if fixture == "conflict_defines_name.conf":
            sshconfig.install(entry_for(paths, "other-name"), HOST_KEY)
            assert sshconfig.remove("other-name") is True
        else:
            sshconfig.install(entry_for(paths), HOST_KEY)
            assert sshconfig.remove(NAME) is True
        assert paths.user_ssh_config.read_bytes() == original
        assert not paths.managed_ssh_config.exists()
        assert known_hosts.lookup(paths.known_hosts, NAME) is None

    @pytest.mark.parametrize("fixture", ["host_star_first.conf", "global_options.conf", "match_blocks.conf",
                                         "include_glob.conf", "crlf.conf", "key_value.conf"])
    def test_install_changes_nothing_ssh_uses_for_the_users_other_hosts(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path, fixture: str) -> None:
        use_fixture(paths, isolated_home, fixture)
        before = {host: ssh_g(paths.user_ssh_config, host) for host in ("gitlab", "elsewhere")}
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert {host: ssh_g(paths.user_ssh_config, host) for host in ("gitlab", "elsewhere")} == before

    def test_install_puts_the_include_line_above_a_host_star_block_that_sets_user_and_port(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        use_fixture(paths, isolated_home, "host_star_first.conf")
        sshconfig.install(entry_for(paths), HOST_KEY)
        first, second = paths.user_ssh_config.read_text().splitlines()[:2]
        assert first == f"Include {paths.managed_ssh_config}"
        assert second == "# Defaults for every host I connect to."
        effective = ssh_g(paths.user_ssh_config, NAME)
        assert (effective["user"], effective["port"]) == ([USER], [str(PORT)])
        # IdentityFile accumulates: ssh -G lists ours first, then the user's (unexpanded, as written).
        assert effective["identityfile"] == [str(paths.identity), "~/.ssh/id_rsa"]

    def test_global_user_and_port_lines_before_any_host_lose_to_devagent(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        use_fixture(paths, isolated_home, "global_options.conf")
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert_ssh_uses_devagents_values(paths, entry_for(paths))
        assert ssh_g(paths.user_ssh_config, "elsewhere")["user"] == ["root"]  # still global for other hosts

    def test_a_crlf_config_gets_a_crlf_include_line(self, sshconfig: SshConfig, paths: Paths,
                                                    isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "crlf.conf")
        assert original.count(b"\r\n") == original.count(b"\n") > 0  # the fixture really is CRLF
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert paths.user_ssh_config.read_bytes().startswith(include_line(paths) + b"\r\nHost *\r\n")

    def test_a_missing_config_and_ssh_folder_are_created_private(self, sshconfig: SshConfig, paths: Paths,
                                                                 isolated_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.rmtree(isolated_home / ".ssh")
        monkeypatch.setenv("DEVAGENT_HOME", str(isolated_home / "devagent-home"))
        paths = Paths.from_environ()
        sshconfig = SshConfig(paths)
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert paths.user_ssh_config.read_bytes() == include_line(paths) + b"\n"
        assert stat.S_IMODE(paths.user_ssh_config.stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.user_ssh_config.parent.stat().st_mode) == 0o700
        assert not paths.backups.exists()  # nothing to back up
        assert_ssh_uses_devagents_values(paths, entry_for(paths))
        sshconfig.remove(NAME)
        assert paths.user_ssh_config.read_bytes() == b""

    def test_a_symlinked_config_stays_a_symlink_and_its_target_changes(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        dotfiles = isolated_home / "dotfiles"
        dotfiles.mkdir()
        target = dotfiles / "ssh_config"
        original = (FIXTURES / "host_star_first.conf").read_bytes()
        target.write_bytes(original)
        target.chmod(0o600)
        paths.user_ssh_config.symlink_to(target)
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert paths.user_ssh_config.is_symlink()
        assert os.readlink(paths.user_ssh_config) == str(target)
        assert target.read_bytes() == include_line(paths) + b"\n" + original
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        sshconfig.remove(NAME)
        assert paths.user_ssh_config.is_symlink() and target.read_bytes() == original

    @pytest.mark.parametrize("mode", [0o600, 0o644])
    def test_the_configs_mode_is_kept(self, sshconfig: SshConfig, paths: Paths, isolated_home: Path,
                                      mode: int) -> None:
        use_fixture(paths, isolated_home, "global_options.conf")
        paths.user_ssh_config.chmod(mode)
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert stat.S_IMODE(paths.user_ssh_config.stat().st_mode) == mode

    def test_the_previous_config_is_backed_up_privately_before_each_change(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "host_star_first.conf")
        sshconfig.install(entry_for(paths), HOST_KEY)
        backup = paths.backups / "config.bak"
        assert backup.read_bytes() == original
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        installed = paths.user_ssh_config.read_bytes()
        sshconfig.remove(NAME)
        assert backup.read_bytes() == installed
        assert [p.name for p in paths.backups.iterdir()] == ["config.bak"]

    def test_a_path_with_a_space_in_devagent_home_is_quoted_and_ssh_reads_it(
            self, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEVAGENT_HOME", str(isolated_home / "dev agent"))
        paths = Paths.from_environ()
        sshconfig = SshConfig(paths)
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert paths.user_ssh_config.read_text() == f'Include "{paths.managed_ssh_config}"\n'
        assert_ssh_uses_devagents_values(paths, entry_for(paths))
        sshconfig.verify_effective(entry_for(paths))
        sshconfig.remove(NAME)
        assert paths.user_ssh_config.read_bytes() == b""

    def test_a_devagent_home_with_a_glob_character_is_refused(self, isolated_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEVAGENT_HOME", str(isolated_home / "dev[1]"))
        paths = Paths.from_environ()
        error = raised(SshConfig(paths).install, entry_for(paths), HOST_KEY)
        assert error.message == (f"Include path '{paths.managed_ssh_config}' contains a glob character "
                                 "(Include expands globs)")
        assert error.status == ExitStatus.USAGE


class TestIncludeLine:
    def test_installing_twice_keeps_exactly_one_include_line(self, sshconfig: SshConfig, paths: Paths,
                                                             isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "host_star_first.conf")
        sshconfig.install(entry_for(paths), HOST_KEY)
        sshconfig.install(entry_for(paths, port=50000), HOST_KEY)
        sshconfig.install(entry_for(paths, "second"), HOST_KEY)
        assert paths.user_ssh_config.read_bytes() == include_line(paths) + b"\n" + original
        assert sshconfig.names() == [NAME, "second"]
        assert ssh_g(paths.user_ssh_config, NAME)["port"] == ["50000"]

    def test_an_include_line_the_user_moved_is_left_where_it_is(self, sshconfig: SshConfig,
                                                                paths: Paths) -> None:
        moved = f"# mine\nHost gitlab\n  User git\n\nMatch all\nInclude = {paths.managed_ssh_config}\r\n"
        paths.user_ssh_config.write_bytes(moved.encode())
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert paths.user_ssh_config.read_bytes() == moved.encode()

    def test_removing_one_of_two_hosts_keeps_the_include_line(self, sshconfig: SshConfig,
                                                              paths: Paths) -> None:
        sshconfig.install(entry_for(paths, "a"), HOST_KEY)
        sshconfig.install(entry_for(paths, "b"), OTHER_KEY)
        assert sshconfig.remove("a") is True
        assert paths.user_ssh_config.read_bytes() == include_line(paths) + b"\n"
        assert sshconfig.names() == ["b"]
        assert known_hosts.lookup(paths.known_hosts, "b") == OTHER_KEY
        assert known_hosts.lookup(paths.known_hosts, "a") is None

    def test_needs_update_is_false_only_when_block_key_and_include_line_are_all_in_place(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        entry = entry_for(paths)
        assert sshconfig.needs_update(entry, HOST_KEY) is True
        use_fixture(paths, isolated_home, "host_star_first.conf")
        sshconfig.install(entry, HOST_KEY)
        assert sshconfig.needs_update(entry, HOST_KEY) is False
        assert sshconfig.needs_update(entry_for(paths, port=50000), HOST_KEY) is True
        assert sshconfig.needs_update(entry, OTHER_KEY) is True
        paths.user_ssh_config.write_bytes((FIXTURES / "host_star_first.conf").read_bytes())
        assert sshconfig.needs_update(entry, HOST_KEY) is True

    def test_remove_is_idempotent(self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "key_value.conf")
        assert sshconfig.remove(NAME) is False
        sshconfig.install(entry_for(paths), HOST_KEY)
        assert sshconfig.remove(NAME) is True
        assert sshconfig.remove(NAME) is False
        assert paths.user_ssh_config.read_bytes() == original

    def test_remove_deletes_only_a_line_that_includes_devagents_file_alone(self, sshconfig: SshConfig,
                                                                          paths: Paths) -> None:
        shared = f"Include /etc/ssh/other.conf {paths.managed_ssh_config}\nHost x\n  User y\n"
        paths.user_ssh_config.write_text(shared)
        sshconfig.install(entry_for(paths), HOST_KEY)
        sshconfig.remove(NAME)
        assert paths.user_ssh_config.read_text() == shared

    def test_parse_line_reads_the_syntaxes_openssh_accepts(self) -> None:
        assert parse_line("Include=/a/b") == ("include", ["/a/b"])
        assert parse_line('\tINCLUDE  "/a b/c"\r') == ("include", ["/a b/c"])
        assert parse_line("Port = 22 # comment") == ("port", ["22"])
        assert parse_line("   # Host x") is None
        assert parse_line("\r") is None


# -- verify_effective ----------------------------------------------------------------------------------------


class TestVerifyEffective:
    def test_a_host_star_block_above_a_moved_include_line_is_named_with_its_line(
            self, sshconfig: SshConfig, paths: Paths) -> None:
        config = paths.user_ssh_config
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        # The user moves devagent's line below their own Host * block.
        config.write_text(f"Host *\n    User root\n\nInclude {paths.managed_ssh_config}\n")
        error = raised(sshconfig.verify_effective, entry)
        assert str(error) == (
            f"your ssh config overrides devagent's User for {NAME}: root wins over {USER}, "
            f"set by {config}:2:     User root\n"
            f"  | User: ssh uses root, devagent set {USER} (set by {config}:2:     User root)\n"
            f"  hint: move devagent's line `Include {paths.managed_ssh_config}` ({config}:4) to the top of "
            f"{config}, above every Host and Match block (OpenSSH uses the first value it reads)"
        )
        assert error.status == ExitStatus.SSH_CONFIG

    def test_every_overridden_keyword_is_listed_with_the_line_that_wins(self, sshconfig: SshConfig,
                                                                        paths: Paths) -> None:
        config = paths.user_ssh_config
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        config.write_text(
            "Port=2200\r\nHost gitlab\r\n  User git\r\nMatch host pytorch-*\r\n"
            "  IdentityFile ~/.ssh/id_rsa\r\n  StrictHostKeyChecking no\r\n"
            "Host *\r\n  HostName example.com\r\n"
            f"Include {paths.managed_ssh_config}\r\n"
        )
        error = raised(sshconfig.verify_effective, entry)
        assert error.message == (f"your ssh config overrides devagent's HostName for {NAME}: example.com "
                                 f"wins over 127.0.0.1, set by {config}:8:   HostName example.com")
        assert error.details == "\n".join([
            f"HostName: ssh uses example.com, devagent set 127.0.0.1 "
            f"(set by {config}:8:   HostName example.com)",
            f"Port: ssh uses 2200, devagent set {PORT} (set by {config}:1: Port=2200)",
            f"IdentityFile: ssh uses ~/.ssh/id_rsa, devagent set {paths.identity} "
            f"(set by {config}:5:   IdentityFile ~/.ssh/id_rsa)",
            f"StrictHostKeyChecking: ssh uses false, devagent set true "
            f"(set by {config}:6:   StrictHostKeyChecking no)",
        ])

    def test_an_override_from_an_included_file_names_that_file(self, sshconfig: SshConfig, paths: Paths,
                                                               isolated_home: Path) -> None:
        use_fixture(paths, isolated_home, "include_glob.conf")
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        # The user moves their `Include conf.d/*` above devagent's.
        paths.user_ssh_config.write_text(f"Include conf.d/*\nInclude {paths.managed_ssh_config}\n")
        work = isolated_home / ".ssh" / "conf.d" / "work.conf"
        error = raised(sshconfig.verify_effective, entry)
        assert error.message == (f"your ssh config overrides devagent's Port for {NAME}: 2202 wins over "
                                 f"{PORT}, set by {work}:4:   Port 2202")
        assert error.details is not None
        assert f"User: ssh uses included, devagent set {USER} (set by {work}:3:   User included)" in (
            error.details)

    def test_an_include_line_inside_a_host_block_is_named_as_never_applying(self, sshconfig: SshConfig,
                                                                            paths: Paths) -> None:
        config = paths.user_ssh_config
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        config.write_text(f"Host gitlab\n  User git\nInclude {paths.managed_ssh_config}\n")
        error = raised(sshconfig.verify_effective, entry)
        assert error.message == (f"devagent's Include line is inside a Host or Match block that does not "
                                 f"apply to {NAME}: {config}:3: Include {paths.managed_ssh_config}")
        assert error.hint == (f"move `Include {paths.managed_ssh_config}` to the top of {config}, "
                              "above every Host and Match block")
        assert error.status == ExitStatus.SSH_CONFIG

    def test_a_deleted_include_line_is_reported_with_the_line_to_add(self, sshconfig: SshConfig,
                                                                      paths: Paths) -> None:
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        paths.user_ssh_config.write_text("Host gitlab\n  User git\n")
        error = raised(sshconfig.verify_effective, entry)
        assert error.message == (f"your ssh config {paths.user_ssh_config} does not include devagent's "
                                 f"config, so ssh {NAME} ignores it")
        assert error.hint == (f"add the line `Include {paths.managed_ssh_config}` at the top of "
                              f"{paths.user_ssh_config} (or run `devagent up {NAME}` again)")

    def test_a_user_value_after_devagents_include_does_not_count_as_an_override(
            self, sshconfig: SshConfig, paths: Paths, isolated_home: Path) -> None:
        use_fixture(paths, isolated_home, "host_star_first.conf")
        entry = entry_for(paths)
        sshconfig.install(entry, HOST_KEY)
        assert sshconfig.verify_effective(entry) is None  # it raises when ssh -G prints another value
