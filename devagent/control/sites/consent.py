"""The servers the user agreed to use when only a workspace's devagent.toml names them.

A cloned repository's devagent.toml may say ``host = "somewhere"``: a plain `devagent up` would then log in there
with the user's own ssh config and keys, hand over the new environment's host key and write an alias through it.
So a server named only by that file is used once the user has said yes to it (asked once, in a terminal) — or
named it themselves with ``--host`` or ``DEVAGENT_HOST``. The answer is remembered per server, in
DEVAGENT_HOME/trusted-servers.json (the user's own file, written atomically).

    trusted = TrustedServers(paths)
    if not trusted.has("gpu-server"):
        trusted.add("gpu-server")
"""

from __future__ import annotations

import json

from devagent.control.atomic import atomic_write, ensure_private_dir
from devagent.control.paths import Paths
from devagent.errors import DevagentError, ExitStatus

VERSION = 1


class TrustedServers:
    """The servers a devagent.toml may send `up` to without asking, as the user named them (Server.text)."""

    def __init__(self, paths: Paths) -> None:
        self.path = paths.home / "trusted-servers.json"

    def _read(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise DevagentError(f"cannot read {self.path}: {exc}", status=ExitStatus.USAGE,
                                hint="fix or remove the file (devagent then asks again)") from None
        servers = data.get("servers") if isinstance(data, dict) else None
        return [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []

    def has(self, server: str) -> bool:
        return server in self._read()

    def add(self, server: str) -> None:
        servers = self._read()
        if server in servers:
            return
        ensure_private_dir(self.path.parent)
        data = {"version": VERSION, "servers": [*servers, server]}
        try:
            atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode(), mode=0o600)
        except OSError as exc:
            raise DevagentError(f"cannot write {self.path}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                                hint="make DEVAGENT_HOME writable, or pass --host SERVER") from None
