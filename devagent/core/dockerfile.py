"""The derived image: its Dockerfile as text, and a tag that is a hash of everything that goes into it.

An unchanged spec (base image, login user, uid, devagent and its wheels) gives the same tag, so it never rebuilds.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from devagent.core import layout
from devagent.core.layout import AGENT_VENV, LAB_HELPER_DIR
from devagent.core.ssh import sshd
from devagent.errors import DevagentError, ExitStatus

IMAGE_REPOSITORY = "devagent/env"
WHEELS_DIR = "wheels"  # inside the build context
# The contract between a devagent and the images it starts: the agent's command line, the files `up` puts in
# (core/layout.py), the sshd configurations' paths. Raised when any of them changes incompatibly; an image without
# the label was made before it existed, in format 1.
IMAGE_FORMAT = "1"
FORMAT_LABEL = "devagent.image-format"
BASE_DIGEST_LABEL = "devagent.base-digest"
# The login user's uid, as the build left it (the base image may have had the user, or the uid, already): `up`
# needs it before the container starts (the host key's owner, the workspace's), and reading it from a container's
# /etc/passwd costs an archive request to the engine on every up. Images built before it existed lack it.
LOGIN_UID_LABEL = "devagent.login-uid"


def login_uid(labels: Mapping[str, str]) -> int | None:
    """The uid LOGIN_UID_LABEL records; None when it is missing or not a uid.

    >>> login_uid({LOGIN_UID_LABEL: "1000"}), login_uid({}), login_uid({LOGIN_UID_LABEL: "-1"})
    (1000, None, None)
    """
    text = labels.get(LOGIN_UID_LABEL, "")
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class ImageSpec:
    base_image: str
    base_id: str  # the base image's content id, so a re-pulled base gives a new tag
    user: str
    uid: int
    sshd_port: int
    payload: tuple[tuple[str, str], ...]  # (name, sha256) of devagent and each wheel it carries

    def dockerfile(self) -> str:
        return render_dockerfile(self)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.dockerfile().encode())
        h.update(self.base_id.encode())
        for name, digest in sorted(self.payload):
            h.update(f"{name}={digest}\n".encode())
        return h.hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.content_hash()}"

    def labels(self, version: str, *, base_digest: str | None = None) -> Mapping[str, str]:
        labels = {
            "devagent.managed": "true",
            "devagent.base-image": self.base_image,
            "devagent.user": self.user,
            "devagent.version": version,
            FORMAT_LABEL: IMAGE_FORMAT,
        }
        if base_digest:
            labels[BASE_DIGEST_LABEL] = base_digest
        return labels


# -- team images: references, the devagent check, what a registry's refusal means ---------------------------------

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True)
class ImageRef:
    """An image reference as Docker reads it: REPOSITORY[:TAG][@DIGEST], the repository starting with a registry
    host (with a port, or a dot, or ``localhost``) when it names one.

    >>> ref = parse_image_ref("lab.example:5000/pytorch-cuda:v2.8@sha256:" + "0" * 64)
    >>> ref.registry, ref.repository, ref.tag, ref.pull_ref == "lab.example:5000/pytorch-cuda@sha256:" + "0" * 64
    ('lab.example:5000', 'lab.example:5000/pytorch-cuda', 'v2.8', True)
    >>> parse_image_ref("devagent/env:3f2a9c1b0d4e").registry is None
    True
    """

    repository: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str | None:
        first, _, rest = self.repository.partition("/")
        return first if rest and ("." in first or ":" in first or first == "localhost") else None

    @property
    def pull_ref(self) -> str:
        """What to pull and look up: by digest when there is one (a tag beside it is only a name), else the tag."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag or 'latest'}"

    def pinned(self, digest: str) -> str:
        """The reference with DIGEST: the tag stays, as a name for people.

        >>> parse_image_ref("reg.local:5000/env:v1").pinned("sha256:" + "a" * 64)[:30]
        'reg.local:5000/env:v1@sha256:a'

        """
        return f"{self.repository}{':' + self.tag if self.tag else ''}@{digest}"

    def __str__(self) -> str:
        return f"{self.repository}{':' + self.tag if self.tag else ''}{'@' + self.digest if self.digest else ''}"


