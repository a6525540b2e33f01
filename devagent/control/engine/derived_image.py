"""Build (or find cached) the derived image: base image + login user + hardened sshd + devagent from wheels."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import devagent
from devagent.control.engine.engine_api import EngineApi, ImageFacts
from devagent.control.engine.wheels import build_wheelhouse, payload_fingerprint
from devagent.core.dockerfile import (
    BASE_DIGEST_LABEL,
    LOGIN_UID_LABEL,
    WHEELS_DIR,
    ImageRef,
    ImageSpec,
    check_devagent_image,
    login_uid,
    parse_image_ref,
    registry_error,
)
from devagent.core.spec import OFFLINE_BASE_IMAGE, SSHD_PORT
from devagent.errors import DevagentError, ExitStatus


def base_image_id(engine: EngineApi, ref: str, report: Callable[[str], None]) -> str:
    """The base image's id; pulled when missing and a registry answers."""
    return _base_image(engine, ref, report).id


def _base_image(engine: EngineApi, ref: str, report: Callable[[str], None]) -> ImageFacts:
    found = engine.image_facts(ref)
    if found:
        return found
    if ref == OFFLINE_BASE_IMAGE:
        raise DevagentError(f"the offline base image {ref} is not built", status=ExitStatus.IMAGE_MISSING,
                            hint="build it with `make base-image` in the devagent repo")
    report(f"pulling base image {ref}")
    pulled, said = engine.pull(ref, on_line=lambda line: report(f"  {line}"))
    found = engine.image_facts(ref) if pulled else None
    if found:
        return found
    raise DevagentError(f"the base image {ref} is not here and could not be pulled",
                        status=ExitStatus.IMAGE_MISSING, details=said or None,
                        hint=f"pull or load it (docker pull {ref} / docker load -i FILE), or use the offline "
                        f"base: `make base-image`, then --base-image {OFFLINE_BASE_IMAGE}")


@dataclass(frozen=True)
class DerivedImage:
    """The derived image and what `up` needs of it, from one inspect of it and one of its base."""

    tag: str  # the content-hash tag
    built: bool  # whether this call had to build it
    pinned: str | None  # its registry reference, when it was pushed (`image build --tag … --push`)
    base_digest: str
    login_uid: int | None  # the login user's uid (LOGIN_UID_LABEL); None for an image built before the label


def build_image(engine: EngineApi, *, base_image: str, user: str, uid: int,
                report: Callable[[str], None]) -> tuple[str, bool]:
    """Return (tag, built): the content-hash tag, and whether this call had to build it."""
    made = derived_image(engine, base_image=base_image, user=user, uid=uid, report=report)
    return made.tag, made.built


def derived_image(engine: EngineApi, *, base_image: str, user: str, uid: int,
                  report: Callable[[str], None]) -> DerivedImage:
    """The derived image of BASE_IMAGE for USER (UID), built when missing."""
    base = _base_image(engine, base_image, report)
    spec = ImageSpec(base_image=base_image, base_id=base.id, user=user, uid=uid, sshd_port=SSHD_PORT,
                     payload=payload_fingerprint())
    found = engine.image_facts(spec.tag)
    built = found is None
    if found is None:
        _build(engine, spec, base_digest=base.digest, report=report)
        found = engine.image_facts(spec.tag)
        assert found is not None, f"{spec.tag} was built but the engine does not know it"
    return DerivedImage(tag=spec.tag, built=built, pinned=found.repo_digests[0] if found.repo_digests else None,
                        base_digest=base.digest, login_uid=login_uid(found.labels))


def _build(engine: EngineApi, spec: ImageSpec, *, base_digest: str, report: Callable[[str], None]) -> None:
    """Build SPEC into its tag, then label it with the login user's uid as the build left it (a second build of
    one LABEL on top: no layer, the same files; its steps are not shown)."""
    with tempfile.TemporaryDirectory(prefix="devagent-build-") as tmp:
        context = Path(tmp)
        build_wheelhouse(context / WHEELS_DIR)
        (context / "Dockerfile").write_text(spec.dockerfile())
        report(f"building image {spec.tag} from {spec.base_image}")
        engine.build(context, spec.tag, spec.labels(devagent.__version__, base_digest=base_digest),
                     on_line=lambda line: report(f"  {line}"))
    # Without the label (the engine refused either step) the image is complete all the same: `up` then reads the
    # uid from each new container, as it did before the label existed.
    uid = engine.image_user_uid(spec.tag, spec.user)
    if uid is None:
        return
    with tempfile.TemporaryDirectory(prefix="devagent-label-") as tmp, contextlib.suppress(DevagentError):
        (Path(tmp) / "Dockerfile").write_text(f"FROM {spec.tag}\n")
        engine.build(Path(tmp), spec.tag, {LOGIN_UID_LABEL: str(uid)}, on_line=lambda _: None)


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
