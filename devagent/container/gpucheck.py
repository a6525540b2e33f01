"""The GPU check, container side: NVML in-process, torch in the user's own interpreter, nvidia-smi as a tool.

Never imports torch: the agent's own environment has no torch, and the torch that matters is the one the
user trains with, so it is probed in a subprocess of that interpreter. Nothing here raises for a missing GPU,
driver, torch or tool; every failure becomes a field of the report (devagent/core/gpu.py), which renders it.

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
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

try:
    import pynvml  # nvidia-ml-py ships no type information (mypy: ignore_missing_imports)
except ImportError:  # a declared dependency; without it the check still reports torch and nvidia-smi
    pynvml = None

from devagent.core.gpu import (
    GpuCheck,
    GpuProcess,
    NvmlGpu,
    NvmlReport,
    TorchDevice,
    TorchReport,
    cuda_version_text,
)

T = TypeVar("T")

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
    if pynvml is None:
        return NvmlReport(available=False, error="nvidia-ml-py (pynvml) is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return NvmlReport(available=False, error=_nvml_error(e))
    try:
        driver = _nvml_field(pynvml.nvmlSystemGetDriverVersion)
        cuda = _nvml_field(pynvml.nvmlSystemGetCudaDriverVersion_v2)
        cuda_text = cuda_version_text(cuda) if cuda is not None else None
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            return NvmlReport(available=False, error=f"cannot count GPUs: {_nvml_error(e)}",
                              driver_version=driver, cuda_driver_version=cuda_text)
        gpus = tuple(_probe_gpu(index) for index in range(count))
        return NvmlReport(available=True, driver_version=driver, cuda_driver_version=cuda_text, gpus=gpus)
    finally:
        with contextlib.suppress(pynvml.NVMLError):  # best effort: the report is already complete
            pynvml.nvmlShutdown()


def _probe_gpu(index: int) -> NvmlGpu:
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError:
        return NvmlGpu(index=index)  # e.g. a lost GPU: list it, with nothing known
    memory = _nvml_field(pynvml.nvmlDeviceGetMemoryInfo, handle)
    utilization = _nvml_field(pynvml.nvmlDeviceGetUtilizationRates, handle)
    running = _nvml_field(pynvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
    processes = tuple(
        GpuProcess(
            pid=int(p.pid),
            used_memory=int(p.usedGpuMemory) if p.usedGpuMemory is not None else None,
            # In a container the pids are the host's, so NVML usually cannot name them: None, not a guess.
            name=_nvml_field(pynvml.nvmlSystemGetProcessName, p.pid),
        )
        for p in running
    )
    return NvmlGpu(
        index=index,
        name=_nvml_field(pynvml.nvmlDeviceGetName, handle),
        uuid=_nvml_field(pynvml.nvmlDeviceGetUUID, handle),
        memory_total=int(memory.total) if memory is not None else None,
        memory_used=int(memory.used) if memory is not None else None,
        utilization_gpu=int(utilization.gpu) if utilization is not None else None,
        processes=processes,
    )


def _nvml_field(query: Callable[..., T], *args: Any) -> T | None:
    """QUERY(*ARGS), or None where NVML cannot answer (not supported, no permission, an older driver)."""
    try:
        return query(*args)
    except pynvml.NVMLError:
        return None


def _nvml_error(error: pynvml.NVMLError) -> str:
    # NVMLError.__str__ needs the library for codes it does not know; never let the error text itself fail.
    try:
        return str(error)
    except Exception:
        return f"NVML error {getattr(error, 'value', '?')}"


def find_user_python(*, environ: Mapping[str, str] | None = None, own_prefix: str | None = None,
                     own_executable: str | None = None) -> str:
    """The interpreter the user trains with: DEVAGENT_PYTHON, else the first `python3`, then `python`, on
    PATH that is not inside the agent's own virtual environment; the agent's own interpreter when none is.

    OWN_PREFIX is that environment (default: sys.prefix when the agent runs in a venv; outside a venv nothing
    is excluded, since the agent then shares the system interpreter with the user).

    >>> find_user_python(environ={"DEVAGENT_PYTHON": "/opt/conda/bin/python"})
    '/opt/conda/bin/python'
    """
    env = os.environ if environ is None else environ
    if env.get("DEVAGENT_PYTHON"):
        return env["DEVAGENT_PYTHON"]
    if own_prefix is None and sys.prefix != sys.base_prefix:
        own_prefix = sys.prefix
    excluded = Path(os.path.abspath(own_prefix)) if own_prefix else None
    directories = [d for d in env.get("PATH", "").split(os.pathsep) if d]
    for name in ("python3", "python"):
        for directory in directories:
            # abspath, not resolve: a venv's bin/python is a symlink out of the venv, yet it is the venv's.
            candidate = Path(os.path.abspath(os.path.join(directory, name)))
            if excluded is not None and candidate.is_relative_to(excluded):
                continue
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return own_executable or sys.executable


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


class GpuCheckCache:
    """The last GPU check, so that asking again is free until it is too old.

    The agent refreshes it at start and on demand (`devagent gpu-check`); it is never run on a file-save path,
    where a 6 s `import torch` would stall the watcher.

    >>> cache = GpuCheckCache(runner=lambda: "check", clock=lambda: 0.0)
    >>> cache.get(max_age_s=60), cache.last
    ('check', 'check')
    """

    def __init__(self, *, runner: Callable[[], GpuCheck] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._runner = runner or (lambda: run_gpu_check(clock=clock))
        self._clock = clock
        self._lock = threading.Lock()  # one check at a time: a second caller waits and gets the fresh result
        self._last: GpuCheck | None = None
        self._taken_at = 0.0

    @property
    def last(self) -> GpuCheck | None:
        """The last result, or None before the first check."""
        return self._last

    def get(self, max_age_s: float | None = None) -> GpuCheck:
        """The last result when it is at most MAX_AGE_S old (any age when None), else a fresh one."""
        with self._lock:
            if self._last is not None and (max_age_s is None or self._clock() - self._taken_at <= max_age_s):
                return self._last
            return self._refresh_locked()

    def refresh(self) -> GpuCheck:
        """Run the check now and keep the result."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> GpuCheck:
        started = self._clock()
        self._last = self._runner()
        self._taken_at = started  # the age counts from when the check began: that is what it saw
        return self._last
