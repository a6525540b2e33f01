"""What the alias of an environment in a Slurm job costs per connection, and `scancel` → its container gone.

The cluster and topology are the Slurm tests' (see slurm_up_bench.py): the laptop reaches only the login node,
each node through it. Needs root, Slurm, sshd, socat and the test users (`make deps test-users`).

    .venv/bin/python benchmarks/slurm_alias_bench.py [--rounds 2] [--logins 10] [--baseline CHECKOUT]

Each round makes one environment (`devagent up NAME --host LOGIN --slurm gpu --gpus 0`), then times LOGINS
OpenSSH logins of each kind, alternating, from the laptop (`ssh NAME true`, BatchMode):
- `ProxyJump LOGIN,NODE` (what the alias held before: `-o ProxyJump=…` on the command line wins over the alias's
  ProxyCommand) — the floor;
- the alias as devagent writes it (its ProxyCommand asks the login node `squeue` beside the two hops);
- with --baseline: the ProxyCommand that checkout's core/ssh/job_hop.py writes for the same environment
  (`-o ProxyCommand=…` on the command line, which wins over the alias's own);
- both again with a ControlMaster for the login node in the laptop's ssh config (ControlPersist): the check and
  the first hop then reuse one login connection.
Then `scancel` of the job (as root) and the time until the engine no longer lists the container (polled every
10 ms): the holder's trap has the environment's own devagent append the end line to the notebook first. It
prints the medians; it reports, it does not gate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from tests.integration.slurm_cluster import open_cluster  # noqa: E402
from tests.integration.slurm_topology import LOGIN, slurm_sites  # noqa: E402
from tests.integration.topology import Laptop, Topology  # noqa: E402

USER = "devagent-srv"
HOME = Path("/home/devagent-srv")


def login_s(laptop: Laptop, name: str, *options: str) -> float:
    start = time.perf_counter()
    done = laptop.ssh(*options, name, "true")
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ssh {' '.join(options)} {name} failed: {done.output}")
    return took


def baseline_hop(checkout: Path, name: str, node: str, port: int, job: str, config: str) -> str:
    """The ProxyCommand CHECKOUT's core/ssh/job_hop.py writes for this environment."""
    spec = importlib.util.spec_from_file_location("baseline_job_hop", checkout / "devagent/core/ssh/job_hop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return str(module.proxy_command(module.JobCheck(job, "gpu", config), name=name, login=LOGIN, node=node,
                                    port=port))


def time_logins(laptop: Laptop, name: str, options: dict[str, tuple[str, ...]], times: dict[str, list[float]],
                *, master: str, logins: int) -> None:
    """LOGINS of each kind of OPTIONS, alternating, without and then with MASTER in the laptop's ssh config."""
    kinds = list(options)
    plain = laptop.ssh_config.read_text()  # with the Include line up wrote
    for config, suffix in ((plain, ""), (plain + master, "+cm")):
        laptop.ssh_config.write_text(config)
        login_s(laptop, name)  # unmeasured: the ControlMaster starts here
        for n in range(logins):
            for kind in kinds if n % 2 == 0 else reversed(kinds):  # none always first
                times[kind + suffix].append(login_s(laptop, name, *options[kind]))
    laptop.ssh("-O", "exit", LOGIN)
    laptop.ssh_config.write_text(plain)


def until_gone(client: docker.DockerClient, name: str, start: float, timeout: float = 60) -> float:
    while client.api.containers(all=True, filters={"name": f"^/{name}$"}):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{name} still there after {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--logins", type=int, default=10)
    parser.add_argument("--base-image", default="devagent-base:bookworm")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another devagent checkout: its alias's ProxyCommand is timed in the same rounds")
    args = parser.parse_args()
    prefix = f"abench-{secrets.token_hex(2)}"
    client = docker.from_env()
    kinds = ["proxyjump", "alias", *(["baseline"] if args.baseline else [])]
    times: dict[str, list[float]] = {kind + suffix: [] for kind in kinds for suffix in ("", "+cm")}
    loads = [os.getloadavg()[0]]
    gone: list[float] = []
    noted = 0
    Topology.sweep_leftovers()
    root = Path(tempfile.mkdtemp(prefix=f"devagent-topology-{os.getpid()}-", dir="/tmp"))
    root.chmod(0o755)
    for cluster in open_cluster():
        with Topology(root) as topology:
            laptop = topology.laptop
            slurm_sites(topology, cluster, user=USER)
            master = (f"\nHost {LOGIN}\n  ControlMaster auto\n  ControlPath {root}/cm-%C\n"
                      "  ControlPersist 60\n")
            try:
                for i in range(args.rounds):
                    name = f"{prefix}-{i}"
                    laptop.devagent("up", name, "--host", LOGIN, "--slurm", "gpu", "--gpus", "0", "--time", "10",
                                    "--base-image", args.base_image, "--memory", "2g", check=True, timeout=900)
                    record = json.loads((laptop.devagent_home / "environments" / f"{name}.json").read_text())
                    jump = ("-o", f"ProxyJump={LOGIN},{record['slurm_node']}")
                    options: dict[str, tuple[str, ...]] = {"proxyjump": jump, "alias": ()}
                    if args.baseline:
                        options["baseline"] = ("-o", "ProxyCommand=" + baseline_hop(
                            args.baseline.resolve(), name, str(record["slurm_node"]), int(record["port"]),
                            str(record["slurm_job"]), str(laptop.ssh_config)))
                    time_logins(laptop, name, options, times, master=master, logins=args.logins)
                    loads.append(os.getloadavg()[0])
                    notebook = HOME / "devagent" / name / "lab-notebook.md"
                    notebook.write_text("# Lab notebook\n")
                    shutil.chown(notebook, USER, USER)
                    start = time.perf_counter()
                    cluster.run("scancel", str(record["slurm_job"]))
                    gone.append(until_gone(client, name, start))
                    noted += "environment ended" in notebook.read_text()
                    laptop.devagent("down", name, check=True)
            finally:
                laptop.ssh(LOGIN, f"rm -rf ~/devagent/{prefix}-* ~/.devagent/slurm/{prefix}-*")
                cluster.cancel_all()
    print(f"{'figure (median of ' + str(args.rounds * args.logins) + ' logins)':52} {'median':>9} {'extra':>9}")
    for kind in (*kinds, *(kind + "+cm" for kind in kinds)):
        floor = statistics.median(times["proxyjump" + ("+cm" if kind.endswith("+cm") else "")])
        m = statistics.median(times[kind])
        print(f"{'ssh NAME true, ' + kind:52} {m:8.3f}s {m - floor:+8.3f}s")
    print(f"{'scancel → container gone (end line noted first)':52} {statistics.median(gone):8.3f}s"
          f"  runs: {', '.join(f'{t:.2f}' for t in gone)}; notebook had the line: {noted}/{len(gone)}; "
          f"cluster start {cluster.started_s:.2f} s")
    print(f"load average (1 min) {min(loads):.1f}-{max(loads):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
