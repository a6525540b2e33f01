"""The floor of the `up` benchmarks (up_bench.py, remote_up_bench.py, slurm_up_bench.py): what a person does by hand
for the same login. A plain `docker run` of the image devagent built (its sshd, the host key and the authorized key
mounted), then the first OpenSSH login that succeeds, straight to the engine's 127.0.0.1 or through ssh hops (a
server, a Slurm node behind its login node). Each benchmark says how a command runs where the engine is and where
the laptop is; the steps and their options are here once.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LOGIN_USER = "dev"  # the image's login user (uid 1000 in the base image)
PORT = "2222/tcp"

Run = Callable[[list[str]], Any]  # argv → a finished process: returncode, stdout, stderr


def floor_keys(root: Path, *, uid: int, run: Run) -> Path:
    """ROOT/keys: a host key that UID (the login user as the engine's machine numbers it) may read, a user key,
    and the authorized_keys that lets it in. RUN: how ssh-keygen runs where the laptop is."""
    keydir = root / "keys"
    keydir.mkdir()
    keydir.chmod(0o755)
    for key in ("host", "user"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / key)])
    os.chown(keydir / "host", uid, uid)
    (keydir / "authorized_keys").write_text((keydir / "user.pub").read_text())
    (keydir / "authorized_keys").chmod(0o644)
    return keydir


def docker_run(image: str, keydir: Path, name: str) -> list[str]:
    """`docker run` of IMAGE's sshd as the login user, KEYDIR's host key and authorized key mounted, on a port of
    the engine's 127.0.0.1 that the engine picks."""
    return ["docker", "run", "-d", "--name", name, "--user", LOGIN_USER, "-p", "127.0.0.1::2222",
            "-v", f"{keydir / 'host'}:/etc/devagent/ssh_host_ed25519_key:ro",
            "-v", f"{keydir / 'authorized_keys'}:/etc/devagent/authorized_keys:ro",
            image, "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/devagent/sshd_config.strict"]


def on_server(argv: list[str]) -> str:
    """ARGV (a `docker run -d`) for a server's shell, followed by the port it published: one ssh command."""
    return f"cid=$({shlex.join(argv)}) && docker port $cid {PORT}"


def published_port(docker_port: str) -> str:
    """The host port in `docker port`'s line (127.0.0.1:32768)."""
    return docker_port.rsplit(":", maxsplit=1)[-1].strip()


def first_login(run: Run, keydir: Path, port: str, *, hops: Sequence[str] = (), since: float,
                limit: float = 60.0) -> float:
    """Log in to PORT of the engine's 127.0.0.1 with KEYDIR's user key through HOPS (ssh's options before the
    others: -F CONFIG -J JUMPS), tried every 20 ms until it succeeds. Returns the seconds since SINCE (a
    time.perf_counter()); past LIMIT of them, RuntimeError with ssh's last words."""
    argv = ["ssh", *hops, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-i", str(keydir / "user"), "-p", port, f"{LOGIN_USER}@127.0.0.1", "true"]
    while True:
        login = run(argv)
        if login.returncode == 0:
            return time.perf_counter() - since
        if time.perf_counter() - since > limit:
            raise RuntimeError(f"the floor's login never succeeded: {login.stderr}")
        time.sleep(0.02)
