"""devagent's own known_hosts: one pinned host key per environment, under the environment's name.

Every entry sets `HostKeyAlias NAME`, so OpenSSH looks the key up as plain `NAME` (no `[127.0.0.1]:PORT`):
the pin survives a new published port. Callers hold the ssh-config FileLock around pin/unpin.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from devagent.control.atomic import atomic_write, ensure_private_dir

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


def normalize_key(public_key_line: str) -> str:
    """Return 'TYPE BASE64' from a public key line ('TYPE BASE64 [comment]'); ValueError if it is not one.

    >>> normalize_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ1 host@example")
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ1'
    """
    fields = public_key_line.split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise ValueError(f"not an OpenSSH public key line: {public_key_line!r}")
    try:
        base64.b64decode(fields[1], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not an OpenSSH public key line: {public_key_line!r}") from exc
    return f"{fields[0]} {fields[1]}"


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _is_for(line: str, name: str) -> bool:
    fields = line.split()
    return bool(fields) and not line.lstrip().startswith("#") and name in fields[0].split(",")


def lookup(path: Path, name: str) -> str | None:
    """The key pinned for NAME as 'TYPE BASE64', or None."""
    for line in _lines(path):
        if _is_for(line, name):
            return " ".join(line.split()[1:3])
    return None


def pin(path: Path, name: str, public_key_line: str) -> None:
    """Write the line `NAME TYPE BASE64`, replacing any key pinned for NAME before."""
    key = normalize_key(public_key_line)
    lines = [line for line in _lines(path) if not _is_for(line, name)]
    lines.append(f"{name} {key}")
    ensure_private_dir(path.parent)
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))


def unpin(path: Path, name: str) -> bool:
    """Remove NAME's pinned key; True if there was one."""
    lines = _lines(path)
    kept = [line for line in lines if not _is_for(line, name)]
    if len(kept) == len(lines):
        return False
    atomic_write(path, ("\n".join(kept) + "\n").encode("utf-8") if kept else b"")
    return True
