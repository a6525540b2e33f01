"""Helpers the run-summary tests share: a hand-made /proc, and how many GPUs the real NVML sees here (a stand-in
NVML that replays a GPU trace is trace_nvml.py)."""

from __future__ import annotations

from pathlib import Path

from devagent.inside import nvml


def fake_proc(tmp_path: Path, parents: dict[int, int], comms: dict[int, str] | None = None) -> Path:
    proc = tmp_path / "proc"
    for pid, ppid in parents.items():
        (proc / str(pid)).mkdir(parents=True)
        comm = (comms or {}).get(pid, "python")
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0\n")
    (proc / "self").mkdir(parents=True, exist_ok=True)  # not a pid: skipped
    (proc / "version").write_text("Linux\n")
    (proc / "999").mkdir()  # a process that exited between the listing and the read: no stat
    return proc


def nvml_gpus() -> int:
    """GPUs the real NVML sees here (none on CI machines; the tests that use this hold on a GPU machine too)."""
    lib = nvml.pynvml
    if nvml.init(lib) is not None:
        return 0
    try:
        return int(nvml.query(lib, lib.nvmlDeviceGetCount) or 0)
    finally:
        nvml.shutdown(lib)
