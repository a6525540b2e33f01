"""A stand-in NVML that replays a GPU trace file (scripts/record-gpu-trace.py writes them on a GPU machine;
tests/runs/fixtures/gpu-trace-synthetic.json is hand-made, labelled so, until a real one is recorded)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SYNTHETIC_TRACE = Path(__file__).parents[1] / "fixtures" / "gpu-trace-synthetic.json"


class TraceNvml:
    """The pynvml calls the samplers make, answering from sample ``at`` of a trace; ``step()`` moves on. A field
    the trace holds as null raises NVMLError('Not Supported'), as the driver does."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, trace: dict[str, Any]) -> None:
        self.trace = trace
        self.at = 0
        self.calls = 0

    @classmethod
    def load(cls, path: Path = SYNTHETIC_TRACE) -> TraceNvml:
        return cls(json.loads(path.read_text()))

    @property
    def samples(self) -> int:
        return len(self.trace["samples"])

    def step(self) -> None:
        self.at += 1

    def _field(self, handle: int, name: str) -> Any:
        self.calls += 1
        value = self.trace["samples"][self.at]["gpus"][handle][name]
        if value is None:
            raise self.NVMLError("Not Supported")
        return value

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.trace["devices"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._field(handle, "util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        total = self.trace["devices"][handle]["memory_total"]
        used = self._field(handle, "mem_used")
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._field(handle, "power_mw"))

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return int(self._field(handle, "temp_c"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return []

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:
        return []
