"""One reading of one GPU through NVML: utilisation, memory, power, temperature — what the run's GPU timeline and
`devagent gpus`' idle view both sample. NVML is reached only through inside/nvml.py (its guard); a figure the
driver does not give (power on some boards, utilisation under MIG) is None, never an error.

>>> from types import SimpleNamespace as NS
>>> class Lib:
...     class NVMLError(Exception): pass
...     NVML_TEMPERATURE_GPU = 0
...     def nvmlDeviceGetUtilizationRates(self, h): return NS(gpu=87, memory=40)
...     def nvmlDeviceGetMemoryInfo(self, h): return NS(used=3 << 30, total=80 << 30)
...     def nvmlDeviceGetPowerUsage(self, h): raise self.NVMLError("Not Supported")
...     def nvmlDeviceGetTemperature(self, h, sensor): return 61
>>> read_gpu(Lib(), "h")
GpuReading(util=87, mem_used=3221225472, mem_total=85899345920, power_w=None, temp_c=61)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devagent.inside import nvml as nvml_guard

__all__ = ["GpuReading", "read_gpu"]


@dataclass(frozen=True)
class GpuReading:
    """What NVML said about one GPU at one moment; None where the driver does not tell."""

    util: int | None  # percent of the last sample period a kernel ran (nvmlDeviceGetUtilizationRates().gpu)
    mem_used: int | None  # bytes
    mem_total: int | None
    power_w: float | None
    temp_c: int | None


def read_gpu(lib: Any, handle: Any) -> GpuReading:
    """One reading of the GPU behind HANDLE (about 4 NVML calls, 1-7 µs each on an H100 machine)."""
    rates = _ask(lib, "nvmlDeviceGetUtilizationRates", handle)
    memory = _ask(lib, "nvmlDeviceGetMemoryInfo", handle)
    power = _ask(lib, "nvmlDeviceGetPowerUsage", handle)  # milliwatts
    temp = _ask(lib, "nvmlDeviceGetTemperature", handle, getattr(lib, "NVML_TEMPERATURE_GPU", 0))
    return GpuReading(
        util=int(rates.gpu) if rates is not None else None,
        mem_used=int(memory.used) if memory is not None else None,
        mem_total=int(memory.total) if memory is not None else None,
        power_w=power / 1000 if power is not None else None,
        temp_c=int(temp) if temp is not None else None,
    )


def _ask(lib: Any, name: str, *args: Any) -> Any:
    """LIB.NAME(*ARGS), or None where NVML cannot answer or this binding lacks the call."""
    call = getattr(lib, name, None)
    return None if call is None else nvml_guard.query(lib, call, *args)