def parse_image_ref(text: str, *, option: str = "--image") -> ImageRef:
    """Read an image reference; a malformed one is a USAGE error that shows the form.

    >>> parse_image_ref("reg.local:5000/team/pytorch-cuda:v2.8-cu121")
    ImageRef(repository='reg.local:5000/team/pytorch-cuda', tag='v2.8-cu121', digest=None)
    >>> parse_image_ref("Team/Env")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: --image: 'Team/Env' is not an image reference
      hint: use REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST, e.g. lab.example:5000/pytorch-cuda:v2.8 \
(lowercase repository names)
    """
    value = text.strip()
    rest, _, digest = value.partition("@")
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    repository, tag = (rest[:colon], rest[colon + 1:]) if colon > last_slash else (rest, None)
    parts = repository.split("/")
    registry = ImageRef(repository, None, None).registry
    paths = parts[1:] if registry else parts
    valid = (bool(repository) and all(_PATH_RE.fullmatch(part) for part in paths)
             and (tag is None or bool(_TAG_RE.fullmatch(tag))) and (not digest or bool(_DIGEST_RE.fullmatch(digest)))
             and not (value.endswith("@")))
    if not valid:
        raise DevagentError(f"{option}: {text!r} is not an image reference", status=ExitStatus.USAGE,
                            hint="use REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST, e.g. "
                            "lab.example:5000/pytorch-cuda:v2.8 (lowercase repository names)")
    return ImageRef(repository, tag, digest or None)


def check_devagent_image(ref: str, labels: Mapping[str, str], *, version: str) -> None:
    """Refuse an image that devagent did not derive, or one in another image format (see IMAGE_FORMAT).

    >>> check_devagent_image("python:3.12", {}, version="0.9.0")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: python:3.12 is not a devagent image (it has no devagent.* labels)
      hint: --image takes an image made by `devagent image build --tag REF --push`; to start from any other \
image, pass it as --base-image
    """
    if labels.get("devagent.managed") != "true" or not labels.get("devagent.user"):
        raise DevagentError(f"{ref} is not a devagent image (it has no devagent.* labels)", status=ExitStatus.USAGE,
                            hint="--image takes an image made by `devagent image build --tag REF --push`; to start "
                            "from any other image, pass it as --base-image")
    found = labels.get(FORMAT_LABEL, "1")
    if found != IMAGE_FORMAT:
        made_by = labels.get("devagent.version", "an unknown version")
        raise DevagentError(f"{ref} was made by devagent {made_by} in image format {found}; devagent {version} "
                            f"starts images of format {IMAGE_FORMAT}", status=ExitStatus.USAGE,
                            hint=f"rebuild and push it with this devagent: devagent image build --base-image "
                            f"{labels.get('devagent.base-image', 'BASE')} --tag REF --push")


def registry_error(ref: ImageRef, said: str, *, pushing: bool, server: str | None = None) -> DevagentError:
    """What the engine SAID when a pull or push of REF failed, as the error a user can act on (REGISTRY).

    SERVER names the machine whose engine pushed or pulled, when that is not this one (`--host`): the credentials
    still come from this machine's Docker config (the client hands them to that engine with the request), while
    the registry's address is resolved and dialled from that server.

    >>> print(registry_error(parse_image_ref("reg.local:5000/env:v9"), "manifest unknown", pushing=False))
    the registry reg.local:5000 has no image reg.local:5000/env:v9
      | manifest unknown
      hint: check the tag (devagent image build --tag reg.local:5000/env:v9 --push makes it)
    >>> print(registry_error(parse_image_ref("reg.local:5000/env:v9"), "unauthorized", pushing=True,
    ...                      server="gpu-server").hint)
    log in on this machine with `docker login reg.local:5000` (devagent hands this machine's Docker credentials \
to gpu-server's engine for the push and pull, and never writes them)
    """
    where = ref.registry or "docker.io"
    text = said.lower()
    refused = any(word in text for word in ("unauthorized", "authentication required", "no basic auth", "denied",
                                            "incorrect username or password"))
    # "pull access denied …, repository does not exist or may require 'docker login'" is Docker Hub's word for
    # a missing repository as often as for a missing login: named as missing, with login in the hint.
    if refused and ("does not exist" not in text or pushing):
        hint = (f"log in with `docker login {where}` (devagent uses Docker's credentials, from $DOCKER_CONFIG or "
                "~/.docker/config.json, and never writes them)") if server is None else (
                f"log in on this machine with `docker login {where}` (devagent hands this machine's Docker "
                f"credentials to {server}'s engine for the push and pull, and never writes them)")
        return DevagentError(f"the registry {where} refused the credentials for {ref}",
                             status=ExitStatus.REGISTRY, details=said, hint=hint)
    if any(word in text for word in ("manifest unknown", "not found", "does not exist", "name unknown")):
        return DevagentError(f"the registry {where} has no image {ref}", status=ExitStatus.REGISTRY, details=said,
                             hint=f"check the tag (devagent image build --tag {ref} --push makes it)")
    if any(word in text for word in ("connection refused", "no such host", "timeout", "dial tcp",
                                     "no route to host", "server gave http response to https client",
                                     "network is unreachable")):
        if server is not None:  # the server's engine dials it: its own names and its own 127.0.0.1
            return DevagentError(f"the registry {where} does not answer {server}'s engine",
                                 status=ExitStatus.REGISTRY, details=said,
                                 hint=f"check its address as {server} sees it (127.0.0.1 there is {server} itself) "
                                 "and that it runs; a registry without TLS must be on 127.0.0.0/8 or in that "
                                 "engine's insecure-registries")
        return DevagentError(f"the registry {where} does not answer", status=ExitStatus.REGISTRY, details=said,
                             hint="check its address and that it runs; a registry without TLS must be on "
                             "127.0.0.0/8 or in the engine's insecure-registries")
    verb = "pushing" if pushing else "pulling"
    return DevagentError(f"{verb} {ref} failed", status=ExitStatus.REGISTRY, details=said or None,
                         hint="read the registry's answer above; `docker login` if it needs credentials")


