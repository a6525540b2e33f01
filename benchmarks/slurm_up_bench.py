"""Time `devagent up --slurm` on an idle cluster to the proven login, against the floor a script would do by hand.

The cluster is the test one (tests/integration/slurm_cluster.py: a real Slurm 22.05, munged, slurmctld, two
slurmd) behind the test topology (tests/integration/topology.py, slurm_topology.py): the laptop is a network
namespace that reaches only the login node's sshd, each node's sshd through it (ProxyJump); every node's engine is
this machine's. Needs root, Slurm, sshd, socat and the test users (`make deps test-users`), like the Slurm tests.

    .venv/bin/python benchmarks/slurm_up_bench.py [--rounds 3] [--base-image devagent-base:bookworm]
        [--baseline CHECKOUT] [--no-bytecode]

Floor, from the laptop, one plain ssh per step: `ssh LOGIN sbatch …` (devagent's own sbatch line and holder
script, a CPU job), `ssh LOGIN scontrol show job` until it runs, `ssh -J LOGIN NODE 'docker run -d … sshd …;
docker port …'` (the image devagent built, sshd with a mounted host key and authorized key), then the first OpenSSH
login through `ProxyJump LOGIN,NODE` that succeeds; `scancel` after. devagent: `devagent up NAME --host LOGIN
--slurm gpu --gpus 0 --time 10` on the built image, to its proven login through the alias; `down` after. Target:
<= 1.5x the floor. One unmeasured round each first; rounds alternate (with --baseline, another checkout's up
--slurm too, in alternating order, against the same floors). devagent's bytecode is cached, as a pip install has
it (--no-bytecode: compiled on every run, as the figures before 2026-12-08 were). It reports; it does not gate.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.up_floor import docker_run, first_login, floor_keys, on_server, published_port  # noqa: E402
from devagent.core.slurm.holder import holder_script  # noqa: E402 (the repo root first)
from devagent.core.slurm.jobs import parse_scontrol_job  # noqa: E402
from devagent.core.slurm.request import parse_job_id, sbatch_argv, slurm_request  # noqa: E402
from tests.integration.slurm_cluster import open_cluster  # noqa: E402
from tests.integration.slurm_topology import LOGIN, slurm_sites  # noqa: E402
from tests.integration.topology import Laptop, Topology  # noqa: E402

USER = "devagent-srv"
HOME = Path("/home/devagent-srv")


def floor_once(laptop: Laptop, image: str, keydir: Path, name: str) -> float:
    start = time.perf_counter()
    request = slurm_request(partition="gpu", gpus=0, time="10")
    argv = sbatch_argv(request, job_name=f"devagent-{name}", output=f"{HOME}/.devagent/slurm/{name}.out")
    submitted = laptop.run(["ssh", "-F", str(laptop.ssh_config), "-o", "BatchMode=yes", LOGIN, *argv],
                           input=holder_script(name=name, ended_log=f"{HOME}/.devagent/slurm/{name}.ended"))
    if submitted.returncode != 0:
        raise RuntimeError(f"the floor's sbatch failed: {submitted.output}")
    job_id = parse_job_id(submitted.stdout)
    try:
        while not (job := parse_scontrol_job(laptop.ssh(LOGIN, "scontrol", "-d", "show", "job", job_id).stdout)
                   ).running:
            time.sleep(0.05)
        started = laptop.ssh("-J", LOGIN, job.node, on_server(docker_run(image, keydir, name)))
        if started.returncode != 0:
            raise RuntimeError(f"the floor's docker run failed: {started.output}")
        return first_login(laptop.run, keydir, published_port(started.stdout), since=start, limit=120,
                           hops=("-F", str(laptop.ssh_config), "-J", f"{LOGIN},{job.node}"))
    finally:
        laptop.ssh(LOGIN, "scancel", job_id)  # the holder removes the container


BYTECODE: dict[str, str] = {}  # the environment of devagent's runs in the laptop: where its bytecode is cached


def up_once(laptop: Laptop, base_image: str, name: str, tree: Path = REPO) -> float:
    """`devagent up --slurm` of the checkout TREE to its proven login (then `down`, not timed)."""
    env = {**BYTECODE, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    laptop.devagent("up", name, "--host", LOGIN, "--slurm", "gpu", "--gpus", "0", "--time", "10", "--base-image",
                    base_image, "--memory", "2g", env=env, check=True, timeout=900)
    took = time.perf_counter() - start
    laptop.devagent("down", name, env=env, check=True)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-image", default="devagent-base:bookworm")
    parser.add_argument("--no-bytecode", action="store_true", help="compile devagent's source on every run")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another devagent checkout (e.g. `git archive main | tar -x -C DIR`, readable by "
                        "the laptop): its up --slurm runs in the same rounds, against the same floors")
    args = parser.parse_args()
    prefix = f"sbench-{secrets.token_hex(2)}"
    Topology.sweep_leftovers()
    root = Path(tempfile.mkdtemp(prefix=f"devagent-topology-{os.getpid()}-", dir="/tmp"))
    root.chmod(0o755)
    if not args.no_bytecode:
        BYTECODE.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(root / "pycache"))
    trees = [REPO, *([args.baseline.resolve()] if args.baseline else [])]
    loads = [os.getloadavg()[0]]
    for cluster in open_cluster():
        with Topology(root) as topology:
            laptop = topology.laptop
            slurm_sites(topology, cluster, user=USER)
            try:
                image = laptop.devagent("image", "build", "--host", LOGIN, "--base-image", args.base_image,
                                        check=True, timeout=900).stdout.split()[2]
                keydir = floor_keys(root, uid=int(laptop.ssh(LOGIN, "id", "-u").stdout), run=laptop.run)
                floor_once(laptop, image, keydir, f"{prefix}-warm")
                for t, tree in enumerate(trees):  # one unmeasured round each
                    up_once(laptop, args.base_image, f"{prefix}-warm{t}", tree)
                cluster.cancel_all()
                floors: list[float] = []
                ups: list[list[float]] = [[] for _ in trees]
                for i in range(args.rounds):
                    floors.append(floor_once(laptop, image, keydir, f"{prefix}-floor{i}"))
                    cluster.cancel_all()
                    for t in range(len(trees)) if i % 2 == 0 else reversed(range(len(trees))):  # neither first
                        ups[t].append(up_once(laptop, args.base_image, f"{prefix}-up{i}-{t}", trees[t]))
                        cluster.cancel_all()
                    loads.append(os.getloadavg()[0])
            finally:
                laptop.ssh(LOGIN, f"rm -rf ~/devagent/{prefix}-* ~/.devagent/slurm/{prefix}-*")
    f, u = statistics.median(floors), statistics.median(ups[0])
    print(f"{'figure':52} {'median':>9} {'floor':>9} {'ratio':>7}  target")
    print(f"{'devagent up --slurm (built image) → proven login':52} {u:8.2f}s {f:8.2f}s {u / f:6.2f}x  <= 1.5x")
    if args.baseline:
        b = statistics.median(ups[1])
        print(f"{'  the same, of the baseline checkout':52} {b:8.2f}s {f:8.2f}s {b / f:6.2f}x")
    print(f"bytecode: {'compiled on every run' if args.no_bytecode else 'cached'}; "
          f"load average (1 min) {min(loads):.1f}-{max(loads):.1f}")
    print(f"rounds: {args.rounds}; floor runs: {', '.join(f'{t:.2f}' for t in floors)}; "
          f"up runs: {', '.join(f'{t:.2f}' for t in ups[0])}; "
          + (f"baseline up runs: {', '.join(f'{t:.2f}' for t in ups[1])}; " if args.baseline else "")
          + f"cluster start {cluster.started_s:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
