"""How devagent on a laptop should talk to a GPU server's Docker Engine: the three ways, measured over one link.

In the test topology (tests/integration/topology.py: a laptop network namespace, a test sshd, a Unix-socket relay
as the user's ProxyCommand), from inside the laptop, for each transport: the time to the first answer (connect,
log in, ping), then the median of N requests (a label-filtered container list, as `ls` makes), the ssh logins the
sshd saw, and the time to close.

    sudo .venv/bin/python benchmarks/link_bench.py [--requests 20] [--rounds 3]

Transports: `link` (devagent's ServerLink: one ControlMaster, the engine on a forwarded socket), `paramiko`
(docker SDK `ssh://`), `dial-stdio` (docker SDK `ssh://` with use_ssh_client=True). It reports; it does not gate.
Needs root (namespaces), like the topology's tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILTERS = {"label": "devagent.managed=true"}


def inner(transport: str, requests: int) -> dict[str, object]:
    """Runs inside the laptop: one transport, timed."""
    start = time.perf_counter()
    if transport == "link":
        from devagent.control.link.link import ServerLink
        from devagent.control.paths import Paths
        from devagent.core.ssh.destination import parse_server

        link = ServerLink(parse_server("gpu-server"), paths=Paths.from_environ()).__enter__()
        logged_in = time.perf_counter()
        client = link.engine._client
        close = link.close
    else:
        import docker

        client = docker.DockerClient(base_url="ssh://gpu-server", use_ssh_client=transport == "dial-stdio")
        logged_in = time.perf_counter()
        close = client.close
    client.ping()
    first = time.perf_counter()
    each = []
    for _ in range(requests):
        t = time.perf_counter()
        client.api.containers(all=True, filters=FILTERS)
        each.append(time.perf_counter() - t)
    t = time.perf_counter()
    close()
    return {"login_s": logged_in - start, "first_answer_s": first - start, "request_ms": statistics.median(each) * 1000,
            "close_s": time.perf_counter() - t}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inner")
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(inner(args.inner, args.requests)))
        return 0
    sys.path.insert(0, str(REPO))
    from tests.integration.topology import open_topology, topology_available

    reason = topology_available()
    if reason:
        print(f"cannot measure: {reason}", file=sys.stderr)
        return 1
    opened = open_topology()
    topology = next(opened)
    rows: dict[str, list[dict[str, float]]] = {}
    # paramiko reads ~/.ssh/known_hosts but neither HostKeyAlias nor the config's Port: it looks the key up under
    # the bare HostName (port 22).
    sshd = topology.sshds[0]
    with open(topology.laptop.known_hosts, "a") as f:
        f.write(f"127.0.0.1 {sshd.host_public_key}\n")
    try:
        for _ in range(args.rounds):
            for transport in ("link", "paramiko", "dial-stdio"):
                before = topology.sshds[0].log.count("Accepted publickey")
                result = topology.laptop.python(str(REPO / "benchmarks" / "link_bench.py"), "--inner", transport,
                                                "--requests", str(args.requests))
                if result.returncode != 0:
                    print(f"{transport}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(result.stdout.splitlines()[-1])
                row["logins"] = topology.sshds[0].log.count("Accepted publickey") - before
                rows.setdefault(transport, []).append(row)
    finally:
        next(opened, None)
    print(f"{'transport':<12} {'first answer':>13} {'per request':>12} {'logins':>7} {'close':>8}   "
          f"(median of {args.rounds} rounds, {args.requests} requests each)")
    for transport, results in rows.items():
        def med(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)
        print(f"{transport:<12} {med('first_answer_s') * 1000:>10.0f} ms {med('request_ms'):>9.1f} ms "
              f"{med('logins'):>7.0f} {med('close_s') * 1000:>5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
