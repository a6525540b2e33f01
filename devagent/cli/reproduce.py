"""`devagent reproduce`: a run again, from its notebook, compared."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from devagent.cli import site_options
from devagent.cli.app import cli, echo_result, echo_step
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.features.rerun import Files
    from devagent.control.sites.site import Site
    from devagent.core.runs.reproduce_block import ReproduceFacts
    from devagent.core.up_request import SlurmUp


@cli.command()
@click.argument("target", metavar="NOTEBOOK#run-N")
@click.option("--name", default=None, help="The new environment's name [default: the original's, with -runN].")
@click.option("--workspace", "into", default=None, metavar="DIRECTORY",
              help="Where the run's code is cloned, as the new workspace; must not exist [default: beside the "
              "original workspace, named like the environment].")
@click.option("--host", default=None, metavar="SERVER",
              help="The server the run's notebook and workspace are on, as for `up --host`: NOTEBOOK and "
              "--workspace are paths there (relative ones below your home there), and the new environment is "
              "made there; for a run made in a Slurm job, SERVER is the cluster's login node and the new environment "
              "gets a new job like the run's (its partition, time limit and number of GPUs) [default: "
              "$DEVAGENT_HOST, else this machine].")
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

    from devagent.core.runs.reproduce_block import compare_metrics, reproduction_entries

    slurm, environment, facts = _job_of_run(host, target, name)
    with site_options.open_site(host=host, slurm=slurm, environment=environment) as site:
        provisioner = site_options.provisioner(site)
        files: Files = site.files()
        plan, result = _reproduction_up(provisioner, files, target, name=name, into=into, anyway=anyway,
                                        site=site, in_job=slurm is not None, facts=facts)
        facts = plan.facts
        on = site.on
        # The notebook's words (its command, its metric names) are shown with their control characters visible.
        echo_result(f"✔ environment {result.name} from {result.image}{on}, workspace {plan.new_workspace}")
        echo_result(f"  running run {facts.number}'s command: ssh {plan.name} {facts.command_line()}")
        from devagent.control.features.rerun import last_run, run_through_alias

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
                site.append(notebook, text, root)
            except OSError as exc:
                echo_step(f"⚠ the comparison is not in {notebook}{files.where}: {exc.strerror or exc}")
    for line in lines:
        echo_result(f"  {line}")
    if exit_code != 0 or not ok:
        what = f"the command exited {exit_code}" if exit_code != 0 else "its metrics differ"
        raise DevagentError(f"run {facts.number} did not reproduce: {what}", status=ExitStatus.NOT_REPRODUCIBLE,
                            hint=f"the environment {plan.name} and its workspace {plan.new_workspace} are kept to "
                            f"look into it (devagent down {plan.name} removes the environment); GPU kernels and data "
                            "outside the workspace can make runs differ — see docs/explanation/reproducibility.md")
    click.echo(f"✔ run {facts.number} reproduced (environment {plan.name}; `devagent down {plan.name}` removes it)")


def _job_of_run(host: str | None, target: str,
                name: str | None) -> tuple[SlurmUp | None, str | None, ReproduceFacts | None]:
    """For a run whose environment lived in a Slurm job, on the cluster whose login node is HOST (or
    DEVAGENT_HOST): a new job like it (core/runs/reproduce_block.py `job_request`) and the new environment's name,
    as `up --slurm` opens them; (None, None) for any other run. The notebook is read over a login that needs no
    Docker Engine there (a login node often has none); the run's facts come back too, for `prepare`, so the
    notebook is read once (None when it is on this machine: nothing was read)."""
    server = host or site_options.settings().host
    if server is None:
        return None, None, None  # the notebook is on this machine: its environment is made here
    from devagent.control.features.rerun import ServerFiles, load_facts, parse_target
    from devagent.control.paths import Paths
    from devagent.control.sites import slurm_site
    from devagent.core.runs.reproduce_block import job_request
    from devagent.core.spec import validate_new_name
    from devagent.core.up_request import SlurmUp

    notebook, number = parse_target(target)
    with slurm_site.login(server, paths=Paths.from_environ(), settings=site_options.settings(),
                          report=echo_step, quiet=True) as (link, _):
        files = ServerFiles(link)
        path = files.path(notebook)
        facts = load_facts(files, path, number)
    request = job_request(facts, notebook=str(path))
    if request is None:
        return None, None, facts
    return SlurmUp(request=request), validate_new_name(name or facts.new_env_name()), facts


def _reproduction_up(provisioner: Any, files: Any, target: str, *, name: str | None, into: str | None,
                     anyway: bool, site: Site, in_job: bool = False,
                     facts: ReproduceFacts | None = None) -> tuple[Any, Any]:
    """`reproduce`'s checked plan (the new workspace made) and its environment, up; nothing left when it fails.
    FACTS: the run's, when `_job_of_run` read them already (then the notebook is not read again)."""
    from devagent.control.features.rerun import prepare
    from devagent.control.ssh.openssh import client_version
    from devagent.core.config import CONFIG_FILE
    from devagent.core.runs.reproduce_block import environment_args, up_option_values
    from devagent.core.ssh.sshd import profile_for_client
    from devagent.core.up_request import up_request

    plan = prepare(target, name=name, into=into, anyway=anyway, engine=provisioner.engine, files=files,
                   report=echo_step, facts=facts)
    for warning in plan.warnings:
        echo_step(f"⚠ {warning}")
    facts = plan.facts
    image_args = ["--image", plan.image] if plan.image else (
        ["--base-image", plan.base_image] if plan.base_image else [])
    config_file = plan.new_workspace / CONFIG_FILE
    try:
        # The notebook's options pass the same checks as typed ones, and only those devagent records get through.
        given: dict[str, object] = dict(up_option_values(facts.up_args, notebook=str(plan.notebook),
                                                         run=facts.number))
        given.update({"image": plan.image} if plan.image else {"base_image": plan.base_image})
        given["host"] = site.given  # None on this machine: not given
        up_args = facts.up_args
        if in_job:  # a new job like the run's (site.up_flags): the job's GPUs are a count of them there
            up_args = environment_args(facts)[:len(facts.up_args)]
            given.update(gpus=dict(zip(up_args[::2], up_args[1::2], strict=False)).get("--gpus", "0"),
                         **_job_values(site.up_flags))
        try:
            config_text: str | None = files.read_text(config_file) if files.exists(config_file) else None
        except OSError as exc:
            raise DevagentError(f"cannot read {config_file}{files.where}: {exc.strerror or exc}",
                                status=ExitStatus.USAGE, hint="make it readable, or remove it") from None
        request = up_request(
            name=plan.name, given=given, config_path=str(config_file), config_text=config_text,
            workspace=str(plan.new_workspace), uid=os.getuid(), client_profile=profile_for_client(client_version()),
            argv=["up", plan.name, *site.up_flags, *image_args, *up_args, "--workspace", str(plan.new_workspace)],
            # The new workspace's devagent.toml does not move the run elsewhere: this site's up, or none.
            server_workspace=str(plan.new_workspace), local=site.given is None)
        result = provisioner.up(request.spec, launch_command=request.launch_command)
    except BaseException:
        plan.discard()  # no environment mounts it
        raise
    return plan, result


def _job_values(flags: tuple[str, ...]) -> dict[str, str]:
    """`up`'s option keys of a Slurm site's up_flags (--host LOGIN --slurm P --time T …), as `up` is given them.

    >>> _job_values(("--host", "hpc", "--slurm", "gpu", "--time", "0-00:10:00"))
    {'slurm': 'gpu', 'time': '0-00:10:00'}
    """
    return {option[2:]: value for option, value in zip(flags[::2], flags[1::2], strict=False) if option != "--host"}
