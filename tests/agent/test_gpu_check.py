"""The GPU check's probes (devagent/agent/gpucheck.py), for real on this GPU-less machine; its rendering is
tested from hand-made reports in tests/core/gpu/test_check_report.py."""

from __future__ import annotations

import ctypes
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pynvml  # type: ignore[import-untyped]
import pytest

from devagent.agent import gpucheck
from devagent.agent.gpucheck import probe_nvidia_smi, probe_nvml, probe_torch, run_gpu_check
from devagent.core.gpu.check_report import (
    NO_GPU_WARNING,
    GpuProcess,
    NvmlGpu,
    NvmlReport,
    TorchReport,
    render_gpu_check,
)
from devagent.inside import nvml

NOW = datetime(2026, 11, 27, 14, 2)
A100 = "NVIDIA A100-SXM4-80GB"
A100_MEMORY = 85_029_158_912  # 79.2 GiB, as NVML and torch report an 80 GB A100
GIB = 1024**3
SLEEP = shutil.which("sleep")  # looked up now: the nvidia-smi tests point PATH at an empty folder


def heading(entry: str) -> str:
    return entry.split("\n")[1]


# --- the probes, for real on this machine -------------------------------------------------------------------


def nvml_library_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture(scope="module")
def python_without_torch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh virtual environment's interpreter: the same Python, no torch."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


class TestProbeNvml:
    @pytest.mark.skipif(nvml_library_present(), reason="this machine has an NVIDIA driver")
    def test_without_a_driver_nvml_is_reported_unavailable_with_its_error(self) -> None:
        assert probe_nvml() == NvmlReport(available=False, error="NVML Shared Library Not Found")

    def test_without_nvidia_ml_py_nvml_is_unavailable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(nvml, "pynvml", None)
        assert probe_nvml() == NvmlReport(available=False, error="nvidia-ml-py (pynvml) is not installed")

    def test_fields_a_gpu_does_not_support_become_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def not_supported(*_: object) -> None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        class Memory:
            total, used = A100_MEMORY, GIB

        class Process:
            pid, usedGpuMemory = 4242, None  # NVML's own field names

        fake = {
            "nvmlInit": lambda: None, "nvmlShutdown": lambda: None,
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlSystemGetCudaDriverVersion_v2": not_supported,
            "nvmlDeviceGetCount": lambda: 2, "nvmlDeviceGetHandleByIndex": lambda i: f"handle{i}",
            "nvmlDeviceGetName": lambda h: A100, "nvmlDeviceGetUUID": not_supported,
            "nvmlDeviceGetMemoryInfo": lambda h: Memory(), "nvmlDeviceGetUtilizationRates": not_supported,
            "nvmlDeviceGetComputeRunningProcesses": lambda h: [Process()] if h == "handle1" else [],
            "nvmlSystemGetProcessName": not_supported,
        }
        for name, function in fake.items():
            monkeypatch.setattr(pynvml, name, function)
        assert probe_nvml() == NvmlReport(
            available=True, driver_version="550.54.15", cuda_driver_version=None,
            gpus=(NvmlGpu(0, A100, None, A100_MEMORY, GIB, None, ()),
                  NvmlGpu(1, A100, None, A100_MEMORY, GIB, None, (GpuProcess(4242, None, None),))),
        )

    def test_a_driver_that_cannot_count_gpus_is_unavailable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_permission() -> None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)

        monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
        monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
        monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "550.54.15")
        monkeypatch.setattr(pynvml, "nvmlSystemGetCudaDriverVersion_v2", lambda: 12080)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", no_permission)
        assert probe_nvml() == NvmlReport(
            available=False, error="cannot count GPUs: Insufficient Permissions",
            driver_version="550.54.15", cuda_driver_version="12.8")


