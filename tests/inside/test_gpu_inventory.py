"""The local GPU inventory from NVML, with a stand-in library (this machine has no GPU): every figure read,
processes placed in their containers by /proc/PID/cgroup, and no exception for a missing driver or field."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from devagent.core.gpu.ledger import GIB, Gpu, GpuProcess, Inventory
from devagent.inside.gpu_inventory import read_inventory

CONTAINER = "ab" * 32


class NVMLError(Exception):
    pass


class FakeNvml:
    NVMLError = NVMLError

    def __init__(self, *, init_error: str | None = None) -> None:
        self.init_error = init_error
        self.shut = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle}{handle}{handle}{handle}-test"

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H200"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=handle * GIB, total=141 * GIB)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        if handle == 1:
            raise NVMLError("Not Supported")
        return SimpleNamespace(gpu=42)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=100 + handle, usedGpuMemory=GIB)] if handle == 0 else []

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=100, usedGpuMemory=None), SimpleNamespace(pid=7, usedGpuMemory=None)] \
            if handle == 0 else []

    def nvmlSystemGetProcessName(self, pid: int) -> bytes:
        return b"/usr/bin/python3"


def test_every_gpu_its_figures_and_its_processes_with_their_containers(tmp_path: Path) -> None:
    (tmp_path / "100").mkdir()
    (tmp_path / "100" / "cgroup").write_text(f"0::/system.slice/docker-{CONTAINER}.scope\n")
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    lib = FakeNvml()
    inventory = read_inventory(lib, proc=tmp_path)
    assert inventory == Inventory(
        gpus=(Gpu(0, "GPU-0000-test", "NVIDIA H200", 0, 141 * GIB, 42),
              Gpu(1, "GPU-1111-test", "NVIDIA H200", GIB, 141 * GIB, None)),
        processes=(GpuProcess("GPU-0000-test", 100, "python3", GIB, CONTAINER),
                   GpuProcess("GPU-0000-test", 7, "python3", None, "")))
    assert lib.shut


def test_no_driver_is_an_inventory_that_says_why() -> None:
    assert read_inventory(FakeNvml(init_error="Driver Not Loaded")) == Inventory(error="NVML: Driver Not Loaded")
