"""`devagent image build`: the derived image, tagged and pushed for a team."""

from __future__ import annotations

from typing import Any

import click

from devagent.cli import site_options
from devagent.cli.app import cli, echo_step
from devagent.errors import DevagentError, ExitStatus


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
    from devagent.core.dockerfile import parse_image_ref

    if push and not target:
        raise DevagentError("--push needs --tag", status=ExitStatus.USAGE,
                            hint="name the image in the registry: --tag REGISTRY/REPO:VERSION --push")
    ref = parse_image_ref(target, option="--tag") if target else None
    if ref is not None and (ref.digest or not ref.tag):
        raise DevagentError(f"--tag: {target!r} needs a version tag and no digest", status=ExitStatus.USAGE,
                            hint="e.g. --tag lab.example:5000/pytorch-cuda:v2.8-cu121; the registry gives the digest")
    base, user = base_image or s.DEFAULT_BASE_IMAGE, s.validate_user(login_user)
    # The image's login user gets the uid of the user on the engine's machine (root's 0 becomes 1000).
    with site_options.open_site(host=host) as site:  # a hostile --host is refused before ssh runs
        _build_tag_push(site.engine, base=base, user=user, uid=site.user_uid or 1000, ref=ref, push=push,
                        where=site.on)


def _build_tag_push(engine: Any, *, base: str, user: str, uid: int, ref: Any, push: bool, where: str) -> None:
    from devagent.control.engine.derived_image import build_image, push_image

    tag, built = build_image(engine, base_image=base, user=user, uid=uid, report=echo_step)
    click.echo(f"✔ image {tag}{' (built)' if built else ' (cached)'}{where}")
    if ref is None:
        return
    if push:
        pinned = push_image(engine, tag, str(ref), report=echo_step)
        click.echo(f"✔ pushed {pinned}")
        click.echo(f"  devagent up NAME --image {pinned}")
    else:
        assert ref.tag is not None
        engine.tag_image(tag, ref.repository, ref.tag)
        click.echo(f"✔ tagged {ref} (not pushed: add --push)")
