"""The GPU ledger: which GPU each environment holds, kept in the Docker Engine itself — the one state every user of a
server shares — and who else holds GPUs there (other containers, processes outside containers).

A lease is a container that is created and never started, named for the GPU (``devagent-gpu-<UUID>``) and labelled
with the environment, the person and the time. Docker refuses a second container of a name in the same step that
checks for it, so of two `up`s taking one GPU at the same moment exactly one gets it, whichever machine or
DEVAGENT_HOME each runs from. Why a container: it is the one kind of object whose names the engine keeps unique
atomically — a volume create with a taken name returns the existing volume, an engine older than API 1.44 lets two
networks share a name, an image tag is simply moved. See docs/explanation/gpu-ledger.md.

`up` makes its environment's container first (under its temporary name, with the GPUs' UUIDs in its device
request and the environment's name in its labels), then the leases: so a lease whose environment has no container
left is stale — its `up` failed after a SIGKILL, or the container was removed by hand — and is reclaimed.

Usage::

    ledger = GpuLedger(site.engine, inventory=site.gpu_inventory, clock_is_ours=site.engine_clock_is_ours,
                       cache=paths.home / "cache" / "container-gpus.json")
    state = ledger.state()                                  # inventory, holders by GPU
    taken = ledger.take(uuids, environment="exp", owner="alice@gpu1", up_id="3f2a", shared=False)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from devagent.control.atomic import atomic_write, ensure_private_dir
from devagent.control.engine.docker_engine import lease_of
from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.engine_data import (
    LEASE_ENV_LABEL,
    LEASE_LABEL,
    LEASE_OWNER_LABEL,
    LEASE_SHARED_LABEL,
    LEASE_SINCE_LABEL,
    LEASE_UP_LABEL,
    ContainerRow,
)
from devagent.core import layout
from devagent.core.gpu.idle_rule import RELEASED_EXIT, parse_usage
from devagent.core.gpu.ledger import (
    NVIDIA_SMI_GPUS,
    NVIDIA_SMI_PROCESSES,
    ContainerGpus,
    Holder,
    HolderUsage,
    Inventory,
    Lease,
    busy_error,
    holders_by_gpu,
    lease_name,
    parse_nvidia_smi,
)

# The GPUs an environment got, by UUID (its device request holds the same), for `ls`, `--recreate` and `up` of an
# environment that gave them back (control/lifecycle/provision.py writes it).
GPU_UUIDS_LABEL = "devagent.gpu-uuids"
USAGE_LIMIT = 256 << 10  # an agent's usage record is a few KiB; a bigger file is not one

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[bytes]"]


def nvidia_smi_inventory(run: Run) -> Inventory:
    """A server's inventory from its `nvidia-smi`, through RUN (argv → the finished process, as ServerLink.run
    gives it): how devagent sees the GPUs of a server it drives over ssh. Which container a process runs in is not
    asked (the figures are the same NVML gives locally)."""
    gpus = run(NVIDIA_SMI_GPUS)
    if gpus.returncode != 0:  # no nvidia-smi there (127), no driver: the inventory says why
        why = (gpus.stderr or gpus.stdout or b"").decode(errors="replace").strip().splitlines()
        return Inventory(error=f"nvidia-smi exited with {gpus.returncode}" + (f": {why[-1]}" if why else ""))
    processes = run(NVIDIA_SMI_PROCESSES)
    return parse_nvidia_smi(gpus.stdout.decode(errors="replace"),
                            processes.stdout.decode(errors="replace") if processes.returncode == 0 else "")


@dataclass(frozen=True)
class LedgerState:
    inventory: Inventory
    holders: dict[str, list[Holder]]  # by GPU UUID
    containers: list[ContainerGpus]  # every container that asks for GPUs (leases aside)
    leases: list[Lease]  # live ones
    stale: list[Lease]  # those whose environment is gone, or gave its GPUs back
    environments: tuple[ContainerGpus, ...] = ()  # every devagent environment's container


class GpuLedger:
    """The ledger over one engine. INVENTORY reads the server's GPUs; CACHE (a file in DEVAGENT_HOME, optional)
    keeps what each container asked for by container id — fixed when a container is made, so one list call plus
    an inspect of only the containers not seen before answers `devagent gpus`. CLOCK_IS_OURS: the site's word
    (Site.engine_clock_is_ours) whether a holder's record may be kept until the engine's next check."""

    def __init__(self, engine: EngineApi, *, inventory: Callable[[], Inventory], clock_is_ours: bool,
                 cache: Path | None = None) -> None:
        self.engine = engine
        self.inventory = inventory
        self.clock_is_ours = clock_is_ours
        self.cache = cache

    # -- reading -----------------------------------------------------------------------------------------------

    def state(self, *, ignore_environment: str | None = None) -> LedgerState:
        inventory = self.inventory()
        rows = self.engine.container_rows()
        containers = self._containers(rows)
        leases = [lease_of(r.id, r.labels) for r in rows if LEASE_LABEL in r.labels]  # the same one list call
        # Without inspects (this is `devagent gpus`): a lease of an environment that gave its GPUs back counts as
        # free even in the moment an `up` starting it again has just taken it; `take` looks closer, and refuses.
        live = [lease for lease in leases if self._holds(lease, rows, closely=False)]
        stale = [lease for lease in leases if lease not in live]
        holders = holders_by_gpu(inventory, containers, live, ignore_environment=ignore_environment)
        return LedgerState(inventory, holders, [c for c in containers if c.asks], live, stale,
                           tuple(c for c in containers if c.labels.get("devagent.managed") == "true"))

    def _containers(self, rows: list[ContainerRow]) -> list[ContainerGpus]:
        cached = self._load_cache()
        result: list[ContainerGpus] = []
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:
            if LEASE_LABEL in row.labels:
                continue
            asked = cached.get(row.id)
            if asked is None:
                gpus = self.engine.container_gpus(row.id)
                if gpus is None:  # removed between the list and the inspect
                    continue
                asked = {"all": gpus.all_gpus, "ids": list(gpus.ids), "how": gpus.how}
            fresh[row.id] = asked
            result.append(ContainerGpus(id=row.id, name=row.name, state=row.state, all_gpus=bool(asked["all"]),
                                        ids=tuple(str(i) for i in asked["ids"]), how=str(asked["how"]),
                                        labels=row.labels))
        if fresh.keys() != cached.keys():
            self._save_cache(fresh)  # only the containers that exist: the file stays as small as the engine's list
        return result

    def _load_cache(self) -> dict[str, dict[str, Any]]:
        if self.cache is None:
            return {}
        try:
            data = json.loads(self.cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_cache(self, data: dict[str, dict[str, Any]]) -> None:
        self._save(self.cache, data)

    @staticmethod
    def _save(path: Path | None, data: dict[str, dict[str, Any]], *, durable: bool = True) -> None:
        """Write a cache: a read-only home only costs the inspects next time. Not DURABLE: no fsync (the
        holders' records are written about once a check interval, by the call that pays their inspects; one lost
        to a power cut is read again), yet replaced whole."""
        if path is None:
            return
        text = json.dumps(data, sort_keys=True).encode()
        with contextlib.suppress(OSError):
            ensure_private_dir(path.parent)
            if durable:
                atomic_write(path, text, mode=0o600)
                return
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(text)
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def usage(self, state: LedgerState) -> dict[str, HolderUsage]:
        """By GPU UUID: what the running environment that leases it recorded of its last hour (its agent's
        usage record, core/gpu/idle_rule.py), read from its last health check's output (one inspect per such
        environment, none while a record read before is still the last one Docker holds), else from its file
        (one get_archive). Environments whose agent records none (made by an older devagent, no NVML inside) are
        left out."""
        leased = {lease.gpu_uuid: lease.environment for lease in state.leases}
        wanted = set(leased.values())
        holders = [c for c in state.environments if c.state == "running" and c.name in wanted
                   and c.labels.get("devagent.name") == c.name]
        kept = self._load_printed()
        now = time.time()
        fresh: dict[str, dict[str, Any]] = {}

        def read(c: ContainerGpus) -> str:
            # The record the last health check printed is at most one check interval older than the file.
            # Docker runs no check before the last one's end plus the interval, so until then a record read
            # before is the one an inspect (~1 ms each: 8 holders tripled `devagent gpus`'s time) would return.
            old = kept.get(c.id)
            if old and isinstance(old.get("record"), str) and now < float(old.get("until") or 0):
                fresh[c.id] = old
                return str(old["record"])
            printed = self.engine.health_usage(c.id, clock_is_ours=self.clock_is_ours)
            if printed.record is not None and parse_usage(printed.record):
                if printed.until > now:
                    fresh[c.id] = {"record": printed.record, "until": printed.until}
                return printed.record
            # The file (one get_archive, ~35 ms) only where the output has none: the first check not run yet,
            # an environment made by an older devagent, a record too long for the output.
            home = Path(layout.login_home(c.labels.get("devagent.user", "dev")))
            data = self.engine.read_file(c.id, str(layout.gpu_usage_file(home)), limit=USAGE_LIMIT)
            return data.decode(errors="replace") if data else ""

        # One after another: side by side measured no faster here (dockerd does the work; 4 reads took 123 ms
        # either way on 2 loaded cores).
        records = [read(c) for c in holders]
        if fresh != kept:
            self._save(self._printed_cache(), fresh, durable=False)
        found: dict[str, HolderUsage] = {}
        for c, text in zip(holders, records, strict=True):
            for uuid, usage in parse_usage(text).items():
                if leased.get(uuid) == c.name:
                    found[uuid] = HolderUsage(c.name, usage)
        return found

    def _printed_cache(self) -> Path | None:
        """Beside the cache of what containers asked for: the holders' records read from their checks' output,
        each with until when it stays the last (core/health.py's printed)."""
        return None if self.cache is None else self.cache.with_name("gpu-usage-printed.json")

    def _load_printed(self) -> dict[str, dict[str, Any]]:
        path = self._printed_cache()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    # -- changing ----------------------------------------------------------------------------------------------

    def take(self, uuids: Sequence[str], *, environment: str, container_id: str, owner: str, up_id: str,
             shared: bool, replacing: bool = False, index: dict[str, int] | None = None) -> list[Lease]:
        """Lease each of UUIDS for ENVIRONMENT, whose new container CONTAINER_ID must exist already. Returns the
        leases made now. When REPLACING (`up --recreate`, the old container still there), a GPU the environment
        leases already stays leased. A stale lease is reclaimed — one of this environment's name too, when not
        replacing (its `up` died) — and one another environment holds is GPU_BUSY, unless SHARED, when it is left
        to its holder. The caller undoes a failure with ``release_up(up_id)`` (made leases carry UP_ID)."""
        made: list[Lease] = []
        since = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        labels = {LEASE_ENV_LABEL: environment, LEASE_OWNER_LABEL: owner, LEASE_SINCE_LABEL: since,
                  LEASE_SHARED_LABEL: "true" if shared else "false", LEASE_UP_LABEL: up_id}
        for uuid in uuids:
            for _attempt in range(3):  # a stale lease in the way is removed, then the name is tried again
                lease = self.engine.create_lease(lease_name(uuid), {**labels, LEASE_LABEL: uuid})
                if lease is not None:
                    made.append(lease)
                    break
                holder = next((x for x in self.engine.leases() if x.gpu_uuid == uuid), None)
                if holder is None:
                    continue  # released meanwhile: try again
                if holder.environment == environment and replacing:
                    break  # ours already, held by the container being replaced
                if not self._holds(holder, self.engine.container_rows(), besides=container_id):
                    self.engine.remove(holder.id)  # by id: a fresh lease someone makes meanwhile is not touched
                    continue
                if shared:
                    break
                raise busy_error((index or {}).get(uuid, "?"), uuid, Holder(
                    "environment", holder.environment, f"{holder.owner}, since {holder.since}"))
            else:
                raise busy_error((index or {}).get(uuid, "?"), uuid, Holder("environment", "?", "taken meanwhile"))
        return made

    def _holds(self, lease: Lease, rows: Sequence[ContainerRow], *, besides: str = "", closely: bool = True
               ) -> bool:
        """Whether LEASE is live: a container of its environment exists (under any name, other than BESIDES, the
        caller's own: a lease of the same name is not kept alive by the up that meets it) and has not given its
        GPUs back (core/gpu/idle_rule.py: exited with RELEASED_EXIT) — unless the lease was made after it did (the
        `up` that starts it again took it: compared on the engine's own clock, by inspecting both, unless not
        CLOSELY)."""
        mine = [r for r in rows if r.labels.get("devagent.name") == lease.environment
                and r.labels.get("devagent.managed") == "true" and r.id != besides]
        if not mine:
            return False
        if not all(released(r) for r in mine):
            return True
        if not closely:
            return False
        made = self.engine.lifetime(lease.id)
        finished = [self.engine.lifetime(r.id) for r in mine]
        return made is not None and all(f is None or made[0] > f[1] for f in finished)

    def release_up(self, up_id: str) -> None:
        """Remove the leases the `up` UP_ID made (its rollback)."""
        for lease in self.engine.leases():
            if lease.up_id == up_id:
                self.engine.remove(lease.id)

    def release(self, environment: str, *, keep: Sequence[str] = ()) -> list[Lease]:
        """Remove ENVIRONMENT's leases but those of the GPUs in KEEP (`down`, and `up --recreate` with fewer GPUs);
        also every stale lease met on the way. Returns the environment's leases removed."""
        rows = self.engine.container_rows()
        removed = []
        for lease in self.engine.leases():
            if lease.environment == environment and lease.gpu_uuid not in keep:
                self.engine.remove(lease.id)
                removed.append(lease)
            elif lease.environment != environment and not self._holds(lease, rows):
                self.engine.remove(lease.id)
        return removed

    def retake(self, container: ContainerRow, *, owner: str, up_id: str) -> list[Lease]:
        """For `up NAME` of an environment that gave its GPUs back (its CONTAINER exited with RELEASED_EXIT): lease
        the GPUs it was made with again, before it starts (its device request names them, by UUID). GPU_BUSY when
        someone took one meanwhile (`up --recreate` then makes it anew with free GPUs); the caller undoes a later
        failure with ``release_up(up_id)``. [] for any other container."""
        if not released(container):
            return []
        uuids = [u for u in container.labels.get(GPU_UUIDS_LABEL, "").split(",") if u]
        try:
            return self.take(uuids, environment=container.labels.get("devagent.name", container.name),
                             container_id=container.id, owner=owner, up_id=up_id,
                             shared=container.labels.get("devagent.share-gpus") == "true")
        except BaseException:
            self.release_up(up_id)
            raise


def released(row: ContainerRow) -> bool:
    """Whether the environment container ROW gave its GPUs back: its agent stopped it for its idle limit."""
    return row.state == "exited" and row.exit_code == RELEASED_EXIT


def owner_name() -> str:
    """Who takes a lease, for people reading `devagent gpus`: user@machine."""
    try:
        import getpass

        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{os.uname().nodename}"
