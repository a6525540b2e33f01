"""The command line: the only module that imports click. Each command parses, calls one library function,
and renders the result. Heavy modules (docker, paramiko) are imported inside the commands that need them, so
`devagent --help` stays fast."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devagent import __version__
from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.core.gpu_ledger import Inventory
    from devagent.host.reproduce import Files

JSON_VERSION = 1


@dataclass(frozen=True)
class Invocation:
    """What main() was started with, for the commands that record it (click's context object)."""

    argv: tuple[str, ...]  # after the program name


def _echo_step(text: str) -> None:
    # After SIGHUP the terminal is gone and writing fails: that must not stop up's rollback, nor its report.
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


def _echo_result(text: str) -> None:
    # A line the user waits for (a URL) goes out at once, also when stdout is a pipe.
    with contextlib.suppress(OSError):
        click.echo(text)
        sys.stdout.flush()


def _output_closed() -> bool:
    """Whether whoever reads our stdout or stderr went away (`devagent ls | head`): a pipe whose reader closed
    polls as an error."""
    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


class _Commands(click.Group):
    """click turns every EPIPE into a silent exit 1 (right for `devagent ls | head`). One from anywhere else — a
    socket to a server or a container that closed — is a fault: it must say so, not vanish."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            if _output_closed():
                raise
            raise RuntimeError(f"unexpected broken pipe (not on stdout or stderr): {exc}") from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="devagent")
def cli() -> None:
    """Secure SSH-ready PyTorch dev containers for VS Code Remote-SSH, with a lab notebook that keeps itself.

    \b
    devagent up NAME       provision an environment and its ssh alias NAME
    ssh NAME               log in (VS Code: Remote-SSH → Connect to Host → NAME)
    devagent down NAME     remove the container, the alias and the pinned key; files stay
    """


# -- host side --------------------------------------------------------------------------------------------------


# TEST SEAM, never set by the product: a JSON file standing in for this machine's GPUs (core/gpu_ledger.py's
# stand_in_inventory), for tests on machines without a GPU. Documented as test-only.
GPU_INVENTORY_STAND_IN = "DEVAGENT_TEST_GPU_INVENTORY"


def _gpu_inventory() -> Inventory:
    """This machine's GPUs, from NVML (the host side may not import the runtime, so the CLI reads it)."""
    stand_in = os.environ.get(GPU_INVENTORY_STAND_IN)
    if stand_in:
        from devagent.core.gpu_ledger import stand_in_inventory

        return stand_in_inventory(Path(stand_in).read_text(encoding="utf-8"))
    from devagent.runtime.gpu_inventory import read_inventory

    return read_inventory()


def _provisioner() -> Any:
    from devagent.core.ports import DEFAULT_PORTS, PORTS_VARIABLE, parse_ports
    from devagent.host.engine import Engine
    from devagent.host.paths import Paths
    from devagent.host.provision import Provisioner

    # Where a new environment's port comes from; checked before the engine is asked anything.
    ports = parse_ports(os.environ[PORTS_VARIABLE]) if os.environ.get(PORTS_VARIABLE) else DEFAULT_PORTS
    return Provisioner(engine=Engine(), paths=Paths.from_environ(), report=_echo_step, ports=ports,
                       gpu_inventory=_gpu_inventory)


HOST_HELP = ("The GPU server, as you reach it with ssh: an alias from your ssh config, user@host[:port], "
             "ssh://user@host:port, or a Docker context whose endpoint is ssh://… [default: $DEVAGENT_HOST, "
             "else devagent.toml's host, else this machine's Docker Engine].")


@contextlib.contextmanager
def _server_link(text: str, *, quiet: bool = False, resolve: tuple[str, ...] = ()) -> Iterator[Any]:
    """The one ssh login to the server TEXT for this command (a ServerLink), closed when the command ends. RESOLVE:
    paths on the server its probe resolves too (`up`'s workspace), with no command of their own."""
    from devagent.host.paths import Paths
    from devagent.host.server_link import ServerLink, resolve_server

    server = resolve_server(text, environ=os.environ)
    with ServerLink(server, paths=Paths.from_environ(), report=(lambda _: None) if quiet else _echo_step,
                    docker_socket=os.environ.get("DEVAGENT_DOCKER_SOCKET") or None, resolve=resolve) as link:
        yield link


@contextlib.contextmanager
def _on_server(text: str, *, quiet: bool = False, resolve: tuple[str, ...] = ()) -> Iterator[Any]:
    """A Provisioner for the server TEXT, over one ssh login (and a second one only if that one drops during
    `up`, for the rollback)."""
    from devagent.host.paths import Paths

    with contextlib.ExitStack() as stack:
        # The link imports the docker SDK while ssh logs in (one thread: no import racing a fork).
        link = stack.enter_context(_server_link(text, quiet=quiet, resolve=resolve))
        from devagent.host.provision import Provisioner

        yield Provisioner(engine=link.engine, paths=Paths.from_environ(), report=_echo_step, link=link,
                          relink=lambda: stack.enter_context(_server_link(text)))


def _on_server_quietly(text: str) -> contextlib.AbstractContextManager[Any]:
    return _on_server(text, quiet=True)


@contextlib.contextmanager
def _where(name: str) -> Iterator[Any]:
    """The Provisioner for environment NAME: on its server when devagent's records name one, else local."""
    from devagent.host.paths import Paths
    from devagent.host.records import Records

    record = Records(Paths.from_environ()).get(name)
    if record is None:
        yield _provisioner()
        return
    with _on_server(record.server) as provisioner:
        yield provisioner


@cli.command()
@click.argument("name", required=False)
@click.option("--base-image", default=None, metavar="IMAGE",
              help="Debian/Ubuntu-based image with python3 [default: the official PyTorch CUDA runtime image].")
@click.option("--host", default=None, metavar="SERVER", help=HOST_HELP)
@click.option("--image", default=None, metavar="REF",
              help="Start from a team image pushed by `devagent image build --tag REF --push` instead of building: "
              "REGISTRY/REPO:VERSION, or @sha256:… for exactly that image. Pulled when missing, never rebuilt.")
@click.option("--workspace", default=".", show_default=True, type=click.Path(file_okay=False),
              help=f"Host folder mounted at ~/{layout.HOME_WORKSPACE}; created when missing; kept by `down`. Its "
              "devagent.toml, if any, gives the defaults for every other option. With a server: a folder there "
              "(absolute, or relative to your home there) [default: ~/devagent/NAME], and devagent.toml is read "
              "from the current folder.")
@click.option("--gpus", default="none", show_default=True,
              help="none, all, any:N (N free GPUs, most free memory first), indexes (0,1) or GPU UUIDs. A GPU "
              "another environment, container or process holds is refused (exit 19; see `devagent gpus`).")
@click.option("--share-gpus", is_flag=True, default=None,
              help="Take GPUs that others hold too, knowingly; the notebook header says so.")
@click.option("--memory", default="16g", show_default=True, help="Memory limit (no swap beyond it).")
@click.option("--cpus", default=None, help="CPU limit [default: 8, or all the engine has when fewer].")
@click.option("--shm-size", default="2g", show_default=True, help="/dev/shm size (DataLoader workers use it).")  # noqa: S108
@click.option("--pids", default="4096", show_default=True, help="Process limit.")
@click.option("--user", default="dev", show_default=True, help="Login user inside (never root).")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Your existing ed25519 private key [default: one devagent makes in DEVAGENT_HOME].")
@click.option("--sshd-profile", type=click.Choice(["strict", "compat"]), default=None,
              help="strict: post-quantum key exchange only (OpenSSH >= 8.5); compat adds curve25519 "
              "[default: strict when your ssh is >= 8.5].")
@click.option("--notebook", default=None, metavar="PATH",
              help=f"Notebook path, relative to the workspace [default: {layout.NOTEBOOK}].")
@click.option("--watch", multiple=True, metavar="GLOB",
              help="Training scripts whose saves are journaled, relative to the workspace; repeatable "
              "[default: **/*.py].")
@click.option("--poll-saves", is_flag=True, default=None,
              help="Detect saves by polling (workspaces on network mounts, where inotify does not fire).")
@click.option("--vscode", is_flag=True, default=None,
              help="Put devagent's snippets and tasks into the workspace's .vscode/ (a tasks.json of yours is "
              "merged by label, never overwritten).")
@click.option("--recreate", is_flag=True, help="Replace the container; keep the alias, host key and files.")
@click.pass_context
def up(ctx: click.Context, /, name: str | None, workspace: str, identity: Path | None, recreate: bool,
       **options: Any) -> None:
    """Provision environment NAME and the ssh alias NAME, and prove the login.

    Options not given are taken from the workspace's devagent.toml (see `devagent init`), then the defaults.
    With --host (or DEVAGENT_HOST) the environment is made on that server and the alias NAME, on this machine,
    jumps through it; devagent.toml is then read from the current folder."""
    from click.core import ParameterSource

    from devagent.core.config import CONFIG_FILE
    from devagent.core.sshd import profile_for_client
    from devagent.core.up_request import up_request
    from devagent.host.openssh import client_version

    env_host = os.environ.get("DEVAGENT_HOST") or None
    typed_workspace = ctx.get_parameter_source("workspace") is not ParameterSource.DEFAULT
    # With a server named before the file is read, --workspace is a folder there: the file is the local one here.
    folder = Path.cwd() if options.get("host") or env_host else Path(workspace).resolve()
    config_file = folder / CONFIG_FILE
    request = up_request(
        name=name,
        # An option left at its default yields to the file; one the user typed wins over it.
        given={key: value for key, value in options.items()
               if ctx.get_parameter_source(key) is not ParameterSource.DEFAULT},
        config_text=config_file.read_text(encoding="utf-8") if config_file.is_file() else None,
        config_path=str(config_file), workspace=str(folder), uid=os.getuid(),
        client_profile=profile_for_client(client_version()),
        argv=ctx.obj.argv if isinstance(ctx.obj, Invocation) else (),
        env_host=env_host, server_workspace=workspace if typed_workspace else None,
    )
    env = request.spec
    key = identity.resolve() if identity else None
    if request.host is None:
        result = _provisioner().up(env, identity=key, recreate=recreate, launch_command=request.launch_command)
    else:
        with _on_server(request.host, resolve=(env.workspace,)) as provisioner:
            result = provisioner.up(env, identity=key, recreate=recreate, launch_command=request.launch_command)
            if request.vscode:
                # In the environment, as its login user: the workspace on the server is theirs, and a link planted
                # in it leads to the container's files, never to the server user's.
                placed = provisioner.engine.exec_as(result.name, env.user,
                                                    ["devagent", "vscode-files", env.inside_workspace])
    verb = "replaced" if result.recreated else ("created" if result.created else "verified")
    on, via = (f" on {request.host}", f" via {request.host}") if request.host else ("", "")
    where = f"{request.host}'s 127.0.0.1" if request.host else "127.0.0.1"
    click.echo(f"✔ image {result.image}{' (built)' if result.image_built else ''}{on}")
    click.echo(f"✔ container {result.name} {verb}{on}, sshd on {where}:{result.port}")
    click.echo(f"✔ ssh alias {result.name}{via} (host key pinned)")
    click.echo(f"✔ login verified as {result.user} (uid {result.uid})")
    click.echo(f"  workspace {result.workspace}{on} → {env.inside_workspace}")
    click.echo(f"  VS Code: Remote-SSH → Connect to Host → {result.name}    or: ssh {result.name}")
    if request.vscode and request.host:
        code, said = placed
        for line in said.splitlines():
            click.echo(f"  {line}")
        if code != 0:
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written on {request.host}",
                                status=ExitStatus.USAGE, hint="the line above says why; fix it, then run up again")
    elif request.vscode:
        from devagent.host.vscode_files import place_vscode_files

        try:
            for line in place_vscode_files(folder):
                click.echo(f"  {line}")
        except OSError as exc:  # the environment is up; only the convenience files are missing
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ could not be written: {exc}",
                                status=ExitStatus.USAGE, hint="make the workspace writable, then run up again"
                                ) from None
        except DevagentError as exc:  # a link, or not a regular file, where a file would be written: refused
            raise DevagentError(f"environment {env.name!r} is up, but .vscode/ was not written: {exc.message}",
                                status=exc.status, hint=exc.hint) from None


