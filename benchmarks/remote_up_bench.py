"""Time `devagent up --host` from a laptop against the floor over the same laptop -> server link, count the ssh
logins each command makes to the server, and time `ls` across three servers against the slowest single one.

The laptop and the servers are the test topology (tests/integration/topology.py: a network namespace that reaches
this machine's test sshds only through Unix-socket relays; this machine's Docker Engine is every server's engine).
Needs root, sshd, socat and the test server users (`make test-users`), like the --host integration tests.

    .venv/bin/python benchmarks/remote_up_bench.py [--rounds 3] [--base-image devagent-base:bookworm]

Floor: one `ssh SERVER 'docker run -d … sshd …; docker port …'` (the image devagent built, sshd with a mounted host
key and authorized key), then the first OpenSSH login through `ProxyJump SERVER` that succeeds. devagent: `devagent
up NAME --host SERVER` on the built image, up to its proven login through the alias. Target: <= 1.5x the floor.
Logins: the test sshd's "Accepted publickey" lines during each command (target: one per command per server, plus
the proving login through the alias for `up`). `ls` across 3 servers, one environment on each: target <= 1.3x the
slowest `ls --host` of one. It reports; it does not gate. Rounds alternate floor and devagent.

devagent runs as installed, with its bytecode cached (filled by the unmeasured first round): the laptop's commands
otherwise run with PYTHONDONTWRITEBYTECODE=1 and compile devagent's source every time (--no-bytecode).

Also the CPU time (user + sys) the laptop spends on each: the command and every process it waited for (its ssh
clients, the ProxyCommand relays), from getrusage(RUSAGE_CHILDREN). Under load, on a shared 2-core machine, the
wall-clock ratio swings by ±0.3x between runs; the CPU time moves far less, so it shows what a change saves.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.up_floor import docker_run, first_login, floor_keys, on_server, published_port  # noqa: E402
from tests.integration.topology import Laptop, Sshd, Topology  # noqa: E402 (the repo root first)

SERVER_USER = "devagent-srv"


def logins(sshd: Sshd) -> int:
    return sshd.log.count("Accepted publickey for")


def children_cpu() -> float:
    """User + sys seconds of every child process this one has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


BYTECODE: dict[str, str] = {}  # the environment of devagent's runs in the laptop: where its bytecode is cached


def timed(laptop: Laptop, *args: str, tree: Path = REPO) -> tuple[float, float]:
    """(wall seconds, laptop CPU seconds) of `devagent ARGS` of the checkout TREE in the laptop."""
    start, cpu = time.perf_counter(), children_cpu()
    laptop.devagent(*args, env={**BYTECODE, "PYTHONPATH": str(tree)}, check=True, timeout=900)
    return time.perf_counter() - start, children_cpu() - cpu


def floor_once(laptop: Laptop, image: str, keydir: Path, name: str) -> tuple[float, float]:
    """ssh SERVER docker run … + the first login through ProxyJump: (wall seconds, laptop CPU seconds)."""
    start, cpu = time.perf_counter(), children_cpu()
    try:
        started = laptop.ssh("gpu-server", on_server(docker_run(image, keydir, name)))
        if started.returncode != 0:
            raise RuntimeError(f"the floor's docker run failed: {started.output}")
        took = first_login(laptop.run, keydir, published_port(started.stdout), since=start,
                           hops=("-F", str(laptop.ssh_config), "-J", "gpu-server"))
        return took, children_cpu() - cpu
    finally:
        laptop.ssh("gpu-server", f"docker rm -f {name}")


