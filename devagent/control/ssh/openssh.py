"""OpenSSH from the outside: the local client's version, sshd's banner, and a login through the written alias.

Docker's proxy accepts connections before sshd listens, so a TCP connect proves nothing: readiness is the banner.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devagent.core.ssh.command_line import client_argv, ssh_argv
from devagent.core.ssh.sshd import openssh_version
from devagent.errors import DevagentError, ExitStatus


def client_version(ssh: str = "ssh") -> tuple[int, int] | None:
    """(major, minor) of the local OpenSSH client, or None when there is none.

    `ssh -V` prints e.g. 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15' on stderr.
    """
    if shutil.which(ssh) is None:
        return None
    out = subprocess.run(client_argv("-V", ssh=ssh), capture_output=True, text=True, check=False)
    return openssh_version(out.stderr + out.stdout)


def openssh_at_least(banner: str, version: tuple[int, int]) -> bool:
    """Whether an sshd banner ('SSH-2.0-OpenSSH_9.2p1 Debian-2') names OpenSSH VERSION or newer.

    >>> openssh_at_least("SSH-2.0-OpenSSH_9.2p1 Debian-2", (9, 9)), openssh_at_least("SSH-2.0-OpenSSH_10.0", (9, 9))
    (False, True)
    """
    found = openssh_version(banner)
    return found is not None and found >= version


def login_through_alias(config: Path, name: str, *, remote_command: tuple[str, ...] = ("id", "-u"),
                        timeout: float = 20.0, ssh: str = "ssh") -> int:
    """Log in with the real client through the alias NAME, run REMOTE_COMMAND (it prints the uid), return it."""
    cmd = ssh_argv(config, name, *remote_command, ssh=ssh, options={"ConnectTimeout": int(timeout)})
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        raise DevagentError(f"ssh {name} did not answer within {timeout:.0f} s", status=ExitStatus.LOGIN_FAILED,
                            hint=f"check the container: docker logs {name}") from None
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise DevagentError(
            f"the login through the ssh alias {name!r} failed (ssh exit {out.returncode})",
            status=ExitStatus.LOGIN_FAILED, details=out.stderr.strip() or out.stdout.strip(),
            hint=f"run `ssh -v -F {config} {name}` to see why; `docker logs {name}` shows sshd's side",
        )
    return int(out.stdout.strip())


Connect = Callable[[int, float], socket.socket]


def connect_local(port: int, timeout: float) -> socket.socket:
    """A stream to this machine's 127.0.0.1:PORT (where a local environment's sshd is published)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def wait_for_banner(port: int, *, timeout: float, still_starting: Callable[[], None],
                    connect: Connect = connect_local) -> str:
    """Return sshd's banner ('SSH-2.0-OpenSSH_9.2') once it answers on 127.0.0.1:PORT — this machine's, or
    through CONNECT a server's (ServerLink.connect: a channel of the one ssh login to that server).

    STILL_STARTING is called between tries; it raises when the container has exited.
    """
    deadline = time.monotonic() + timeout
    # Loopback connects are cheap, and every 50 ms of sleep shows in up's time.
    delay = 0.02
    last_error = "no answer"
    while True:
        try:
            with connect(port, 2.0) as s:
                s.settimeout(2)
                data = s.recv(256)
                if data.startswith(b"SSH-"):
                    return data.split(b"\r\n", 1)[0].decode(errors="replace")
                last_error = "connection closed before the banner" if not data else f"unexpected {data[:20]!r}"
        except OSError as exc:
            last_error = str(exc)
        still_starting()
        if time.monotonic() >= deadline:
            raise DevagentError(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s ({last_error})",
                                status=ExitStatus.CONTAINER_FAILED,
                                hint="the container's log (docker logs NAME) shows what the agent and sshd said")
        time.sleep(delay)
        delay = min(delay * 1.2, 0.2)
