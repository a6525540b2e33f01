"""The local GPU inventory from NVML, with a stand-in library (this machine has no GPU): every figure read,
processes placed in their containers by /proc/PID/cgroup, and no exception for a missing driver or field."""

from __future__ import annotations

from pathlib import Path

from devagent.core.gpu.ledger import GIB, Gpu, GpuProcess, Inventory
from devagent.inside.gpu_inventory import read_inventory
from tests.fake_nvml import FakeNvml

CONTAINER = "ab" * 32


def two_h200s(*, init_error: str | None = None) -> FakeNvml:
    """GPU 0 at 42 % with a compute process that is also a graphics one, and another graphics process; GPU 1,
    1 GiB used, its utilisation not supported."""
    lib = FakeNvml(2, total=141 * GIB, init_error=init_error)
    lib.util, lib.used = {0: 42, 1: None}, {0: 0, 1: GIB}
    lib.running[0] = [(100, GIB)]
    lib.graphics[0] = [(100, None), (7, None)]
    return lib


def test_every_gpu_its_figures_and_its_processes_with_their_containers(tmp_path: Path) -> None:
    (tmp_path / "100").mkdir()
    (tmp_path / "100" / "cgroup").write_text(f"0::/system.slice/docker-{CONTAINER}.scope\n")
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    lib = two_h200s()
    inventory = read_inventory(lib, proc=tmp_path)
    assert inventory == Inventory(
        gpus=(Gpu(0, "GPU-0000-test", "NVIDIA H200", 0, 141 * GIB, 42),
              Gpu(1, "GPU-1111-test", "NVIDIA H200", GIB, 141 * GIB, None)),
        processes=(GpuProcess("GPU-0000-test", 100, "python3", GIB, CONTAINER),
                   GpuProcess("GPU-0000-test", 7, "python3", None, "")))
    assert lib.shut


def test_no_driver_is_an_inventory_that_says_why() -> None:
    assert read_inventory(two_h200s(init_error="Driver Not Loaded")) == Inventory(error="NVML: Driver Not Loaded")
