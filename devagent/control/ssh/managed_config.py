"""devagent's own ssh config file: one `Host NAME` block per environment. The one module importing sshconf.

sshconf is used on this file alone (it misreads Match blocks and `Key=Value`, and we never write either here).
It writes in place and drops the final newline, so we take its text and write it ourselves, atomically.
Callers hold the ssh-config FileLock around put/remove.
"""

from __future__ import annotations

from pathlib import Path

import sshconf

from devagent.control.atomic import atomic_write, ensure_private_dir
from devagent.core.ssh.host_entry import HostEntry
from devagent.errors import DevagentError, ExitStatus

HEADER = [
    "# Managed by devagent: one Host block per environment. Do not edit;",
    "# `devagent up` rewrites a block and `devagent down NAME` removes it.",
]


def _read(path: Path) -> sshconf.SshConfigFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return sshconf.SshConfigFile(list(HEADER))
    return sshconf.SshConfigFile(text.splitlines())


def _render(config: sshconf.SshConfigFile) -> bytes:
    # Each add/remove leaves sshconf's blank separator lines behind: keep at most one in a row.
    lines: list[str] = []
    for line in config.config().splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return ("\n".join(lines) + "\n").encode("utf-8")


def _write(path: Path, config: sshconf.SshConfigFile) -> None:
    ensure_private_dir(path.parent)
    atomic_write(path, _render(config))


def _check_single(path: Path, config: sshconf.SshConfigFile, name: str) -> None:
    # sshconf removes everything between two blocks of one name, unrelated blocks included: refuse instead.
    if config.hosts().count(name) > 1:
        raise DevagentError(
            f"devagent's ssh config {path} defines Host {name} more than once",
            hint=f"delete the extra `Host {name}` blocks from {path}, then run the command again",
            status=ExitStatus.SSH_CONFIG,
        )


def hosts(path: Path) -> list[str]:
    """The aliases defined in the managed config at PATH (empty when it does not exist)."""
    return list(_read(path).hosts())


def options(path: Path, name: str) -> dict[str, str]:
    """NAME's options as {lowercase keyword: value as written}; empty when NAME has no block."""
    values = _read(path).host(name)
    return {key: value if isinstance(value, str) else " ".join(value) for key, value in values.items()}


def put(path: Path, entry: HostEntry) -> None:
    """Add ENTRY's Host block to the managed config at PATH, replacing a block of the same name."""
    config = _read(path)
    _check_single(path, config, entry.name)
    if entry.name in config.hosts():
        config.remove(entry.name)
    config.add(entry.name, **dict(entry.options()))
    _write(path, config)


def remove(path: Path, name: str) -> bool:
    """Remove NAME's Host block; True if there was one. Deletes the file when no host is left."""
    if not path.exists():
        return False
    config = _read(path)
    if name not in config.hosts():
        return False
    _check_single(path, config, name)
    config.remove(name)
    if config.hosts():
        _write(path, config)
    else:
        path.unlink()
    return True
