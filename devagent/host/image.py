"""Build (or find cached) the derived image: base image + login user + hardened sshd + devagent from wheels."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import devagent
from devagent.core.image import WHEELS_DIR, ImageSpec
from devagent.core.spec import OFFLINE_BASE_IMAGE, SSHD_PORT
from devagent.errors import DevagentError, ExitStatus
from devagent.host.engine import Engine
from devagent.host.wheels import build_wheelhouse, payload_fingerprint


def base_image_id(engine: Engine, ref: str, report: Callable[[str], None]) -> str:
    """The base image's id; pulled when missing and a registry answers."""
    found = engine.image_id(ref)
    if found:
        return found
    if ref == OFFLINE_BASE_IMAGE:
        raise DevagentError(f"the offline base image {ref} is not built", status=ExitStatus.IMAGE_MISSING,
                            hint="build it with `make base-image` in the devagent repo")
    report(f"pulling base image {ref}")
    pulled, said = engine.pull(ref, on_line=lambda line: report(f"  {line}"))
    if pulled:
        return pulled
    raise DevagentError(f"the base image {ref} is not here and could not be pulled",
                        status=ExitStatus.IMAGE_MISSING, details=said or None,
                        hint=f"pull or load it (docker pull {ref} / docker load -i FILE), or use the offline "
                        f"base: `make base-image`, then --base-image {OFFLINE_BASE_IMAGE}")


def build_image(engine: Engine, *, base_image: str, user: str, uid: int,
                report: Callable[[str], None]) -> tuple[str, bool]:
    """Return (tag, built): the content-hash tag, and whether this call had to build it."""
    base_id = base_image_id(engine, base_image, report)
    spec = ImageSpec(base_image=base_image, base_id=base_id, user=user, uid=uid, sshd_port=SSHD_PORT,
                     payload=payload_fingerprint())
    if engine.image_id(spec.tag) is not None:
        return spec.tag, False
    with tempfile.TemporaryDirectory(prefix="devagent-build-") as tmp:
        context = Path(tmp)
        build_wheelhouse(context / WHEELS_DIR)
        (context / "Dockerfile").write_text(spec.dockerfile())
        report(f"building image {spec.tag} from {base_image}")
        engine.build(context, spec.tag, spec.labels(devagent.__version__), on_line=lambda line: report(f"  {line}"))
    return spec.tag, True
