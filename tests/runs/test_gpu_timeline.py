"""What each GPU did over a run: the sampler replaying a trace through a stand-in NVML, the summary, the hints,
the picture, and the CPU run that has none of them."""

from __future__ import annotations

import os
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devagent.core.runs.exits import ExitInfo
from devagent.core.runs.gpu_timeline import DeviceTimeline, hints, summary_rows, timeline_svg
from devagent.core.runs.record import GpuMemory, RunRecord
from devagent.core.runs.section import RunReport, gpu_activity, render_run
from devagent.runs.finish import Finished, finish_run
from devagent.runs.gpu_memory import GpuSampler
from devagent.runs.gpu_timeline_recorder import GpuTimelines
from devagent.runs.place import RunPlace
from devagent.runs.proctree import process_tree
from devagent.runs.runlog import RunLog
from devagent.runs.streaming import run_streaming
from tests.runs.support.trace_nvml import TraceNvml


class StepClock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def replay(nvml: TraceNvml) -> tuple[DeviceTimeline, ...]:
    clock = StepClock(nvml.trace["interval_s"])
    timelines = GpuTimelines(nvml, clock=clock)
    handles = {i: i for i in range(nvml.nvmlDeviceGetCount())}
    for k in range(nvml.samples):
        nvml.at = k
        clock.now = nvml.trace["samples"][k]["t"] + clock.step
        timelines.record(handles)
    return timelines.of({0, 1})


def test_the_synthetic_trace_says_it_was_not_recorded_on_hardware() -> None:
    trace = TraceNvml.load().trace
    assert trace["synthetic"] is True and "NOT RECORDED ON HARDWARE" in trace["note"]


def test_a_replayed_trace_gives_each_gpu_its_mean_peak_memory_and_time_idle() -> None:
    gpu0, gpu1 = replay(TraceNvml.load())
    assert gpu0.observed_s == gpu1.observed_s == 60.0
    assert gpu0.idle_s == 10.0  # the sleeping phase: samples 40-59
    assert gpu1.idle_s == 60.0
    assert gpu0.util_peak == 97 and 70 < (gpu0.mean_util or 0) < 80
    assert gpu0.mem_peak == 10_000 << 20 and gpu0.mem_total == 80 << 30
    assert gpu0.power_peak == 688.0 and gpu1.power_peak is None  # "not supported": no figure, no error
    rows = summary_rows([gpu0, gpu1])
    assert rows[0] == ["GPU 0", "77 %", "97 %", "9.8 GiB of 80.0 GiB", "10 s (17%)", "688 W", "55 °C"]
    assert rows[1] == ["GPU 1", "0 %", "0 %", "0.5 GiB of 80.0 GiB", "1 min 00 s (100%)", "—", "34 °C"]


def test_a_gpu_idle_while_another_works_gets_a_hint() -> None:
    gpu0, gpu1 = replay(TraceNvml.load())
    (hint,) = hints([gpu0, gpu1], cpu_share=0.1)
    assert hint.startswith("GPU 1 was idle 100% of the run while GPU 0 worked (mean 77 %)")


def test_the_picture_has_a_line_per_gpu_in_each_panel_and_fits_600_px() -> None:
    timelines = replay(TraceNvml.load())
    svg = timeline_svg(timelines, duration_s=60.0, title="run 3: GPU activity")
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="560"')
    assert svg.count("<polyline") == 4  # utilisation and memory, two GPUs
    assert "GPU 0" in svg and "GPU 1" in svg and "1 min 00 s" in svg


def report(**extra: object) -> RunReport:
    record = RunRecord(3, False, "train.py", ("python", "train.py"), "/w", "", 60.0, 0, "success", {}, {})
    base: dict[str, object] = dict(record=record, started_at=datetime(2026, 12, 7, 17, 0),
                                   exit=ExitInfo("success", 0, "", None), defaults={}, previous=None, git=None,
                                   edits_since=None, env={}, metrics=[], metric_sources=(), curve_name=None,
                                   curve_image=None, curve_sparkline=None, gpu=None, output_tail=[],
                                   output_lines=0)
    return RunReport(**{**base, **extra})  # type: ignore[arg-type]


