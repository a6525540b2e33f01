"""The GPU memory sampler against a stand-in NVML (this machine has no GPU), and the real NVML of this machine."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from devagent.core.gpu.ledger import GIB
from devagent.runs.gpu_memory import GpuSampler
from tests.fake_nvml import FakeNvml
from tests.runs.support import fake_proc, nvml_gpus


def test_the_sampler_sums_the_memory_of_the_whole_tree_and_keeps_the_peak(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: 0, 100: 1, 101: 100, 102: 100, 200: 1})
    nvml = FakeNvml(3)
    nvml.graphics[2] = None  # a GPU that cannot list its graphics processes
    sampler = GpuSampler.open(interval=60, nvml=nvml, proc=proc)
    assert sampler is not None
    nvml.running[0] = [(100, 3 * GIB), (200, 9 * GIB)]  # 200 is another process of this machine
    nvml.running[1] = [(101, 2 * GIB), (102, GIB)]  # DataLoader workers with CUDA
    nvml.graphics[1] = [(101, 2 * GIB)]  # the same process, also listed as graphics: counted once
    assert sampler.sample(100) == 6 * GIB
    nvml.running[0] = [(100, 4 * GIB)]
    nvml.running[1] = nvml.graphics[1] = []
    assert sampler.sample(100) == 4 * GIB
    assert sampler.stop() == (6 * GIB, 160 * GIB, 2)
    assert sampler.usage.devices == {0, 1}
    assert nvml.shutdowns == 1


def test_where_nvml_reports_pids_of_another_namespace_the_rise_of_used_memory_counts(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: 0, 100: 1})
    nvml = FakeNvml(2)
    sampler = GpuSampler.open(interval=60, nvml=nvml, proc=proc)
    assert sampler is not None
    nvml.running[0] = [(48213, 5 * GIB)]  # the host's pid of our command: not in our /proc
    nvml.used[0] = 6 * GIB  # 1 GiB was in use before the run
    nvml.running[1] = [(100, None)]  # ours, with its memory not available: the rise counts too
    nvml.used[1] = 3 * GIB
    assert sampler.sample(100) == 5 * GIB + 2 * GIB
    assert sampler.stop() == (7 * GIB, 160 * GIB, 2)


def test_a_tree_that_never_touches_a_gpu_uses_none(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: 0, 100: 1, 200: 1})
    nvml = FakeNvml(1)
    sampler = GpuSampler.open(interval=60, nvml=nvml, proc=proc)
    assert sampler is not None
    nvml.running[0] = [(200, GIB)]
    assert sampler.sample(100) == 0
    assert sampler.stop() == (0, None, 0)


def test_there_is_no_sampler_without_nvml_without_a_driver_or_without_a_gpu(tmp_path: Path) -> None:
    assert GpuSampler.open(interval=1, nvml=None) is None
    assert GpuSampler.open(interval=1, nvml=FakeNvml(1, init_error="Driver Not Loaded")) is None
    no_gpu = FakeNvml(0)
    assert GpuSampler.open(interval=1, nvml=no_gpu) is None
    assert no_gpu.shutdowns == 1
    real = GpuSampler.start(os.getpid(), interval=0.01)  # the real NVML of this machine
    assert (real is None) == (nvml_gpus() == 0)
    if real is not None:
        assert real.stop() == (0, None, 0)  # pytest is on no GPU


def test_the_sampler_thread_samples_the_running_tree_until_stopped(tmp_path: Path) -> None:
    nvml = FakeNvml(1)
    nvml.running[0] = [(os.getpid(), 7 * GIB)]
    sampler = GpuSampler.start(os.getpid(), interval=0.01, nvml=nvml)
    assert sampler is not None
    threading.Event().wait(0.2)
    assert sampler.stop() == (7 * GIB, 80 * GIB, 1)
    assert not any(t.name == "devagent-gpu-sampler" for t in threading.enumerate())
