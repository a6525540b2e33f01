"""`devagent reproduce` of a run made in a Slurm job, and `share --export` of such an environment, on the real
Slurm 22.05 of slurm_cluster.py (its login node and nodes are test sshds on loopback, slurm_topology.py). The
engine has no NVIDIA runtime, so the job is a CPU job (--gpus 0): what is shown is that the reproduction asks
Slurm for a NEW job of the same partition, time limit and GPU count (0 here), lands in it, and compares the run's
metric as reproduce does on a server. No timed asserts: waits are on conditions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from devagent.errors import ExitStatus
from tests.integration.slurm_cluster import SlurmCluster
from tests.integration.slurm_topology import LOGIN, slurm_sites
from tests.integration.test_slurm_up import HOME, USER, container, jobs_of, record, remove_workspaces, up
from tests.integration.topology import Topology

pytestmark = [pytest.mark.docker, pytest.mark.slurm]


@pytest.fixture(autouse=True)
def _remove_workspaces(cluster: SlurmCluster, name: str) -> Iterator[None]:
    yield
    remove_workspaces(cluster, name)  # and its job's output and end log on the shared home


COMMAND = "devagent run -- python3 -c 'print(\"step=1 loss=0.25\")'"


def test_a_run_in_a_job_is_reproduced_in_a_new_job_and_its_export_says_why_not(
        cluster: SlurmCluster, topology: Topology, name: str, docker_client: object) -> None:
    slurm_sites(topology, cluster, user=USER)
    laptop = topology.laptop
    workspace, again = HOME / "devagent" / name, HOME / "devagent" / f"{name}-run1"
    try:
        up(laptop, name, "--gpus", "0")
        noted = record(laptop, name)
        assert noted is not None
        job = str(noted["slurm_job"])
        made = laptop.ssh(name, "cd ~/workspace && git init -q && echo x > code.txt && git add code.txt && "
                                "git -c user.name=t -c user.email=t@example.invalid commit -qm first && "
                                f"{COMMAND}", timeout=120)
        assert made.returncode == 0, made.output

        # share --export: refused with the real reason (the alias's job check), exit 12.
        keys = laptop.devagent_home.parent  # a folder the laptop's devagent sees
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / f"{name}-alice")],
                       check=True)
        key = keys / f"{name}-alice.pub"
        invited = laptop.devagent("share", name, "--key", str(key), "--as", "alice")
        assert invited.returncode == 0, invited.output
        export = laptop.devagent("share", name, "--export", "alice")
        assert export.returncode == ExitStatus.CONFLICT, export.output
        assert f"Error: no Host block for a teammate: environment {name!r} runs in Slurm job {job}, and its " \
               "alias reaches it through a job check (a ProxyCommand that asks Slurm first)" in export.stderr
        assert f"devagent up NAME --host {LOGIN} --slurm gpu" in export.stderr and export.stdout == ""

        # reproduce through the login node: a new job of the same partition, time limit and GPU count.
        result = laptop.devagent("reproduce", f"devagent/{name}/lab-notebook.md#run-1", "--host", LOGIN,
                                 timeout=900)
        assert result.returncode == 0, result.output
        second = record(laptop, f"{name}-run1")
        assert second is not None and second["slurm_partition"] == "gpu", result.output
        new_job = str(second["slurm_job"])
        assert new_job != job and jobs_of(cluster, f"{name}-run1") == [new_job]
        shown = cluster.run("scontrol", "show", "job", new_job).stdout
        assert "Partition=gpu " in shown and "TimeLimit=00:10:00" in shown, shown
        assert "gres/gpu" not in shown, shown  # the same count as the run's job: none
        assert f"job {new_job} running on node {second['slurm_node']}" in result.stderr
        assert re.search(r"^  loss 0\.25 vs 0\.25 ✓$", result.stdout, re.M), result.stdout
        assert f"✔ run 1 reproduced (environment {name}-run1;" in result.stdout
        new_text = (again / "lab-notebook.md").read_text()
        assert f"· job {new_job} · partition gpu · " in new_text and "time limit 10 min |" in new_text
        assert re.search(r"^## .* · run 1 reproduced · ✅ loss 0\.25 vs 0\.25 ✓$",
                         (workspace / "lab-notebook.md").read_text(), re.M)
        # The new run's section records the new job, and its reproduce block the same job options again.
        section = new_text.split("· run 1 ·", 1)[1]
        assert f"SLURM_JOB_ID={new_job}" in section
        assert "--gpus 0 --memory 2g" in section and "--slurm gpu --time 0-00:10:00" in section, section
    finally:
        for env in (f"{name}-run1", name):
            laptop.devagent("down", env, timeout=300)
        for folder in (workspace, again):
            shutil.rmtree(folder, ignore_errors=True)
    assert container(docker_client, f"{name}-run1") is None and jobs_of(cluster, f"{name}-run1") == []
