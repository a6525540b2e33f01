"""The control side's Slurm client and `up`'s wait against a real Slurm 22.05 (slurm_cluster.py), and `devagent
gpus --slurm` from the laptop through a login node's sshd (topology.py): Slurm's commands run as a test user,
through the same `run(argv, input=...)` a ServerLink offers. No timed asserts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

import pytest

from devagent.control.slurm.queue import SlurmQueue
from devagent.control.slurm.waiting import wait_until_running
from devagent.core.slurm.request import slurm_request
from tests.integration.conftest import wait_for
from tests.integration.slurm_cluster import GPUS_PER_NODE, NODES, SlurmCluster
from tests.integration.topology import Topology

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

USER = "devagent-srv"
OTHER_USER = "devagent-srv2"


def as_user(cluster: SlurmCluster, user: str):  # type: ignore[no-untyped-def]
    """`run` for SlurmQueue: ARGV as USER on this machine (the login node), SLURM_CONF set."""
    def run(argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["runuser", "-u", user, "--", *argv], input=input, capture_output=True,
                              env=cluster.environ, timeout=timeout, check=False)
    return run


def hold(cluster: SlurmCluster, queue: SlurmQueue, name: str, gpus: int) -> str:
    output, ended = str(cluster.shared / f"{name}.out"), str(cluster.shared / f"{name}.ended")
    request = slurm_request(partition="gpu", gpus=gpus, time="10")
    job_id = queue.submit(request, environment=name, output=output, ended_log=ended)
    wait_until_running(queue, job_id, request, output=output, report=lambda _: None, timeout_s=120)
    return job_id


def test_up_waits_until_the_job_runs_and_finds_it_again_later(cluster: SlurmCluster, name: str) -> None:
    queue = SlurmQueue(as_user(cluster, USER), cluster="login")
    request = slurm_request(partition="gpu", gpus=GPUS_PER_NODE, time="10")
    output = str(cluster.shared / f"{name}.out")
    job_id = queue.submit(request, environment=name, output=output, ended_log=str(cluster.shared / f"{name}.e"))
    lines: list[str] = []
    job = wait_until_running(queue, job_id, request, output=output, report=lines.append, timeout_s=120)
    assert job.running and job.node in NODES and job.gpus == (0, 1)
    assert queue.holder_line(output) is not None
    # A later `up` (after --no-wait) finds the live job by the environment's name and the user.
    found = queue.live_job(name, USER)
    assert found is not None and found.job_id == job_id
    assert queue.live_job(name, OTHER_USER) is None
    assert [node.name for node in queue.nodes("gpu")] == list(NODES)
    queue.cancel(job_id)
    wait_for(lambda: queue.live_job(name, USER) is None, timeout=60, message="the job to end")
    queue.cancel(job_id)  # an ended job: no error


def test_a_pending_request_shows_its_reason_and_ctrl_c_cancels_it(cluster: SlurmCluster, name: str) -> None:
    mine = SlurmQueue(as_user(cluster, USER), cluster="login")
    for index in range(len(NODES)):
        hold(cluster, mine, f"{name}-{index}", GPUS_PER_NODE)
    other = SlurmQueue(as_user(cluster, OTHER_USER), cluster="login")
    request = slurm_request(partition="gpu", gpus=1, time="10")
    output = str(cluster.shared / f"{name}.out")
    job_id = other.submit(request, environment=name, output=output, ended_log=str(cluster.shared / f"{name}.e"))
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        if "Resources" in line:  # the user presses Ctrl-C on seeing why it waits
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wait_until_running(other, job_id, request, output=output, report=report, timeout_s=120)
    assert lines[-1] == (f"⏳ waiting for 1 GPU on partition gpu (job {job_id}, reason: Resources) … "
                         "Ctrl-C cancels the request")
    wait_for(lambda: (job := other.job(job_id)) is not None and job.state == "CANCELLED", timeout=30,
             message="the request cancelled")
    assert other.live_job(name, OTHER_USER) is None


def test_gpus_slurm_from_the_laptop_through_the_login_node(cluster: SlurmCluster, topology: Topology,
                                                           name: str) -> None:
    """The login node has Slurm's commands and no engine the user may use (devagent-nodock): enough for
    `gpus --slurm`."""
    login = topology.start_sshd(extra=[f"SetEnv SLURM_CONF={cluster.conf}"])
    topology.laptop.add_alias("hpc-login", login, user="devagent-nodock")
    job_id = hold(cluster, SlurmQueue(as_user(cluster, USER), cluster="login"), name, 1)
    result = topology.laptop.devagent("gpus", "--host", "hpc-login", "--slurm", "gpu")
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["partition gpu: 2 nodes, 4 GPUs, 1 held, 0 jobs queued", "NODE  GPU  HOLDER"]
    held = [line for line in lines if f"job {job_id} of {USER}: devagent environment {name}," in line]
    assert len(held) == 1 and held[0].endswith(" left")
    assert sum(1 for line in lines if line.endswith("  free")) == 3
    data = json.loads(topology.laptop.devagent("gpus", "--host", "hpc-login", "--slurm", "gpu", "--json",
                                               check=True).stdout)
    assert [(g["job"], g["environment"]) for g in data["gpus"] if g["job"]] == [(job_id, name)]
    # A hostile partition is refused before anything runs (no ssh login at all).
    before = login.log.count("Accepted publickey")
    refused = topology.laptop.devagent("gpus", "--host", "hpc-login", "--slurm", "gpu;id")
    assert (refused.returncode, refused.stderr.splitlines()[0]) == (2, "Error: invalid Slurm partition 'gpu;id'")
    assert login.log.count("Accepted publickey") == before
    nope = topology.laptop.devagent("gpus", "--host", "hpc-login", "--slurm", "nope")
    assert (nope.returncode, nope.stderr.splitlines()[0]) == (
        2, "Error: Slurm has no partition 'nope' on hpc-login (or it has no nodes)")


def test_a_link_reaches_a_node_through_the_login_node(cluster: SlurmCluster, topology: Topology) -> None:
    """`ssh -J login node`: one login through the jump; the node's commands and engine over it."""
    from tests.integration.slurm_topology import LOGIN, slurm_sites

    sites = slurm_sites(topology, cluster, user=USER)
    script = (
        "from devagent.control.link.link import ServerLink\n"
        "from devagent.control.paths import Paths\n"
        "from devagent.core.ssh.destination import Server\n"
        f"with ServerLink(Server('n2'), jump=Server({LOGIN!r}), paths=Paths.from_environ()) as link:\n"
        "    print(link.run(['id', '-un']).stdout.decode().strip(), link.engine.cpu_count() > 0)\n")
    result = topology.laptop.python("-c", script)
    assert (result.returncode, result.stdout.split()) == (0, [USER, "True"]), result.output
    assert "Accepted publickey" in sites.nodes["n2"].log and "Accepted publickey" in sites.login.log
    assert "Accepted publickey" not in sites.nodes["n1"].log


