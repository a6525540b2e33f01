"""The derived image: its Dockerfile as text, and a tag that is a hash of everything that goes into it.

An unchanged spec (base image, login user, uid, devagent and its wheels) gives the same tag, so it never rebuilds.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from devagent.core import layout, sshd
from devagent.core.layout import AGENT_VENV, LAB_HELPER_DIR

IMAGE_REPOSITORY = "devagent/env"
WHEELS_DIR = "wheels"  # inside the build context


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

    def labels(self, version: str) -> Mapping[str, str]:
        return {
            "devagent.managed": "true",
            "devagent.base-image": self.base_image,
            "devagent.user": self.user,
            "devagent.version": version,
        }


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