@cli.command(name="gpus")
@click.option("--host", "server", default=None, metavar="SERVER",
              help="The GPU server, as you reach it with ssh (an alias from your ssh config, user@host[:port], "
              "ssh://user@host:port, or a Docker context whose endpoint is ssh://…): its engine and its "
              "nvidia-smi, over one ssh login [default: $DEVAGENT_HOST, else this machine's engine and NVML].")
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
def gpus_command(server: str | None, as_json: bool) -> None:
    """Show the server's GPUs (index, UUID, name, memory, utilisation) and who holds each one: devagent
    environments (name, owner, since when), other containers that asked for it, processes outside containers."""
    from devagent.core import gpu_ledger as g
    from devagent.host.gpu_ledger import GpuLedger
    from devagent.host.paths import Paths

    paths = Paths.from_environ()
    server = server or os.environ.get("DEVAGENT_HOST") or None
    with contextlib.ExitStack() as stack:
        if server is None:
            from devagent.host.engine import Engine

            engine, inventory = Engine(), _gpu_inventory
        else:
            from devagent.host.gpu_ledger import nvidia_smi_inventory
            from devagent.host.server_link import ServerLink, resolve_server

            link = stack.enter_context(ServerLink(resolve_server(server, environ=os.environ), paths=paths,
                                                  docker_socket=os.environ.get("DEVAGENT_DOCKER_SOCKET") or None))
            engine, inventory = link.engine, lambda: nvidia_smi_inventory(link.run)
        state = GpuLedger(engine, inventory=inventory, cache=paths.gpu_cache).state()
    if as_json:
        click.echo(json.dumps(g.envelope(state.inventory, state.holders, JSON_VERSION), indent=2))
        return
    for line in g.render_table(state.inventory, state.holders,
                               others=() if state.inventory.gpus else state.containers):
        click.echo(line)


