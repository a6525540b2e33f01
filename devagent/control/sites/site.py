"""What host-side code needs of a server reached over ssh (`--host`), as a small typed interface.

control/link/link.py's ServerLink is the implementation: one ssh login (a ControlMaster) per devagent command,
the server's Docker Engine through a forwarded socket, commands and streams to the server's loopback through that
login. Provisioning and doctor see only this, so a test can hand in a recording fake at this one boundary.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from devagent.control.engine.engine_api import EngineApi


class ServerName(Protocol):
    @property
    def text(self) -> str: ...  # as the user gave it: "gpu-server", "alice@gpu:2222", "ssh://alice@gpu:2222"

    @property
    def proxy_jump(self) -> str: ...  # the ProxyJump value that reaches it


class Facts(Protocol):
    @property
    def user(self) -> str: ...

    @property
    def uid(self) -> int: ...

    @property
    def home(self) -> str: ...

    @property
    def resolved(self) -> Mapping[str, str]: ...  # the paths the link's probe resolved (ServerLink's resolve=)


class ServerSite(Protocol):
    @property
    def server(self) -> ServerName: ...

    @property
    def facts(self) -> Facts: ...

    @property
    def engine(self) -> EngineApi: ...

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]: ...

    def connect(self, port: int, *, timeout: float) -> socket.socket: ...
