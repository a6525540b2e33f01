"""ed25519 keys, generated with `cryptography` (paramiko cannot generate ed25519 keys).

The user key is made once in DEVAGENT_HOME (or named with --identity); each environment gets its own host key,
made here on the client, put into the container before it starts, and pinned in devagent's known_hosts.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devagent.control.atomic import FileLock, atomic_write, ensure_private_dir
from devagent.errors import DevagentError, ExitStatus

_ED25519 = b"ssh-ed25519"


def _generate(comment: str) -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    private, public = key.private_bytes_raw(), key.public_key().public_bytes_raw()
    blob = _sshstr(_ED25519) + _sshstr(public)
    return _openssh_private(private, public), f"{_ED25519.decode()} {base64.b64encode(blob).decode()} {comment}"


def _sshstr(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _openssh_private(private: bytes, public: bytes) -> bytes:
    """An ed25519 key in OpenSSH's private key format, unencrypted, with no comment: byte for byte what
    `cryptography`'s serialization writes (tests/host/test_keys.py compares them), without importing it — its SSH
    module and ciphers cost ~20 ms of every `up` that makes an environment's host key."""
    check = os.urandom(4)
    secret = check + check + _sshstr(_ED25519) + _sshstr(public) + _sshstr(private + public) + _sshstr(b"")
    secret += bytes(range(1, 9 - len(secret) % 8))  # padded to the block size, 8
    body = (b"openssh-key-v1\0" + _sshstr(b"none") + _sshstr(b"none") + _sshstr(b"") + struct.pack(">I", 1)
            + _sshstr(_sshstr(_ED25519) + _sshstr(public)) + _sshstr(secret))
    text = base64.b64encode(body)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"\n".join([b"-----BEGIN OPENSSH PRIVATE KEY-----", *lines, b"-----END OPENSSH PRIVATE KEY-----", b""])


def ensure_keypair(path: Path, comment: str) -> str:
    """Return the public key line of the ed25519 key at PATH, generating it (and PATH.pub) when missing.

    Several devagents may start at once (ten `up`s in parallel): the key is made under a lock beside it, so
    exactly one key exists and every container gets that one.
    """
    pub = path.with_name(path.name + ".pub")
    if path.exists() and pub.exists():
        return pub.read_text().strip()
    with FileLock(path.with_name(".keys.lock"), purpose="the keys"):
        if path.exists() and pub.exists():
            return pub.read_text().strip()
        if path.exists():
            return public_line(path)
        private, public = _generate(comment)
        ensure_private_dir(path.parent)
        atomic_write(path, private, mode=0o600)
        atomic_write(pub, (public + "\n").encode(), mode=0o644)
        return public


def public_line(private_key: Path) -> str:
    """The public key line of an existing OpenSSH private key; refuses keys that are not ed25519."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    except FileNotFoundError:
        raise DevagentError(f"identity file {private_key} does not exist", status=ExitStatus.USAGE,
                            hint="name an existing ed25519 private key, or leave --identity out") from None
    except (ValueError, TypeError) as exc:
        raise DevagentError(f"cannot read identity file {private_key}: {exc}", status=ExitStatus.USAGE,
                            hint="use an unencrypted OpenSSH ed25519 key (ssh-keygen -t ed25519), "
                            "or leave --identity out") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DevagentError(f"identity file {private_key} is not an ed25519 key", status=ExitStatus.USAGE,
                            hint="the hardened sshd accepts ed25519 keys only: ssh-keygen -t ed25519")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def check_loadable(public_line: str, *, source: str) -> None:
    """Refuse (USAGE) a public key that core/people.py's checks let through but `cryptography` cannot load: an
    ECDSA point off its curve, an RSA key with a bad exponent. Security-key (sk-) keys are not loadable there and
    pass as checked."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if public_line.startswith("sk-"):
        return
    try:
        serialization.load_ssh_public_key(public_line.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DevagentError(f"{source} is not a usable public key: {exc}", status=ExitStatus.USAGE,
                            hint="make one with `ssh-keygen -t ed25519` and pass its .pub file") from None


def read_private(path: Path) -> bytes:
    return path.read_bytes()