def test_an_allocation_asked_without_waiting_is_picked_up_later_and_released(
        cluster: SlurmCluster, name: str, docker_client: object, tmp_path: object) -> None:
    """--no-wait returns the pending job; the next `up` finds it (no second job) and waits; releasing it ends the
    job, and its holder removes the container and says why."""
    from devagent.control.slurm.allocation import allocate, ended_lines, release, still_running
    from tests.integration.test_slurm_cluster import container_exists, start_environment

    home = str(cluster.shared / name)
    mine = SlurmQueue(as_user(cluster, USER), cluster="login")
    blockers = [hold(cluster, mine, f"{name}-{i}", GPUS_PER_NODE) for i in range(len(NODES))]
    request = slurm_request(partition="gpu", gpus=1, time="10")
    lines: list[str] = []
    pending = allocate(mine, request, environment=name, user=USER, home=home, report=lines.append,
                       timeout_s=None, wait=False)
    assert not pending.running and lines == [f"job {pending.job_id} submitted to partition gpu on login"]
    release(mine, blockers[0])
    lines.clear()
    allocation = allocate(mine, request, environment=name, user=USER, home=home, report=lines.append,
                          timeout_s=120)
    assert lines[0].startswith(f"job {pending.job_id} of {name} is already ")  # pending or running by now
    assert lines[0].endswith(" on login: using it")
    assert (allocation.job_id, allocation.gpus, allocation.time_limit_s) == (pending.job_id, (0,), 600)
    assert allocation.node in NODES and still_running(mine, allocation)
    start_environment(cluster, allocation.job_id, name)
    ended = release(mine, allocation.job_id)
    assert ended is not None and ended.state == "CANCELLED"
    assert not container_exists(docker_client, name)
    assert not still_running(mine, allocation)
    wait_for(lambda: ended_lines(mine, allocation), timeout=30, message="the end line")
    assert ended_lines(mine, allocation)[0].endswith(
        f"environment {name} ended: the job was cancelled (devagent down or scancel)")
