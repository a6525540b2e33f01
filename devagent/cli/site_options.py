"""Where a command's engine is: this machine's, or a server's over one ssh login (`--host`, DEVAGENT_HOST, or the
server devagent's records name for an environment)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devagent.cli.app import echo_step

if TYPE_CHECKING:
    from devagent.core.gpu.ledger import Inventory


# TEST SEAM, never set by the product: a JSON file standing in for this machine's GPUs (core/gpu/ledger.py's
# stand_in_inventory), for tests on machines without a GPU. Documented as test-only.
GPU_INVENTORY_STAND_IN = "DEVAGENT_TEST_GPU_INVENTORY"


def gpu_inventory() -> Inventory:
    """This machine's GPUs, from NVML (the host side may not import the runtime, so the CLI reads it)."""
    stand_in = os.environ.get(GPU_INVENTORY_STAND_IN)
    if stand_in:
        from devagent.core.gpu.ledger import stand_in_inventory

        return stand_in_inventory(Path(stand_in).read_text(encoding="utf-8"))
    from devagent.inside.gpu_inventory import read_inventory

    return read_inventory()


def provisioner() -> Any:
    """A Provisioner for this machine's engine, with the ports of DEVAGENT_PORTS and this machine's GPUs."""
    from devagent.control.engine.docker_engine import Engine
    from devagent.control.lifecycle.provision import Provisioner
    from devagent.control.paths import Paths
    from devagent.core.ports import DEFAULT_PORTS, PORTS_VARIABLE, parse_ports

    # Where a new environment's port comes from; checked before the engine is asked anything.
    ports = parse_ports(os.environ[PORTS_VARIABLE]) if os.environ.get(PORTS_VARIABLE) else DEFAULT_PORTS
    return Provisioner(engine=Engine(), paths=Paths.from_environ(), report=echo_step, ports=ports,
                       gpu_inventory=gpu_inventory)


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


@contextlib.contextmanager
def server_link(text: str, *, quiet: bool = False, resolve: tuple[str, ...] = ()) -> Iterator[Any]:
    """The one ssh login to the server TEXT for this command (a ServerLink), closed when the command ends. RESOLVE:
    paths on the server its probe resolves too (`up`'s workspace), with no command of their own."""
    from devagent.control.link.link import ServerLink, resolve_server
    from devagent.control.paths import Paths

    server = resolve_server(text, environ=os.environ)
    with ServerLink(server, paths=Paths.from_environ(), report=(lambda _: None) if quiet else echo_step,
                    docker_socket=os.environ.get("DEVAGENT_DOCKER_SOCKET") or None, resolve=resolve) as link:
        yield link


@contextlib.contextmanager
def on_server(text: str, *, quiet: bool = False, resolve: tuple[str, ...] = ()) -> Iterator[Any]:
    """A Provisioner for the server TEXT, over one ssh login (and a second one only if that one drops during
    `up`, for the rollback)."""
    from devagent.control.paths import Paths

    with contextlib.ExitStack() as stack:
        # The link imports the docker SDK while ssh logs in (one thread: no import racing a fork).
        link = stack.enter_context(server_link(text, quiet=quiet, resolve=resolve))
        from devagent.control.lifecycle.provision import Provisioner

        yield Provisioner(engine=link.engine, paths=Paths.from_environ(), report=echo_step, link=link,
                          relink=lambda: stack.enter_context(server_link(text)))


def on_server_quietly(text: str) -> contextlib.AbstractContextManager[Any]:
    return on_server(text, quiet=True)


@contextlib.contextmanager
def where(name: str) -> Iterator[Any]:
    """The Provisioner for environment NAME: on its server when devagent's records name one, else local."""
    from devagent.control.paths import Paths
    from devagent.control.sites.records import Records

    record = Records(Paths.from_environ()).get(name)
    if record is None:
        yield provisioner()
        return
    with on_server(record.server) as there:
        yield there
