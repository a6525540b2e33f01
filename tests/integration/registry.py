"""A real image registry for tests: Debian's Distribution registry (2.8, /usr/bin/docker-registry) on
127.0.0.1:<free port>, with its own config and storage in a temp folder, optionally behind htpasswd auth.

Docker lets plain HTTP through to registries on 127.0.0.0/8, so no TLS is needed. The test stops it by its pid.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class Registry:
    address: str  # 127.0.0.1:PORT
    user: str | None = None
    password: str | None = None

    def docker_config(self, folder: Path, *, password: str | None = None) -> Path:
        """A DOCKER_CONFIG folder with credentials for this registry (PASSWORD overrides the right one)."""
        folder.mkdir(parents=True, exist_ok=True)
        secret = f"{self.user}:{password if password is not None else self.password}".encode()
        (folder / "config.json").write_text(json.dumps(
            {"auths": {self.address: {"auth": base64.b64encode(secret).decode()}}}))
        return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(address: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{address}/v2/", timeout=1)  # loopback, plain http on purpose
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # up, and asking for credentials
    except OSError:
        return False
    return True


@contextmanager
def running_registry(folder: Path, *, user: str | None = None, password: str | None = None) -> Iterator[Registry]:
    """Start a registry storing under FOLDER; with USER and PASSWORD it demands them (htpasswd, bcrypt)."""
    if not shutil.which(REGISTRY_BINARY):
        raise FileNotFoundError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry (make test does)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    auth = ""
    if user is not None and password is not None:
        import bcrypt

        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (folder / "htpasswd").write_text(f"{user}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: devagent-test\n    path: {folder / 'htpasswd'}\n"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n{auth}")
    log = (folder / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    try:
        deadline = time.monotonic() + 30
        while not _answers(address):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start:\n{(folder / 'registry.log').read_text()}")
            time.sleep(0.1)
        yield Registry(address, user, password)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def push_plain_image(docker_client: Any, ref: str, *, auth: dict[str, str] | None = None) -> None:
    """Build REF, an image devagent did not make (FROM scratch, one file, no devagent.* labels), push it with AUTH,
    and remove it from the engine again: what a test then asks `up --image` to start."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for file_name, data in (("Dockerfile", b"FROM scratch\nCOPY hello /hello\n"), ("hello", b"hello\n")):
            info = tarfile.TarInfo(file_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=ref, rm=True)
    for event in docker_client.api.push(ref, stream=True, decode=True, auth_config=auth):
        assert "error" not in event, event
    docker_client.api.remove_image(ref)
