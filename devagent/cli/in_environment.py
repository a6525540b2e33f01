"""The commands that run inside the container: the agent, run, gpu-check, and the helpers the host side
calls there (serve, end-sessions, people-entry, job-ended, lifecycle, vscode-files, sshd-config)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from devagent.cli.app import cli
from devagent.core import layout
from devagent.errors import DevagentError, ExitStatus


@cli.command(hidden=False)
@click.option("--sshd-config", default=layout.sshd_config_path("strict"), show_default=True)
@click.option("--workspace", type=click.Path(path_type=Path), default=None,
              help=f"[default: ${layout.WORKSPACE_ENV}, else ~/{layout.HOME_WORKSPACE}]")
@click.option("--notebook", type=click.Path(path_type=Path), default=None,
              help=f"[default: <workspace>/{layout.NOTEBOOK}]")
@click.option("--watch", multiple=True, metavar="GLOB", help="Training scripts to watch [default: **/*.py].")
@click.option("--polling", is_flag=True, default=None, help="Poll for saves (network mounts without inotify).")
@click.option("--idle-release", type=float, default=None, metavar="SECONDS",
              help="Give the GPUs back (stop, exit 75) once they were idle this long with nobody logged in.")
def agent(sshd_config: str, workspace: Path | None, notebook: Path | None, watch: tuple[str, ...],
          polling: bool | None, idle_release: float | None) -> int:
    """(Inside the container) the main process: sshd, the save watcher, the notebook."""
    import logging

    from devagent.agent.agent import AgentConfig, run
    from devagent.inside.locations import default_workspace

    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ws = workspace or default_workspace()
    return run(AgentConfig(workspace=ws.resolve(), sshd_config=sshd_config, notebook=notebook,
                           polling=polling or None, watch=watch,
                           idle_release=idle_release if idle_release and idle_release > 0 else None))


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

    from devagent.agent.gpucheck import run_gpu_check
    from devagent.core.gpu.check_report import render_gpu_check
    from devagent.inside.locations import open_notebook, running_notebook, save_gpu_check

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
    from devagent.agent.serve import serve as run_serve
    from devagent.inside.locations import default_workspace

    return run_serve(kind, port=port, logdir=logdir, workspace=default_workspace(), stdin=sys.stdin,
                     stdout=sys.stdout)


@cli.command(name="end-sessions", hidden=True)
@click.argument("keys", nargs=-1, required=True)
def end_sessions_command(keys: tuple[str, ...]) -> None:
    """(Inside the container, for `unshare`) end the ssh sessions that logged in with one of KEYS ("TYPE BASE64");
    print the sshd pid of each."""
    from devagent.inside.sessions import end_sessions

    for pid in end_sessions(keys):
        click.echo(pid)


@cli.command(name="people-entry", hidden=True)
@click.argument("change")
def people_entry(change: str) -> None:
    """(Inside the container, for `share` and `unshare`) append CHANGE and who may log in now to the notebook."""
    from datetime import datetime, timezone

    from devagent.core.people import parse_people, render_people_entry
    from devagent.inside.locations import open_notebook, running_notebook

    people = parse_people(Path(layout.PEOPLE_PATH).read_text(encoding="utf-8"))
    path = running_notebook()
    writer = open_notebook(path)
    writer.append(render_people_entry(people, change, datetime.now(timezone.utc).astimezone()))
    if writer.pending:
        raise DevagentError(f"could not append to {path}", status=ExitStatus.NOTEBOOK,
                            hint="free disk space or make the workspace writable")


@cli.command(name="job-ended", hidden=True)
@click.argument("line")
def job_ended(line: str) -> None:
    """(Inside the container, for its Slurm job's holder as the job ends) append the holder's end LINE ("STAMP job
    J on NODE: environment NAME ended: WHY") to the notebook the agent writes, through its writer: one bounded
    line of plain text (anything else is refused), flock, no link followed."""
    from devagent.core.slurm.holder import end_entry
    from devagent.inside.locations import open_notebook, running_notebook

    text = end_entry(line)
    if text is None:
        raise DevagentError(f"not a Slurm job's end line: {line[:100]!r}", status=ExitStatus.USAGE,
                            hint="the job's holder writes it: STAMP job J on NODE: environment NAME ended: WHY")
    path = running_notebook()
    writer = open_notebook(path)
    writer.append(text)
    if writer.pending:
        raise DevagentError(f"could not append to {path}", status=ExitStatus.NOTEBOOK,
                            hint="free disk space or make the workspace writable")


@cli.command(name="lifecycle", hidden=True,
             context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--workspace", type=click.Path(path_type=Path), required=True)
@click.option("--hook", required=True)
@click.option("--label", default=None)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def lifecycle_command(workspace: Path, hook: str, label: str | None, command: tuple[str, ...]) -> None:
    """(Inside the container, for `up` with a devcontainer.json) run one lifecycle COMMAND in WORKSPACE as the
    login user: its output appended to .devagent/lifecycle/HOOK.log in the workspace, an entry in the notebook,
    the end of its output on stdout, its exit status as this command's."""
    import subprocess
    from datetime import datetime, timezone

    from devagent.core.devcontainer.config_file import LIFECYCLE_LOGS, render_lifecycle_entry
    from devagent.inside.locations import open_notebook, running_notebook
    from devagent.nofollow.walk import open_beneath

    log = f"{LIFECYCLE_LOGS}/{hook}.log"
    fd = open_beneath(workspace, workspace / log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644, make_parents=True)
    try:
        start = os.fstat(fd).st_size
        try:
            code = subprocess.run(list(command), cwd=workspace, stdin=subprocess.DEVNULL, stdout=fd,
                                  stderr=subprocess.STDOUT, check=False).returncode
        except OSError as exc:  # no such program: said as a shell would, in the log too
            os.write(fd, f"{command[0]}: {exc.strerror}\n".encode())
            code = 127
        end = os.fstat(fd).st_size
    finally:
        os.close(fd)
    fd = open_beneath(workspace, workspace / log, os.O_RDONLY)
    try:
        first = max(start, end - 8192)  # this run's output only, its last 8 KiB
        tail = os.pread(fd, end - first, first).decode(errors="replace")
    finally:
        os.close(fd)
    click.echo(tail, nl=False)
    path = running_notebook()
    writer = open_notebook(path)
    writer.append(render_lifecycle_entry(hook, label, command, code, log, tail,
                                         datetime.now(timezone.utc).astimezone()))
    sys.exit(code)


@cli.command(name="vscode-files", hidden=True)
@click.argument("workspace", type=click.Path(path_type=Path))
def vscode_files_command(workspace: Path) -> None:
    """(Inside the container, for `up --vscode --host`) put devagent's snippets and tasks into WORKSPACE/.vscode."""
    from devagent.control.lifecycle.vscode_files import place_vscode_files

    try:
        for line in place_vscode_files(workspace):
            click.echo(line)
    except OSError as exc:
        raise DevagentError(f".vscode/ could not be written: {exc}", status=ExitStatus.USAGE,
                            hint="make the workspace writable") from None


@cli.command(name="editor-files", hidden=True)
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--recommend", multiple=True)
@click.option("--settings", default="{}")
def editor_files_command(workspace: Path, recommend: tuple[str, ...], settings: str) -> None:
    """(Inside the container, for `up --host` with a devcontainer.json) its VS Code extensions and settings into
    WORKSPACE/.vscode."""
    import json

    from devagent.control.lifecycle.vscode_files import place_editor_files

    try:
        for line in place_editor_files(workspace, recommend, json.loads(settings)):
            click.echo(line)
    except OSError as exc:
        raise DevagentError(f".vscode/ could not be written: {exc}", status=ExitStatus.USAGE,
                            hint="make the workspace writable") from None


@cli.command(name="sshd-config")
@click.option("--profile", type=click.Choice(["strict", "compat"]), required=True)
@click.option("--user", "login_user", required=True)
@click.option("--port", type=int, required=True)
def sshd_config_command(profile: str, login_user: str, port: int) -> None:
    """(Inside the image build) print the hardened sshd_config for this image's OpenSSH."""
    from devagent.agent.agent import supported_algorithms
    from devagent.core.ssh.sshd import render_sshd_config, session_env

    try:
        text = render_sshd_config(profile=profile, user=login_user, port=port, supported=supported_algorithms(),
                                  env=session_env(os.environ))
    except ValueError as exc:
        raise DevagentError(str(exc), status=ExitStatus.IMAGE_BUILD_FAILED,
                            hint="use a base image whose OpenSSH is 8.5 or newer (the image carries both "
                            "profiles, so the strict one must be possible)") from None
    click.echo(text, nl=False)
