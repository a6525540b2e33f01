"""`devagent gpus`: the server's GPUs and who holds each."""

from __future__ import annotations

import json

import click

from devagent.cli import site_options
from devagent.cli.app import JSON_VERSION, cli


@cli.command(name="gpus")
@click.option("--host", "server", default=None, metavar="SERVER",
              help="The GPU server, as you reach it with ssh (an alias from your ssh config, user@host[:port], "
              "ssh://user@host:port, or a Docker context whose endpoint is ssh://…): its engine and its "
              "nvidia-smi, over one ssh login [default: $DEVAGENT_HOST, else this machine's engine and NVML].")
@click.option("--slurm", "partition", default=None, metavar="PARTITION",
              help="A Slurm partition: its nodes' GPUs, the job holding each (user, devagent environment or "
              "not, time left) and the queue, from Slurm's own commands on the login node that --host names.")
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
def gpus_command(server: str | None, partition: str | None, as_json: bool) -> None:
    """Show the server's GPUs (index, UUID, name, memory, utilisation) and who holds each one: devagent
    environments (name, owner, since when, and their GPUs' mean utilisation over the last hour and how long
    they have been idle), other containers that asked for it, processes outside containers."""
    if partition is not None:
        from devagent.cli.partition_gpus import show_partition

        show_partition(server, partition, as_json=as_json)
        return
    from devagent.control.engine.gpu_leases import GpuLedger
    from devagent.control.paths import Paths
    from devagent.core.gpu import ledger as g

    paths = Paths.from_environ()
    with site_options.open_site(host=server, quiet=True) as site:
        ledger = GpuLedger(site.engine, inventory=site.gpu_inventory, clock_is_ours=site.engine_clock_is_ours,
                           cache=paths.gpu_cache)
        state = ledger.state()
        usage = ledger.usage(state)
    if as_json:
        click.echo(json.dumps(g.envelope(state.inventory, state.holders, JSON_VERSION, usage), indent=2))
        return
    for line in g.render_table(state.inventory, state.holders,
                               others=() if state.inventory.gpus else state.containers, usage=usage):
        click.echo(line)
