"""One ssh alias as plain data (core/ssh/host_entry.py): the options devagent writes, what `ssh -G` must print for them,
and every value refused before it could reach a config file."""

from __future__ import annotations

import pytest

from devagent.core.ssh.host_entry import HostEntry, check_path
from devagent.errors import DevagentError, ExitStatus


def raised(call) -> DevagentError:  # type: ignore[no-untyped-def]
    with pytest.raises(DevagentError) as info:
        call()
    return info.value


class TestHostEntry:
    def test_options_are_written_in_the_documented_order(self) -> None:
        entry = HostEntry("box", 2222, "dev", "/h/id_ed25519", "/h/known_hosts")
        assert entry.options() == [
            ("HostName", "127.0.0.1"), ("Port", "2222"), ("User", "dev"), ("IdentityFile", "/h/id_ed25519"),
            ("IdentitiesOnly", "yes"), ("HostKeyAlias", "box"), ("UserKnownHostsFile", "/h/known_hosts"),
            ("StrictHostKeyChecking", "yes"), ("ForwardAgent", "no"), ("ForwardX11", "no"),
            ("ServerAliveInterval", "30"),
        ]

    def test_a_path_with_a_space_is_written_quoted_and_expected_unquoted(self) -> None:
        entry = HostEntry("box", 2222, "dev", "/my home/id_ed25519", "/my home/known_hosts")
        assert dict(entry.options())["IdentityFile"] == '"/my home/id_ed25519"'
        assert dict(entry.options())["UserKnownHostsFile"] == '"/my home/known_hosts"'
        assert entry.expected_effective()["identityfile"] == "/my home/id_ed25519"

    def test_expected_effective_spells_values_the_way_ssh_g_prints_them(self) -> None:
        entry = HostEntry("box", 2222, "dev", "/h/id_ed25519", "/h/known_hosts")
        assert entry.expected_effective() == {
            "hostname": "127.0.0.1", "port": "2222", "user": "dev", "identityfile": "/h/id_ed25519",
            "hostkeyalias": "box", "userknownhostsfile": "/h/known_hosts", "stricthostkeychecking": "true",
        }

    def test_each_refusal_names_its_fix(self) -> None:
        def hint(**fields: object) -> str | None:
            values: dict[str, object] = {"name": "box", "port": 2222, "user": "dev", "identity_file": "/h/id",
                                         "known_hosts_file": "/h/kh", **fields}
            return raised(lambda: HostEntry(**values)).hint  # type: ignore[arg-type]

        assert hint(port=0) == "use a whole number from 1 to 65535"
        assert hint(user="Dev") == "use a lowercase POSIX user name, e.g. dev"
        assert hint(proxy_jump="a b") == ("name the server as you reach it with ssh: an alias, user@host[:port] or "
                                          "ssh://user@host:port")

    def test_the_lowest_port_is_kept(self) -> None:
        assert dict(HostEntry("box", 1, "dev", "/h/id", "/h/kh").options())["Port"] == "1"

    @pytest.mark.parametrize("char", ["*", "?", "["])
    def test_an_include_path_may_hold_no_glob_character_and_other_paths_may(self, char: str) -> None:
        path = f"/h/devagent/con{char}fig"
        error = raised(lambda: check_path("Include", path, glob=True))
        assert (error.message, error.status) == (
            f"Include path {path!r} contains a glob character (Include expands globs)", ExitStatus.USAGE)
        assert error.hint == ("set DEVAGENT_HOME to a plain absolute path (letters, digits, '/', '.', '_', '-', ' ') "
                              "for Include")
        assert check_path("IdentityFile", path) == path
        assert check_path("Include", "/h/devagent/config", glob=True) == "/h/devagent/config"
        assert check_path("Include", "/h/X/config", glob=True) == "/h/X/config"  # only * ? [ are glob characters

    def test_the_highest_port_and_a_proxy_jump_are_kept(self) -> None:
        entry = HostEntry("box", 65535, "dev", "/h/id", "/h/kh", proxy_jump="alice@[::1]:2222")
        assert dict(entry.options())["Port"] == "65535"
        assert entry.options()[2] == ("ProxyJump", "alice@[::1]:2222")
        assert entry.expected_effective()["proxyjump"] == "alice@[::1]:2222"

    @pytest.mark.parametrize(("field", "value", "message"), [
        ("name", "bad name", "invalid ssh alias 'bad name'"),
        ("name", "*", "invalid ssh alias '*'"),
        ("name", "box\nHost *", "invalid ssh alias 'box\\nHost *'"),
        ("name", "box\n", "invalid ssh alias 'box\\n'"),  # `$` alone would accept the trailing newline
        ("port", 0, "invalid ssh port 0"),
        ("port", 70000, "invalid ssh port 70000"),
        ("port", 65536, "invalid ssh port 65536"),  # one past the last TCP port
        ("port", True, "invalid ssh port True"),  # a bool is an int to Python, never a port
        ("user", "dev#x", "invalid ssh user 'dev#x'"),
        ("user", " dev", "invalid ssh user ' dev'"),
        ("user", "dev\n", "invalid ssh user 'dev\\n'"),
        ("user", "a.dev", "invalid ssh user 'a.dev'"),  # the login user's rule is core/spec.py's: no '.'
        ("identity_file", "/h/id\nProxyCommand evil",
         "IdentityFile path '/h/id\\nProxyCommand evil' contains a line break"),
        ("identity_file", "/h/id#1",
         "IdentityFile path '/h/id#1' contains '#' (sshconf cuts the value there)"),
        ("identity_file", '/h/"id"', 'IdentityFile path \'/h/"id"\' contains a double quote'),
        ("identity_file", "/h/id ", "IdentityFile path '/h/id ' is empty or starts or ends with whitespace"),
        ("identity_file", "~/.ssh/id", "IdentityFile path '~/.ssh/id' is not absolute"),
        ("identity_file", "/h/%d/id",
         "IdentityFile path '/h/%d/id' contains '%' (OpenSSH expands %-tokens in paths)"),
        ("known_hosts_file", "/h/${HOME}/kh",
         "UserKnownHostsFile path '/h/${HOME}/kh' contains '$' (OpenSSH expands ${VAR} in paths)"),
        ("known_hosts_file", "/h/k\th", "UserKnownHostsFile path '/h/k\\th' contains a tab"),
        # Control characters with no entry of their own in the table of forbidden ones: ESC, NUL, DEL.
        ("identity_file", "/h/\x1b[2Jid", "IdentityFile path '/h/\\x1b[2Jid' contains a control character"),
        ("identity_file", "/h/id\x00", "IdentityFile path '/h/id\\x00' contains a control character"),
        ("known_hosts_file", "/h/k\x7fh", "UserKnownHostsFile path '/h/k\\x7fh' contains a control character"),
        ("proxy_jump", "gpu\n  ProxyCommand sh", "invalid ProxyJump 'gpu\\n  ProxyCommand sh'"),
        ("proxy_jump", "login,node,evil", "invalid ProxyJump 'login,node,evil'"),  # a third hop (two: Slurm)
        ("proxy_jump", "gpu,-oProxyCommand=sh", "invalid ProxyJump 'gpu,-oProxyCommand=sh'"),
        ("proxy_jump", "-oProxyCommand=sh", "invalid ProxyJump '-oProxyCommand=sh'"),
        ("proxy_jump", "-gpu", "invalid ProxyJump '-gpu'"),  # every character allowed, but read as an option
    ])
    def test_values_the_config_would_not_keep_intact_are_refused_as_usage_errors(
            self, field: str, value: object, message: str) -> None:
        fields: dict[str, object] = {"name": "box", "port": 2222, "user": "dev", "identity_file": "/h/id",
                                     "known_hosts_file": "/h/kh"}
        fields[field] = value
        error = raised(lambda: HostEntry(**fields))  # type: ignore[arg-type]
        assert error.message == message
        assert error.status == ExitStatus.USAGE
        assert error.hint
