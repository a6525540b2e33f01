"""Where a command's environment lives: this machine's engine, or a server's over one ssh login. `open_site` is the
one place that decides, from `--host`, `--local`, DEVAGENT_HOST (read once, by control/settings.py), devagent.toml's
host (after the user agreed to it) or devagent's record of where an environment lives."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from devagent.cli.app import echo_step

if TYPE_CHECKING:
    from devagent.control.lifecycle.provision import Provisioner
    from devagent.control.settings import Settings
    from devagent.control.sites.site import Site
    from devagent.core.gpu.ledger import Inventory
    from devagent.core.up_request import SlurmUp


def settings() -> Settings:
    from devagent.control.settings import Settings

    return Settings.from_environ()


def gpu_inventory() -> Inventory:
    """This machine's GPUs, from NVML (the control side may not import the environment's side, so the CLI reads
    it), or the test-only stand-in file DEVAGENT_TEST_GPU_INVENTORY names."""
    stand_in = settings().gpu_inventory_stand_in
    if stand_in:
        from devagent.core.gpu.ledger import stand_in_inventory

        return stand_in_inventory(Path(stand_in).read_text(encoding="utf-8"))
    from devagent.inside.gpu_inventory import read_inventory

    return read_inventory()


def _append(notebook: Path, data: bytes, workspace: Path) -> None:
    from devagent.inside.append import locked_append

    locked_append(notebook, data, root=workspace)


def local_site() -> Site:
    """This machine's engine (asked when first used), with the ports of DEVAGENT_PORTS and this machine's GPUs."""
    from devagent.control.engine.docker_engine import Engine
    from devagent.control.paths import Paths
    from devagent.control.sites.local_site import LocalSite
    from devagent.core.ports import DEFAULT_PORTS, parse_ports

    ports = settings().ports
    return LocalSite(Engine, paths=Paths.from_environ(), inventory=gpu_inventory, append=_append,
                     ports=lambda: parse_ports(ports) if ports else DEFAULT_PORTS)


def open_site(*, host: str | None = None, local: bool = False, chosen: bool = False, name: str | None = None,
              config_file: Path | None = None, quiet: bool = False, resolve: tuple[str, ...] = (),
              slurm: SlurmUp | None = None, environment: str | None = None
              ) -> contextlib.AbstractContextManager[Site]:
    """The site of this command (control/sites/opening.py decides): NAME's own, else --host, else DEVAGENT_HOST
    unless --local, else this machine's; CONFIG_FILE: the host is devagent.toml's, which the user must agree to."""
    from devagent.control.paths import Paths
    from devagent.control.sites.opening import open_site as opened

    return opened(settings=settings(), paths=Paths.from_environ(), local_site=local_site, report=echo_step,
                  host=host, local=local, chosen=chosen, name=name, config_file=config_file,
                  agree=lambda server, file: agree_to_file_host(server, config_file=file), quiet=quiet,
                  resolve=resolve, slurm=slurm, environment=environment)


def provisioner(site: Site) -> Provisioner:
    """The Provisioner of `up`, `down` and `ls` on SITE."""
    from devagent.control.lifecycle.provision import Provisioner
    from devagent.control.paths import Paths

    return Provisioner(site=site, paths=Paths.from_environ(), report=echo_step)


def server_name(text: str) -> str:
    """The server TEXT names, as devagent's records write it (a Docker context's endpoint, say)."""
    from devagent.control.sites.server_site import resolve_name

    return resolve_name(text, settings())


HOST_HELP = ("The GPU server, as you reach it with ssh: an alias from your ssh config, user@host[:port], "
             "ssh://user@host:port, or a Docker context whose endpoint is ssh://… [default: $DEVAGENT_HOST, "
             "else devagent.toml's host, else this machine's Docker Engine].")


def interactive() -> bool:
    """Whether someone at a terminal can be asked: stdin to answer, stderr to show the question."""
    import sys

    return sys.stdin.isatty() and sys.stderr.isatty()


def agree_to_file_host(server: str, *, config_file: Path) -> None:
    """Go on only if the user agrees to SERVER, which only CONFIG_FILE (a workspace's devagent.toml, perhaps a
    cloned one) names: asked once in a terminal and remembered; refused without one (scripts, CI)."""
    import click

    from devagent.control.paths import Paths
    from devagent.control.sites.consent import TrustedServers
    from devagent.errors import DevagentError, ExitStatus

    trusted = TrustedServers(Paths.from_environ())
    if trusted.has(server):
        return
    ways = (f"pass --host {server} (or set DEVAGENT_HOST={server}) to use it, or --local for this machine's "
            "engine")
    if not interactive():
        raise DevagentError(f"{config_file} names the server {server!r}, which you have not agreed to use: a "
                            "file in a workspace does not choose a server on its own", status=ExitStatus.USAGE,
                            hint=f"{ways}; or run `devagent up` once in a terminal and answer yes (remembered)")
    click.echo(f"{config_file} names the server {server!r}: devagent would log in there with your ssh config and "
               "keys, make the environment there and write its alias through it.", err=True)
    if not click.confirm(f"Use {server} (remembered for every workspace that names it)?", default=False,
                         err=True):
        raise DevagentError(f"not using the server {server!r} that {config_file} names; nothing was made",
                            status=ExitStatus.USAGE, hint=ways)
    trusted.add(server)
