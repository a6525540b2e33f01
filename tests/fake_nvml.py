"""A stand-in NVML for the tests (this machine has no GPU): the pynvml calls devagent makes — the agent's idle
watcher (agent/idle.py), the local GPU inventory (inside/gpu_inventory.py), a run's memory sampler
(runs/gpu_memory.py) — over hand-made GPUs whose figures a test sets and changes as it goes.

A figure a test sets to None is one the GPU cannot give: the call raises ``NVMLError("Not Supported")``, as the
driver does (inside/nvml.py's `query` makes it None). The replay of a recorded trace is tests/runs/support/
trace_nvml.py; the product's own file-driven stand-in, agent/idle.py's StandInNvml.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from devagent.core.gpu.ledger import GIB

Processes = list[tuple[int, int | None]]  # (pid, its GPU memory; None: NVML does not say)


class NVMLError(Exception):
    """pynvml's error type (the library's own is pynvml.NVMLError)."""


class FakeNvml:
    """COUNT GPUs (or one per UUIDS, as NVML gives them: str or bytes), each idle, GIB of TOTAL used, no process.
    INIT_ERROR: NVML does not start (no driver) and says so. A test changes ``util``, ``used``, ``running`` (the
    compute processes) and ``graphics``, by GPU index; ``shutdowns`` counts nvmlShutdown."""

    NVMLError = NVMLError

    def __init__(self, count: int = 2, *, uuids: Sequence[str | bytes] = (), total: int = 80 * GIB,
                 init_error: str | None = None) -> None:
        self.uuids = list(uuids) or [f"GPU-{i}{i}{i}{i}-test" for i in range(count)]
        gpus = range(len(self.uuids))
        self.name = b"NVIDIA H200"
        self.total = total
        self.util: dict[int, int | None] = dict.fromkeys(gpus, 0)
        self.used: dict[int, int] = dict.fromkeys(gpus, GIB)
        self.running: dict[int, Processes | None] = {i: [] for i in gpus}
        self.graphics: dict[int, Processes | None] = {i: [] for i in gpus}
        self.process_name = b"/usr/bin/python3"
        self.init_error = init_error
        self.shutdowns = 0

    @property
    def shut(self) -> bool:
        return self.shutdowns > 0

    @staticmethod
    def _given(value: object) -> None:
        if value is None:
            raise NVMLError("Not Supported")

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.uuids)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str | bytes:
        return self.uuids[handle]

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return self.name

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        used = self.used[handle]
        return SimpleNamespace(total=self.total, used=used, free=self.total - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self._given(self.util[handle])
        return SimpleNamespace(gpu=self.util[handle], memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return self._processes(self.running[handle])

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return self._processes(self.graphics[handle])

    def _processes(self, listed: Processes | None) -> list[SimpleNamespace]:
        self._given(listed)
        return [SimpleNamespace(pid=pid, usedGpuMemory=memory) for pid, memory in listed or []]

    def nvmlSystemGetProcessName(self, pid: int) -> bytes:
        return self.process_name
