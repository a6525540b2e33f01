"""`devagent up NAME --host LOGIN --slurm PARTITION` from the laptop: a real Slurm 22.05 (slurm_cluster.py) whose
login node and nodes are test sshds on loopback (slurm_topology.py); the laptop reaches only the login node, each
node through it (ProxyJump). Every node's engine is this machine's, which has no NVIDIA runtime: the login and run
path runs with a CPU job (--gpus 0), as the issue says. No timed asserts: waits are on conditions.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devagent.core.slurm.holder import JOB_LABEL
from devagent.core.slurm.jobs import parse_scontrol_job
from devagent.errors import ExitStatus
from tests.integration.conftest import BASE_IMAGE, Result, wait_for
from tests.integration.slurm_cluster import GPUS_PER_NODE, NODES, SlurmCluster
from tests.integration.slurm_topology import LOGIN, slurm_sites
from tests.integration.topology import Laptop, Topology

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

USER = "devagent-srv"
HOME = Path("/home/devagent-srv")


def remove_workspaces(cluster: SlurmCluster, name: str) -> None:
    """What a test made on the cluster's shared home for environment NAME (and NAME-…, as reproduce's): its
    jobs first (a running environment's agent still writes its workspace; the holder removes the container), then
    its workspace and the jobs' output and end logs; nothing of any other name."""
    def ours() -> list[str]:
        listed = cluster.run("squeue", "-h", "-t", "PD,R,CG,S", "-o", "%j %i").stdout.split("\n")
        return [job for job_name, job in (line.split() for line in listed if line.strip())
                if job_name == f"devagent-{name}" or job_name.startswith(f"devagent-{name}-")]

    if jobs := ours():
        cluster.run("scancel", *jobs)
        wait_for(lambda: not ours(), timeout=60, message=f"the jobs of {name} to end")
    for made in (*(HOME / "devagent").glob(f"{name}"), *(HOME / "devagent").glob(f"{name}-*")):
        shutil.rmtree(made)
    for made in (*(HOME / ".devagent" / "slurm").glob(f"{name}.*"),
                 *(HOME / ".devagent" / "slurm").glob(f"{name}-*.*")):
        made.unlink()


@pytest.fixture(autouse=True)
def _remove_workspaces(cluster: SlurmCluster, name: str) -> Iterator[None]:
    yield
    remove_workspaces(cluster, name)


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
    sites = slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    servers = {LOGIN: sites.login, **sites.nodes}
    before = {host: sshd.log.count("Accepted publickey for") for host, sshd in servers.items()}
    made = up(laptop, name, "--gpus", "0")
    noted = record(laptop, name)
    assert noted is not None and noted["server"] == LOGIN and noted["slurm_partition"] == "gpu"
    job, node = str(noted["slurm_job"]), str(noted["slurm_node"])
    assert node in NODES
    # One login to the login node and one to the node (through it): up's links. The proof through the alias
    # asks Slurm and makes its hop over them (job_hop.py's mux_env), not with logins of its own.
    logins = {host: servers[host].log.count("Accepted publickey for") - count for host, count in before.items()}
    assert (logins[LOGIN], logins[node]) == (2, 1), (logins, made.output)
    assert f"job {job} running on node {node}" in made.stderr
    assert f"✔ container {name} created on node {node} of {LOGIN} (job {job})" in made.stdout
    info = container(docker_client, name)
    assert info is not None and info["Labels"][JOB_LABEL] == job
    # The alias reaches the environment through the login node and then the node; the header says where.
    alias = (laptop.devagent_home / "ssh_config").read_text()
    assert f"devagent-slurm-hop {laptop.ssh_config} {LOGIN} {node} {job} {name} " in alias  # asks Slurm first
    ran = laptop.ssh(name, "cd ~/workspace && devagent run -- python3 -c 'print(42)'", timeout=120)
    assert ran.returncode == 0 and "42" in ran.stdout, ran.output
    workspace = HOME / "devagent" / name  # on the cluster's shared home
    notebook = workspace / "lab-notebook.md"
    wait_for(lambda: notebook.exists() and "· run 1 ·" in notebook.read_text(), timeout=30,
             message="the run's section in the notebook")
    assert f"| Slurm | cluster {LOGIN} · job {job} · partition gpu · node {node} · GPUs none · time limit 10 min |" \
        in notebook.read_text()
    section = notebook.read_text().split("· run 1 ·", 1)[1]
    assert f"SLURM_JOB_ID={job}" in section and f"SLURMD_NODENAME={node}" in section, section
    # up again while the job runs, with other options: refused, and the running job and container are left be.
    differs = up(laptop, name, "--gpus", "0", "--memory", "3g", check=False)
    assert differs.returncode == ExitStatus.CONFLICT, differs.output
    assert f"Slurm job {job} keeps running (it was running before this up)" in differs.stderr
    assert jobs_of(cluster, name) == [job] and container(docker_client, name) is not None
    # down cancels the job; the job's holder takes the container with it; the workspace stays.
    gone = laptop.devagent("down", name)
    assert gone.returncode == 0, gone.output
    assert f"✔ removed Slurm job {job} on {node} (the job was cancelled (devagent down or scancel); its " \
           "container went with it)" in gone.stdout
    assert container(docker_client, name) is None and jobs_of(cluster, name) == []
    assert record(laptop, name) is None and workspace.is_dir()
    assert f" UTC · environment ended\njob {job} on {node}: environment {name} ended: the job was cancelled " \
           "(devagent down or scancel)\n" in notebook.read_text()  # the holder's end line, taken in
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
    assert laptop.ssh(name, "true").returncode == 0  # while the job runs the alias logs in as before
    notebook = HOME / "devagent" / name / "lab-notebook.md"
    notebook.write_text("# Lab notebook\n")  # stands in for the one the agent writes at the first run
    shutil.chown(notebook, USER, USER)
    assert cluster.run("scancel", job).returncode == 0  # an admin, the time limit, preemption: the same
    wait_for(lambda: container(docker_client, name) is None, timeout=60, message="the container removed")
    # The notebook heard it as the job ended (the container's own devagent wrote it before the container went).
    end_line = f"job {job} on {noted['slurm_node']}: environment {name} ended: the job was cancelled (devagent " \
               "down or scancel)\n"
    assert notebook.read_text().count(end_line) == 1, notebook.read_text()
    # The alias now says the job ended, in devagent's words (its ProxyCommand asked Slurm), not in ssh's.
    after = laptop.ssh(name, "true")
    ended = (f"devagent: environment {name}'s Slurm job {job} has ended (it was cancelled); `devagent up {name} "
             f"--host {LOGIN} --slurm gpu` asks for a new allocation\n")
    ending = ended.replace("it was cancelled", "it is ending")  # COMPLETING until the holder's trap returns
    # ssh adds its own two lines after it (kex_exchange_identification: Connection closed …). The hop runs
    # beside the check: when it failed before Slurm answered (nothing listens on the node now), its own words
    # come first, and devagent's still follow.
    assert after.returncode == 255 and (ended in after.stderr or ending in after.stderr), after.output
    assert after.stderr.count("devagent: ") == 1, after.output
    said = f"{name}: Slurm job {job} on {noted['slurm_node']}, partition gpu: ended: the job was cancelled " \
           "(devagent down or scancel)"
    wait_for(lambda: said in laptop.devagent("ls").stdout, timeout=60, interval=1, message="ls to say it ended")
    # up again: a new job; the end line is not taken in a second time (the log says the notebook has it).
    up(laptop, name, "--gpus", "0")
    assert notebook.read_text().count(end_line) == 1, notebook.read_text()
    # down of an ended environment forgets what the laptop keeps.
    assert cluster.run("scancel", str(record(laptop, name)["slurm_job"])).returncode == 0  # type: ignore[index]
    wait_for(lambda: container(docker_client, name) is None, timeout=60, message="the container removed")
    gone = laptop.devagent("down", name)
    assert gone.returncode == 0, gone.output
    assert record(laptop, name) is None


def test_the_job_holds_the_environments_cpus_and_memory_and_more_than_a_node_has_is_refused(
        cluster: SlurmCluster, topology: Topology, name: str) -> None:
    slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    up(laptop, name, "--gpus", "0", "--cpus", "1.5", "--no-wait")  # --memory 2g (up's); 1.5 CPUs: 2 whole ones
    jobs = jobs_of(cluster, name)
    assert len(jobs) == 1
    shown = cluster.run("scontrol", "show", "job", jobs[0]).stdout
    assert "CPUs/Task=2" in shown.split() and "MinMemoryNode=2G" in shown.split(), shown
    assert cluster.run("scancel", jobs[0]).returncode == 0
    # The nodes have 32000 MB (slurm_cluster.py): 64g can never start, and Slurm says so at once.
    refused = up(laptop, f"{name}-big", "--gpus", "0", "--memory", "64g", check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error: ")]
    assert (refused.returncode, errors) == (
        ExitStatus.GPU_UNAVAILABLE, ["Error: no node of partition 'gpu' can ever give 64G of memory: the request "
        "can never start"]), refused.output
    assert jobs_of(cluster, f"{name}-big") == []


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


FAKE_NVIDIA_SMI = """#!/bin/sh
# TEST STAND-IN for a node's nvidia-smi (this machine has no GPU): the two queries devagent asks.
case "$*" in
  *--query-gpu=*) printf '%s\\n' {gpus} ;;
  *--query-compute-apps=*) ;;
  *) exit 6 ;;
esac
"""


def test_the_container_asks_for_exactly_the_jobs_gpus_on_its_node(cluster: SlurmCluster, topology: Topology,
                                                                   name: str, docker_client: object) -> None:
    """Each node's `nvidia-smi` is a stand-in with GPUs of this test's own UUIDs; another user's jobs hold one GPU
    of each node, so Slurm gives this job the other GPU of one of them. `up` is paused once it has leased the GPUs
    (paused_devagent.py): the container it created asks for that GPU by UUID, and the node's lease names it.
    The engine has no NVIDIA runtime, so the start then fails (exit 8) and `up` rolls back, the job too."""
    import secrets
    import sys

    tag = secrets.token_hex(3)
    uuids = {node: [f"GPU-{tag}-{node}-4000-8000-00000000000{i}" for i in range(GPUS_PER_NODE)] for node in NODES}
    paths = {}
    for node in NODES:
        fakebin = Path(topology.root) / f"fakebin-{node}"
        fakebin.mkdir(mode=0o755)
        rows = " ".join(f"'{i}, {u}, Stand-in GPU, 0, 81920, 0'" for i, u in enumerate(uuids[node]))
        (fakebin / "nvidia-smi").write_text(FAKE_NVIDIA_SMI.format(gpus=rows))
        (fakebin / "nvidia-smi").chmod(0o755)
        paths[node] = f"{fakebin}:/usr/local/bin:/usr/bin:/bin"
    slurm_sites(topology, cluster, user=USER, node_path=paths)
    for _ in NODES:
        held = cluster.run("sbatch", "-p", "gpu", "--gres=gpu:1", "-t", "10", "--output=/dev/null", "--chdir=/tmp",
                           "--wrap", "sleep 600", user="devagent-srv2")
        assert held.returncode == 0, held.output
    wait_for(lambda: len(cluster.run("squeue", "-h", "-t", "R", "-o", "%i").stdout.split()) == len(NODES),
             timeout=60, message="the other user's jobs to run")
    laptop = topology.laptop
    marker = Path(topology.root) / "laptop" / "tmp" / f"paused-{name}"
    harness = Path(__file__).with_name("paused_devagent.py")
    process = laptop.popen([sys.executable, str(harness), "up", name, "--host", LOGIN, "--slurm", "gpu", "--gpus",
                            "1", "--time", "10", "--base-image", BASE_IMAGE, "--memory", "2g"],
                           env={"DEVAGENT_TEST_PAUSE_AT": "leased", "DEVAGENT_TEST_PAUSED_FILE": str(marker)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, timeout=300, interval=0.1,
                 message="up to lease the job's GPU")
        assert marker.exists(), process.communicate()
        made = [c for c in docker_client.api.containers(all=True, filters={"label": f"devagent.name={name}"})]
        assert len(made) == 1
        labels = made[0]["Labels"]
        job = labels[JOB_LABEL]
        granted = parse_scontrol_job(cluster.run("scontrol", "-d", "show", "job", job).stdout)
        assert granted.node in NODES and len(granted.gpus) == 1
        uuid = uuids[granted.node][granted.gpus[0]]  # Slurm's index on that node, as the node's nvidia-smi names it
        inspect = docker_client.api.inspect_container(made[0]["Id"])
        assert inspect["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [uuid]
        assert labels["devagent.gpu-uuids"] == uuid
    finally:
        marker.unlink(missing_ok=True)
    _, err = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.GPU_UNAVAILABLE, err
    assert f"cancelling Slurm job {job}" in err.decode()
    assert jobs_of(cluster, name) == [] and record(laptop, name) is None
    assert not docker_client.api.containers(all=True, filters={"label": f"devagent.name={name}"})


def test_a_node_whose_engine_the_user_may_not_use_cancels_the_job_and_says_so(
        cluster: SlurmCluster, topology: Topology, name: str, docker_client: object) -> None:
    slurm_sites(topology, cluster, user="devagent-nodock")  # not in the docker group on the nodes
    laptop = topology.laptop
    result = up(laptop, name, "--gpus", "0", check=False)
    assert result.returncode == ExitStatus.DOCKER_PERMISSION, result.output
    assert "devagent-nodock on n" in result.stderr and "may not use the Docker Engine's socket" in result.stderr
    assert "cancelling Slurm job " in result.stderr
    assert jobs_of(cluster, name) == [] and record(laptop, name) is None
    assert container(docker_client, name) is None