def render_dockerfile(spec: ImageSpec) -> str:
    """The Dockerfile of the derived image. Works on any Debian/Ubuntu-based image with python3."""
    user, uid, port = shlex.quote(spec.user), spec.uid, spec.sshd_port
    home = layout.login_home(spec.user)
    workspace = f"{home}/{layout.HOME_WORKSPACE}"
    profiles = " && ".join(
        f"devagent sshd-config --profile {p} --user {user} --port {port} > {layout.sshd_config_path(p)}"
        f" && /usr/sbin/sshd -t -f {layout.sshd_config_path(p)} -h /tmp/devagent-testkey"
        for p in sshd.PROFILES
    )
    return f"""\
# Rendered by devagent. The base image's own user is left alone; devagent adds its login user and sshd.
FROM {spec.base_image}
USER root
SHELL ["/bin/sh", "-euc"]

# openssh-server only when the base image lacks it; python3-venv only when venv cannot bootstrap pip.
RUN missing=""; \\
    [ -x /usr/sbin/sshd ] || missing="$missing openssh-server"; \\
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"; \\
    if [ -n "$missing" ]; then \\
      command -v apt-get >/dev/null \\
        || {{ echo "devagent: base image needs$missing and has no apt-get" >&2; exit 1; }}; \\
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; \\
      rm -rf /var/lib/apt/lists/*; \\
    fi; \\
    rm -f /etc/ssh/ssh_host_*

# The login user. '*' instead of a locked '!' password: no password login, but the account is usable by key.
RUN if ! id -u {user} >/dev/null 2>&1; then \\
      if getent passwd {uid} >/dev/null; then useradd -m -s /bin/bash {user}; \\
      else useradd -m -s /bin/bash -u {uid} {user}; fi; \\
    fi; \\
    usermod -p '*' {user}; \\
    mkdir -p {workspace} {layout.CONFIG_DIR}; \\
    chown {user}: {workspace}

# devagent itself, from wheels carried in the build context: no package index is needed.
COPY {WHEELS_DIR}/ /tmp/devagent-wheels/
RUN python3 -m venv {AGENT_VENV}; \\
    {AGENT_VENV}/bin/python -m pip install -q --no-index --no-cache-dir --find-links /tmp/devagent-wheels devagent; \\
    rm -rf /tmp/devagent-wheels; \\
    ln -sf {AGENT_VENV}/bin/devagent /usr/local/bin/devagent

# `from devagent import lab` in the user's own interpreters, with nothing installed into them: the helper is
# standard library only (and devagent's pure layout module), so a copy of it sits in {LAB_HELPER_DIR}, which a
# .pth file puts on their path.
RUN mkdir -p {LAB_HELPER_DIR}/devagent/core; \\
    src=$({AGENT_VENV}/bin/python -c 'import devagent, os; print(os.path.dirname(devagent.__file__))'); \\
    cp "$src/__init__.py" "$src/lab.py" {LAB_HELPER_DIR}/devagent/; \\
    cp "$src/core/__init__.py" "$src/core/layout.py" {LAB_HELPER_DIR}/devagent/core/; \\
    for py in python3 python; do \\
      p=$(command -v $py) || continue; \\
      site=$($p -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || continue; \\
      mkdir -p "$site"; echo {LAB_HELPER_DIR} > "$site/devagent-lab.pth"; \\
    done

# Hardened sshd configurations, checked by sshd itself (-t) with a throw-away key. They hand the image's
# environment (PATH, CUDA variables, ...) to ssh sessions, which would otherwise get a bare PATH.
ENV {layout.WORKSPACE_ENV}={workspace}
RUN mkdir -p /run/sshd; \\
    ssh-keygen -q -t ed25519 -N '' -f /tmp/devagent-testkey; \\
    {profiles}; \\
    rm -f /tmp/devagent-testkey /tmp/devagent-testkey.pub; \\
    chmod 644 {layout.sshd_config_path("*")}

USER {user}
WORKDIR {workspace}
EXPOSE {port}
CMD ["devagent", "agent"]
"""