class TestProbeTorch:
    @pytest.mark.torch
    def test_the_cpu_wheel_here_reports_its_version_and_no_cuda(self) -> None:
        report = probe_torch(python=sys.executable)
        assert report.ok, report.error
        assert report.version is not None and report.version.startswith("2.13.0")
        assert (report.error, report.python, report.cuda_build, report.is_available, report.device_count,
                report.devices) == (None, sys.executable, None, False, 0, ())

    def test_an_interpreter_without_torch_says_torch_is_not_installed(self, python_without_torch: str,
                                                                      ) -> None:
        assert probe_torch(python=python_without_torch) == TorchReport(
            ok=False, python=python_without_torch, error=f"torch is not installed in {python_without_torch}")

    def test_an_interpreter_that_hangs_is_killed_and_reported_as_timed_out(self, tmp_path: Path) -> None:
        # The sleep is a child of the wrapper: only killing the whole session lets the probe return on time.
        slow = write_script(tmp_path / "slow-python", "sleep 30\n")
        started = time.monotonic()
        report = probe_torch(python=slow, timeout=0.5)
        assert time.monotonic() - started < 10
        assert report == TorchReport(ok=False, python=slow,
                                     error=f"torch check timed out after 0.5 s in {slow}")

    def test_an_interpreter_that_fails_is_reported_with_its_last_stderr_lines(self, tmp_path: Path) -> None:
        broken = write_script(tmp_path / "broken-python",
                              "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i >&2; done; exit 3\n")
        assert probe_torch(python=broken).error == (
            f"torch check in {broken} exited with status 3:\n"
            + "\n".join(f"line {i}" for i in range(3, 11))
        )

    def test_an_interpreter_that_does_not_exist_is_reported(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "no-such-python")
        assert probe_torch(python=missing).error == f"cannot run {missing}: No such file or directory"

    def test_an_interpreter_that_prints_no_report_is_reported(self, tmp_path: Path) -> None:
        quiet = write_script(tmp_path / "quiet-python", "echo hello\n")
        assert probe_torch(python=quiet).error == f"torch check in {quiet} printed no report"


class TestProbeNvidiaSmi:
    @pytest.fixture
    def path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """PATH is one empty folder: nvidia-smi is there only where a test puts it."""
        monkeypatch.setenv("PATH", str(tmp_path))
        return tmp_path

    def test_without_the_tool_there_is_no_output(self, path: Path) -> None:
        assert probe_nvidia_smi() is None

    def test_its_full_output_is_returned(self, path: Path) -> None:
        write_script(path / "nvidia-smi", "printf '| NVIDIA-SMI 550.54.15 |\\n| GPU 0 |\\n'\n")
        assert probe_nvidia_smi() == "| NVIDIA-SMI 550.54.15 |\n| GPU 0 |\n"

    def test_a_failure_keeps_its_message_and_status(self, path: Path) -> None:
        write_script(path / "nvidia-smi", "echo 'NVIDIA-SMI has failed because it could not communicate "
                                          "with the NVIDIA driver.'\nexit 9\n")
        assert probe_nvidia_smi() == (
            "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.\n"
            "\n(nvidia-smi exited with status 9)"
        )

    def test_a_hanging_tool_is_reported_as_timed_out(self, path: Path) -> None:
        write_script(path / "nvidia-smi", f"exec {SLEEP} 30\n")
        assert probe_nvidia_smi(timeout=0.3) == "nvidia-smi timed out after 0.3 s"


@pytest.mark.torch
@pytest.mark.skipif(nvml_library_present(), reason="this machine has an NVIDIA driver")
def test_the_whole_check_here_renders_a_no_gpu_entry_with_torch_2_13() -> None:
    ticks = iter([100.0, 102.5])
    check = run_gpu_check(python=sys.executable, clock=lambda: next(ticks))
    entry = render_gpu_check(check, now=NOW)
    assert heading(entry) == "## 2026-11-27 14:02 · GPU check · ⚠️ no GPU — training will run on the CPU"
    assert "| version | 2.13.0+cpu |" in entry.splitlines()
    assert NO_GPU_WARNING in entry.splitlines()
    assert "**NVML:** not available — NVML Shared Library Not Found" in entry.splitlines()
    assert f"**torch** in `{sys.executable}`:" in entry.splitlines()
    assert "_Checked in 2.5 s._" in entry.splitlines()
    assert "<details>" not in entry  # no nvidia-smi on this machine, no GPU UUIDs: no details block


def test_the_container_side_module_never_imports_torch_docker_or_paramiko() -> None:
    code = ("import sys, devagent.agent.gpucheck; "
            "print(sorted({'torch', 'docker', 'paramiko'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(gpucheck.__file__).parents[2])
    assert result.stdout == "[]\n"
