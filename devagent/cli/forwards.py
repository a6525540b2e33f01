"""A port of an environment on this machine's 127.0.0.1: forward, jupyter, tensorboard."""

from __future__ import annotations

import click

from devagent.cli.app import cli, echo_result, echo_step


@cli.command()
@click.argument("name")
@click.argument("ports", metavar="[PORT[:LOCAL]]", required=False)
def forward(name: str, ports: str | None) -> int:
    """Forward environment NAME's 127.0.0.1:PORT to 127.0.0.1:LOCAL here, through the alias, until Ctrl-C.

    LOCAL defaults to PORT (an error when it is taken: exit 18); 0 picks any free port. Both ends are 127.0.0.1:
    nothing is published on another address. Runs the real OpenSSH client: `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:PORT
    NAME`. Without PORT: the first of the forwardPorts of the devcontainer.json NAME was made from."""
    from devagent.control.paths import Paths
    from devagent.control.tunnels.port_forward import run_forward
    from devagent.core.spec import validate_name
    from devagent.core.ssh.forward_plan import PortPair, parse_ports

    name = validate_name(name)
    if ports is None:
        recorded = _file_ports(name)
        pair = PortPair(recorded[0], None)
        if recorded[1:]:
            echo_step(f"forwardPorts of {name}'s devcontainer.json: {', '.join(map(str, recorded))}; forwarding "
                      f"{recorded[0]} (`devagent forward {name} PORT` in another terminal for each other one)")
    else:
        pair = parse_ports(ports)
    status = run_forward(Paths.from_environ(), name, pair, show=echo_result)
    echo_step("forward closed")
    return int(status)


def _file_ports(name: str) -> tuple[int, ...]:
    """The forwardPorts `up` recorded on NAME's container (its engine: this machine's or its server's)."""
    from devagent.cli import site_options
    from devagent.core.ssh.forward_plan import FORWARD_PORTS_LABEL, recorded_ports
    from devagent.errors import DevagentError, ExitStatus

    with site_options.open_site(name=name) as site:
        info = site.engine.get(name)
    if info is None:
        raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                            hint=f"list them with `devagent ls`, or make it first: devagent up {name}")
    found = recorded_ports(info.labels.get(FORWARD_PORTS_LABEL))
    if not found:
        raise DevagentError(f"environment {name!r} names no port to forward (no forwardPorts in a "
                            "devcontainer.json it was made from)", status=ExitStatus.USAGE,
                            hint=f"give the port: devagent forward {name} PORT[:LOCAL]")
    return found


@cli.command()
@click.argument("name")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Local port here [default: 8888, as inside; 0: any free port].")
def jupyter(name: str, port: int | None) -> int:
    """Start Jupyter in environment NAME on its 127.0.0.1 with a fresh token, forward it here, print the URL.

    Ctrl-C stops the forward and the server. Jupyter comes from the environment: its workspace's .venv, its PATH or
    ~/.local/bin (JupyterLab, else Notebook, else Jupyter Server)."""
    from devagent.control.paths import Paths
    from devagent.control.tunnels.notebook_servers import run_server
    from devagent.core.spec import validate_name

    status = run_server(Paths.from_environ(), validate_name(name), "jupyter", local=port, logdir=None,
                        show=echo_result)
    echo_step("Jupyter stopped, forward closed")
    return int(status)


@cli.command()
@click.argument("name")
@click.option("--logdir", default=None, metavar="DIR",
              help="Event files' folder, relative to the workspace [default: the workspace].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Local port here [default: 6006, as inside; 0: any free port].")
def tensorboard(name: str, logdir: str | None, port: int | None) -> int:
    """Start TensorBoard in environment NAME on its 127.0.0.1, forward it here, print the URL.

    TensorBoard has no login: it listens on the environment's 127.0.0.1 only and is reached through the forward.
    Ctrl-C stops the forward and the server."""
    from devagent.control.paths import Paths
    from devagent.control.tunnels.notebook_servers import run_server
    from devagent.core.spec import validate_name

    status = run_server(Paths.from_environ(), validate_name(name), "tensorboard", local=port, logdir=logdir,
                        show=echo_result)
    echo_step("TensorBoard stopped, forward closed")
    return int(status)