class Bench:
    def __init__(self, laptop: Laptop, base_image: str, prefix: str) -> None:
        self.laptop, self.base_image, self.prefix = laptop, base_image, prefix
        self.made: list[str] = []

    def up(self, name: str, host: str, tree: Path = REPO) -> tuple[float, float]:
        self.made.append(name)
        return timed(self.laptop, "up", name, "--host", host, "--base-image", self.base_image, "--memory", "2g",
                     tree=tree)

    def down(self, name: str) -> None:
        self.laptop.devagent("down", name, check=True)
        self.made.remove(name)

    def rounds(self, image: str, keydir: Path, rounds: int, trees: list[Path]
               ) -> tuple[list[tuple[float, float]], list[list[tuple[float, float]]]]:
        """Floors, and each checkout's ups (TREES: this one, then a baseline's), alternating in one series."""
        # One unmeasured round each: the page cache, Docker's layer cache, the known_hosts of the floor (and
        # each checkout's image, built by its first up).
        floor_once(self.laptop, image, keydir, f"{self.prefix}-warm")
        for t, tree in enumerate(trees):
            self.up(f"{self.prefix}-warm{t}", "gpu-server", tree)
            self.down(f"{self.prefix}-warm{t}")
        floors: list[tuple[float, float]] = []
        ups: list[list[tuple[float, float]]] = [[] for _ in trees]
        for i in range(rounds):
            floors.append(floor_once(self.laptop, image, keydir, f"{self.prefix}-floor{i}"))
            for t in range(len(trees)) if i % 2 == 0 else reversed(range(len(trees))):  # neither always first
                ups[t].append(self.up(f"{self.prefix}-up{i}-{t}", "gpu-server", trees[t]))
                self.down(f"{self.prefix}-up{i}-{t}")
        return floors, ups

    def logins(self, sshd: Sshd) -> dict[str, int]:
        counts: dict[str, int] = {}
        name = f"{self.prefix}-count"
        before = logins(sshd)
        self.up(name, "gpu-server")
        counts["up (new)"] = logins(sshd) - before
        for label, command in (("up (existing)", ["up", name, "--host", "gpu-server", "--base-image",
                                                   self.base_image, "--memory", "2g"]),
                               ("ls", ["ls"]), ("doctor NAME", ["doctor", name])):
            before = logins(sshd)
            self.laptop.devagent(*command, timeout=900)
            counts[label] = logins(sshd) - before
        before = logins(sshd)
        self.down(name)
        counts["down"] = logins(sshd) - before
        return counts

    def ls(self, servers: list[str]) -> tuple[float, dict[str, float]]:
        for host in servers:
            self.up(f"{self.prefix}-{host}", host)
        singles = {host: statistics.median(timed(self.laptop, "ls", "--host", host)[0] for _ in range(5))
                   for host in servers}
        return statistics.median(timed(self.laptop, "ls")[0] for _ in range(5)), singles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-image", default="devagent-base:bookworm")
    parser.add_argument("--no-bytecode", action="store_true", help="compile devagent's source on every run")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another devagent checkout (e.g. `git archive main | tar -x -C DIR`, readable by "
                        "the laptop): its up --host runs in the same rounds, against the same floors")
    args = parser.parse_args()
    Topology.sweep_leftovers()
    root = Path(tempfile.mkdtemp(prefix=f"devagent-topology-{os.getpid()}-", dir="/tmp"))
    root.chmod(0o755)
    if not args.no_bytecode:
        BYTECODE.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(root / "pycache"))
    with Topology(root) as topology:
        laptop = topology.laptop
        laptop.add_alias("gpu-server3", topology.start_sshd(), user=SERVER_USER)
        bench = Bench(laptop, args.base_image, f"rbench-{secrets.token_hex(2)}")
        try:
            image = laptop.devagent("image", "build", "--host", "gpu-server", "--base-image", args.base_image,
                                    check=True, timeout=900).stdout.split()[2]
            trees = [REPO, *([args.baseline.resolve()] if args.baseline else [])]
            keydir = floor_keys(root, uid=int(laptop.ssh("gpu-server", "id", "-u").stdout), run=laptop.run)
            floors, every_up = bench.rounds(image, keydir, args.rounds, trees)
            ups = every_up[0]
            counts = bench.logins(topology.sshds[0])
            everywhere, singles = bench.ls(["gpu-server", "gpu-server2", "gpu-server3"])
        finally:
            for name in list(bench.made):
                laptop.devagent("down", name)
            for host in ("gpu-server", "gpu-server2", "gpu-server3"):  # down keeps workspaces: these are ours
                laptop.ssh(host, f"rm -rf ~/devagent/{bench.prefix}-*")
    f, u = statistics.median(w for w, _ in floors), statistics.median(w for w, _ in ups)
    fc, uc = statistics.median(c for _, c in floors), statistics.median(c for _, c in ups)
    slowest = max(singles.values())
    print(f"{'figure':52} {'median':>9} {'floor':>9} {'ratio':>7}  target")
    print(f"{'devagent up --host (built image) → proven login':52} {u:8.2f}s {f:8.2f}s {u / f:6.2f}x  <= 1.5x")
    print(f"{'  laptop CPU (user+sys) of the same':52} {uc:8.2f}s {fc:8.2f}s {uc / fc:6.2f}x")
    if args.baseline:
        b, bc = statistics.median(w for w, _ in every_up[1]), statistics.median(c for _, c in every_up[1])
        print(f"{'  the same, of the baseline checkout':52} {b:8.2f}s {f:8.2f}s {b / f:6.2f}x")
        print(f"{'  laptop CPU of its up':52} {bc:8.2f}s {fc:8.2f}s {bc / fc:6.2f}x")
    print(f"{'ls across 3 servers vs the slowest ls --host':52} {everywhere:8.2f}s {slowest:8.2f}s "
          f"{everywhere / slowest:6.2f}x  <= 1.3x")
    print("ssh logins to the server per command: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"bytecode: {'compiled on every run' if args.no_bytecode else 'cached'}")
    print(f"rounds: {args.rounds}; floor runs: {', '.join(f'{w:.2f}' for w, _ in floors)}; "
          f"up runs: {', '.join(f'{w:.2f}' for w, _ in ups)}; "
          + (f"baseline up runs: {', '.join(f'{w:.2f}' for w, _ in every_up[1])}; " if args.baseline else "")
          + "ls --host: "
          + ", ".join(f"{h} {t:.2f}s" for h, t in singles.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
