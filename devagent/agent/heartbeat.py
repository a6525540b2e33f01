"""The agent's heartbeat for Docker's health check (core/health.py has the check and the format).

Every few seconds: is sshd running, does it listen on its port (read from /proc/net/tcp, no connection, so sshd
logs nothing) — and one line written to ~/.cache/devagent/health, atomically, so the check never reads half a line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devagent.core import health

log = logging.getLogger("devagent.health")

PROC_NET = Path("/proc/net")


def health_file() -> Path:
    return Path.home() / health.HEALTH_FILE


def sshd_port(config_text: str, default: int) -> int:
    """The `Port` of an sshd_config (the first one), else DEFAULT.

    >>> sshd_port("# x\\nPort 2222\\nHostKey /k\\n", 22), sshd_port("HostKey /k\\n", 22)
    (2222, 22)
    """
    for line in config_text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].lower() == "port" and fields[1].isdigit():
            return int(fields[1])
    return default


def listening(port: int, proc_net: Path = PROC_NET) -> bool:
    """Whether a socket listens on PORT in this network namespace (IPv4 or IPv6)."""
    for name in ("tcp", "tcp6"):
        try:
            if port in health.listening_ports((proc_net / name).read_text()):
                return True
        except OSError:  # no IPv6 in this container
            continue
    return False


def write_heartbeat(path: Path, line: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(line)
    os.replace(tmp, path)


def keep_beating(path: Path, problems: Callable[[], list[str]], stopping: threading.Event, *,
                 every: float = health.HEARTBEAT_SECONDS,
                 clock: Callable[[], float] = lambda: time.clock_gettime(time.CLOCK_BOOTTIME)) -> None:
    """Write the heartbeat now and every EVERY seconds until STOPPING is set; the file goes with the agent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        while True:
            try:
                write_heartbeat(path, health.heartbeat_line(clock(), problems()))
            except OSError as exc:  # a full disk: the check then reports the agent stale, which is near enough
                log.warning("cannot write the health heartbeat %s: %s", path, exc)
            if stopping.wait(every):
                break
    finally:
        path.unlink(missing_ok=True)
