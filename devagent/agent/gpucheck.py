"""The GPU check, container side: NVML in-process, torch in the user's own interpreter, nvidia-smi as a tool.

Never imports torch: the agent's own environment has no torch, and the torch that matters is the one the
user trains with, so it is probed in a subprocess of that interpreter. Nothing here raises for a missing GPU,
driver, torch or tool; every failure becomes a field of the report (devagent/core/gpu/check_report.py), which renders
it.

Usage (what the agent and `devagent gpu-check` do)::

    check = run_gpu_check()
    entry = render_gpu_check(check, now=datetime.now())
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devagent.core.gpu.check_report import (
    GpuCheck,
    GpuProcess,
    NvmlGpu,
    NvmlReport,
    TorchDevice,
    TorchReport,
    cuda_version_text,
)
from devagent.inside import nvml
from devagent.inside.interpreter import find_user_python

# The probe prints its JSON after this marker: a sitecustomize or a torch warning on stdout cannot break it.
MARKER = "DEVAGENT-TORCH-REPORT "
TORCH_SCRIPT = f"""\
import json, sys
report = {{}}
try:
    import torch
except ModuleNotFoundError as e:
    if e.name != "torch":
        raise
    report["installed"] = False
else:
    report.update(installed=True, version=torch.__version__, cuda_build=torch.version.cuda)
    try:
        # The seed's own check, in its order.
        report["is_available"] = bool(torch.cuda.is_available())
        report["device_count"] = int(torch.cuda.device_count())
        report["devices"] = [
            [torch.cuda.get_device_name(i), int(torch.cuda.get_device_properties(i).total_memory)]
            for i in range(report["device_count"] if report["is_available"] else 0)
        ]
    except Exception as e:
        report["cuda_error"] = f"{{type(e).__name__}}: {{e}}"
print({MARKER!r} + json.dumps(report), flush=True)
"""
STDERR_LINES = 8  # of a failed probe, kept for the notebook: the end of a traceback names the problem


def probe_nvml() -> NvmlReport:
    """Ask NVML, in this process, about the driver and every GPU it can see.

    NVML missing (no driver, container started without `--gpus`) gives available=False and NVML's error
    text; a field a GPU does not support (NVMLError_NotSupported and kin) is None.
    """
    lib = nvml.pynvml
    error = nvml.init(lib)
    if error is not None:
        return NvmlReport(available=False, error=error)
    try:
        driver = nvml.query(lib, lib.nvmlSystemGetDriverVersion)
        cuda = nvml.query(lib, lib.nvmlSystemGetCudaDriverVersion_v2)
        cuda_text = cuda_version_text(cuda) if cuda is not None else None
        try:
            count = lib.nvmlDeviceGetCount()
        except lib.NVMLError as e:
            return NvmlReport(available=False, error=f"cannot count GPUs: {nvml.error_text(e)}",
                              driver_version=driver, cuda_driver_version=cuda_text)
        gpus = tuple(_probe_gpu(lib, index) for index in range(count))
        return NvmlReport(available=True, driver_version=driver, cuda_driver_version=cuda_text, gpus=gpus)
    finally:
        nvml.shutdown(lib)  # best effort: the report is already complete


def _probe_gpu(lib: Any, index: int) -> NvmlGpu:
    try:
        handle = lib.nvmlDeviceGetHandleByIndex(index)
    except lib.NVMLError:
        return NvmlGpu(index=index)  # e.g. a lost GPU: list it, with nothing known
    memory = nvml.query(lib, lib.nvmlDeviceGetMemoryInfo, handle)
    utilization = nvml.query(lib, lib.nvmlDeviceGetUtilizationRates, handle)
    running = nvml.query(lib, lib.nvmlDeviceGetComputeRunningProcesses, handle) or []
    processes = tuple(
        GpuProcess(
            pid=int(p.pid),
            used_memory=int(p.usedGpuMemory) if p.usedGpuMemory is not None else None,
            # In a container the pids are the host's, so NVML usually cannot name them: None, not a guess.
            name=nvml.query(lib, lib.nvmlSystemGetProcessName, p.pid),
        )
        for p in running
    )
    return NvmlGpu(
        index=index,
        name=nvml.query(lib, lib.nvmlDeviceGetName, handle),
        uuid=nvml.query(lib, lib.nvmlDeviceGetUUID, handle),
        memory_total=int(memory.total) if memory is not None else None,
        memory_used=int(memory.used) if memory is not None else None,
        utilization_gpu=int(utilization.gpu) if utilization is not None else None,
        processes=processes,
    )


def probe_torch(python: str | None = None, timeout: float = 60.0) -> TorchReport:
    """Run PYTHON (default: find_user_python()) with a short script that reports what its torch sees.

    Never raises for the interpreter's problems: a timeout, a missing torch or a crash come back as ok=False
    with the reason in error.
    """
    python = python or find_user_python()
    try:
        # A session of its own, so a timeout can kill the whole tree (a wrapper script and its children).
        process = subprocess.Popen([python, "-c", TORCH_SCRIPT], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   errors="replace", start_new_session=True)
    except OSError as e:
        return TorchReport(ok=False, python=python, error=f"cannot run {python}: {e.strerror or e}")
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(process)
        error = f"torch check timed out after {timeout:g} s in {python}"
        return TorchReport(ok=False, python=python, error=error)
    if process.returncode != 0:
        how = (f"was killed by signal {-process.returncode}" if process.returncode < 0
               else f"exited with status {process.returncode}")
        tail = "\n".join(stderr.strip().splitlines()[-STDERR_LINES:])
        return TorchReport(ok=False, python=python, error=f"torch check in {python} {how}" + (
            f":\n{tail}" if tail else ""))
    report = _parse_report(stdout)
    if report is None:
        return TorchReport(ok=False, python=python, error=f"torch check in {python} printed no report")
    if not report.get("installed"):
        return TorchReport(ok=False, python=python, error=f"torch is not installed in {python}")
    return TorchReport(
        ok=True,
        error=report.get("cuda_error"),
        python=python,
        version=str(report.get("version")),
        cuda_build=report.get("cuda_build"),
        is_available=bool(report.get("is_available", False)),
        device_count=int(report.get("device_count", 0)),
        devices=tuple(TorchDevice(str(name), int(memory)) for name, memory in report.get("devices", [])),
    )


def _parse_report(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                report = json.loads(line[len(MARKER):])
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) else None
    return None


def _kill_session(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the group this Popen started (start_new_session): ours alone
    process.communicate()


def probe_nvidia_smi(timeout: float = 15) -> str | None:
    """The full output of `nvidia-smi` (with its error text when it fails); None without the tool."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        result = subprocess.run([tool], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"nvidia-smi timed out after {timeout:g} s"
    except OSError as e:
        return f"cannot run {tool}: {e.strerror or e}"
    output = result.stdout + result.stderr
    if result.returncode != 0:
        output += f"\n(nvidia-smi exited with status {result.returncode})"
    return output


def run_gpu_check(*, python: str | None = None, clock: Callable[[], float] = time.monotonic) -> GpuCheck:
    """Run the three probes (torch and nvidia-smi in threads, NVML meanwhile) and time them with CLOCK."""
    start = clock()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gpucheck") as pool:
        torch_future = pool.submit(probe_torch, python)
        smi_future = pool.submit(probe_nvidia_smi)
        nvml = probe_nvml()
        torch, smi = torch_future.result(), smi_future.result()
    return GpuCheck(nvml=nvml, torch=torch, nvidia_smi=smi, elapsed_s=clock() - start)
