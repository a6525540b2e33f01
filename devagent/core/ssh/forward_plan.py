"""Ports of an environment reached from this machine through its ssh alias: what to forward, the ssh command that
does it, and how to tell from ssh's own log that the forward listens. Pure: no sockets, no processes.

Everything binds 127.0.0.1 on both ends: the forward listens on this machine's loopback and connects to the
environment's loopback, so a server inside is never published on any other address (never `-p 8888:8888`).

>>> parse_ports("8888"), parse_ports("8888:9999"), parse_ports("6006:0")
(PortPair(remote=8888, local=None), PortPair(remote=8888, local=9999), PortPair(remote=6006, local=0))
>>> forward_argv(Path("/home/me/.ssh/config"), "pytorch-dev", local=9999, remote=8888)[-3:]
['-L', '127.0.0.1:9999:127.0.0.1:8888', 'pytorch-dev']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from devagent.core.ssh.command_line import KEEPALIVE, LOOPBACK, NO_SHARED_MASTER, ssh_argv
from devagent.errors import DevagentError, ExitStatus

ANY_FREE_PORT = 0  # LOCAL given as 0: any free port on this machine


@dataclass(frozen=True)
class PortPair:
    remote: int  # the environment's 127.0.0.1:REMOTE
    local: int | None  # this machine's 127.0.0.1:LOCAL; None: the same number as REMOTE; 0: any free port


def _port(text: str, what: str, *, zero_ok: bool) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not (0 if zero_ok else 1) <= int(text) <= 65535:
        allowed = "0 (any free port) or 1-65535" if zero_ok else "1-65535"
        raise DevagentError(f"{what} {text!r} is not a port number ({allowed})", status=ExitStatus.USAGE,
                            hint="give PORT or PORT:LOCAL, e.g. 8888 or 8888:9999")
    return int(text)


def parse_ports(text: str) -> PortPair:
    """PORT[:LOCAL] as the user typed it.

    >>> parse_ports("80:x")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: local port 'x' is not a port number (0 (any free port) or 1-65535)
      hint: give PORT or PORT:LOCAL, e.g. 8888 or 8888:9999
    """
    remote_text, sep, local_text = text.partition(":")
    remote = _port(remote_text, "port", zero_ok=False)
    return PortPair(remote, _port(local_text, "local port", zero_ok=True) if sep else None)


def local_port(given: int | None, default: int) -> int | None:
    """The local port to use: GIVEN, else DEFAULT; None when any free one will do (GIVEN is 0)."""
    port = default if given is None else given
    return None if port == ANY_FREE_PORT else port


def forward_argv(config: Path, name: str, *, local: int, remote: int, ssh: str = "ssh") -> list[str]:
    """The real OpenSSH client forwarding this machine's 127.0.0.1:LOCAL to NAME's 127.0.0.1:REMOTE.

    -N: no remote command; ExitOnForwardFailure: exit when the port cannot be bound, rather than log in without
    it; BatchMode: never prompt (there is no terminal to prompt on); -v: ssh's log says when the forward listens
    (`forward_listening`), and its other debug lines are kept out of the user's sight; no ControlMaster: a
    master connection of the user's would hold the forward on after this ssh ended."""
    return ssh_argv(config, name, ssh=ssh, flags=["-N", "-v"],
                    options={"ExitOnForwardFailure": "yes", **NO_SHARED_MASTER, "ConnectTimeout": 20, **KEEPALIVE},
                    forward=(local, remote))


def forward_listening(line: str) -> bool:
    """Whether a line of `ssh -v`'s log shows the forward listening.

    OpenSSH logs the listener's channel once listen() succeeded ("channel 0: new port-listener [port listener]",
    "channel 0: new [port listener]" before 9.x); with ExitOnForwardFailure a forward that failed has ended ssh
    before. Its earlier line "Local forwarding listening on 127.0.0.1 port N." is logged before bind(), so it proves
    nothing: a connection right after it was refused about once in 30 tries here. Nor does "Entering interactive
    session.": for an environment on a server, the jump's own ssh (`-W`, which never listens: -W implies
    ClearAllForwardings) logs it into the same stream before this ssh has even reached the environment.

    >>> forward_listening("debug1: channel 0: new port-listener [port listener] (inactive timeout: 0)")
    True
    >>> forward_listening("debug1: Entering interactive session.")
    False
    >>> forward_listening("debug1: Local forwarding listening on 127.0.0.1 port 8888.")
    False
    """
    return line.startswith("debug1: channel ") and "[port listener]" in line


def is_debug(line: str) -> bool:
    """A line of ssh's own -v log (not an error, not the remote command's output).

    >>> is_debug('Authenticated to 127.0.0.1 ([127.0.0.1]:32770) using "publickey".')
    True
    >>> is_debug("channel 2: open failed: connect failed: Connection refused")
    False
    """
    # -v also shows what is otherwise logged at the VERBOSE level without a prefix: the version, the login, and at
    # the end the bytes moved.
    return line.startswith(("debug1: ", "debug2: ", "debug3: ", "OpenSSH_", "Authenticated to ", "Transferred: ",
                            "Bytes per second: "))


def bind_failed(lines: list[str]) -> bool:
    """Whether ssh's log says the local port could not be bound (taken between our check and ssh's bind)."""
    return any("Address already in use" in line or "Could not request local forwarding" in line for line in lines)


def url(local: int, *, path: str = "/", token: str | None = None) -> str:
    """The address to open on this machine.

    >>> url(8888, token="abc")
    'http://127.0.0.1:8888/?token=abc'
    """
    return f"http://{LOOPBACK}:{local}{path}" + (f"?token={token}" if token else "")


# A devcontainer.json's forwardPorts, recorded on the container at `up` so that `devagent forward NAME` needs no
# workspace (and works from anywhere the environment's engine is reached).
FORWARD_PORTS_LABEL = "devagent.forward-ports"


def ports_label(ports: tuple[int, ...]) -> dict[str, str]:
    """The container label for PORTS (none without ports, so other environments' labels stay as they were).

    >>> ports_label((8888, 6006)), ports_label(())
    ({'devagent.forward-ports': '8888,6006'}, {})
    """
    return {FORWARD_PORTS_LABEL: ",".join(str(p) for p in ports)} if ports else {}


def recorded_ports(label: str | None) -> tuple[int, ...]:
    """The ports a container's label records; anything that is not a port (a label set by hand) is left out.

    >>> recorded_ports("8888,6006"), recorded_ports(None), recorded_ports("80,x,70000,\\n9")
    ((8888, 6006), (), (80,))
    """
    found = []
    for item in (label or "").split(","):
        if re.fullmatch(r"[0-9]{1,5}", item) and 0 < int(item) < 65536:
            found.append(int(item))
    return tuple(found)
