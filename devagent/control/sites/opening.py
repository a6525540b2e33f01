"""The one place that decides where a command's environment lives, and opens that site for the command.

From, in order: the environment's own record (a command on environment NAME: its server when devagent's records
name one, else this machine's), `--host`, DEVAGENT_HOST (control/settings.py reads it) unless `--local`, and
devagent.toml's host, which `up` passes in as HOST with CONFIG_FILE once control/sites/consent.py's check agreed.
Nothing else on the control side or in the CLI asks whether a site is local or remote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from devagent.control.paths import Paths
from devagent.control.settings import Settings
from devagent.control.sites.records import Records
from devagent.control.sites.site import Site

if TYPE_CHECKING:
    from devagent.core.up_request import SlurmUp

Report = Callable[[str], None]


@contextlib.contextmanager
def open_site(*, settings: Settings, paths: Paths, local_site: Callable[[], Site], report: Report,
              host: str | None = None, local: bool = False, chosen: bool = False, name: str | None = None,
              config_file: Path | None = None, agree: Callable[[str, Path], None] | None = None,
              quiet: bool = False, resolve: tuple[str, ...] = (), slurm: SlurmUp | None = None,
              environment: str | None = None) -> Iterator[Site]:
    """The site of this command, open until it ends. NAME: the environment's own site; else HOST (--host), else
    DEVAGENT_HOST unless LOCAL, else this machine's (LOCAL_SITE). CHOSEN: HOST (None: this machine's) is the
    choice already made from all of these (`up`'s, which weighs devagent.toml's host too). CONFIG_FILE: HOST
    comes from that file only, and AGREE(HOST, CONFIG_FILE) must pass first. QUIET: no progress lines from the
    ssh login; RESOLVE: server paths its probe resolves too (`up`'s workspace). SLURM (`up --slurm`): ENVIRONMENT
    lives in a Slurm job on the cluster whose login node HOST is; a record naming a Slurm job opens that job's node
    (control/sites/slurm_site.py)."""
    if name is not None:
        record = Records(paths).get(name)
        if record is not None and record.slurm_job is not None:  # in a Slurm job: its node, through the login
            from devagent.control.sites import slurm_site

            with slurm_site.recorded(record, paths=paths, settings=settings, report=report, quiet=quiet) as site:
                yield site
            return
        host = record.server if record is not None else None
    elif not (local or chosen):
        host = host or settings.host
    if host is None:
        yield local_site()
        return
    if config_file is not None and agree is not None:
        agree(host, config_file)  # a cloned file may name any server
    if slurm is not None and environment is not None:  # `up --slurm`: a job on the cluster HOST logs in to
        from devagent.control.sites import slurm_site

        with slurm_site.opened(host, slurm, environment=environment, paths=paths, settings=settings,
                               report=report, resolve=resolve) as site:
            yield site
        return
    from devagent.control.sites import server_site

    with server_site.opened(host, paths=paths, settings=settings, report=report, quiet=quiet,
                            resolve=resolve) as site:
        yield site
