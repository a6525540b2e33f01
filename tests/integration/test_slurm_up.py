"""`devagent up NAME --host LOGIN --slurm PARTITION` from the laptop: a real Slurm 22.05 (slurm_cluster.py) whose
login node and nodes are test sshds on loopback (slurm_topology.py); the laptop reaches only the login node, each
node through it (ProxyJump). Every node's engine is this machine's, which has no NVIDIA runtime: the login and run
path runs with a CPU job (--gpus 0), as the issue says. No timed asserts: waits are on conditions.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from devagent.core.slurm.holder import JOB_LABEL
from devagent.errors import ExitStatus
from tests.integration.conftest import BASE_IMAGE, Result, wait_for
from tests.integration.slurm_cluster import GPUS_PER_NODE, NODES, SlurmCluster
from tests.integration.slurm_topology import LOGIN, slurm_sites
from tests.integration.topology import Laptop, Topology

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

USER = "devagent-srv"
HOME = Path("/home/devagent-srv")


def up(laptop: Laptop, name: str, *extra: str, check: bool = True) -> Result:
    return laptop.devagent("up", name, "--host", LOGIN, "--slurm", "gpu", "--time", "10", "--base-image",
                           BASE_IMAGE, "--memory", "2g", *extra, check=check, timeout=900)


def record(laptop: Laptop, name: str) -> dict[str, object] | None:
    path = laptop.devagent_home / "environments" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None  # type: ignore[no-any-return]


def container(docker_client, name: str):  # type: ignore[no-untyped-def]
    found = docker_client.api.containers(all=True, filters={"name": f"^/{name}$"})
    return found[0] if found else None


def jobs_of(cluster: SlurmCluster, name: str) -> list[str]:
    out = cluster.run("squeue", "-h", "-n", f"devagent-{name}", "-t", "PD,R,CG", "-o", "%i").stdout
    return out.split()


def test_up_on_a_node_login_through_the_alias_down_and_up_again(cluster: SlurmCluster, topology: Topology,
                                                                  name: str, docker_client: object) -> None:
    slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    made = up(laptop, name, "--gpus", "0")
    noted = record(laptop, name)
    assert noted is not None and noted["server"] == LOGIN and noted["slurm_partition"] == "gpu"
    job, node = str(noted["slurm_job"]), str(noted["slurm_node"])
    assert node in NODES
    assert f"job {job} running on node {node}" in made.stderr
    assert f"✔ container {name} created on node {node} of {LOGIN} (job {job})" in made.stdout
    info = container(docker_client, name)
    assert info is not None and info["Labels"][JOB_LABEL] == job
    # The alias reaches the environment through the login node and then the node; the header says where.
    alias = (laptop.devagent_home / "ssh_config").read_text()
    assert f"ProxyJump {LOGIN},{node}" in alias
    ran = laptop.ssh(name, "cd ~/workspace && devagent run -- python3 -c 'print(42)'", timeout=120)
    assert ran.returncode == 0 and "42" in ran.stdout, ran.output
    workspace = HOME / "devagent" / name  # on the cluster's shared home
    notebook = workspace / "lab-notebook.md"
    wait_for(lambda: notebook.exists() and "· run 1 ·" in notebook.read_text(), timeout=30,
             message="the run's section in the notebook")
    assert f"| Slurm | cluster {LOGIN} · job {job} · partition gpu · node {node} · GPUs none · time limit 10 min |" \
        in notebook.read_text()
    # down cancels the job; the job's holder takes the container with it; the workspace stays.
    gone = laptop.devagent("down", name)
    assert gone.returncode == 0, gone.output
    assert f"✔ removed Slurm job {job} on {node} (the job was cancelled (devagent down or scancel); its " \
           "container went with it)" in gone.stdout
    assert container(docker_client, name) is None and jobs_of(cluster, name) == []
    assert record(laptop, name) is None and workspace.is_dir()
    # up again: a new job, the same alias name and workspace.
    again = up(laptop, name, "--gpus", "0")
    second = record(laptop, name)
    assert second is not None and second["slurm_job"] != job, again.output
    assert laptop.ssh(name, "true").returncode == 0
    assert Path(workspace / "lab-notebook.md").exists()


def test_scancel_from_outside_removes_the_container_and_ls_shows_the_job_ended(
        cluster: SlurmCluster, topology: Topology, name: str, docker_client: object) -> None:
    slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    up(laptop, name, "--gpus", "0")
    noted = record(laptop, name)
    assert noted is not None
    job = str(noted["slurm_job"])
    listed = laptop.devagent("ls")
    assert listed.returncode == 0, listed.output
    assert f"{name}: Slurm job {job} on {noted['slurm_node']}, partition gpu: running" in listed.output
    assert cluster.run("scancel", job).returncode == 0  # an admin, the time limit, preemption: the same
    wait_for(lambda: container(docker_client, name) is None, timeout=60, message="the container removed")
    said = f"{name}: Slurm job {job} on {noted['slurm_node']}, partition gpu: ended: the job was cancelled " \
           "(devagent down or scancel)"
    wait_for(lambda: said in laptop.devagent("ls").stdout, timeout=60, interval=1, message="ls to say it ended")
    # down of an ended environment forgets what the laptop keeps.
    gone = laptop.devagent("down", name)
    assert gone.returncode == 0, gone.output
    assert record(laptop, name) is None


def test_a_pending_request_shows_why_and_ctrl_c_cancels_it_leaving_nothing(
        cluster: SlurmCluster, topology: Topology, name: str, docker_client: object) -> None:
    slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    # Every GPU held by another user's jobs.
    for _ in NODES:
        result = cluster.run("sbatch", "-p", "gpu", f"--gres=gpu:{GPUS_PER_NODE}", "-t", "10", "--output=/dev/null",
                             "--chdir=/tmp", "--wrap", "sleep 600", user="devagent-srv2")
        assert result.returncode == 0, result.output
    wait_for(lambda: cluster.run("squeue", "-h", "-t", "R", "-o", "%i").stdout.split().__len__() == len(NODES),
             timeout=60, message="the other user's jobs to run")
    process = laptop.popen(["python3", "-m", "devagent", "up", name, "--host", LOGIN, "--slurm", "gpu", "--gpus",
                            "1", "--time", "10", "--base-image", BASE_IMAGE],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    assert process.stderr is not None
    for raw in process.stderr:
        lines.append(raw.decode(errors="replace"))
        if "reason: Resources" in lines[-1]:
            break
    assert lines and lines[-1].startswith("⏳ waiting for 1 GPU on partition gpu (job ")
    assert lines[-1].rstrip().endswith("… Ctrl-C cancels the request")
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)
    assert process.returncode == ExitStatus.INTERRUPTED, rest
    assert jobs_of(cluster, name) == []
    assert record(laptop, name) is None and container(docker_client, name) is None
    assert not (laptop.devagent_home / "ssh_config").exists() or \
        f"Host {name}\n" not in (laptop.devagent_home / "ssh_config").read_text()


def test_hostile_values_are_refused_before_anything_runs(cluster: SlurmCluster, topology: Topology,
                                                         name: str) -> None:
    sites = slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    for extra, message in ((("--slurm", "gpu;id"), "invalid Slurm partition 'gpu;id'"),
                           (("--slurm", "gpu", "--account", "-A"), "invalid Slurm account '-A': it must not "
                                                                    "start with '-'"),
                           (("--slurm", "gpu", "--time", "10\nid"), "invalid Slurm time '10\\nid'")):
        args = ["up", name, "--host", LOGIN, "--gpus", "0", *extra]
        if "--time" not in extra:
            args += ["--time", "10"]
        result = laptop.devagent(*args)
        assert (result.returncode, result.stderr.splitlines()[0]) == (2, f"Error: {message}"), result.output
    assert "Accepted publickey" not in sites.login.log
    assert cluster.job_ids() == []
