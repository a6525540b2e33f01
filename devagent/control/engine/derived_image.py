"""Build (or find cached) the derived image: base image + login user + hardened sshd + devagent from wheels."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import devagent
from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.wheels import build_wheelhouse, payload_fingerprint
from devagent.core.dockerfile import (
    BASE_DIGEST_LABEL,
    WHEELS_DIR,
    ImageRef,
    ImageSpec,
    check_devagent_image,
    parse_image_ref,
    registry_error,
)
from devagent.core.spec import OFFLINE_BASE_IMAGE, SSHD_PORT
from devagent.errors import DevagentError, ExitStatus


def base_image_id(engine: EngineApi, ref: str, report: Callable[[str], None]) -> str:
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


def build_image(engine: EngineApi, *, base_image: str, user: str, uid: int,
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
        engine.build(context, spec.tag, spec.labels(devagent.__version__, base_digest=engine.image_digest(base_id)),
                     on_line=lambda line: report(f"  {line}"))
    return spec.tag, True


def push_image(engine: EngineApi, image: str, target: str, report: Callable[[str], None]) -> str:
    """Tag IMAGE (the content-hash tag) as TARGET (REGISTRY/REPOSITORY:VERSION) and push it. Returns TARGET pinned
    to the registry's digest. A failed push takes the tag this call made away again."""
    ref = parse_image_ref(target, option="--tag")
    if ref.digest or not ref.tag:
        raise DevagentError(f"--tag: {target!r} needs a version tag and no digest", status=ExitStatus.USAGE,
                            hint="e.g. --tag lab.example:5000/pytorch-cuda:v2.8-cu121; the registry gives the digest")
    assert ref.tag is not None
    had = engine.image_id(str(ref))
    engine.tag_image(image, ref.repository, ref.tag)
    report(f"pushing {ref}")
    digest, said = engine.push(ref.repository, ref.tag, on_line=lambda line: report(f"  {line}"))
    if digest is None:
        if had is None:
            engine.remove_image(str(ref))
        raise registry_error(ref, said, pushing=True, server=engine.server)
    return ref.pinned(digest)


@dataclass(frozen=True)
class TeamImage:
    """A derived image from a registry, ready to start: RUN_REF is what the container is created from."""

    ref: ImageRef
    run_ref: str
    user: str
    base_image: str
    base_digest: str | None
    pinned: str | None  # REPOSITORY:TAG@sha256:… from the registry; None for an image only this engine has
    pulled: bool


def team_image(engine: EngineApi, text: str, report: Callable[[str], None]) -> TeamImage:
    """The derived image TEXT names, pulled with progress when missing and checked to be devagent's; never built.
    An image pulled here that is not devagent's is removed again."""
    ref = parse_image_ref(text)
    labels = engine.image_labels(ref.pull_ref)
    pulled = False
    if labels is None:
        report(f"pulling image {ref}")
        image_id, said = engine.pull(ref.pull_ref, on_line=lambda line: report(f"  {line}"))
        if image_id is None:
            raise registry_error(ref, said, pushing=False, server=engine.server)
        labels, pulled = engine.image_labels(ref.pull_ref) or {}, True
    try:
        check_devagent_image(str(ref), labels, version=devagent.__version__)
    except DevagentError:
        if pulled:
            engine.remove_image(ref.pull_ref)
        raise
    return TeamImage(ref=ref, run_ref=ref.pull_ref, user=labels["devagent.user"],
                     base_image=labels.get("devagent.base-image", "unknown"),
                     base_digest=labels.get(BASE_DIGEST_LABEL), pinned=pinned_digest(engine, ref), pulled=pulled)


def pinned_digest(engine: EngineApi, ref: ImageRef) -> str | None:
    """REF pinned to its registry digest: the one it names, else the one the engine recorded for its repository;
    None when the image never came from (or went to) a registry."""
    if ref.digest:
        return str(ref)
    for entry in engine.repo_digests(ref.pull_ref):
        repository, _, digest = entry.partition("@")
        if repository == ref.repository:
            return ref.pinned(digest)
    return None


def local_pinned(engine: EngineApi, tag: str) -> str | None:
    """A locally built image's registry reference, when it was pushed (`image build --tag … --push`)."""
    digests = engine.repo_digests(tag)
    return digests[0] if digests else None
