"""Readiness and the key-login proof: the one module that imports paramiko.

Wait for sshd's banner (Docker's proxy accepts connections before sshd listens, so a TCP connect proves nothing),
then log in with the user key against the pinned host key: unknown keys are rejected, an authentication failure
is never retried (a retry loop trips sshd's MaxStartups).
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from devagent.errors import DevagentError, ExitStatus

logging.getLogger("paramiko").addHandler(logging.NullHandler())


def wait_for_banner(port: int, *, timeout: float, still_starting: Callable[[], None],
                    host: str = "127.0.0.1") -> str:
    """Return sshd's banner ('SSH-2.0-OpenSSH_9.2') once it answers on HOST:PORT.

    STILL_STARTING is called between tries; it raises when the container has exited.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error = "no answer"
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
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
        delay = min(delay * 1.5, 0.5)


def prove_login(*, port: int, user: str, identity: Path, host_public_key: str, timeout: float = 15.0,
                host: str = "127.0.0.1") -> int | None:
    """Log in by key, trusting only HOST_PUBLIC_KEY ('ssh-ed25519 AAAA…'), and return `id -u` of the session.

    Returns None when paramiko shares no key exchange with the server (the strict profile's sntrup761 on
    OpenSSH < 9.9): the caller then proves the login with the OpenSSH client alone.
    """
    key_type, key_b64 = host_public_key.split()[:2]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[{host}]:{port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(key_b64)))
    try:
        client.connect(host, port=port, username=user, key_filename=str(identity), look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
        _, stdout, _ = client.exec_command("id -u", timeout=timeout)
        uid_text = stdout.read().decode().strip()
    except paramiko.BadHostKeyException as exc:
        raise DevagentError("the environment answered with a host key other than the pinned one",
                            status=ExitStatus.LOGIN_FAILED, details=str(exc),
                            hint="someone else may be on that port; run `devagent up NAME --recreate`") from None
    except paramiko.ssh_exception.IncompatiblePeer:
        return None
    except paramiko.AuthenticationException as exc:
        raise DevagentError(f"the key login as {user} was refused", status=ExitStatus.LOGIN_FAILED,
                            details=str(exc), hint="`docker logs NAME` shows sshd's reason") from None
    except (paramiko.SSHException, OSError) as exc:
        raise DevagentError(f"the ssh login on 127.0.0.1:{port} failed: {exc}", status=ExitStatus.LOGIN_FAILED,
                            hint="`docker logs NAME` shows what sshd said") from None
    finally:
        client.close()
    if not uid_text.isdigit():
        raise DevagentError(f"the login worked but `id -u` printed {uid_text!r}", status=ExitStatus.LOGIN_FAILED)
    return int(uid_text)
