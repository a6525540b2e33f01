"""The key-login proof: the one module that imports paramiko.

Log in with the user key against the pinned host key: unknown keys are rejected, an authentication failure is
never retried (a retry loop trips sshd's MaxStartups).
"""

from __future__ import annotations

import base64
import logging
import socket
from pathlib import Path

import paramiko

from devagent.errors import DevagentError, ExitStatus

logging.getLogger("paramiko").addHandler(logging.NullHandler())


def prove_login(*, port: int, user: str, identity: Path, host_public_key: str, timeout: float = 15.0,
                host: str = "127.0.0.1", sock: socket.socket | None = None) -> int | None:
    """Log in by key, trusting only HOST_PUBLIC_KEY ('ssh-ed25519 AAAA…'), and return `id -u` of the session.

    SOCK, when given, is an open stream to the sshd (on a server: a channel of the one login to it); otherwise
    HOST:PORT is dialled.

    Returns None when paramiko shares no key exchange with the server (the strict profile's sntrup761 on
    OpenSSH < 9.9): the caller then proves the login with the OpenSSH client alone.
    """
    key_type, key_b64 = host_public_key.split()[:2]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[{host}]:{port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(key_b64)))
    try:
        client.connect(host, port=port, username=user, key_filename=str(identity), look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, sock=sock)
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
    except (paramiko.SSHException, EOFError, OSError) as exc:  # EOFError: the server hung up mid-handshake
        raise DevagentError(f"the ssh login on 127.0.0.1:{port} failed: {exc or type(exc).__name__}",
                            status=ExitStatus.LOGIN_FAILED,
                            hint="`docker logs NAME` shows what sshd said") from None
    finally:
        client.close()
    if not uid_text.isdigit():
        raise DevagentError(f"the login worked but `id -u` printed {uid_text!r}", status=ExitStatus.LOGIN_FAILED)
    return int(uid_text)