def test_a_gpu_run_section_has_the_summary_the_hint_and_the_picture() -> None:
    timelines = replay(TraceNvml.load())
    section = render_run(report(gpu=GpuMemory(10 << 30, 160 << 30, None, None, 2, (0, 1)), gpu_timelines=timelines,
                                gpu_timeline_image="lab-notebook.assets/run-3-gpus.svg", cpu_share=0.2))
    block = section[section.index("### GPU activity"):]
    assert "| GPU 0 | 77 % | 97 % | 9.8 GiB of 80.0 GiB | 10 s (17%) | 688 W | 55 °C |" in block
    assert "**Hint:** GPU 1 was idle 100% of the run while GPU 0 worked" in block
    assert "![GPU utilisation and memory over the run](lab-notebook.assets/run-3-gpus.svg)" in block


def test_a_cpu_run_says_there_was_no_gpu_and_has_no_picture() -> None:
    section = render_run(report(gpu=GpuMemory(None, None, None, None, 0)))
    assert "| GPUs | none (CPU run) |" in section
    assert "GPU activity" not in section and ".svg" not in section
    assert gpu_activity((), image=None, cpu_share=0.9) == ""


def test_the_sampler_reads_every_gpu_through_the_shared_reading_function() -> None:
    nvml = TraceNvml.load()
    replay(nvml)
    assert nvml.calls == nvml.samples * 2 * 4  # utilisation, memory, power, temperature; nothing else
    assert "pynvml" not in sys.modules or sys.modules["pynvml"] is not nvml


def test_a_finished_gpu_run_gets_its_picture_beside_the_notebook_and_its_block(tmp_path: Path) -> None:
    runs = RunLog(tmp_path)
    number = runs.reserve("2026-12-07T17:00:00+00:00")
    notebook = tmp_path / "lab-notebook.md"
    finish_run(RunPlace(tmp_path, notebook), runs, Finished(
        number=number, argv=["python3", "train.py"], cwd=tmp_path, started=datetime(2026, 12, 7, 17, 0,
                                                                                   tzinfo=timezone.utc),
        duration_s=60.0, exit_code=0, gpu_peak=10 << 30, gpu_total=160 << 30, gpus_used=2, gpu_devices=(0, 1),
        gpu_timelines=replay(TraceNvml.load()), cpu_share=0.2, python="/nonexistent/python"))
    section = notebook.read_text()
    picture = tmp_path / "lab-notebook.assets" / f"run-{number}-gpus.svg"
    assert f"![GPU utilisation and memory over the run](lab-notebook.assets/run-{number}-gpus.svg)" in section
    assert picture.read_text().startswith("<svg ") and stat.S_IMODE(picture.stat().st_mode) == 0o600
    assert section.index("### GPU memory") < section.index("### GPU activity")


def test_a_finished_cpu_run_writes_no_picture(tmp_path: Path) -> None:
    runs = RunLog(tmp_path)
    number = runs.reserve("2026-12-07T17:00:00+00:00")
    notebook = tmp_path / "lab-notebook.md"
    finish_run(RunPlace(tmp_path, notebook), runs, Finished(
        number=number, argv=["python3", "train.py"], cwd=tmp_path,
        started=datetime(2026, 12, 7, 17, 0, tzinfo=timezone.utc), duration_s=3.0, exit_code=0,
        python="/nonexistent/python"))
    assert "| GPUs | none (CPU run) |" in notebook.read_text()
    assert not list(tmp_path.glob("lab-notebook.assets/*.svg"))


class HeldBy(TraceNvml):
    """The trace, with the test's own children listed as holding GPU 0 and 1 (as NVML lists a run's processes);
    each utilisation reading of GPU 0 moves the replay on."""

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        rates = super().nvmlDeviceGetUtilizationRates(handle)
        if handle == 1:
            self.at = (self.at + 1) % self.samples
        return rates

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        children = process_tree(os.getpid()) - {os.getpid()}
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in children]


def test_a_streamed_run_samples_its_gpus_over_time_and_its_cpu_share(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml, opener = HeldBy.load(), GpuSampler.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(GpuSampler, "open", classmethod(
        lambda cls, *, interval, **_: opener(cls, interval=interval, nvml=nvml)))
    outcome = run_streaming([sys.executable, "-c", "import time; time.sleep(1.5)"], on_output=lambda _: None,
                            sample_interval=0.05)
    assert outcome.gpu_devices == (0, 1)
    assert [t.index for t in outcome.gpu_timelines] == [0, 1]
    assert all(t.observed_s > 0.5 and t.buckets for t in outcome.gpu_timelines)
    assert outcome.gpu_timelines[1].idle_s == outcome.gpu_timelines[1].util_s  # GPU 1 never works
    assert outcome.cpu_share is not None and 0 <= outcome.cpu_share < 0.5  # a sleeping child
