"""This machine's GPUs and the processes on them, from NVML, for `devagent gpus` and `up`'s GPU ledger where
devagent runs on the server itself. Never raises for a missing library, driver or GPU: the inventory then carries
NVML's error text and no GPUs.

The host side may not import the runtime (pyproject's import-linter contracts): the CLI reads the inventory here
and hands it to the host side as a callable. A remote server's inventory comes from its `nvidia-smi` instead
(devagent/control/engine/gpu_leases.py).

Usage::

    inventory = read_inventory()            # nvml.pynvml; a stand-in library in tests
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from devagent.core.gpu.ledger import Gpu, GpuProcess, Inventory, container_id_from_cgroup
from devagent.inside import nvml


def read_inventory(lib: Any = None, *, proc: Path = Path("/proc")) -> Inventory:
    """Every GPU NVML sees (index, UUID, name, memory, utilisation) and its compute and graphics processes, with the
    container each runs in (from PROC/PID/cgroup; "" for none, None where that cannot be read)."""
    lib = nvml.pynvml if lib is None else lib
    error = nvml.init(lib)
    if error is not None:
        return Inventory(error=f"NVML: {error}")
    try:
        count = nvml.query(lib, lib.nvmlDeviceGetCount)
        if count is None:
            return Inventory(error="NVML cannot count the GPUs")
        gpus, processes = [], []
        for index in range(count):
            handle = nvml.query(lib, lib.nvmlDeviceGetHandleByIndex, index)
            if handle is None:  # a lost GPU is left out
                continue
            uuid = nvml.query(lib, lib.nvmlDeviceGetUUID, handle)
            if not uuid:
                continue
            memory = nvml.query(lib, lib.nvmlDeviceGetMemoryInfo, handle)
            rates = nvml.query(lib, lib.nvmlDeviceGetUtilizationRates, handle)
            gpus.append(Gpu(index=index, uuid=_text(uuid), name=_text(nvml.query(lib, lib.nvmlDeviceGetName, handle)
                                                                       or "?"),
                            memory_used=getattr(memory, "used", None), memory_total=getattr(memory, "total", None),
                            utilization=getattr(rates, "gpu", None)))
            seen: set[int] = set()
            for p in [*(nvml.query(lib, lib.nvmlDeviceGetComputeRunningProcesses, handle) or []),
                      *(nvml.query(lib, lib.nvmlDeviceGetGraphicsRunningProcesses, handle) or [])]:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                processes.append(GpuProcess(
                    gpu_uuid=_text(uuid), pid=int(p.pid), name=_process_name(lib, int(p.pid)),
                    memory_used=used if isinstance(used, int) and used >= 0 else None,
                    container=_container_of(proc, int(p.pid))))
        return Inventory(gpus=tuple(gpus), processes=tuple(processes))
    finally:
        nvml.shutdown(lib)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _process_name(lib: Any, pid: int) -> str:
    name = nvml.query(lib, lib.nvmlSystemGetProcessName, pid) if hasattr(lib, "nvmlSystemGetProcessName") else None
    return _text(name).rsplit("/", 1)[-1] if name else ""


def _container_of(proc: Path, pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return container_id_from_cgroup((proc / str(pid) / "cgroup").read_text(errors="replace"))
    return None
