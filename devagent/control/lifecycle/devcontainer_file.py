"""The workspace's devcontainer.json, found and read as `up` needs it.

The checkout is the user's (a cloned repository may hold anything): the candidates are looked at and the file is
read through devagent/nofollow, never through a link, never waiting on a FIFO, at a bounded cost.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devagent.control.engine.engine_api import EngineApi
from devagent.core.devcontainer.config_file import (
    CANDIDATES,
    Build,
    Plan,
    base_tag,
    build_paths,
    choose_config,
    map_config,
    read_configuration,
)
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow.walk import PathRefused, open_below, open_folder_below, read_limited

_LIMIT = 1 << 20  # a devcontainer.json larger than this is not one: not read


@dataclass(frozen=True)
class DevcontainerFile:
    """The file `up` uses: its path relative to the workspace, the SHA-256 of its content, what it maps to."""

    path: str
    sha256: str
    plan: Plan


def _present(workspace: Path) -> list[str]:
    """Which of the specification's candidates exist below WORKSPACE (a link counts as present, and is refused
    when read)."""
    found = [c for c in CANDIDATES if os.path.lexists(workspace / c)]
    try:
        fd = open_folder_below(workspace, ".devcontainer")
    except (FileNotFoundError, NotADirectoryError, PathRefused):
        return found
    try:
        for name in sorted(os.listdir(fd)):
            rel = f".devcontainer/{name}/devcontainer.json"
            if name != "devcontainer.json" and os.path.lexists(workspace / rel):
                found.append(rel)
    finally:
        os.close(fd)
    return found


def find_devcontainer(workspace: Path, *, choice: str | None, container_workspace: str,
                      env: Mapping[str, str]) -> DevcontainerFile | None:
    """The devcontainer.json of WORKSPACE (CHOICE: --devcontainer), read, substituted and mapped; None when the
    workspace has none. CONTAINER_WORKSPACE is the workspace's place in the container, ENV the caller's
    environment (``${localEnv:…}``)."""
    rel = choose_config(_present(workspace), choice)
    if rel is None:
        return None
    try:
        data = _read(workspace, rel)
    except (PathRefused, IsADirectoryError) as exc:  # a link, a FIFO, a folder, too large: not read
        raise DevagentError(f"{rel}: {exc.strerror}; devagent did not read it", status=ExitStatus.USAGE,
                            hint="make it a regular file in the workspace (a link may lead anywhere on the "
                            "machine)") from None
    text = data.decode("utf-8", errors="replace")
    config = read_configuration(text, source=rel, local_workspace=str(workspace),
                                container_workspace=container_workspace, env=env)
    return DevcontainerFile(path=rel, sha256=hashlib.sha256(data).hexdigest(), plan=map_config(config, source=rel))


def build_base(engine: EngineApi, workspace: Path, config_path: str, config_sha256: str, build: Build,
               report: Callable[[str], None]) -> str:
    """The base image BUILD (of the devcontainer.json at CONFIG_PATH) describes, built on ENGINE from the
    workspace when this engine does not have it yet; its tag. The Dockerfile is read without following a link;
    the context is sent as Docker sends one (a link in it is sent as a link, never followed)."""
    context, dockerfile = build_paths(config_path, build)
    try:
        content = _read(workspace, dockerfile)
    except FileNotFoundError:
        raise DevagentError(f"{config_path}: build.dockerfile {dockerfile} does not exist", status=ExitStatus.USAGE,
                            hint="fix build.dockerfile: it is relative to the devcontainer.json's folder") from None
    except (PathRefused, IsADirectoryError) as exc:
        raise DevagentError(f"{dockerfile}: {exc.strerror}; devagent did not read it", status=ExitStatus.USAGE,
                            hint="make it a regular file in the workspace") from None
    tag = base_tag(config_sha256, content, build)
    if engine.image_id(tag) is not None:
        report(f"base image {tag} (cached, from {config_path})")
        return tag
    report(f"building base image {tag} from {dockerfile} ({config_path})")
    engine.build(workspace / context, tag, {"devagent.devcontainer": config_path},
                 on_line=lambda line: report(f"  {line}"),
                 dockerfile=posixpath.relpath(dockerfile, context), buildargs=dict(build.args), target=build.target)
    return tag


def _read_below(workspace: Path, rel: str, what: str) -> bytes:
    try:
        return _read(workspace, rel)
    except FileNotFoundError:
        raise DevagentError(f"{rel} does not exist", status=ExitStatus.USAGE,
                            hint=f"a local Feature's folder holds {what}") from None
    except (PathRefused, IsADirectoryError) as exc:
        raise DevagentError(f"{rel}: {exc.strerror}; devagent did not read it", status=ExitStatus.USAGE,
                            hint="make it a regular file in the workspace") from None


def apply_features(engine: EngineApi, workspace: Path, config_path: str, base: str,
                   features: tuple[tuple[str, Mapping[str, object]], ...], report: Callable[[str], None]) -> str:
    """BASE with the devcontainer.json's local FEATURES applied (each install.sh run as root at build), built on
    ENGINE when it does not have it yet; its tag. The folders are sent as Docker sends a context (a link as a
    link, never followed); devcontainer-feature.json and install.sh are read without following a link."""
    import tempfile

    from devagent.core.devcontainer.features import (
        feature_env,
        feature_folder,
        features_dockerfile,
        features_tag,
        read_feature,
    )

    folder = posixpath.dirname(config_path)
    steps, parts = [], []
    for ref, given in features:
        rel = feature_folder(config_path, ref)
        metadata = _read_below(workspace, f"{rel}/devcontainer-feature.json", "devcontainer-feature.json")
        script = _read_below(workspace, f"{rel}/install.sh", "install.sh")
        env = feature_env(read_feature(metadata, source=f"{rel}/devcontainer-feature.json"), given, source=ref)
        steps.append((posixpath.relpath(rel, folder or "."), env))
        parts += [rel.encode(), repr(env).encode(), metadata, script]
    tag = features_tag(base, engine.image_id(base) or "", parts)
    if engine.image_id(tag) is not None:
        report(f"base image {tag} (cached, {base} with the Features of {config_path})")
        return tag
    report(f"building base image {tag}: {base} with the Features of {config_path}")
    fd, dockerfile = tempfile.mkstemp(prefix="devagent-features-", suffix=".Dockerfile")
    try:
        os.write(fd, features_dockerfile(base, steps).encode())
        os.close(fd)
        # A Dockerfile outside the context: the Docker SDK sends it inside the context's archive.
        engine.build(workspace / (folder or "."), tag, {"devagent.devcontainer": config_path},
                     on_line=lambda line: report(f"  {line}"), dockerfile=dockerfile)
    finally:
        os.unlink(dockerfile)
    return tag


def _read(workspace: Path, rel: str) -> bytes:
    """REL below WORKSPACE, at most _LIMIT bytes, opened without following a link (PathRefused otherwise)."""
    fd = open_below(workspace, rel)
    try:
        return read_limited(fd, _LIMIT, rel)
    finally:
        os.close(fd)
