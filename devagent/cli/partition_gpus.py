"""`devagent gpus --slurm PARTITION`: a Slurm partition's GPUs, who holds each, and what is queued, from Slurm's
own commands on the cluster's login node (`--host`). Slurm is the ledger: devagent keeps none of its own there."""

from __future__ import annotations

import json
import time

import click

from devagent.cli import site_options
from devagent.cli.app import JSON_VERSION


def show_partition(server: str | None, partition: str, *, as_json: bool) -> None:
    from devagent.control.paths import Paths
    from devagent.control.sites.slurm_site import login
    from devagent.core.slurm.nodes import partition_gpus, queued, render_partition
    from devagent.core.slurm.request import check_name
    from devagent.errors import DevagentError, ExitStatus

    check_name(partition, what="partition", option="--slurm")  # before anything runs
    settings = site_options.settings()
    server = server or settings.host
    if server is None:
        raise DevagentError("--slurm needs the cluster's login node", status=ExitStatus.USAGE,
                            hint=f"name it with --host: devagent gpus --host LOGIN --slurm {partition}")
    # A login node needs no Docker Engine: only Slurm's commands run there.
    with login(server, paths=Paths.from_environ(), settings=settings, report=lambda _: None) as (_, queue):
        nodes = queue.nodes(partition)
        jobs = queue.jobs()
    now = time.time()
    if as_json:
        gpus = [{"node": row.node, "index": row.index, "job": row.job.job_id if row.job else None,
                 "user": row.job.user if row.job else None, "environment": row.environment,
                 "time_left_s": row.job.time_left_s(now) if row.job else None}
                for row in partition_gpus(nodes, jobs, partition)]
        waiting = [{"job": job.job_id, "user": job.user, "name": job.name, "reason": job.reason}
                   for job in queued(jobs, partition)]
        click.echo(json.dumps({"version": JSON_VERSION, "cluster": server, "partition": partition,
                               "gpus": gpus, "queued": waiting}, indent=2))
        return
    for line in render_partition(nodes, jobs, partition, now=now):
        click.echo(line)
