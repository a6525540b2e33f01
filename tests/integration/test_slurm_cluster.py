"""The Slurm groundwork against a real Slurm 22.05 (two slurmd, two mknod "GPUs" each; slurm_cluster.py) and the
real Docker Engine: jobs submitted with devagent's sbatch argv and holder script, as a test user, through the real
`sbatch`. A `docker run` labelled container stands in for the environment devagent will make on the node (the
`up --slurm` wiring waits for the Site seam); the engine has no NVIDIA runtime, so it asks for no GPU devices.

No timed asserts: "gone within 30 s" (benchmarks/slurm_cancel_bench.py measures scancel -> gone).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devagent.core.slurm.holder import JOB_LABEL, holder_script, parse_holder_line
from devagent.core.slurm.jobs import (
    Job,
    describe,
    find_job,
    parse_scontrol_job,
    parse_squeue_json,
    queue_position,
)
from devagent.core.slurm.nodes import parse_scontrol_nodes, partition_gpus
from devagent.core.slurm.request import (
    SlurmRequest,
    parse_job_id,
    sbatch_argv,
    sbatch_error,
    slurm_request,
)
from devagent.errors import ExitStatus
from tests.integration.conftest import BASE_IMAGE, RUN_PREFIX, wait_for
from tests.integration.slurm_cluster import GPUS_PER_NODE, NODES, SlurmCluster

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

USER = "devagent-srv"
OTHER_USER = "devagent-srv2"


def submit(cluster: SlurmCluster, request: SlurmRequest, name: str, *, user: str = USER) -> str:
    argv = sbatch_argv(request, job_name=f"devagent-{name}", output=str(cluster.shared / f"{name}.out"))
    script = holder_script(name=name, ended_log=str(cluster.shared / f"{name}.ended"))
    result = cluster.run(*argv, user=user, input=script)
    assert result.returncode == 0, result.output
    return parse_job_id(result.stdout)


def job(cluster: SlurmCluster, job_id: str) -> Job:
    return parse_scontrol_job(cluster.run("scontrol", "-d", "show", "job", job_id).stdout)


def running(cluster: SlurmCluster, job_id: str, name: str) -> Job:
    """JOB_ID once it runs and its holder has printed its line (its traps are set by then)."""
    wait_for(lambda: job(cluster, job_id).running, timeout=60, message=f"job {job_id} to run")
    out = cluster.shared / f"{name}.out"
    wait_for(lambda: out.exists() and parse_holder_line(out.read_text()), timeout=60,
             message=f"the holder line of job {job_id}")
    return job(cluster, job_id)


def start_environment(cluster: SlurmCluster, job_id: str, name: str) -> None:
    """What devagent will do on the node: a labelled container of the job, made by the user on the engine."""
    result = subprocess.run(["runuser", "-u", USER, "--", "docker", "run", "-d", "--name", name, "--label",
                             f"{JOB_LABEL}={job_id}", BASE_IMAGE, "sleep", "600"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def container_exists(docker_client, name: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(docker_client.api.containers(all=True, filters={"name": f"^/{name}$"}))


def test_a_job_gets_gpus_on_one_node_with_their_gres_indexes(cluster: SlurmCluster, name: str) -> None:
    assert cluster.started_s > 0
    job_id = submit(cluster, slurm_request(partition="gpu", gpus=2, time="10"), name)
    found = running(cluster, job_id, name)
    assert found.node in NODES
    assert found.gpus == (0, 1)
    holder = parse_holder_line((cluster.shared / f"{name}.out").read_text())
    assert holder is not None
    assert (holder["job"], holder["node"], holder["gpus"]) == (job_id, found.node, "0,1")
    listed = find_job(parse_squeue_json(cluster.run("squeue", "--json").stdout), job_id)
    assert listed is not None
    assert (listed.user, listed.node, listed.gpus, listed.name) == (USER, found.node, (0, 1), f"devagent-{name}")
    # A one-GPU job of another user lands on the other node's first GPU, and Slurm's ledger shows both.
    other = submit(cluster, slurm_request(partition="gpu", gpus=1, time="10"), f"{name}-b", user=OTHER_USER)
    second = running(cluster, other, f"{name}-b")
    assert (second.node, second.gpus) == (next(n for n in NODES if n != found.node), (0,))
    nodes = parse_scontrol_nodes(cluster.run("scontrol", "-o", "-d", "show", "node").stdout)
    assert [(n.name, n.gpus) for n in nodes] == [(node, GPUS_PER_NODE) for node in NODES]
    jobs = parse_squeue_json(cluster.run("squeue", "--json").stdout)
    holders = {(row.node, row.index): row.environment for row in partition_gpus(nodes, jobs, "gpu")}
    assert holders == {(found.node, 0): name, (found.node, 1): name, (second.node, 0): f"{name}-b",
                       (second.node, 1): None}


def test_a_request_for_gpus_all_allocated_pends_with_reason_resources(cluster: SlurmCluster, name: str) -> None:
    for index in range(len(NODES)):
        held = submit(cluster, slurm_request(partition="gpu", gpus=GPUS_PER_NODE, time="10"), f"{name}-{index}")
        running(cluster, held, f"{name}-{index}")
    waiting = submit(cluster, slurm_request(partition="gpu", gpus=1, time="10"), name, user=OTHER_USER)
    wait_for(lambda: job(cluster, waiting).reason == "Resources", timeout=60, message="reason Resources")
    jobs = parse_squeue_json(cluster.run("squeue", "--json").stdout)
    pending = find_job(jobs, waiting)
    assert pending is not None and pending.pending
    assert describe(pending, position=queue_position(jobs, waiting)) == (
        f"job {waiting} pending on partition gpu: waiting for the GPUs, CPUs or memory asked for: other jobs "
        "hold them")
    # Cancelling the pending request leaves no job of it.
    assert cluster.run("scancel", waiting, user=OTHER_USER).returncode == 0
    wait_for(lambda: job(cluster, waiting).state == "CANCELLED", timeout=30, message="the request cancelled")
    assert not (cluster.shared / f"{name}.out").exists()  # it never ran


def test_scancel_from_anywhere_removes_the_container_and_frees_the_gpus(cluster: SlurmCluster, name: str,
                                                                       docker_client: object) -> None:
    job_id = submit(cluster, slurm_request(partition="gpu", gpus=GPUS_PER_NODE, time="10"), name)
    node = running(cluster, job_id, name).node
    start_environment(cluster, job_id, name)
    assert container_exists(docker_client, name)
    assert cluster.run("scancel", job_id).returncode == 0  # as root: an admin, or another session's `down`
    wait_for(lambda: not container_exists(docker_client, name), timeout=30, message="the container removed")
    ended = cluster.shared / f"{name}.ended"
    wait_for(ended.exists, timeout=30, message="the ended line")
    assert ended.read_text().endswith(
        f" job {job_id} on {node}: environment {name} ended: the job was cancelled (devagent down or scancel)\n")
    wait_for(lambda: job(cluster, job_id).state == "CANCELLED", timeout=30, message="state CANCELLED")
    # The GPUs are free for the next job, on that node.
    again = submit(cluster, slurm_request(partition="gpu", gpus=GPUS_PER_NODE, time="10"), f"{name}-next")
    assert running(cluster, again, f"{name}-next").gpus == (0, 1)


@pytest.mark.slow
def test_the_time_limit_removes_the_container(cluster: SlurmCluster, name: str, docker_client: object) -> None:
    """A 1-minute job with no early warning: Slurm signals at the limit (its timer checks every ~30 s, so the
    job runs 60-90 s), the holder removes the container and says why."""
    request = slurm_request(partition="gpu", gpus=1, time="1", warning_s=None)
    job_id = submit(cluster, request, name)
    node = running(cluster, job_id, name).node
    start_environment(cluster, job_id, name)
    wait_for(lambda: not container_exists(docker_client, name), timeout=180, interval=1,
             message="the container removed at the time limit")
    ended = cluster.shared / f"{name}.ended"
    wait_for(ended.exists, timeout=30, message="the ended line")
    assert ended.read_text().endswith(
        f" job {job_id} on {node}: environment {name} ended: the job reached its time limit\n")
    wait_for(lambda: job(cluster, job_id).state == "TIMEOUT", timeout=30, message="state TIMEOUT")
    assert describe(job(cluster, job_id)) == f"job {job_id} ended on {node}: the job reached its time limit"


@pytest.mark.parametrize(("given", "message", "status"), [
    ({"partition": "nope"}, "Slurm has no partition 'nope'", ExitStatus.USAGE),
    ({"gpus": GPUS_PER_NODE + 1},
     f"no node of partition 'gpu' can ever give {GPUS_PER_NODE + 1} GPUs: the request can never start",
     ExitStatus.GPU_UNAVAILABLE),
    ({"time": "2:00:00"}, "the time limit 0-02:00:00 is over what partition 'gpu' allows", ExitStatus.USAGE),
    ({"partition": "restricted", "account": "nosuch"},
     "Slurm refused the account 'nosuch' for partition 'restricted'", ExitStatus.USAGE),
    ({"partition": "private"}, "you may not use Slurm partition 'private'", ExitStatus.USAGE),
])
def test_sbatch_refusals_in_devagents_words(cluster: SlurmCluster, name: str, given: dict[str, object],
                                             message: str, status: ExitStatus) -> None:
    values: dict[str, object] = {"partition": "gpu", "gpus": 1, "time": "10"}
    values.update(given)
    request = slurm_request(**values)  # type: ignore[arg-type]
    argv = sbatch_argv(request, job_name=f"devagent-{name}", output=str(cluster.shared / f"{name}.out"))
    result = cluster.run(*argv, user=USER, input=holder_script(name=name, ended_log="/dev/null"))
    assert result.returncode == 1
    error = sbatch_error(request, result.stderr)
    assert (error.message, error.status) == (message, status)
    assert cluster.job_ids() == []


def test_the_cluster_folder_is_the_only_state(cluster: SlurmCluster) -> None:
    conf = cluster.conf.read_text()
    assert "127.0.0.1" in conf
    assert str(cluster.folder) in conf
    assert not Path("/etc/slurm/slurm.conf").exists() or "devagenttest" not in Path("/etc/slurm/slurm.conf").read_text()
    for node in NODES:
        for index in range(GPUS_PER_NODE):
            assert cluster.gpu_device(node, index).is_char_device()
    assert RUN_PREFIX  # the containers made here carry the run's prefix (the `name` fixture) and are swept
