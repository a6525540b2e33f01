"""Teammates in an environment: share, unshare."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from devagent.cli import site_options
from devagent.cli.app import cli, echo_step
from devagent.errors import DevagentError, ExitStatus


@contextlib.contextmanager
def _sharing(name: str) -> Iterator[Any]:
    """Sharing for environment NAME: over its server's engine when devagent's records name one (and a teammate's
    entry then jumps through that server), else this machine's."""
    from devagent.control.features.teammates import Sharing
    from devagent.control.paths import Paths
    from devagent.core.spec import validate_name

    with site_options.open_site(name=validate_name(name)) as site:
        check = site.alias_check  # an environment in a Slurm job: its alias asks Slurm first
        job = (check.job_id, check.partition, site.given or "") if check is not None else None
        yield Sharing(engine=site.engine, paths=Paths.from_environ(), jump=site.proxy_jump, job=job)


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
    from devagent.nofollow.walk import open_regular

    try:  # a regular file (a teammate's FIFO or a link to /dev/zero is refused, not read), its first 64 KiB
        fd = open_regular(key_file)
        try:
            raw = os.read(fd, 65536)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DevagentError(f"cannot read {key_file}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                            hint="pass the teammate's public key file, e.g. --key alice.pub") from None
    with _sharing(name) as sharing:
        shared = sharing.share(name, raw.decode("utf-8", errors="replace"), source=str(key_file), person=person)
    who = shared.person
    if shared.added:
        click.echo(f"✔ {who.name} may log in to {name} ({shared.kind} {who.fingerprint})")
        if shared.not_noted:
            echo_step(f"  the lab notebook does not say so: {shared.not_noted}")
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
        echo_step(f"  the lab notebook does not say so: {not_noted}")
    click.echo(f"✔ ended {ended} ssh session{'s' if ended != 1 else ''} that logged in with {person}'s key")
