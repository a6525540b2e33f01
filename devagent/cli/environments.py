"""The commands of an environment's life: up, init, code, ssh, doctor, ls, down."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devagent.cli import site_options
from devagent.cli.app import JSON_VERSION, Invocation, cli, echo_step
from devagent.core import layout
from devagent.core.up_request import DevcontainerLayer, UpRequest
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.lifecycle.provision import Provisioner, UpResult


@cli.command()
@click.argument("name", required=False)
@click.option("--base-image", default=None, metavar="IMAGE",
              help="Debian/Ubuntu-based image with python3 [default: the official PyTorch CUDA runtime image].")
@click.option("--host", default=None, metavar="SERVER", help=site_options.HOST_HELP)
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
@click.option("--idle-release", default=None, metavar="DURATION",
              help="Give the GPUs back once they were idle this long with no ssh session open and no `devagent "
              "run` running (e.g. 2h; 5m at least): the container stops, workspace and home stay, and `up` again "
              "takes GPUs anew [default: never].")
@click.option("--devcontainer", "devcontainer_choice", default=None, metavar="NAME",
              help="Which devcontainer.json when the workspace has several (.devcontainer/NAME/devcontainer.json, "
              "or a path) [default: .devcontainer/devcontainer.json, then .devcontainer.json, then the only one].")
@click.option("--no-devcontainer", is_flag=True, help="Leave the workspace's devcontainer.json unread.")
@click.option("--keep-going", is_flag=True, default=None,
              help="A devcontainer.json lifecycle command that fails is reported and `up` goes on (default: `up` "
              "fails and removes the container it made).")
@click.option("--recreate", is_flag=True, help="Replace the container; keep the alias, host key, home and files.")
@click.option("--local", is_flag=True,
              help="This machine's Docker Engine, even when DEVAGENT_HOST or devagent.toml's host names a server.")
@click.option("--slurm", default=None, metavar="PARTITION",
              help="Run the environment in a Slurm job of yours on PARTITION of the cluster whose login node --host "
              "names: Slurm picks the node and the GPUs (--gpus N: how many), the environment lives as long as the "
              "job (--time), `down` cancels it. See docs/how-to/use-a-slurm-cluster.md.")
@click.option("--time", default=None, metavar="TIME",
              help="With --slurm: the job's time limit (Slurm's form: 8:00:00, 1-00:00:00, or minutes).")
@click.option("--account", default=None, metavar="ACCOUNT", help="With --slurm: the account the job is charged to.")
@click.option("--qos", default=None, metavar="QOS", help="With --slurm: the job's quality of service.")
@click.option("--constraint", default=None, metavar="FEATURES",
              help="With --slurm: node features the job needs (a100, or a100&nvlink).")
@click.option("--wait-timeout", default=None, metavar="DURATION",
              help="With --slurm: cancel the request when the job has not started after this long (e.g. 30m) "
              "[default: wait until it starts; Ctrl-C cancels].")
@click.option("--no-wait", is_flag=True, default=None,
              help="With --slurm: submit the job and return; `devagent up NAME` again picks it up.")
@click.pass_context
def up(ctx: click.Context, /, name: str | None, workspace: str, identity: Path | None, recreate: bool, local: bool,
       devcontainer_choice: str | None, no_devcontainer: bool, **options: Any) -> None:
    """Provision environment NAME and the ssh alias NAME, and prove the login.

    Options not given are taken from the workspace's devagent.toml (see `devagent init`), then the defaults.
    With --host (or DEVAGENT_HOST) the environment is made on that server and the alias NAME, on this machine,
    jumps through it; devagent.toml is then read from the current folder. A devcontainer.json there gives what
    devagent.toml does not (flags > devagent.toml > devcontainer.json > defaults); what would weaken the
    container is refused by name."""
    from devagent.control.ssh.openssh import client_version_soon

    ssh_version = client_version_soon()  # `ssh -V` runs while the imports below do
    from click.core import ParameterSource

    from devagent.core.config import CONFIG_FILE
    from devagent.core.ssh.sshd import profile_for_client
    from devagent.core.up_request import up_request

    if local and options.get("host"):
        raise DevagentError("--local and --host name two different engines", status=ExitStatus.USAGE,
                            hint="keep one: --host SERVER for a server's engine, --local for this machine's")
    env_host = None if local else site_options.settings().host
    typed_workspace = ctx.get_parameter_source("workspace") is not ParameterSource.DEFAULT
    # With a server named before the file is read, --workspace is a folder there: the file is the local one here.
    folder = Path.cwd() if options.get("host") or env_host else _expand_home(workspace).resolve()
    config_file = folder / CONFIG_FILE
    config_text = config_file.read_text(encoding="utf-8") if config_file.is_file() else None
    found = None if no_devcontainer else _devcontainer(ctx, folder, devcontainer_choice, config_text=config_text,
                                                       config_path=str(config_file))
    request = up_request(
        name=name,
        # An option left at its default yields to the files; one the user typed wins over them.
        given={key: value for key, value in options.items()
               if ctx.get_parameter_source(key) is not ParameterSource.DEFAULT},
        config_text=config_text,
        config_path=str(config_file), workspace=str(folder), uid=os.getuid(),
        client_profile=profile_for_client(ssh_version()),
        argv=ctx.obj.argv if isinstance(ctx.obj, Invocation) else (),
        env_host=env_host, server_workspace=workspace if typed_workspace else None, local=local,
        idle_minimum=_idle_minimum(),
        devcontainer=found,
    )
    _say(request.devcontainer)  # before anything is made: what of the devcontainer.json is used, what is not
    env = request.spec
    key = identity.resolve() if identity else None
    as_made = _nothing_typed(ctx) and config_text is None and found is None
    if request.slurm is not None and not request.slurm.wait:
        _submit_only(request)
        return
    with site_options.open_site(host=request.host, chosen=True,  # typed, DEVAGENT_HOST, devagent.toml or none
                                config_file=config_file if request.host_from_file else None,
                                resolve=(env.workspace,), slurm=request.slurm, environment=env.name) as site:
        result = _provision(site_options.provisioner(site), request, identity=key, recreate=recreate,
                            as_made=as_made)
        verb = "replaced" if result.recreated else ("created" if result.created else "verified")
        on, via, where = site.on, site.via, site.loopback
        # A derived image this up made a container from: built now, or found (as `devagent image build` says it).
        made_from = " (cached)" if (result.created or result.recreated) and not env.image else ""
        click.echo(f"✔ image {result.image}{' (built)' if result.image_built else made_from}{on}")
        click.echo(f"✔ container {result.name} {verb}{on}, sshd on {where}:{result.port}")
        click.echo(f"✔ ssh alias {result.name}{via} (host key pinned)")
        click.echo(f"✔ login verified as {result.user} (uid {result.uid})")
        click.echo(f"  workspace {result.workspace}{on} → {env.inside_workspace}")
        click.echo(f"  VS Code: Remote-SSH → Connect to Host → {result.name}    or: ssh {result.name}")
        if request.vscode:
            site.place_vscode_files(env, show=lambda line: click.echo(f"  {line}"))


def _provision(provisioner: Provisioner, request: UpRequest, **options: Any) -> UpResult:
    """`up` itself, then the devcontainer.json's lifecycle commands in the environment as its login user: those
    of a new container once, postAttachCommand every time. A failing one fails `up`, and a container this `up`
    made is removed again (the workspace, its log and the notebook's entry stay)."""
    from devagent.core.devcontainer.config_file import LIFECYCLE_LOGS, ON_CREATE, lifecycle_argv

    env = request.spec
    if request.build is not None and request.devcontainer_file is not None:  # the file's Dockerfile: the base
        import dataclasses

        from devagent.control.lifecycle.devcontainer_file import build_base

        layer = request.devcontainer_file
        base = build_base(provisioner.engine, Path(layer.workspace), layer.path, layer.sha256, request.build,
                          echo_step)
        env = dataclasses.replace(env, base_image=base)
    features_of = request.devcontainer_file
    if features_of is not None and features_of.plan.local_features and env.image is None and (
            request.build is not None or env.base_image == features_of.plan.image):  # the file's base: its Features
        import dataclasses

        from devagent.control.lifecycle.devcontainer_file import apply_features

        base = apply_features(provisioner.engine, Path(features_of.workspace), features_of.path, env.base_image,
                              features_of.plan.local_features, echo_step)
        env = dataclasses.replace(env, base_image=base)
    if request.gpu_optional:  # through the ledger: a GPU another holds does not count
        import dataclasses

        from devagent.core.devcontainer.config_file import optional_gpus
        from devagent.core.spec import parse_gpus

        state = provisioner.gpus.state()
        free = sum(1 for gpu in state.inventory.gpus if not state.holders.get(gpu.uuid))
        env = dataclasses.replace(env, gpus=parse_gpus(optional_gpus(free)))
        echo_step(f"hostRequirements.gpu \"optional\": {free} free GPU(s) on this engine, "
                  + ("taking one" if free else "none taken"))
    result = provisioner.up(env, launch_command=request.launch_command, **options)
    fresh = result.created or result.recreated
    for command in request.commands:
        if command.hook in ON_CREATE and not fresh:
            continue
        named = command.hook if command.label is None else f"{command.hook} ({command.label})"
        echo_step(f"devcontainer {named}: running as {env.user}")
        code, said = provisioner.engine.exec_as(result.name, env.user, lifecycle_argv(command, env.inside_workspace))
        if code != 0 and request.keep_going:
            echo_step(f"devcontainer {named} failed (exit {code}); going on (--keep-going): {said.strip()[-2000:]}")
        elif code != 0:
            if fresh:  # a recreated one keeps the home it had before
                provisioner.down(env.name, keep_home=result.recreated)
            gone = f"; environment {env.name!r} was removed again" if fresh else ""
            raise DevagentError(f"devcontainer.json's {named} failed (exit {code}){gone}",
                                status=ExitStatus.CONTAINER_FAILED, details=said.strip()[-4000:] or None,
                                hint=f"fix the command (its output is in the workspace's {LIFECYCLE_LOGS}/"
                                f"{command.hook}.log and the notebook), then run up again")
    if request.extensions or request.settings:  # by the site: this machine here, the login user on a server
        placed = provisioner.site.place_editor_files(env, request.extensions, request.settings)
        _say(tuple(f"  {line}" for line in placed))
    return result


def _say(lines: tuple[str, ...]) -> None:
    for line in lines:
        echo_step(line)


def _devcontainer(ctx: click.Context, folder: Path, choice: str | None, *, config_text: str | None,
                  config_path: str) -> DevcontainerLayer | None:
    """The workspace's devcontainer.json as `up`'s layer under devagent.toml; None when there is none.

    ``${containerWorkspaceFolder}`` is the workspace's place in the container, which depends on the login user:
    --user, else devagent.toml's, else the file's own remoteUser, else the default."""
    from click.core import ParameterSource

    from devagent.control.lifecycle.devcontainer_file import find_devcontainer
    from devagent.core.config import parse_config
    from devagent.core.spec import inside_workspace
    from devagent.core.up_request import DEFAULTS

    typed_user = ctx.params["user"] if ctx.get_parameter_source("user") is not ParameterSource.DEFAULT else None
    config_user = parse_config(config_text, source=config_path).user if config_text is not None else None
    user = typed_user or config_user or DEFAULTS["user"]
    found = find_devcontainer(folder, choice=choice, env=os.environ, container_workspace=inside_workspace(str(user)))
    if found is not None and not typed_user and not config_user and found.plan.options.get("user", user) != user:
        user = found.plan.options["user"]
        found = find_devcontainer(folder, choice=choice, env=os.environ,
                                  container_workspace=inside_workspace(str(user)))
    return None if found is None else DevcontainerLayer(found.path, found.sha256, found.plan, str(folder))


def _nothing_typed(ctx: click.Context) -> bool:
    """`up NAME` alone (no option typed; --host and --local only say where): with no devagent.toml either, an
    environment NAME that exists is started as it was made."""
    from click.core import ParameterSource

    return all(ctx.get_parameter_source(p) is ParameterSource.DEFAULT for p in ctx.params
               if p not in ("name", "host", "local"))


def _expand_home(folder: str) -> Path:
    """FOLDER with a leading ``~`` or ``~USER`` expanded as a shell would: typed in quotes, ``"~/.ssh"`` would
    otherwise be a new folder ``./~/.ssh`` here (and slip past the rules for the real ~/.ssh)."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:  # ~USER of a user this machine does not know
        tilde = folder.split("/", maxsplit=1)[0]
        raise DevagentError(f"--workspace {folder}: no such user, so {tilde} means no home folder",
                            status=ExitStatus.USAGE, hint="write the folder's path without the ~, e.g. "
                            "--workspace ./code") from None


@cli.command()
@click.option("--workspace", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write devagent.toml into.")
@click.option("--devcontainer", "devcontainer_choice", default=None, metavar="NAME",
              help="Which .devcontainer/NAME/devcontainer.json to leave out of it, when there are several.")
def init(workspace: Path, devcontainer_choice: str | None) -> None:
    """Write a commented devagent.toml into the workspace: commit it, and `devagent up` gives everyone the same
    environment. What the workspace's devcontainer.json says is left to it (named, not repeated)."""
    from devagent.control.lifecycle.devcontainer_file import find_devcontainer
    from devagent.core.config import CONFIG_FILE, init_text
    from devagent.core.spec import inside_workspace
    from devagent.core.up_request import DEFAULTS

    folder = _expand_home(str(workspace)).resolve()
    path = folder / CONFIG_FILE
    try:
        found = find_devcontainer(folder, choice=devcontainer_choice, env=os.environ,
                                  container_workspace=inside_workspace(DEFAULTS["user"]))
    except DevagentError as exc:  # the template is still worth having; `up` will refuse the file the same way
        echo_step(f"devcontainer.json not taken into account: {exc.message}")
        found = None
    covered: list[str] = []
    if found is not None:
        plan = found.plan
        covered = [*plan.options, *(["base_image"] if plan.image or plan.build else []),
                   *(["gpus"] if plan.gpu_optional else [])]
    try:
        with open(path, "x", encoding="utf-8") as f:  # never over a file that is there
            f.write(init_text(covered, found.path if found is not None else ""))
    except FileExistsError:
        raise DevagentError(f"{path} exists; left as is", status=ExitStatus.CONFLICT,
                            hint="edit it, or move it away and run init again") from None
    except OSError as exc:
        raise DevagentError(f"cannot write {path}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                            hint="pass --workspace a folder you can write") from None
    click.echo(f"✔ wrote {path}: uncomment what this code needs, then commit it")
    if covered:
        click.echo(f"  left to {found.path if found else ''}: {', '.join(covered)}")


@cli.command()
@click.argument("name")
def code(name: str) -> None:
    """Open VS Code on environment NAME's workspace over Remote-SSH (or print how, when `code` is missing)."""
    import shutil
    import subprocess

    from devagent.control.paths import Paths
    from devagent.control.sites.records import Records
    from devagent.core.spec import inside_workspace, validate_name
    from devagent.core.vscode import code_command, remote_uri

    validate_name(name)
    # On a server devagent's record knows the login user: no need to ask the server, the alias goes there.
    user = Records(Paths.from_environ()).user_of(name) or next(
        (r.user for r in site_options.provisioner(site_options.local_site()).ls() if r.name == name), None)
    if user is None:
        raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                            hint=f"make it first: devagent up {name}")
    path = inside_workspace(str(user))
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


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """Log in to NAME with the real OpenSSH client through the alias (`devagent ssh NAME -- CMD`)."""
    from devagent.control.paths import Paths
    from devagent.core.spec import validate_name
    from devagent.core.ssh.command_line import ssh_argv

    validate_name(name)
    # No BatchMode: ssh owns the terminal, and may ask for a passphrase or a host key's confirmation.
    argv = ssh_argv(Paths.from_environ().user_ssh_config, name, *command, batch=False)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - replace this process: ssh owns the terminal from here
    except FileNotFoundError:
        raise DevagentError("the OpenSSH client (ssh) is not installed", status=ExitStatus.USAGE,
                            hint="install it: apt-get install openssh-client") from None


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
def doctor(name: str | None, as_json: bool) -> None:
    """Check what VS Code Remote-SSH needs, item by item with a fix for each.

    Without NAME: the Docker Engine, the OpenSSH client, devagent's Include line, file permissions and VS Code's
    remote.SSH.configFile. With NAME also: the container, `ssh -G NAME`, and, logged in through the alias, what
    Remote-SSH needs inside. Exits 0 only when every check passes or is skipped, else 14.
    """
    from devagent.control.features.doctor_report import run_checks
    from devagent.control.paths import Paths
    from devagent.control.sites.records import Records
    from devagent.core import doctor_rules as d
    from devagent.core.spec import validate_name

    paths = Paths.from_environ()
    with contextlib.ExitStack() as stack:
        # NAME's site: on a server its engine is asked over one ssh login, and a failed login fails that check.
        records = Records(paths)
        checks = run_checks(paths, name=name, environ=os.environ, engine_factory=lambda: stack.enter_context(
            site_options.open_site(name=name, local=True)).engine,
            server=records.server_of(validate_name(name)) if name is not None else None,
            servers_used=records.used())
    if as_json:
        click.echo(json.dumps(d.envelope(checks), indent=2))
    else:
        for line in d.render(checks):
            click.echo(line)
        click.echo(d.summary(checks))
    if not d.passed(checks):
        click.get_current_context().exit(int(ExitStatus.DOCTOR_FAILED))


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON envelope.")
@click.option("--host", default=None, metavar="SERVER", help="Only the environments on this server.")
@click.option("--all", "everyone", is_flag=True,
              help="Everyone's environments on the engine, with their owner [default: yours].")
def ls_command(as_json: bool, host: str | None, everyone: bool) -> None:
    """List your environments (--all: everyone's).

    This machine's, and those on every server devagent's records name, asked in parallel (a server that does not
    answer is shown as unreachable, its environments listed from the records). Docker's labels are the source of
    truth; yours were made with your devagent key (or by a devagent too old to record an owner)."""
    from devagent.control.features.listing import Row, list_all
    from devagent.control.paths import Paths
    from devagent.control.sites.records import Record, Records
    from devagent.core.markdown import cell, printable
    from devagent.core.ssh.destination import parse_server

    if host is not None:
        host = site_options.server_name(parse_server(host).text)  # refused before anything runs
    store = Records(Paths.from_environ())
    records = store.all()
    # A machine that has used servers (its records folder exists) lists them all; one that never has, as before.
    hosts = bool(records or host or store.used())

    def local() -> Provisioner:
        return site_options.provisioner(site_options.local_site())

    @contextlib.contextmanager
    def on_server(server: str) -> Iterator[Provisioner]:
        with site_options.open_site(host=server, quiet=True) as site:
            yield site_options.provisioner(site)

    def in_job(record: Record) -> list[Row]:
        from devagent.control.sites.slurm_site import listed

        return listed(record, paths=Paths.from_environ(), settings=site_options.settings())

    rows = list_all(records, host=host, local=local, open_server=on_server, used_servers=hosts,
                    slurm_rows=in_job) if hosts else local().ls()
    # On a shared engine, others' environments are theirs to see; `mine` is None where no owner was recorded.
    hidden = 0 if everyone else sum(r.mine is False for r in rows)
    rows = [r for r in rows if everyone or r.mine is not False]
    if as_json:
        click.echo(json.dumps({"version": JSON_VERSION, "environments": [r.to_json(with_host=hosts) for r in rows]},
                              indent=2))
        return
    others = f"{hidden} environment{'s' * (hidden != 1)} of other people: devagent ls --all"
    if not rows:
        click.echo("no environments; create one with: devagent up NAME" + (f" ({others})" if hidden else ""))
        return
    # The HOST column appears once this machine has used a server: one that never used --host sees the table as
    # before; the OWNER column with --all.
    state = 11 if hosts else 10  # room for "unreachable"
    click.echo(f"{'NAME':20} {'STATE':{state}} {'HEALTH':10} {'PORT':>6}  {'USER':8} {'GPUS':8} {'INVITED':12} "
               + (f"{'OWNER':12} " if everyone else "") + (f"{'HOST':16} " if hosts else "") + "WORKSPACE")
    for r in rows:
        invited = ",".join(r.invited) if r.invited else "-"
        # A container that is not running has no health to speak of (Docker keeps saying its last: unhealthy).
        shown_state = "stopped" if r.state == "exited" else r.state
        health = r.health if r.state == "running" else None
        # Each field as `cell` shows it: the labels are whatever anyone on the engine wrote (owner, user,
        # workspace), and a field must neither drive the terminal nor start a row of its own.
        click.echo(f"{cell(r.name):20} {cell(shown_state):{state}} {cell(health or '-'):10} "
                   f"{r.port or '-'!s:>6}  {cell(str(r.user)):8} {'-' if r.error else cell(str(r.gpus)):8} "
                   f"{cell(invited):12} " + (f"{cell(r.owner or '-'):12} " if everyone else "")
                   + (f"{cell(r.host or 'local'):16} " if hosts else "") + cell(str(r.workspace)))
    if hidden:
        click.echo(f"({others})")
    for r in rows:
        if r.slurm:
            click.echo(f"{cell(r.name)}: {cell(r.slurm)}")
    for r in rows:
        if r.error:
            click.echo(printable(f"{r.host}: unreachable: {r.error}"), err=True)


@cli.command()
@click.argument("name")
@click.option("--keep-home", is_flag=True, help="Keep the home volume (VS Code's server, pip --user packages, "
              "caches): the next `up NAME` mounts it again.")
def down(name: str, keep_home: bool) -> None:
    """Remove environment NAME: container, ssh alias, pinned and host keys, and its home volume (its size is
    shown). Workspace files are kept.

    An environment on a server is removed there: devagent's records say which server."""
    from devagent.core.spec import validate_name

    with site_options.open_site(name=validate_name(name)) as site:
        removed = site_options.provisioner(site).down(name, keep_home=keep_home)
    for item in removed:
        click.echo(f"✔ removed {item}")


def _submit_only(request: UpRequest) -> None:
    """`up --slurm --no-wait`: the job asked for, and what to do next."""
    from devagent.control.paths import Paths
    from devagent.control.sites.slurm_site import submit_only

    assert request.slurm is not None and request.host is not None
    name = request.spec.name
    allocation = submit_only(request.host, request.slurm, environment=name, paths=Paths.from_environ(),
                             settings=site_options.settings(), report=echo_step)
    click.echo(f"✔ Slurm job {allocation.job_id} asked for on {request.host}, partition {allocation.partition}: "
               f"`devagent up {name}` with the same options picks it up")


def _idle_minimum() -> float:
    """The shortest --idle-release taken: 5 minutes, or what the test-only DEVAGENT_TEST_MIN_IDLE_RELEASE says
    (seconds; tests release environments within seconds)."""
    from devagent.core.gpu.idle_rule import MIN_IDLE_RELEASE

    try:
        return float(site_options.settings().min_idle_release or "")
    except ValueError:
        return MIN_IDLE_RELEASE
