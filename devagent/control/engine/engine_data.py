"""What the Docker Engine reports and is handed, as plain data: a container as inspected and as listed, a file
for an archive, the GPU leases' labels. No docker import: modules that only read these rows stay light."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from devagent.core.spec import LABEL_PREFIX


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created | running | exited | ...
    labels: Mapping[str, str]
    host_port: int | None
    image: str
    created: str
    exit_code: int | None
    health: str | None = None  # Docker's health status: starting | healthy | unhealthy; None without a check
    health_output: str = ""  # what the last check printed
    # The host port it was made with (HostPort in its port bindings), kept across restarts; None when Docker
    # picks one at every start (environments made before devagent fixed the port).
    fixed_port: int | None = None


@dataclass(frozen=True)
class ContainerRow:
    """A container as one list call gives it (no inspect): enough to know who it is and whether it holds GPUs."""

    id: str
    name: str
    state: str
    labels: Mapping[str, str]
    exit_code: int | None = None  # an exited one's, from the list's status text ("Exited (75) 2 minutes ago")


def listed_exit_code(status: object) -> int | None:
    """The exit code in a list row's status text.

    >>> listed_exit_code("Exited (75) 2 minutes ago"), listed_exit_code("Up 3 hours")
    (75, None)
    """
    m = re.match(r"Exited \((-?\d+)\)", str(status or ""))
    return int(m.group(1)) if m else None


def engine_ns(text: object) -> int:
    """Nanoseconds since the epoch of one of the engine's RFC 3339 times (Created, State.FinishedAt); 0 for none.

    >>> engine_ns("1970-01-01T00:00:01.5Z"), engine_ns("0001-01-01T00:00:00Z") < 0, engine_ns("")
    (1500000000, True, 0)
    """
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", str(text or ""))
    if not m:
        return 0
    seconds = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((m.group(2) or "").ljust(9, "0"))


# The GPU ledger (devagent/control/engine/gpu_leases.py): one created-never-started container per leased GPU, named
# for the GPU (core/gpu/ledger.py's lease_name), from a tiny image of no files that devagent imports on first use.
LEASE_IMAGE = "devagent/gpu-lease:1"
LEASE_LABEL = f"{LABEL_PREFIX}gpu-lease"  # its value: the GPU's UUID
LEASE_ENV_LABEL = f"{LABEL_PREFIX}lease-env"
LEASE_OWNER_LABEL = f"{LABEL_PREFIX}lease-owner"
LEASE_SINCE_LABEL = f"{LABEL_PREFIX}lease-since"
LEASE_SHARED_LABEL = f"{LABEL_PREFIX}lease-shared"
LEASE_UP_LABEL = f"{LABEL_PREFIX}lease-up-id"


@dataclass(frozen=True)
class ArchiveFile:
    path: str  # relative to the archive's destination folder
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
