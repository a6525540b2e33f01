"""SERVER as the user types it after `ssh`: what is taken, how OpenSSH is told, and what is refused before
anything runs (options, shell metacharacters, ProxyJump's hop separator, %-tokens, control characters)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.ssh.destination import EXAMPLES, Server, parse_server
from devagent.errors import DevagentError, ExitStatus


@pytest.mark.parametrize(("text", "destination", "jump"), [
    ("gpu-server", ["gpu-server"], "gpu-server"),
    ("gpu_box.lab", ["gpu_box.lab"], "gpu_box.lab"),
    ("alice@gpu", ["alice@gpu"], "alice@gpu"),
    ("alice@gpu:2222", ["-p", "2222", "alice@gpu"], "alice@gpu:2222"),
    ("gpu:2222", ["-p", "2222", "gpu"], "gpu:2222"),
    ("ssh://alice@gpu:2222", ["-p", "2222", "alice@gpu"], "alice@gpu:2222"),
    ("ssh://gpu", ["gpu"], "gpu"),
    ("SSH://first.last@10.0.0.7/", ["first.last@10.0.0.7"], "first.last@10.0.0.7"),
    ("[::1]:22", ["-p", "22", "::1"], "[::1]:22"),
    ("alice@[fd00::1]", ["-l", "alice", "fd00::1"], "alice@[fd00::1]"),
    ("ssh://alice@[::ffff:127.0.0.1]:2200", ["-l", "alice", "-p", "2200", "::ffff:127.0.0.1"],
     "alice@[::ffff:127.0.0.1]:2200"),
])
def test_a_server_is_told_to_openssh_as_destination_and_as_proxy_jump(text: str, destination: list[str],
                                                                        jump: str) -> None:
    server = parse_server(text)
    assert server.text == text
    assert str(server) == text
    assert server.ssh_destination() == destination
    assert server.proxy_jump == jump


def test_the_parts_are_none_where_the_users_ssh_config_decides() -> None:
    server = parse_server("gpu-server")
    assert (server.user, server.host, server.port) == (None, "gpu-server", None)
    assert parse_server("ssh://bob@h:7").port == 7


def test_two_spellings_of_one_server_are_two_records_because_the_text_is_what_devagent_shows() -> None:
    assert parse_server("alice@gpu:22") != parse_server("ssh://alice@gpu:22")
    assert parse_server("gpu") == Server("gpu")


@pytest.mark.parametrize(("text", "why"), [
    ("", "it is empty"),
    ("-oProxyCommand=touch /tmp/pwned", "it starts with '-' (ssh would read an option)"),
    ("-J", "it starts with '-' (ssh would read an option)"),
    ("gpu server", "it contains a space"),
    ("gpu\nProxyCommand x", "it contains a control character (a line break, a tab…)"),
    ("gpu\r", "it contains a control character (a line break, a tab…)"),
    ("gpu\x00", "it contains a control character (a line break, a tab…)"),
    ("gpu\t", "it contains a control character (a line break, a tab…)"),
    ("gpu;reboot", "it contains ';'"),
    ("gpu&&id", "it contains '&'"),
    ("$(id)", "it contains '$'"),
    ("`id`", "it contains a backquote"),
    ("gpu|nc", "it contains '|'"),
    ("bastion,gpu", "it contains a comma (ProxyJump reads it as a second jump host)"),
    ("gpu-%h", "it contains '%' (OpenSSH expands %-tokens)"),
    ("gpu#x", "it contains '#' (a comment in ssh config)"),
    ("gpu=x", "it contains '=' (ssh config reads it as a separator)"),
    ("'gpu'", "it contains a quote"),
    ("gpu\\x", "it contains a backslash"),
    ("gpu*", "it contains a glob character"),
    ("!gpu", "it contains '!' (a negation in ssh config patterns)"),
    ("~/gpu", "it contains '~'"),
    ("gpü", "it contains 'ü' (only ASCII host and user names are taken)"),
    ("http://gpu", "it contains '/' (only ssh:// addresses are taken)"),
    ("gpu/x", "it contains '/' (only ssh:// addresses are taken)"),
    ("ssh://gpu/path", "an ssh:// address has no path"),
    ("a@b@gpu", "it contains '@' twice (name a login with '@' in it in your ssh config: User)"),
    ("-@gpu", "it starts with '-' (ssh would read an option)"),
    ("alice@-oProxyCommand", "the host '-oProxyCommand' is not a host name (letters, digits, '.', '_', '-')"),
    ("-alice@gpu", "it starts with '-' (ssh would read an option)"),
    ("ssh://-oProxyCommand", "the host '-oProxyCommand' is not a host name (letters, digits, '.', '_', '-')"),
    ("ssh://-l@gpu", "the user '-l' is not a plain login name (letters, digits, '.', '_', '-')"),
    ("@gpu", "the user '' is not a plain login name (letters, digits, '.', '_', '-')"),
    ("alice@", "it names no host"),
    ("gpu:", "the port '' is not a number from 1 to 65535"),
    ("gpu:0", "the port '0' is not a number from 1 to 65535"),
    ("gpu:65536", "the port '65536' is not a number from 1 to 65535"),
    ("gpu:022", "the port '022' is not a number from 1 to 65535"),
    ("gpu:-1", "the port '-1' is not a number from 1 to 65535"),
    ("gpu:22:33", "an IPv6 address needs brackets: [::1] or user@[::1]:2222"),
    ("::1", "an IPv6 address needs brackets: [::1] or user@[::1]:2222"),
    ("[::1", "an IPv6 address opened with '[' is not closed with ']'"),
    ("[gpu]", "'gpu' between '[' and ']' is not an IPv6 address"),
    ("[::1]x", "'x' after ']' is not ':PORT'"),
    ("[]", "'' between '[' and ']' is not an IPv6 address"),
    (".gpu", "the host '.gpu' is not a host name (letters, digits, '.', '_', '-')"),
    ("gpu+1", "the host 'gpu+1' is not a host name (letters, digits, '.', '_', '-')"),
    ("gpu{a}", "the host 'gpu{a}' is not a host name (letters, digits, '.', '_', '-')"),
])
def test_a_hostile_or_broken_server_is_refused_before_anything_runs(text: str, why: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_server(text)
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.message == f"server {text!r} is not usable: {why}"
    assert caught.value.hint == f"give {EXAMPLES}"


def test_a_very_long_server_is_refused_and_shown_shortened() -> None:
    with pytest.raises(DevagentError) as caught:
        parse_server("g" * 256)
    assert caught.value.message == f"server {'g' * 40 + '…'!r} is not usable: it is longer than 255 characters"


def test_a_server_made_directly_is_checked_too() -> None:
    with pytest.raises(DevagentError):
        Server("-oProxyCommand=x")


@given(st.text(max_size=40))
def test_whatever_is_taken_is_one_plain_word_for_ssh_and_for_proxy_jump(text: str) -> None:
    try:
        server = parse_server(text)
    except DevagentError as exc:
        assert exc.status == ExitStatus.USAGE
        return
    for word in [*server.ssh_destination(), server.proxy_jump]:
        assert (word and not word.startswith("-")) or word in ("-p", "-l")
        assert not set(word) & set(" \t\r\n,%$'\"`\\;&|<>()*?!#=~")
        assert word.isascii() and word.isprintable()
    assert server.ssh_destination()[-1][0] not in "-"
