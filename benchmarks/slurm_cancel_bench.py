"""From `scancel` to the environment's container gone, on a real two-node Slurm 22.05 (target <= 5 s).

    sudo .venv/bin/python benchmarks/slurm_cancel_bench.py [--rounds 5]

It starts the test cluster (tests/integration/slurm_cluster.py: munged, slurmctld, two slurmd on 127.0.0.1) and
reports how long that took. Then, ROUNDS times: a one-GPU job with devagent's sbatch argv and holder script, as the
test user devagent-srv (`make test-users`); once its holder has printed its line, a labelled `docker run` container
of the user stands in for the environment; `scancel JOBID` as root; the time until the engine no longer lists the
container (polled every 10 ms). The floor, in the same run: `docker rm -f` of the same kind of container, timed
the same way. It prints the medians and their ratio; it reports, it does not gate (exit status 0), and it removes
every container and job it made.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from devagent.core.slurm.holder import JOB_LABEL, holder_script, parse_holder_line  # noqa: E402
from devagent.core.slurm.request import parse_job_id, sbatch_argv, slurm_request  # noqa: E402
from tests.integration.slurm_cluster import SlurmCluster, open_cluster  # noqa: E402

BASE_IMAGE = "devagent-base:bookworm"
USER = "devagent-srv"
TARGET_S = 5.0


def exists(client: docker.DockerClient, name: str) -> bool:
    return bool(client.api.containers(all=True, filters={"name": f"^/{name}$"}))


def until_gone(client: docker.DockerClient, name: str, start: float, timeout: float = 60) -> float:
    while exists(client, name):
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"{name} still there after {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def run_container(name: str, job_id: str) -> None:
    subprocess.run(["runuser", "-u", USER, "--", "docker", "run", "-d", "--name", name, "--label",
                    f"{JOB_LABEL}={job_id}", BASE_IMAGE, "sleep", "600"], check=True, capture_output=True)


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def one_cancel(cluster: SlurmCluster, client: docker.DockerClient, name: str) -> float:
    request = slurm_request(partition="gpu", gpus=1, time="10")
    out = cluster.shared / f"{name}.out"
    argv = sbatch_argv(request, job_name=f"devagent-{name}", output=str(out))
    result = cluster.run(*argv, user=USER, input=holder_script(name=name, ended_log=str(cluster.shared / "ended")))
    job_id = parse_job_id(result.stdout)
    wait_for(lambda: out.exists() and parse_holder_line(out.read_text()))
    run_container(name, job_id)
    start = time.perf_counter()
    cluster.run("scancel", job_id)
    return until_gone(client, name, start)


def one_floor(client: docker.DockerClient, name: str) -> float:
    run_container(name, "0")
    start = time.perf_counter()
    subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    return until_gone(client, name, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env()
    prefix = f"bslurm{secrets.token_hex(2)}-"
    made: list[str] = []
    try:
        for cluster in open_cluster():
            print(f"cluster start (munged, slurmctld, 2 slurmd, to both nodes idle): {cluster.started_s:.2f} s")
            cancels, floors = [], []
            for index in range(args.rounds):
                made += [f"{prefix}{index}", f"{prefix}floor{index}"]
                cancels.append(one_cancel(cluster, client, f"{prefix}{index}"))
                floors.append(one_floor(client, f"{prefix}floor{index}"))
                cluster.cancel_all()
            cancel, floor = statistics.median(cancels), statistics.median(floors)
            print(f"scancel -> container gone: median {cancel:.3f} s over {args.rounds} "
                  f"(each: {', '.join(f'{t:.3f}' for t in cancels)}); target <= {TARGET_S:.0f} s: "
                  f"{'met' if cancel <= TARGET_S else 'NOT met'}")
            print(f"floor, docker rm -f -> gone: median {floor:.3f} s; ratio {cancel / floor:.1f}x")
    finally:
        for name in made:
            if exists(client, name):
                client.api.remove_container(name, force=True)


if __name__ == "__main__":
    main()
