"""A devcontainer.json's local Features (``"./folder"`` in ``features``), applied as the specification does: the
folder's ``install.sh`` run as root at image build, each option an environment variable (its name upper-cased),
the Feature's own defaults under what the file sets. Pure: the folder's two files come in as bytes.

>>> feature_env({"greeting": {"type": "string", "default": "hi"}, "v": {"default": True}}, {"greeting": "yo"},
...             source="f")
(('GREETING', 'yo'), ('V', 'true'))
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence

from devagent.core.devcontainer.config_file import BASE_REPOSITORY, parse_jsonc
from devagent.core.ssh.sshd import check_env
from devagent.errors import DevagentError, ExitStatus

WEAKENING = ("privileged", "capAdd", "securityOpt", "mounts", "init", "entrypoint")
STAGING = "/tmp/devagent-features"  # noqa: S108 - inside the image being built, removed by the same RUN


def feature_folder(config_path: str, ref: str) -> str:
    """The Feature REF's folder relative to the workspace: inside the devcontainer.json's folder, as the
    specification requires of a local Feature.

    >>> feature_folder(".devcontainer/devcontainer.json", "./tools/hello")
    '.devcontainer/tools/hello'
    """
    folder = posixpath.dirname(config_path)
    joined = posixpath.normpath(posixpath.join(folder, ref))
    # A file at the workspace's top has the folder "": every relative path starts with "", so there the
    # workspace itself (".") and what climbs out of it ("..", "../x") are what is refused.
    outside = joined.split("/")[0] == ".." if not folder else not joined.startswith(f"{folder}/")
    if not ref.startswith("./") or joined in (folder, ".") or outside:
        raise DevagentError(f"{config_path}: feature {ref!r} is not a folder inside {folder or '.'}/",
                            status=ExitStatus.USAGE, hint="keep a local Feature in the devcontainer.json's folder "
                            "and name it \"./FOLDER\"")
    return joined


def option_name(name: str) -> str:
    """An option's environment variable, as the specification forms it.

    >>> option_name("installTools"), option_name("2x-y")
    ('INSTALLTOOLS', '_X_Y')
    """
    return re.sub(r"^[\d_]+", "_", re.sub(r"[^\w_]", "_", name)).upper()


def feature_env(declared: Mapping[str, object], given: Mapping[str, object], *, source: str
                ) -> tuple[tuple[str, str], ...]:
    """The install script's variables: each option DECLARED in devcontainer-feature.json with its default, then
    what the devcontainer.json GIVES. A value with a line break or control character is refused."""
    values: dict[str, object] = {}
    for name, spec in declared.items():
        if isinstance(spec, dict) and "default" in spec:
            values[name] = spec["default"]
    values.update(given)
    env = []
    for name, value in values.items():
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        problem = check_env(f"features {source}", option_name(name), text)
        if problem is not None:
            raise DevagentError(problem, status=ExitStatus.USAGE, hint="fix the Feature's options in the file")
        env.append((option_name(name), text))
    return tuple(env)


def read_feature(metadata: bytes, *, source: str) -> Mapping[str, object]:
    """devcontainer-feature.json's options (JSONC, as the specification allows)."""
    data = parse_jsonc(metadata.decode("utf-8", errors="replace"), source=source)
    for key in WEAKENING:  # what would weaken the container is refused here as in the devcontainer.json
        if data.get(key) not in (None, False, [], {}, ""):
            raise DevagentError(f"{source}: {key} is refused: devagent sets the container's options itself "
                                "(docs/explanation/security-model.md)", status=ExitStatus.USAGE,
                                hint=f"remove {key} from the Feature, or install the tool in a Dockerfile")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise DevagentError(f"{source}: options is not an object", status=ExitStatus.USAGE,
                            hint="fix the Feature's devcontainer-feature.json")
    return options


def features_dockerfile(base: str, features: Sequence[tuple[str, tuple[tuple[str, str], ...]]]) -> str:
    """A Dockerfile that runs each Feature's install.sh as root on BASE; FEATURES: (folder relative to the build
    context, its variables), in the file's order.

    >>> text = features_dockerfile("img:1", [("hello", (("GREETING", "a b"),))])
    >>> print(text[:text.index("RUN")], end="")
    FROM img:1
    USER root
    COPY hello/ /tmp/devagent-features/0/
    >>> "chmod +x install.sh && env 'GREETING=a b' ./install.sh && rm -rf /tmp/devagent-features/0" in text
    True
    """
    lines = [f"FROM {base}", "USER root"]
    for i, (folder, env) in enumerate(features):
        staged = f"{STAGING}/{i}"
        assigned = " ".join(shlex.quote(f"{k}={v}") for k, v in env)
        lines += [f"COPY {folder}/ {staged}/",
                  f"RUN cd {staged} && chmod +x install.sh && env {assigned} ./install.sh && rm -rf {staged}"]
    return "\n".join(lines) + "\n"


def features_tag(base: str, base_id: str, parts: Sequence[bytes]) -> str:
    """The tag of BASE with the Features: a hash of the base image's name and id and PARTS (each Feature's
    folder name, variables, devcontainer-feature.json and install.sh), so an unchanged set reuses it."""
    digest = hashlib.sha256()
    for part in (base.encode(), base_id.encode(), *parts):
        digest.update(hashlib.sha256(part).digest())
    return f"{BASE_REPOSITORY}:features-{digest.hexdigest()[:16]}"