@cli.command()
@click.option("--workspace", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write devagent.toml into.")
def init(workspace: Path) -> None:
    """Write a commented devagent.toml into the workspace: commit it, and `devagent up` gives everyone the same
    environment."""
    from devagent.core.config import CONFIG_FILE, INIT_TEMPLATE

    path = workspace.resolve() / CONFIG_FILE
    try:
        with open(path, "x", encoding="utf-8") as f:  # never over a file that is there
            f.write(INIT_TEMPLATE)
    except FileExistsError:
        raise DevagentError(f"{path} exists; left as is", status=ExitStatus.CONFLICT,
                            hint="edit it, or move it away and run init again") from None
    except OSError as exc:
        raise DevagentError(f"cannot write {path}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                            hint="pass --workspace a folder you can write") from None
    click.echo(f"✔ wrote {path}: uncomment what this code needs, then commit it")


@cli.command()
@click.argument("name")
def code(name: str) -> None:
    """Open VS Code on environment NAME's workspace over Remote-SSH (or print how, when `code` is missing)."""
    import shutil
    import subprocess

    from devagent.core.spec import inside_workspace, validate_name
    from devagent.core.vscode import code_command, remote_uri
    from devagent.host.paths import Paths
    from devagent.host.records import Records

    validate_name(name)
    record = Records(Paths.from_environ()).get(name)  # on a server: no need to ask it, the alias goes there
    row = ({"user": record.user} if record is not None
           else next((r for r in _provisioner().ls() if r["name"] == name), None))
    if row is None:
        raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                            hint=f"make it first: devagent up {name}")
    path = inside_workspace(str(row["user"]))
    command = code_command(name, path)
    if shutil.which("code") is None:
        click.echo("VS Code's `code` command is not on the PATH. Open the environment with:")
        click.echo(f"  {shlex.join(command)}")
        click.echo(f"  or the link {remote_uri(name, path)}")
        click.echo("  or in VS Code: Remote-SSH → Connect to Host → " + name)
        return
    opened = subprocess.run(command, check=False)
    if opened.returncode != 0:
        raise DevagentError(f"`{shlex.join(command)}` exited with {opened.returncode}", status=ExitStatus.USAGE,
                            hint=f"open it by hand: {remote_uri(name, path)}")


@cli.command()
@click.argument("name")
def down(name: str) -> None:
    """Remove environment NAME: container, ssh alias, pinned and host keys. Workspace files are kept.

    An environment on a server is removed there: devagent's records say which server."""
    from devagent.core.spec import validate_name

    with _where(validate_name(name)) as provisioner:
        removed = provisioner.down(name)
    for item in removed:
        click.echo(f"✔ removed {item}")


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
@click.option("--host", default=None, metavar="SERVER", help="Only the environments on this server.")
def ls_command(as_json: bool, host: str | None) -> None:
    """List environments (Docker's labels are the source of truth).

    This machine's, and those on every server devagent's records name, asked in parallel (a server that does not
    answer is shown as unreachable, its environments listed from the records)."""
    from devagent.core.server import parse_server
    from devagent.host.inventory import list_all
    from devagent.host.paths import Paths
    from devagent.host.records import Records

    if host is not None:
        server = parse_server(host)  # refused before anything runs
        from devagent.host.server_link import resolve_server

        host = resolve_server(server.text, environ=os.environ).text
    store = Records(Paths.from_environ())
    records = store.all()
    # A machine that has used servers (its records folder exists) lists them all; one that never has, as before.
    hosts = bool(records or host or store.used())
    rows = list_all(records, host=host, local=_provisioner, open_server=_on_server_quietly,
                    used_servers=hosts) if hosts else _provisioner().ls()
    if as_json:
        click.echo(json.dumps({"version": JSON_VERSION, "environments": rows}, indent=2))
        return
    if not rows:
        click.echo("no environments; create one with: devagent up NAME")
        return
    # The HOST column appears once this machine has used a server: one that never used --host sees the table as
    # before.
    state = 11 if hosts else 10  # room for "unreachable"
    click.echo(f"{'NAME':20} {'STATE':{state}} {'HEALTH':10} {'PORT':>6}  {'USER':8} {'GPUS':8} {'INVITED':12} "
               + (f"{'HOST':16} " if hosts else "") + "WORKSPACE")
    for r in rows:
        people = r.get("invited")
        invited = ",".join(map(str, people)) if isinstance(people, list) and people else "-"
        click.echo(f"{r['name']!s:20} {r['state']!s:{state}} {r['health'] or '-'!s:10} {r['port'] or '-'!s:>6}  "
                   f"{r['user']!s:8} {'-' if r.get('error') else r['gpus']!s:8} {invited:12} "
                   + (f"{r.get('host') or 'local'!s:16} " if hosts else "") + f"{r['workspace']}")
    for r in rows:
        if r.get("error"):
            click.echo(f"{r['host']}: unreachable: {r['error']}", err=True)


@contextlib.contextmanager
def _sharing(name: str) -> Iterator[Any]:
    """Sharing for environment NAME: over its server's engine when devagent's records name one (and a teammate's
    entry then jumps through that server), else this machine's."""
    from devagent.core.spec import validate_name
    from devagent.host.sharing import Sharing

    with _where(validate_name(name)) as provisioner:
        link = provisioner.link
        yield Sharing(engine=provisioner.engine, paths=provisioner.paths,
                      jump=link.server.proxy_jump if link is not None else None)


@cli.command()
@click.argument("name")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The teammate's public key file (one line: ed25519, ecdsa, or rsa of at least 3072 bits).")
@click.option("--as", "person", default=None, metavar="PERSON",
              help="The teammate's name in devagent [default: the key file's name without .pub, e.g. alice.pub → "
              "alice].")
@click.option("--export", "export_person", default=None, metavar="PERSON",
              help="Print what PERSON pastes on their machine: a Host block and the known_hosts line that pins the "
              "host key.")
def share(name: str, key_file: Path | None, person: str | None, export_person: str | None) -> None:
    """Invite a teammate into environment NAME: they log in as its login user, with their own key.

    \b
    devagent share NAME --key alice.pub      let Alice in (her key is checked first)
    devagent share NAME --export alice       what Alice pastes on her machine
    devagent unshare NAME alice              her key goes, her ssh sessions end
    """
    if (key_file is None) == (export_person is None):
        raise DevagentError("give either --key FILE (invite) or --export PERSON (print a teammate's entry)",
                            status=ExitStatus.USAGE, hint=f"devagent share {name} --key alice.pub")
    if export_person is not None:
        if person is not None:
            raise DevagentError("--as goes with --key, not with --export", status=ExitStatus.USAGE,
                                hint=f"devagent share {name} --export {person}")
        with _sharing(name) as sharing:
            click.echo(sharing.export(name, export_person), nl=False)
        return
    assert key_file is not None
    try:
        raw = key_file.read_bytes()[:65536]
    except OSError as exc:
        raise DevagentError(f"cannot read {key_file}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                            hint="pass the teammate's public key file, e.g. --key alice.pub") from None
    with _sharing(name) as sharing:
        shared = sharing.share(name, raw.decode("utf-8", errors="replace"), source=str(key_file), person=person)
    who = shared.person
    if shared.added:
        click.echo(f"✔ {who.name} may log in to {name} ({shared.kind} {who.fingerprint})")
        if shared.not_noted:
            _echo_step(f"  the lab notebook does not say so: {shared.not_noted}")
    else:
        click.echo(f"✔ {who.name} was already invited to {name} with this key ({shared.kind} {who.fingerprint})")
    click.echo(f"  send {who.name} what `devagent share {name} --export {who.name}` prints")


@cli.command()
@click.argument("name")
@click.argument("person")
def unshare(name: str, person: str) -> None:
    """Take PERSON's key out of environment NAME at once and end the ssh sessions that logged in with it."""
    with _sharing(name) as sharing:
        ended, not_noted = sharing.unshare(name, person)
    click.echo(f"✔ {person} may no longer log in to {name}")
    if not_noted:
        _echo_step(f"  the lab notebook does not say so: {not_noted}")
    click.echo(f"✔ ended {ended} ssh session{'s' if ended != 1 else ''} that logged in with {person}'s key")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """Log in to NAME with the real OpenSSH client through the alias (`devagent ssh NAME -- CMD`)."""
    from devagent.core.spec import validate_name
    from devagent.host.paths import Paths

    validate_name(name)
    argv = ["ssh", "-F", str(Paths.from_environ().user_ssh_config), name, *command]
    try:
        os.execvp("ssh", argv)  # noqa: S606 - replace this process: ssh owns the terminal from here
    except FileNotFoundError:
        raise DevagentError("the OpenSSH client (ssh) is not installed", status=ExitStatus.USAGE,
                            hint="install it: apt-get install openssh-client") from None


@cli.command()
@click.argument("name")
@click.argument("ports", metavar="PORT[:LOCAL]")
def forward(name: str, ports: str) -> int:
    """Forward environment NAME's 127.0.0.1:PORT to 127.0.0.1:LOCAL here, through the alias, until Ctrl-C.

    LOCAL defaults to PORT (an error when it is taken: exit 18); 0 picks any free port. Both ends are 127.0.0.1:
    nothing is published on another address. Runs the real OpenSSH client: `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:PORT
    NAME`."""
    from devagent.core.forward import parse_ports
    from devagent.core.spec import validate_name
    from devagent.host.forward import run_forward
    from devagent.host.paths import Paths

    status = run_forward(Paths.from_environ(), validate_name(name), parse_ports(ports), show=_echo_result)
    _echo_step("forward closed")
    return int(status)


@cli.command()
@click.argument("name")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Local port here [default: 8888, as inside; 0: any free port].")
def jupyter(name: str, port: int | None) -> int:
    """Start Jupyter in environment NAME on its 127.0.0.1 with a fresh token, forward it here, print the URL.

    Ctrl-C stops the forward and the server. Jupyter comes from the environment: its workspace's .venv, its PATH or
    ~/.local/bin (JupyterLab, else Notebook, else Jupyter Server)."""
    from devagent.core.spec import validate_name
    from devagent.host.notebook_servers import run_server
    from devagent.host.paths import Paths

    status = run_server(Paths.from_environ(), validate_name(name), "jupyter", local=port, logdir=None,
                        show=_echo_result)
    _echo_step("Jupyter stopped, forward closed")
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
    from devagent.core.spec import validate_name
    from devagent.host.notebook_servers import run_server
    from devagent.host.paths import Paths

    status = run_server(Paths.from_environ(), validate_name(name), "tensorboard", local=port, logdir=logdir,
                        show=_echo_result)
    _echo_step("TensorBoard stopped, forward closed")
    return int(status)


@cli.command()
@click.argument("target", metavar="NOTEBOOK#run-N")
@click.option("--name", default=None, help="The new environment's name [default: the original's, with -runN].")
@click.option("--workspace", "into", default=None, metavar="DIRECTORY",
              help="Where the run's code is cloned, as the new workspace; must not exist [default: beside the "
              "original workspace, named like the environment].")
@click.option("--host", default=None, metavar="SERVER",
              help="The server the run's notebook and workspace are on, as for `up --host`: NOTEBOOK and "
              "--workspace are paths there (relative ones below your home there), and the new environment is "
              "made there [default: $DEVAGENT_HOST, else this machine].")
@click.option("--tolerance", default=1e-6, show_default=True, type=click.FloatRange(min=0),
              help="How far a final metric may be from the original's, relative to it, and still match.")
@click.option("--anyway", is_flag=True,
              help="Go on when the run cannot be reproduced exactly (no image digest, no commit, a patch that does "
              "not apply), with what exists.")
def reproduce(target: str, name: str | None, into: str | None, host: str | None, tolerance: float,
              anyway: bool) -> None:
    """Re-create run N of NOTEBOOK and compare its metrics with the original's.

    A new environment from the run's image, a new workspace with its commit and patch, the same command through
    the new alias; the comparison goes into both notebooks. Exits 21 when the run cannot be reproduced exactly
    (unless --anyway), or when it ran but its metrics differ or it failed."""
    from datetime import datetime, timezone

    from devagent.core.runs.reproduce import compare_metrics, reproduction_entries

    server = host or os.environ.get("DEVAGENT_HOST") or None
    with contextlib.ExitStack() as stack:
        if server is None:
            from devagent.host.reproduce import LocalFiles
            from devagent.runtime.append import locked_append

            provisioner: Any = _provisioner()
            files: Files = LocalFiles()

            def append(notebook: Any, text: str, root: Any) -> None:
                locked_append(Path(notebook), text.encode(), root=Path(root))
        else:
            from devagent.host.reproduce import ServerFiles, append_on_server

            provisioner = stack.enter_context(_on_server(server))
            files = ServerFiles(provisioner.link)

            def append(notebook: Any, text: str, root: Any) -> None:
                append_on_server(provisioner.engine, image=result.image, uid=result.uid, workspace=root,
                                 notebook=notebook, text=text)
        plan, result = _reproduction_up(provisioner, files, target, name=name, into=into, anyway=anyway,
                                        server=server)
        facts = plan.facts
        on = f" on {server}" if server else ""
        click.echo(f"✔ environment {result.name} from {result.image}{on}, workspace {plan.new_workspace}")
        click.echo(f"  running run {facts.number}'s command: ssh {plan.name} {facts.command_line()}")
        from devagent.host.reproduce import last_run, run_through_alias

        exit_code = run_through_alias(provisioner.paths.user_ssh_config, facts, plan.name)
        new_run = last_run(files, plan.new_workspace)
        ok, lines = compare_metrics(facts.metrics, new_run.metrics if new_run else {}, tolerance=tolerance)
        new_entry, old_entry = reproduction_entries(
            facts, when=datetime.now(timezone.utc).astimezone(), ok=ok, lines=lines, exit_code=exit_code,
            original=str(plan.notebook), new=str(plan.new_notebook), env_name=plan.name,
            new_run=new_run.number if new_run else None, warnings=plan.warnings)
        for notebook, text, root in ((plan.new_notebook, new_entry, plan.new_workspace),
                                     (plan.notebook, old_entry, plan.workspace)):
            try:
                append(notebook, text, root)
            except OSError as exc:
                _echo_step(f"⚠ the comparison is not in {notebook}{files.where}: {exc.strerror or exc}")
    for line in lines:
        click.echo(f"  {line}")
    if exit_code != 0 or not ok:
        what = f"the command exited {exit_code}" if exit_code != 0 else "its metrics differ"
        raise DevagentError(f"run {facts.number} did not reproduce: {what}", status=ExitStatus.NOT_REPRODUCIBLE,
                            hint=f"the environment {plan.name} and its workspace {plan.new_workspace} are kept to "
                            f"look into it (devagent down {plan.name} removes the environment); GPU kernels and data "
                            "outside the workspace can make runs differ — see docs/explanation/reproducibility.md")
    click.echo(f"✔ run {facts.number} reproduced (environment {plan.name}; `devagent down {plan.name}` removes it)")


def _reproduction_up(provisioner: Any, files: Any, target: str, *, name: str | None, into: str | None,
                     anyway: bool, server: str | None) -> tuple[Any, Any]:
    """`reproduce`'s checked plan (the new workspace made) and its environment, up; nothing left when it fails."""
    from devagent.core.config import CONFIG_FILE
    from devagent.core.runs.reproduce import up_option_values
    from devagent.core.sshd import profile_for_client
    from devagent.core.up_request import up_request
    from devagent.host.openssh import client_version
    from devagent.host.reproduce import prepare

    plan = prepare(target, name=name, into=into, anyway=anyway, engine=provisioner.engine, files=files,
                   report=_echo_step)
    for warning in plan.warnings:
        _echo_step(f"⚠ {warning}")
    facts = plan.facts
    given: dict[str, object] = dict(up_option_values(facts.up_args))
    image_args = ["--image", plan.image] if plan.image else (
        ["--base-image", plan.base_image] if plan.base_image else [])
    given.update({"image": plan.image} if plan.image else {"base_image": plan.base_image})
    host_args = ["--host", server] if server else []
    if server:
        given["host"] = server
    config_file = plan.new_workspace / CONFIG_FILE
    try:
        try:
            config_text: str | None = files.read_text(config_file) if files.exists(config_file) else None
        except OSError as exc:
            raise DevagentError(f"cannot read {config_file}{files.where}: {exc.strerror or exc}",
                                status=ExitStatus.USAGE, hint="make it readable, or remove it") from None
        request = up_request(
            name=plan.name, given=given, config_path=str(config_file), config_text=config_text,
            workspace=str(plan.new_workspace), uid=os.getuid(), client_profile=profile_for_client(client_version()),
            argv=["up", plan.name, *host_args, *image_args, *facts.up_args, "--workspace", str(plan.new_workspace)],
            server_workspace=str(plan.new_workspace) if server else None)
        result = provisioner.up(request.spec, launch_command=request.launch_command)
    except BaseException:
        plan.discard()  # no environment mounts it
        raise
    return plan, result


@cli.group()
def image() -> None:
    """The derived image (base image + login user + sshd + devagent)."""


@image.command(name="build")
@click.option("--base-image", default=None, metavar="IMAGE", help="[default: the official PyTorch image]")
@click.option("--user", "login_user", default="dev", show_default=True)
@click.option("--tag", "target", default=None, metavar="REGISTRY/REPO:VERSION",
              help="Also tag the image with this name (the content hash stays its identity).")
@click.option("--push", is_flag=True, help="Push the --tag to its registry, with Docker's credentials (docker login).")
@click.option("--host", default=None, metavar="SERVER", help="Build on this server's engine [default: "
              "$DEVAGENT_HOST, else this machine's].")
def image_build(base_image: str | None, login_user: str, target: str | None, push: bool, host: str | None) -> None:
    """Build (or find cached) the derived image for a base image and login user; tag and push it for a team.

    \b
    devagent image build --base-image pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime \\
        --tag lab.example:5000/pytorch-cuda:v2.8-cu128 --push
    """
    from devagent.core import spec as s
    from devagent.core.image import parse_image_ref
    from devagent.core.server import parse_server

    if push and not target:
        raise DevagentError("--push needs --tag", status=ExitStatus.USAGE,
                            hint="name the image in the registry: --tag REGISTRY/REPO:VERSION --push")
    ref = parse_image_ref(target, option="--tag") if target else None
    if ref is not None and (ref.digest or not ref.tag):
        raise DevagentError(f"--tag: {target!r} needs a version tag and no digest", status=ExitStatus.USAGE,
                            hint="e.g. --tag lab.example:5000/pytorch-cuda:v2.8-cu121; the registry gives the digest")
    base, user = base_image or s.DEFAULT_BASE_IMAGE, s.validate_user(login_user)
    host = host or os.environ.get("DEVAGENT_HOST") or None
    if host is None:
        from devagent.host.engine import Engine

        _build_tag_push(Engine(), base=base, user=user, uid=os.getuid() or 1000, ref=ref, push=push, where="")
    else:
        with _server_link(parse_server(host).text) as link:  # the image's user gets the server user's uid
            _build_tag_push(link.engine, base=base, user=user, uid=link.facts.uid or 1000, ref=ref, push=push,
                            where=f" on {host}")


def _build_tag_push(engine: Any, *, base: str, user: str, uid: int, ref: Any, push: bool, where: str) -> None:
    from devagent.host.image import build_image, push_image

    tag, built = build_image(engine, base_image=base, user=user, uid=uid, report=_echo_step)
    click.echo(f"✔ image {tag}{' (built)' if built else ' (cached)'}{where}")
    if ref is None:
        return
    if push:
        pinned = push_image(engine, tag, str(ref), report=_echo_step)
        click.echo(f"✔ pushed {pinned}")
        click.echo(f"  devagent up NAME --image {pinned}")
    else:
        assert ref.tag is not None
        engine.tag_image(tag, ref.repository, ref.tag)
        click.echo(f"✔ tagged {ref} (not pushed: add --push)")


# -- container side ---------------------------------------------------------------------------------------------


@cli.command(hidden=False)
@click.option("--sshd-config", default=layout.sshd_config_path("strict"), show_default=True)
@click.option("--workspace", type=click.Path(path_type=Path), default=None,
              help=f"[default: ${layout.WORKSPACE_ENV}, else ~/{layout.HOME_WORKSPACE}]")
@click.option("--notebook", type=click.Path(path_type=Path), default=None,
              help=f"[default: <workspace>/{layout.NOTEBOOK}]")
@click.option("--watch", multiple=True, metavar="GLOB", help="Training scripts to watch [default: **/*.py].")
@click.option("--polling", is_flag=True, default=None, help="Poll for saves (network mounts without inotify).")
def agent(sshd_config: str, workspace: Path | None, notebook: Path | None, watch: tuple[str, ...],
          polling: bool | None) -> int:
    """(Inside the container) the main process: sshd, the save watcher, the notebook."""
    import logging

    from devagent.container.agent import AgentConfig, run
    from devagent.runtime.environment import default_workspace

    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ws = workspace or default_workspace()
    return run(AgentConfig(workspace=ws.resolve(), sshd_config=sshd_config, notebook=notebook,
                           polling=polling or None, watch=watch))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"[default: the environment's notebook, else the nearest {layout.NOTEBOOK} above here]")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(notebook: Path | None, command: tuple[str, ...]) -> int:
    """Run COMMAND as given (`devagent run -- python train.py --lr 3e-4`) and append its run section to the lab
    notebook. Its output streams through unchanged; its exit status is devagent's exit status."""
    from devagent.runs.wrapped import wrapped_run

    return wrapped_run(list(command), cwd=Path.cwd(), notebook=notebook)


@cli.command(name="gpu-check")
@click.option("--notebook", type=click.Path(path_type=Path), default=None,
              help="[default: the notebook the running agent writes]")
@click.option("--no-notebook", is_flag=True, help="Only print; append nothing.")
@click.option("--python", default=None, help="The interpreter whose torch to probe [default: python3 on PATH].")
def gpu_check(notebook: Path | None, no_notebook: bool, python: str | None) -> None:
    """(Inside the container) check the GPUs (NVML, torch, nvidia-smi) and append the result to the notebook."""
    from datetime import datetime, timezone

    from devagent.container.gpucheck import run_gpu_check
    from devagent.core.gpu import render_gpu_check
    from devagent.runtime.environment import open_notebook, running_notebook, save_gpu_check

    now = datetime.now(timezone.utc).astimezone()
    check = run_gpu_check(python=python)
    save_gpu_check(check, now)
    entry = render_gpu_check(check, now=now)
    click.echo(entry.strip("\n"))
    if not no_notebook:
        path = notebook or running_notebook()
        writer = open_notebook(path)
        writer.append(entry)
        if writer.pending:
            raise DevagentError(f"could not append to {path}", status=ExitStatus.NOTEBOOK,
                                hint="free disk space or make the workspace writable, then run it again")
        click.echo(f"appended to {path}", err=True)


@cli.command(hidden=True)
@click.argument("kind", type=click.Choice(["jupyter", "tensorboard"]))
@click.option("--port", type=click.IntRange(1, 65535), default=None)
@click.option("--logdir", default=None)
def serve(kind: str, port: int | None, logdir: str | None) -> int:
    """(Inside the container) run Jupyter or TensorBoard for `devagent jupyter`/`tensorboard` until stdin closes."""
    from devagent.container.serve import serve as run_serve
    from devagent.runtime.environment import default_workspace

    return run_serve(kind, port=port, logdir=logdir, workspace=default_workspace(), stdin=sys.stdin,
                     stdout=sys.stdout)


@cli.command(name="end-sessions", hidden=True)
@click.argument("keys", nargs=-1, required=True)
def end_sessions_command(keys: tuple[str, ...]) -> None:
    """(Inside the container, for `unshare`) end the ssh sessions that logged in with one of KEYS ("TYPE BASE64");
    print the sshd pid of each."""
    from devagent.runtime.sessions import end_sessions

    for pid in end_sessions(keys):
        click.echo(pid)


@cli.command(name="people-entry", hidden=True)
@click.argument("change")
def people_entry(change: str) -> None:
    """(Inside the container, for `share` and `unshare`) append CHANGE and who may log in now to the notebook."""
    from datetime import datetime, timezone

    from devagent.core.people import parse_people, render_people_entry
    from devagent.runtime.environment import open_notebook, running_notebook

    people = parse_people(Path(layout.PEOPLE_PATH).read_text(encoding="utf-8"))
    path = running_notebook()
    writer = open_notebook(path)
    writer.append(render_people_entry(people, change, datetime.now(timezone.utc).astimezone()))
    if writer.pending:
        raise DevagentError(f"could not append to {path}", status=ExitStatus.NOTEBOOK,
                            hint="free disk space or make the workspace writable")


@cli.command(name="vscode-files", hidden=True)
@click.argument("workspace", type=click.Path(path_type=Path))
def vscode_files_command(workspace: Path) -> None:
    """(Inside the container, for `up --vscode --host`) put devagent's snippets and tasks into WORKSPACE/.vscode."""
    from devagent.host.vscode_files import place_vscode_files

    try:
        for line in place_vscode_files(workspace):
            click.echo(line)
    except OSError as exc:
        raise DevagentError(f".vscode/ could not be written: {exc}", status=ExitStatus.USAGE,
                            hint="make the workspace writable") from None


@cli.command(name="append-entry", hidden=True)
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("notebook", type=click.Path(path_type=Path))
@click.argument("text")
def append_entry(root: Path, notebook: Path, text: str) -> None:
    """(Inside a throw-away container, for `reproduce --host`) append TEXT to NOTEBOOK, never through a link
    below ROOT."""
    from devagent.runtime.append import locked_append

    try:
        locked_append(notebook, text.encode(), root=root)
    except OSError as exc:
        raise DevagentError(f"could not append to {notebook}: {exc.strerror or exc}", status=ExitStatus.NOTEBOOK,
                            hint="free disk space or make the workspace writable") from None


@cli.command(name="sshd-config")
@click.option("--profile", type=click.Choice(["strict", "compat"]), required=True)
@click.option("--user", "login_user", required=True)
@click.option("--port", type=int, required=True)
def sshd_config_command(profile: str, login_user: str, port: int) -> None:
    """(Inside the image build) print the hardened sshd_config for this image's OpenSSH."""
    from devagent.container.agent import supported_algorithms
    from devagent.core.sshd import render_sshd_config, session_env

    try:
        text = render_sshd_config(profile=profile, user=login_user, port=port, supported=supported_algorithms(),
                                  env=session_env(os.environ))
    except ValueError as exc:
        raise DevagentError(str(exc), status=ExitStatus.IMAGE_BUILD_FAILED,
                            hint="use a base image whose OpenSSH is 8.5 or newer (the image carries both "
                            "profiles, so the strict one must be possible)") from None
    click.echo(text, nl=False)


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
def doctor(name: str | None, as_json: bool) -> None:
    """Check what VS Code Remote-SSH needs, item by item with a fix for each.

    Without NAME: the Docker Engine, the OpenSSH client, devagent's Include line, file permissions and VS Code's
    remote.SSH.configFile. With NAME also: the container, `ssh -G NAME`, and, logged in through the alias, what
    Remote-SSH needs inside. Exits 0 only when every check passes or is skipped, else 14.
    """
    from devagent.core import doctor as d
    from devagent.core.spec import validate_name
    from devagent.host.doctor import run_checks
    from devagent.host.paths import Paths
    from devagent.host.records import Records

    paths = Paths.from_environ()
    record = Records(paths).get(validate_name(name)) if name is not None else None
    with contextlib.ExitStack() as stack:
        if record is None:
            checks = run_checks(paths, name=name, environ=os.environ, servers_used=Records(paths).used())
        else:  # NAME lives on a server: its engine is asked over one ssh login; a failed login fails that check
            def server_engine() -> Any:
                return stack.enter_context(_server_link(record.server)).engine

            checks = run_checks(paths, name=name, environ=os.environ, engine_factory=server_engine,
                                server=record.server)
    if as_json:
        click.echo(json.dumps(d.envelope(checks), indent=2))
    else:
        for line in d.render(checks):
            click.echo(line)
        click.echo(d.summary(checks))
    if not d.passed(checks):
        click.get_current_context().exit(int(ExitStatus.DOCTOR_FAILED))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turn DevagentError into its message and exit status. ARGV: the arguments after
    the program name [default: sys.argv[1:]]."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = cli.main(args=args, prog_name="devagent", standalone_mode=False, obj=Invocation(tuple(args)))
    except DevagentError as exc:
        _echo_step(f"Error: {exc}")
        return int(exc.status)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return int(ExitStatus.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitStatus.USAGE)
    return int(result) if isinstance(result, int) else 0
