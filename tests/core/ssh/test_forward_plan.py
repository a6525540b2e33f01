"""Port forwarding's plan: PORT[:LOCAL] as typed, the ssh line, ssh's log read back, the URL, the ports label."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.core.ssh.forward_plan import (
    ANY_FREE_PORT,
    FORWARD_PORTS_LABEL,
    PortPair,
    bind_failed,
    forward_argv,
    forward_listening,
    is_debug,
    local_port,
    parse_ports,
    ports_label,
    recorded_ports,
    url,
)
from devagent.errors import DevagentError, ExitStatus

HINT = "give PORT or PORT:LOCAL, e.g. 8888 or 8888:9999"


@pytest.mark.parametrize(("text", "pair"), [
    ("8888", PortPair(8888, None)),
    ("1", PortPair(1, None)),
    ("65535", PortPair(65535, None)),
    ("00080", PortPair(80, None)),
    ("8888:9999", PortPair(8888, 9999)),
    ("6006:0", PortPair(6006, 0)),
    ("6006:65535", PortPair(6006, 65535)),
])
def test_port_and_local_port_as_typed(text: str, pair: PortPair) -> None:
    assert parse_ports(text) == pair


@pytest.mark.parametrize(("text", "message"), [
    ("0", "port '0' is not a port number (1-65535)"),
    ("65536", "port '65536' is not a port number (1-65535)"),
    ("", "port '' is not a port number (1-65535)"),
    ("x", "port 'x' is not a port number (1-65535)"),
    ("123456", "port '123456' is not a port number (1-65535)"),
    ("-1", "port '-1' is not a port number (1-65535)"),
    (" 80", "port ' 80' is not a port number (1-65535)"),
    ("80:x", "local port 'x' is not a port number (0 (any free port) or 1-65535)"),
    ("80:", "local port '' is not a port number (0 (any free port) or 1-65535)"),
    ("80:65536", "local port '65536' is not a port number (0 (any free port) or 1-65535)"),
    ("80:81:82", "local port '81:82' is not a port number (0 (any free port) or 1-65535)"),
    ("80:000000", "local port '000000' is not a port number (0 (any free port) or 1-65535)"),
])
def test_what_is_no_port_is_refused_as_a_usage_error_with_the_hint(text: str, message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_ports(text)
    assert (caught.value.message, caught.value.hint, caught.value.status) == (message, HINT, ExitStatus.USAGE)


@pytest.mark.parametrize(("given", "default", "port"), [
    (None, 8888, 8888), (9999, 8888, 9999), (ANY_FREE_PORT, 8888, None), (None, ANY_FREE_PORT, None), (1, 0, 1)])
def test_the_local_port_is_the_one_given_else_the_default_and_none_for_any_free_one(
        given: int | None, default: int, port: int | None) -> None:
    assert ANY_FREE_PORT == 0
    assert local_port(given, default) == port


def test_the_forward_is_one_ssh_line_loopback_to_loopback_that_never_prompts_nor_shares_a_master() -> None:
    assert forward_argv(Path("/home/me/.ssh/config"), "pytorch-dev", local=9999, remote=8888) == [
        "ssh", "-N", "-v", "-F", "/home/me/.ssh/config", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
        "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ConnectTimeout=20",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
        "-L", "127.0.0.1:9999:127.0.0.1:8888", "pytorch-dev"]
    assert forward_argv(Path("cfg"), "e", local=1, remote=2, ssh="/usr/bin/ssh")[0] == "/usr/bin/ssh"


@pytest.mark.parametrize(("line", "listening"), [
    ("debug1: channel 0: new port-listener [port listener] (inactive timeout: 0)", True),
    ("debug1: channel 1: new [port listener]", True),
    ("debug1: Local forwarding listening on 127.0.0.1 port 8888.", False),
    ("debug1: Entering interactive session.", False),
    ("debug1: channel 0: new session [client-session]", False),
    ("debug2: channel 0: new port-listener [port listener]", False),
    ("channel 0: new port-listener [port listener]", False),
])
def test_only_the_listeners_channel_shows_the_forward_listening(line: str, listening: bool) -> None:
    assert forward_listening(line) is listening


@pytest.mark.parametrize(("line", "debug"), [
    ("debug1: Reading configuration data /home/me/.ssh/config", True),
    ("debug2: resolving", True),
    ("debug3: send packet", True),
    ("OpenSSH_9.6p1 Ubuntu-3ubuntu13, OpenSSL 3.0.13 30 Jan 2024", True),
    ('Authenticated to 127.0.0.1 ([127.0.0.1]:32770) using "publickey".', True),
    ("Transferred: sent 2960, received 2872 bytes, in 0.3 seconds", True),
    ("Bytes per second: sent 9875.2, received 9581.6", True),
    ("channel 2: open failed: connect failed: Connection refused", False),
    ("debug4: x", False),
    ("debug1:x", False),
    ("ssh: connect to host 127.0.0.1 port 22: Connection refused", False),
    ("", False),
])
def test_sshs_own_log_lines_are_told_from_errors(line: str, debug: bool) -> None:
    assert is_debug(line) is debug


@pytest.mark.parametrize(("lines", "failed"), [
    ([], False),
    (["debug1: x", "bind [127.0.0.1]:8888: Address already in use"], True),
    (["channel_setup_fwd_listener_tcpip: cannot listen to port: 8888",
      "Could not request local forwarding."], True),
    (["debug1: channel 0: new port-listener [port listener]"], False),
])
def test_a_port_taken_before_ssh_bound_it_is_read_from_its_log(lines: list[str], failed: bool) -> None:
    assert bind_failed(lines) is failed


@pytest.mark.parametrize(("kwargs", "address"), [
    ({}, "http://127.0.0.1:8888/"),
    ({"token": "abc"}, "http://127.0.0.1:8888/?token=abc"),
    ({"token": ""}, "http://127.0.0.1:8888/"),
    ({"path": "/lab"}, "http://127.0.0.1:8888/lab"),
    ({"path": "/lab", "token": "t"}, "http://127.0.0.1:8888/lab?token=t"),
])
def test_the_address_to_open_is_on_this_machines_loopback(kwargs: dict[str, str], address: str) -> None:
    assert url(8888, **kwargs) == address


def test_the_ports_label_holds_the_ports_in_order_and_is_left_out_without_ports() -> None:
    assert FORWARD_PORTS_LABEL == "devagent.forward-ports"
    assert ports_label((8888, 6006)) == {"devagent.forward-ports": "8888,6006"}
    assert ports_label((22,)) == {"devagent.forward-ports": "22"}
    assert ports_label(()) == {}


@pytest.mark.parametrize(("label", "ports"), [
    ("8888,6006", (8888, 6006)),
    ("1,65535", (1, 65535)),
    ("0,65536,123456", ()),
    ("80, 81,x,,-1,+2,8.0", (80,)),
    ("", ()),
    (None, ()),
])
def test_the_recorded_ports_are_read_back_leaving_out_what_is_no_port(
        label: str | None, ports: tuple[int, ...]) -> None:
    assert recorded_ports(label) == ports
