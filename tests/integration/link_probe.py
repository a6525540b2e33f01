"""A test-only driver of ServerLink, run inside the topology's laptop (tests/integration/test_server_link.py).

    python -m tests.integration.link_probe MODE SERVER [ARG]

MODE facts: open a link, print one JSON line with the facts, an engine ping and a run(); close it.
MODE connect PORT: print the first bytes of a stream to the server's 127.0.0.1:PORT (or the ConnectionError).
MODE hold: open a link and the engine, print one JSON line (folder, master pid), then wait to be signalled (as a
devagent command does: Ctrl-C acts also when SIGINT came ignored; short sleeps, so a signal that lands just before
one is acted on within a fraction of a second).
A DevagentError prints {"error", "status", "details"} and exits with its status, as the CLI would.
Options come from the environment: PROBE_SOCKET (docker_socket), PROBE_CONNECT_TIMEOUT, PROBE_RESOLVE (paths for
the probe to resolve, separated by '|').
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from devagent.control.lifecycle.interrupts import acting_on_stop_signals
from devagent.control.link import link as server_link
from devagent.control.link.link import ServerLink, resolve_server
from devagent.control.paths import Paths
from devagent.errors import DevagentError


def _say(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def main(argv: list[str]) -> int:
    mode, text = argv[0], argv[1]
    if "PROBE_CONNECT_TIMEOUT" in os.environ:
        server_link.CONNECT_TIMEOUT = int(os.environ["PROBE_CONNECT_TIMEOUT"])
    started = time.monotonic()
    try:
        server = resolve_server(text, environ=os.environ)
        resolve = tuple(path for path in os.environ.get("PROBE_RESOLVE", "").split("|") if path)
        with ServerLink(server, paths=Paths.from_environ(), docker_socket=os.environ.get("PROBE_SOCKET"),
                        resolve=resolve) as link:
            opened = time.monotonic()
            if mode == "facts":
                containers = len(link.engine.list_managed())
                engine_id = link.engine._client.info()["ID"]  # which engine answered
                engine = time.monotonic()
                out = link.run(["printf", "%s|", "a b", "$HOME", "-x", "'"], input=None)
                _say({"facts": link.facts.__dict__, "server": link.server.text, "containers": containers,
                      "engine_id": engine_id, "run": [out.returncode, out.stdout.decode()], "folder": str(link.folder),
                      "login_s": opened - started, "engine_s": engine - opened})
            elif mode == "connect":
                try:
                    stream = link.connect(int(argv[2]), timeout=10)
                except ConnectionError as exc:
                    _say({"connection_error": str(exc)})
                    return 0
                with stream:
                    stream.sendall(b"hello\n")
                    _say({"data": stream.recv(200).decode(errors="replace")})
            elif mode == "hold":
                link.engine.list_managed()
                master = link._master
                assert master is not None
                _say({"folder": str(link.folder), "master_pid": master.pid})
                while True:
                    time.sleep(0.1)
    except DevagentError as exc:
        _say({"error": exc.message, "status": int(exc.status), "details": exc.details or "", "hint": exc.hint})
        return int(exc.status)
    return 0


if __name__ == "__main__":
    with acting_on_stop_signals():  # as cli/app.py's main
        status = main(sys.argv[1:])
    sys.exit(status)
