"""The GPUs of a server and who holds each one, as plain data: the inventory (from NVML or `nvidia-smi`), what each
container asks of Docker, the ledger's leases, and the pure decisions made from them (which GPUs are free, which
to pick, what to refuse). No I/O: the host side reads Docker and the inventory and hands them in.

GPUs are identified by UUID; indexes are for people.

>>> gpus = (Gpu(0, "GPU-aaaa1111", "H200", 1 << 30, 80 << 30, 5), Gpu(1, "GPU-bbbb2222", "H200", 0, 80 << 30, 0))
>>> view = holders_by_gpu(Inventory(gpus), [ContainerGpus("c1", "train-bob", "running", all_gpus=True,
...                                                        how="--gpus all")], leases=())
>>> [h.describe() for h in view["GPU-aaaa1111"]]
['container train-bob (running, --gpus all)']
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devagent.core.gpu.idle_rule import GpuUsage, describe_usage
from devagent.core.markdown import cell
from devagent.core.spec import GpuRequest
from devagent.errors import DevagentError, ExitStatus

# The states in which a container holds the GPUs it asked for: it runs, or `docker start` would give them to it.
HOLDING_STATES = frozenset({"created", "running", "restarting", "paused"})
# What `nvidia-smi` is asked where devagent drives a remote server (the same figures NVML gives locally).
NVIDIA_SMI_GPUS = ["nvidia-smi", "--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu",
                   "--format=csv,noheader,nounits"]
NVIDIA_SMI_PROCESSES = ["nvidia-smi", "--query-compute-apps=gpu_uuid,pid,process_name,used_memory",
                        "--format=csv,noheader,nounits"]
MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_used: int | None = None  # bytes; None where the driver does not say
    memory_total: int | None = None
    utilization: int | None = None  # percent

    @property
    def memory_free(self) -> int | None:
        if self.memory_used is None or self.memory_total is None:
            return None
        return max(self.memory_total - self.memory_used, 0)


@dataclass(frozen=True)
class GpuProcess:
    """A process using a GPU, by host pid. CONTAINER: the id of the container it runs in, "" when it runs in none,
    None when the inventory cannot tell (a remote server's `nvidia-smi`)."""

    gpu_uuid: str
    pid: int
    name: str = ""
    memory_used: int | None = None
    container: str | None = None


@dataclass(frozen=True)
class Inventory:
    """The GPUs of a server. ERROR: why there is none to show (no driver, no NVML), None when it could be read."""

    gpus: tuple[Gpu, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    error: str | None = None

    def by_uuid(self) -> dict[str, Gpu]:
        return {g.uuid: g for g in self.gpus}


@dataclass(frozen=True)
class ContainerGpus:
    """What one container asked Docker for, in GPUs: all of them, or these (indexes or UUIDs, as it wrote them).
    HOW says by which means (``--gpus device=GPU-…``, ``privileged``, …) for a person to recognise it."""

    id: str
    name: str
    state: str
    all_gpus: bool = False
    ids: tuple[str, ...] = ()
    how: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def asks(self) -> bool:
        return self.all_gpus or bool(self.ids)


@dataclass(frozen=True)
class Lease:
    """One GPU leased in the engine's ledger: a created-never-started container named for the GPU's UUID."""

    id: str  # the lease container's id
    gpu_uuid: str
    environment: str  # the devagent environment (container name) that holds it
    owner: str  # who made it: user@machine
    since: str  # ISO time
    shared: bool = False
    up_id: str = ""  # the `up` that took it (its rollback removes exactly its own)


@dataclass(frozen=True)
class Holder:
    """Who holds a GPU, for people and for `up`'s refusal."""

    kind: str  # "environment" | "container" | "process"
    name: str  # environment or container name, or the pid
    detail: str = ""
    shared: bool = False

    def describe(self) -> str:
        what = {"environment": "environment", "container": "container", "process": "pid"}[self.kind]
        return f"{what} {self.name}" + (f" ({self.detail})" if self.detail else "")


# -- reading what Docker and nvidia-smi say ------------------------------------------------------------------------


def container_gpus(inspect: Mapping[str, Any]) -> ContainerGpus:
    """What a container's `docker inspect` (the Engine API's JSON) says it asked for in GPUs: device requests with
    ids or a count (-1: all), the nvidia runtime's NVIDIA_VISIBLE_DEVICES, /dev/nvidia* devices, privileged.

    >>> c = container_gpus({"Id": "c1", "Name": "/t", "State": {"Status": "created"}, "Config": {},
    ...     "HostConfig": {"DeviceRequests": [{"Count": 2, "Capabilities": [["gpu"]]}]}})
    >>> c.ids, c.how
    (('0', '1'), '--gpus 2 (GPUs 0..1)')
    """
    host = _mapping(inspect.get("HostConfig"))
    config = _mapping(inspect.get("Config"))
    state = _mapping(inspect.get("State"))
    all_gpus, ids, how = False, [], []
    for item in _list(host.get("DeviceRequests")):
        request = _mapping(item)
        caps = [c for group in _list(request.get("Capabilities")) for c in _list(group)]
        if "gpu" not in caps and request.get("Driver") != "nvidia":
            continue
        device_ids = [str(d) for d in _list(request.get("DeviceIDs"))]
        raw_count = request.get("Count")
        count = raw_count if isinstance(raw_count, int) else 0
        if device_ids:
            ids += device_ids
            how.append(f"--gpus device={','.join(device_ids)}")
        elif count < 0:
            all_gpus = True
            how.append("--gpus all")
        elif count > 0:  # Docker gives GPUs 0..N-1, whoever holds them
            ids += [str(i) for i in range(min(count, 1024))]  # no server has more; an odd count costs nothing
            how.append(f"--gpus {count} (GPUs 0..{count - 1})")
    if host.get("Runtime") == "nvidia":
        env = dict(str(e).partition("=")[::2] for e in _list(config.get("Env")))
        visible = str(env.get("NVIDIA_VISIBLE_DEVICES", "")).strip()
        if visible == "all":
            all_gpus = True
        elif visible and visible not in ("none", "void"):
            ids += [v.strip() for v in visible.split(",") if v.strip()]
        if visible and visible not in ("none", "void"):
            how.append(f"nvidia runtime, NVIDIA_VISIBLE_DEVICES={visible}")
    for device in _list(host.get("Devices")):
        path = str(_mapping(device).get("PathOnHost", ""))
        m = re.fullmatch(r"/dev/nvidia(\d+)", path)
        if m:
            ids.append(m.group(1))
            how.append(path)
    if host.get("Privileged"):
        all_gpus = True
        how.append("privileged")
    return ContainerGpus(id=str(inspect.get("Id", "")), name=str(inspect.get("Name", "")).lstrip("/"),
                         state=str(state.get("Status", "")), all_gpus=all_gpus, ids=tuple(dict.fromkeys(ids)),
                         how=", ".join(how), labels={str(k): str(v) for k, v in _mapping(config.get("Labels")).items()})


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(text: str) -> int | None:
    text = text.strip()
    try:
        return int(float(text))
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_nvidia_smi(gpus_csv: str, processes_csv: str = "") -> Inventory:
    """The inventory from the output of NVIDIA_SMI_GPUS and NVIDIA_SMI_PROCESSES (memory in MiB).

    >>> inv = parse_nvidia_smi("0, GPU-5c3f1a2b-aaaa, NVIDIA H200, 1024, 143771, 7\\n",
    ...                        "GPU-5c3f1a2b-aaaa, 4242, python, 1000\\n")
    >>> inv.gpus[0].memory_used == 1024 * MIB, inv.gpus[0].utilization, inv.processes[0].pid
    (True, 7, 4242)
    """
    gpus = []
    for row in csv.reader(gpus_csv.splitlines(), skipinitialspace=True):
        if len(row) < 6 or not row[0].strip().isdigit():
            continue
        used, total = _number(row[3]), _number(row[4])
        gpus.append(Gpu(index=int(row[0]), uuid=row[1].strip(), name=row[2].strip(),
                        memory_used=None if used is None else used * MIB,
                        memory_total=None if total is None else total * MIB, utilization=_number(row[5])))
    processes = []
    for row in csv.reader(processes_csv.splitlines(), skipinitialspace=True):
        if len(row) < 4 or not row[1].strip().isdigit():
            continue
        used = _number(row[3])
        processes.append(GpuProcess(gpu_uuid=row[0].strip(), pid=int(row[1]), name=row[2].strip(),
                                    memory_used=None if used is None else used * MIB))
    return Inventory(gpus=tuple(sorted(gpus, key=lambda g: g.index)), processes=tuple(processes))


def container_id_from_cgroup(text: str) -> str:
    """The Docker container a process runs in, from its /proc/PID/cgroup; "" for none.

    >>> container_id_from_cgroup("0::/system.slice/docker-" + "ab" * 32 + ".scope\\n")[:4]
    'abab'
    >>> container_id_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\\n")
    ''
    """
    m = re.search(r"(?:docker[-/])([0-9a-f]{64})", text)
    return m.group(1) if m else ""


# -- the ledger's names ----------------------------------------------------------------------------------------------


def lease_name(gpu_uuid: str) -> str:
    """The name of the lease container for GPU_UUID: Docker keeps container names unique, so one name per GPU is
    the lock. A UUID Docker would not take as a name (a MIG device's slashes) is made into one that it does.

    >>> lease_name("GPU-5c3f1a2b-8e7d-4f1a-9c3e-0b1d2e3f4a5b")
    'devagent-gpu-GPU-5c3f1a2b-8e7d-4f1a-9c3e-0b1d2e3f4a5b'
    >>> lease_name("MIG-GPU-5c3f1a2b/1/0")
    'devagent-gpu-MIG-GPU-5c3f1a2b_1_0'
    """
    return "devagent-gpu-" + re.sub(r"[^a-zA-Z0-9_.-]", "_", gpu_uuid)


# -- decisions -----------------------------------------------------------------------------------------------------


def resolve_ids(ids: Iterable[str], gpus: Sequence[Gpu]) -> list[str]:
    """UUIDs for IDS (indexes or UUIDs, as a container or a user wrote them); those that name no GPU are left out."""
    by_index = {str(g.index): g.uuid for g in gpus}
    uuids = {g.uuid for g in gpus}
    return [by_index.get(i, i) for i in ids if i in by_index or i in uuids]


def holders_by_gpu(inventory: Inventory, containers: Iterable[ContainerGpus], leases: Iterable[Lease],
                   *, ignore_environment: str | None = None) -> dict[str, list[Holder]]:
    """Who holds each GPU of INVENTORY, by UUID: devagent environments (their leases), other containers that asked
    for it and still hold it (created or running), processes outside containers. IGNORE_ENVIRONMENT: the environment
    `up --recreate` replaces, which keeps its own GPUs."""
    gpus = inventory.gpus
    holders: dict[str, list[Holder]] = {g.uuid: [] for g in gpus}
    leased_by: dict[str, str] = {}
    for lease in leases:
        if lease.environment == ignore_environment or lease.gpu_uuid not in holders:
            continue
        leased_by.setdefault(lease.gpu_uuid, lease.environment)
        detail = f"{lease.owner}, since {lease.since}" + (", shared" if lease.shared else "")
        holders[lease.gpu_uuid].append(Holder("environment", lease.environment, detail, shared=lease.shared))
    by_id = {}
    for c in containers:
        by_id[c.id] = c
        environment = c.labels.get("devagent.name") if c.labels.get("devagent.managed") == "true" else None
        if environment is not None and environment == ignore_environment:
            continue
        if not c.asks or c.state not in HOLDING_STATES:
            continue
        targets = [g.uuid for g in gpus] if c.all_gpus else resolve_ids(c.ids, gpus)
        shared = c.labels.get("devagent.share-gpus") == "true"
        for uuid in targets:
            if environment is None:
                holders[uuid].append(Holder("container", c.name, f"{c.state}, {c.how}", shared=shared))
            elif leased_by.get(uuid) != environment:  # else its lease says it already
                # An environment whose `up` has not leased it yet, or one made before the ledger, or one sharing
                holders[uuid].append(Holder("environment", environment, f"container {c.name}, {c.state}",
                                            shared=shared))
    for p in inventory.processes:
        if p.gpu_uuid in holders and not (p.container and p.container in by_id):  # else shown as its container
            holders[p.gpu_uuid].append(_process_holder(p))
    return holders


def _process_holder(p: GpuProcess) -> Holder:
    if p.container:
        where = f"in container {p.container[:12]}"
    else:
        where = "outside containers" if p.container == "" else "host pid"
    memory = f", {p.memory_used / GIB:.1f} GiB" if p.memory_used is not None else ""
    return Holder("process", str(p.pid), f"{p.name or '?'}, {where}{memory}")


def choose(request: GpuRequest, inventory: Inventory, holders: Mapping[str, Sequence[Holder]], *,
           share: bool, keep: Sequence[str] = ()) -> tuple[str, ...]:
    """The UUIDs REQUEST gets (every GPU for "all"), or the refusal: GPU_BUSY naming a holder of a GPU asked for,
    or too few free GPUs; GPU_UNAVAILABLE when the server has no such GPU. "any:N" takes the N free GPUs with the
    most free memory; KEEP: the GPUs the environment had (`up --recreate`), which "any:N" keeps first. SHARE: GPUs
    held by others may be taken too (never for "any:N", which means free ones).

    >>> inv = Inventory((Gpu(0, "GPU-a", "H200", 70 * GIB, 80 * GIB), Gpu(1, "GPU-b", "H200", 1 * GIB, 80 * GIB),
    ...                  Gpu(2, "GPU-c", "H200", 0, 80 * GIB)))
    >>> choose(GpuRequest("any", count=2), inv, {"GPU-a": [], "GPU-b": [], "GPU-c": []}, share=False)
    ('GPU-c', 'GPU-b')
    """
    if request.mode == "none":
        return ()
    gpus = inventory.gpus
    if not gpus:
        raise DevagentError(
            "GPUs were requested but this server has none devagent can see"
            + (f" ({inventory.error})" if inventory.error else ""),
            hint="check the NVIDIA driver (nvidia-smi, `devagent gpus`), or run without GPUs: --gpus none",
            status=ExitStatus.GPU_UNAVAILABLE)
    if request.mode == "any":
        own = [g for g in gpus if g.uuid in keep]
        free = [g for g in gpus if g.uuid not in keep and not holders.get(g.uuid)]
        if len(own) + len(free) < request.count:
            busy = [f"{g.index} ({holders[g.uuid][0].describe()})" for g in gpus if holders.get(g.uuid)]
            raise DevagentError(
                f"--gpus any:{request.count}: only {len(own) + len(free)} of {len(gpus)} GPUs are free"
                + (f"; held: {'; '.join(busy)}" if busy else ""),
                hint="see who holds what with `devagent gpus`; ask for fewer, or wait for a GPU to be released",
                status=ExitStatus.GPU_BUSY)
        free.sort(key=lambda g: (-(g.memory_free if g.memory_free is not None else -1), g.index))
        return tuple(g.uuid for g in [*own, *free][:request.count])
    if request.mode == "all":
        wanted = [g.uuid for g in gpus]
    else:
        by_index = {str(g.index): g.uuid for g in gpus}
        uuids = {g.uuid for g in gpus}
        missing = [d for d in request.devices if d not in by_index and d not in uuids]
        if missing:
            raise DevagentError(
                f"--gpus {request.describe()}: this server has no GPU {', '.join(missing)}",
                hint="`devagent gpus` lists its GPUs by index and UUID", status=ExitStatus.GPU_UNAVAILABLE)
        wanted = [by_index.get(d, d) for d in request.devices]
    if not share:
        index = {g.uuid: g.index for g in gpus}
        for uuid in wanted:
            if holders.get(uuid):
                raise busy_error(index[uuid], uuid, holders[uuid][0])
    return tuple(wanted)


def busy_error(index: int | str, uuid: str, holder: Holder) -> DevagentError:
    return DevagentError(
        f"GPU {index} ({uuid}) is held by {holder.describe()}",
        hint="`devagent gpus` shows who holds what; pick free GPUs (--gpus any:N), ask the holder, or share "
        "knowingly: --share-gpus", status=ExitStatus.GPU_BUSY)


# -- showing -------------------------------------------------------------------------------------------------------


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"


def render_table(inventory: Inventory, holders: Mapping[str, Sequence[Holder]],
                 others: Sequence[ContainerGpus] = (), usage: Mapping[str, HolderUsage] | None = None
                 ) -> list[str]:
    """`devagent gpus`: one row per GPU, then one line per further holder of it; OTHERS: containers that ask for
    GPUs this inventory cannot place (when it could not be read). USAGE: by GPU UUID, what the environment
    holding it recorded of its last hour, said after that holder (core/gpu/idle_rule.py).

    >>> inv = Inventory((Gpu(0, "GPU-a", "NVIDIA H200", 1 * GIB, 140 * GIB, 3),))
    >>> print("\\n".join(render_table(inv, {"GPU-a": [Holder("environment", "exp", "alice@gpu1, since 12:00")]})))
    GPU  UUID      NAME         MEMORY (GiB)  UTIL  HELD BY
    0    GPU-a     NVIDIA H200  1.0 / 140.0     3%  environment exp (alice@gpu1, since 12:00)
    """
    # Every field through `cell`: holders' names and details come from labels anyone on the engine can write
    # (a lease's environment and owner), a container's device request, or a process's own name.
    lines = []
    if inventory.error:
        lines.append(f"no GPU inventory: {cell(inventory.error)}")
    if inventory.gpus:
        uuids = {g.uuid: cell(g.uuid) for g in inventory.gpus}
        names = {g.uuid: cell(g.name) for g in inventory.gpus}
        uuid_width = max(8, *(len(u) for u in uuids.values()))
        name_width = max(4, *(len(n) for n in names.values()))
        lines.append(f"{'GPU':4} {'UUID':{uuid_width}}  {'NAME':{name_width}}  {'MEMORY (GiB)':12}  {'UTIL':>4}  "
                     "HELD BY")
        for g in inventory.gpus:
            memory = f"{_gib(g.memory_used)} / {_gib(g.memory_total)}"
            util = "?" if g.utilization is None else f"{g.utilization}%"
            held = [cell(h.describe() + _usage_text(h, (usage or {}).get(g.uuid)))
                    for h in holders.get(g.uuid, ())] or ["free"]
            lines.append(f"{g.index:<4} {uuids[g.uuid]:{uuid_width}}  {names[g.uuid]:{name_width}}  {memory:12}  "
                         f"{util:>4}  {held[0]}")
            pad = 4 + 1 + uuid_width + 2 + name_width + 2 + 12 + 2 + 4 + 2
            lines += [" " * pad + h for h in held[1:]]
    for c in others:
        asked = "all GPUs" if c.all_gpus else ", ".join(c.ids)
        lines.append(cell(f"container {c.name} ({c.state}) asks for {asked}: {c.how}"))
    return lines


@dataclass(frozen=True)
class HolderUsage:
    """What the environment ENVIRONMENT recorded of one GPU it holds (core/gpu_idle.GpuUsage)."""

    environment: str
    usage: GpuUsage


def _usage_text(holder: Holder, found: HolderUsage | None) -> str:
    """ · last hour 2%, idle 45m — after the environment that recorded it.

    >>> _usage_text(Holder("environment", "exp"), HolderUsage("exp", GpuUsage(2.4, 2700.0, "t")))
    ' · last hour 2%, idle 45m'
    """
    if found is None or holder.kind != "environment" or holder.name != found.environment:
        return ""
    mean, idle = describe_usage(found.usage)
    return f" · last hour {mean}, idle {idle}"


def describe_choice(request: GpuRequest, uuids: Sequence[str], gpus: Sequence[Gpu], *, shared: bool) -> str:
    """The GPUs an environment got, for its notebook header: what was asked and, by UUID, what it got.

    >>> describe_choice(GpuRequest("any", count=1), ["GPU-b"], [Gpu(1, "GPU-b", "H200")], shared=False)
    'any:1 → GPU 1 GPU-b'
    """
    if request.mode == "none":
        return "none"
    index = {g.uuid: g.index for g in gpus}
    got = ", ".join(f"GPU {index.get(u, '?')} {u}" for u in uuids)
    text = f"{request.describe()} → {got}"
    return text + (" · shared knowingly (--share-gpus)" if shared else "")


def stand_in_inventory(text: str) -> Inventory:
    """TEST SEAM, never used by the product on its own: an inventory from a JSON file that a test names in
    DEVAGENT_TEST_GPU_INVENTORY (on a machine without GPUs), ``{"gpus": "<nvidia-smi --query-gpu CSV>",
    "processes": "<nvidia-smi --query-compute-apps CSV>"}`` in NVIDIA_SMI_GPUS' and NVIDIA_SMI_PROCESSES' columns.

    >>> stand_in_inventory('{"gpus": "0, GPU-a1b2c3d4, Fake GPU, 0, 81920, 0"}').gpus[0].uuid
    'GPU-a1b2c3d4'
    """
    import json

    data = json.loads(text)
    return parse_nvidia_smi(str(data.get("gpus", "")), str(data.get("processes", "")))


def envelope(inventory: Inventory, holders: Mapping[str, Sequence[Holder]], version: int,
             usage: Mapping[str, HolderUsage] | None = None) -> dict[str, object]:
    """`devagent gpus --json`. USAGE: as render_table's; each GPU's "usage" is null where none was recorded."""
    usage = usage or {}
    return {
        "version": version,
        "error": inventory.error,
        "gpus": [{
            "index": g.index, "uuid": g.uuid, "name": g.name, "memory_used_bytes": g.memory_used,
            "memory_total_bytes": g.memory_total, "utilization_percent": g.utilization,
            "holders": [{"kind": h.kind, "name": h.name, "detail": h.detail, "shared": h.shared}
                        for h in holders.get(g.uuid, ())],
            "usage": _usage_json(usage.get(g.uuid)),
        } for g in inventory.gpus],
    }


def _usage_json(found: HolderUsage | None) -> dict[str, object] | None:
    if found is None:
        return None
    return {"environment": found.environment, "mean_utilization_percent_last_hour": found.usage.mean_utilization,
            "idle_seconds": found.usage.idle_seconds, "recorded_at": found.usage.time}
