"""The GPU check's notebook entry and console line (core/gpu/check_report.py), from hand-made reports: the
heading, the body's blocks and tables, the warnings, the nvidia-smi details; whole whatever the reports contain."""

from __future__ import annotations

import itertools
import re
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devagent.core.gpu.check_report import (
    GpuCheck,
    GpuProcess,
    NvmlGpu,
    NvmlReport,
    TorchDevice,
    TorchReport,
    cuda_version_text,
    render_gpu_check,
    summary_line,
)

NOW = datetime(2026, 11, 27, 14, 2)
A100 = "NVIDIA A100-SXM4-80GB"
A100_MEMORY = 85_029_158_912  # 79.2 GiB, as NVML and torch report an 80 GB A100
L4 = "NVIDIA L4"
L4_MEMORY = 24_152_899_584  # 22.5 GiB
GIB = 1024**3

NO_GPU_WARNING = (
    "> **No GPU visible.** Training will run on the CPU. To train on a GPU, start the environment with "
    "`--gpus` (e.g. `devagent up NAME --gpus all`) on a host whose Docker Engine has the NVIDIA runtime "
    "(NVIDIA Container Toolkit); `nvidia-smi` in the container should then list the GPUs."
)


def a100(index: int, **changes: object) -> NvmlGpu:
    fields: dict[str, object] = {
        "index": index, "name": A100, "uuid": f"GPU-0000000{index}-aaaa-bbbb-cccc-ddddeeeeffff",
        "memory_total": A100_MEMORY, "memory_used": 3 * GIB // 2, "utilization_gpu": 7, "processes": (),
    }
    fields.update(changes)
    return NvmlGpu(**fields)  # type: ignore[arg-type]


def nvml_with(*gpus: NvmlGpu, cuda: str = "12.8") -> NvmlReport:
    return NvmlReport(available=True, driver_version="550.54.15", cuda_driver_version=cuda, gpus=gpus)


NVML_MISSING = NvmlReport(available=False, error="NVML Shared Library Not Found")
TORCH_CPU = TorchReport(ok=True, python="/usr/bin/python3", version="2.13.0+cpu", cuda_build=None,
                        is_available=False, device_count=0)


def torch_cuda(*devices: TorchDevice, build: str = "12.8") -> TorchReport:
    return TorchReport(ok=True, python="/opt/conda/bin/python", version="2.8.0+cu128", cuda_build=build,
                       is_available=True, device_count=len(devices), devices=devices)


def heading(entry: str) -> str:
    return entry.split("\n")[1]


def blocks(entry: str) -> list[str]:
    return entry.strip("\n").split("\n\n")


# --- rendering ----------------------------------------------------------------------------------------------


class TestTheHeading:
    def test_identical_gpus_are_counted_once_with_their_memory_and_the_versions_are_left_to_the_body(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0), a100(1)),
                         torch=torch_cuda(TorchDevice(A100, A100_MEMORY), TorchDevice(A100, A100_MEMORY)))
        entry = render_gpu_check(check, now=NOW)
        assert heading(entry) == "## 2026-11-27 14:02 · GPU check · ✅ 2 × NVIDIA A100-SXM4-80GB (79.2 GiB)"
        assert "**NVML:** driver 550.54.15 · CUDA 12.8 · 2 GPUs" in blocks(entry)
        assert "| version | 2.8.0+cu128 |" in entry.splitlines()

    def test_mixed_gpus_are_listed_group_by_group_in_index_order(self) -> None:
        l4 = a100(1, name=L4, memory_total=L4_MEMORY)
        check = GpuCheck(nvml=nvml_with(a100(0), l4, a100(2)),
                         torch=torch_cuda(*[TorchDevice(A100, A100_MEMORY)] * 3))
        assert heading(render_gpu_check(check, now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ✅ 2 × A100-SXM4-80GB (79.2 GiB), 1 × L4 (22.5 GiB)"
        )

    def test_without_any_gpu_it_warns_that_training_runs_on_the_cpu(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU)
        assert heading(render_gpu_check(check, now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ no GPU — training will run on the CPU"
        )

    def test_without_a_gpu_and_without_a_torch_report_it_says_both_briefly(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=TorchReport(ok=False, python="/usr/bin/python3", error="no torch"))
        assert heading(render_gpu_check(check, now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ no GPU · torch check failed")

    def test_torch_devices_stand_in_when_nvml_is_missing_but_cuda_works(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=torch_cuda(TorchDevice(L4, L4_MEMORY)))
        assert heading(render_gpu_check(check, now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ✅ 1 × NVIDIA L4 (22.5 GiB)"
        )

    def test_a_failed_torch_check_is_named_in_the_heading(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0)),
                         torch=TorchReport(ok=False, python="/usr/bin/python3",
                                           error="torch is not installed in /usr/bin/python3"))
        assert heading(render_gpu_check(check, now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ 1 × NVIDIA A100-SXM4-80GB · torch check failed"
        )

    def test_a_newline_in_a_gpu_name_cannot_end_the_heading(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0, name="NVIDIA\nA100")), torch=torch_cuda(TorchDevice(A100, 1)))
        assert heading(render_gpu_check(check, now=NOW)).startswith(
            "## 2026-11-27 14:02 · GPU check · ✅ 1 × NVIDIA A100 (79.2 GiB)")


class TestTheBody:
    def test_a_no_gpu_entry_is_the_warning_nvml_s_reason_and_the_seed_s_torch_check(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, elapsed_s=1.26)
        assert render_gpu_check(check, now=NOW) == (
            "\n"
            "## 2026-11-27 14:02 · GPU check · ⚠️ no GPU — training will run on the CPU\n"
            "\n"
            f"{NO_GPU_WARNING}\n"
            "\n"
            "_Checked in 1.3 s._\n"
            "\n"
            "**NVML:** not available — NVML Shared Library Not Found\n"
            "\n"
            "**torch** in `/usr/bin/python3`:\n"
            "\n"
            "| torch | result |\n"
            "|---|---|\n"
            "| version | 2.13.0+cpu |\n"
            "| CUDA build | none (CPU-only build) |\n"
            "| `torch.cuda.is_available()` | False |\n"
            "| `torch.cuda.device_count()` | 0 |\n"
        )

    def test_each_gpu_gets_a_row_with_uuid_memory_utilisation_and_processes(self) -> None:
        busy = a100(1, processes=(GpuProcess(4242, 10 * GIB, "python"), GpuProcess(77, None, None)))
        check = GpuCheck(nvml=nvml_with(a100(0), busy),
                         torch=torch_cuda(TorchDevice(A100, A100_MEMORY), TorchDevice(A100, A100_MEMORY)))
        entry = render_gpu_check(check, now=NOW)
        assert blocks(entry)[2:4] == [
            "**NVML:** driver 550.54.15 · CUDA 12.8 · 2 GPUs",
            "| GPU | name | UUID | memory used / total | utilisation | processes |\n"
            "|---|---|---|---|---|---|\n"
            "| 0 | NVIDIA A100-SXM4-80GB | GPU-00000000… | 1.5 / 79.2 GiB | 7 % | — |\n"
            "| 1 | NVIDIA A100-SXM4-80GB | GPU-00000001… | 1.5 / 79.2 GiB | 7 % | 4242 python (10.0 GiB), 77 |",
        ]
        assert ("<details><summary>GPU UUIDs</summary>\n\n```text\n0: GPU-00000000-aaaa-bbbb-cccc-ddddeeeeffff\n"
                "1: GPU-00000001-aaaa-bbbb-cccc-ddddeeeeffff\n```\n\n</details>") in entry

    def test_torch_lists_each_device_with_its_total_memory(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)))
        assert blocks(render_gpu_check(check, now=NOW))[4:6] == ["**torch** in `/opt/conda/bin/python`:", (
            "| torch | result |\n"
            "|---|---|\n"
            "| version | 2.8.0+cu128 |\n"
            "| CUDA build | 12.8 |\n"
            "| `torch.cuda.is_available()` | True |\n"
            "| `torch.cuda.device_count()` | 1 |\n"
            "| device 0 | NVIDIA A100-SXM4-80GB · 79.2 GiB |"
        )]

    def test_fields_nvml_could_not_read_show_as_question_marks(self) -> None:
        check = GpuCheck(nvml=nvml_with(NvmlGpu(index=0)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)))
        entry = render_gpu_check(check, now=NOW)
        assert "| 0 | ? | ? | ? | ? | — |" in entry.splitlines()
        assert heading(entry) == "## 2026-11-27 14:02 · GPU check · ✅ 1 × unknown GPU"

    def test_pipes_in_table_cells_are_escaped(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0, name="A|B", processes=(GpuProcess(1, None, "a|b"),))),
                         torch=TorchReport(ok=True, python="/opt/x|y/python", version="2.8.0|x",
                                           cuda_build="12.8", is_available=True, device_count=1,
                                           devices=(TorchDevice("A|B", GIB),)))
        lines = render_gpu_check(check, now=NOW).splitlines()
        uuid = "GPU-00000000…"
        assert f"| 0 | A\\|B | {uuid} | 1.5 / 79.2 GiB | 7 % | 1 a\\|b |" in lines
        assert "**torch** in `/opt/x|y/python`:" in lines  # a label, not a cell
        assert "| version | 2.8.0\\|x |" in lines
        assert "| device 0 | A\\|B · 1.0 GiB |" in lines

    def test_the_elapsed_time_comes_before_the_tables_each_of_which_has_a_label(self) -> None:
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)),
                                          elapsed_s=6.04), now=NOW)
        parts = blocks(entry)
        assert parts[1] == "_Checked in 6.0 s._"
        for i, block in enumerate(parts):
            if block.startswith("|"):
                assert parts[i - 1].startswith(("**NVML:**", "**torch** in ")), block


class TestWarnings:
    def test_a_cpu_build_of_torch_beside_nvml_gpus_is_a_mismatch(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0), a100(1)), torch=TORCH_CPU)
        entry = render_gpu_check(check, now=NOW)
        assert heading(entry) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ torch cannot use the 2 GPUs — it runs on the CPU"
        )
        assert blocks(entry)[1] == (
            "> **torch cannot use the GPUs.** NVML lists 2 GPUs, but `torch.cuda.is_available()` is False in "
            "`/usr/bin/python3`: training will run on the CPU. This torch (2.13.0+cpu) is a CPU-only build: "
            "install a CUDA build for CUDA 12.8 or older."
        )
        assert NO_GPU_WARNING not in entry

    def test_a_torch_built_for_a_newer_cuda_than_the_driver_is_a_mismatch(self) -> None:
        torch = TorchReport(ok=True, python="/opt/conda/bin/python", version="2.8.0+cu128", cuda_build="12.8",
                            is_available=False, device_count=0)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0), cuda="12.2"), torch=torch), now=NOW)
        assert blocks(entry)[1] == (
            "> **torch cannot use the GPU.** NVML lists 1 GPU, but `torch.cuda.is_available()` is False in "
            "`/opt/conda/bin/python`: training will run on the CPU. This torch is built for CUDA 12.8, "
            "newer than the driver supports (CUDA 12.2): install a torch built for CUDA 12.2 or older, "
            "or update the driver."
        )

    def test_a_cuda_torch_that_still_sees_no_gpu_points_at_cuda_visible_devices(self) -> None:
        torch = TorchReport(ok=True, python="/opt/conda/bin/python", version="2.8.0+cu128", cuda_build="12.8",
                            is_available=False, device_count=0)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0)), torch=torch), now=NOW)
        assert blocks(entry)[1].endswith(
            "training will run on the CPU. Check `CUDA_VISIBLE_DEVICES` and the error from "
            "`python -c \"import torch; torch.cuda.init()\"`."
        )

    def test_torch_seeing_fewer_gpus_than_nvml_is_pointed_out(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0), a100(1)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)))
        assert blocks(render_gpu_check(check, now=NOW))[1] == (
            "> **torch sees 1 of the 2 GPUs NVML lists.** Check `CUDA_VISIBLE_DEVICES`."
        )

    def test_a_failed_torch_check_quotes_its_error_with_the_stderr_tail_in_a_fence(self) -> None:
        torch = TorchReport(ok=False, python="/usr/bin/python3", error=(
            "torch check in /usr/bin/python3 exited with status 1:\n"
            "Traceback (most recent call last):\n"
            "ImportError: libcudart.so.12: cannot open shared object file"))
        entry = render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW)
        assert blocks(entry)[2] == (
            "> **torch check failed.** torch check in /usr/bin/python3 exited with status 1:\n"
            ">\n"
            "> ```text\n"
            "> Traceback (most recent call last):\n"
            "> ImportError: libcudart.so.12: cannot open shared object file\n"
            "> ```\n"
            ">\n"
            "> If this is not the interpreter you train with, set `DEVAGENT_PYTHON` to it."
        )
        assert "| torch | result |" not in entry

    def test_a_missing_torch_is_quoted_with_the_hint_to_name_the_right_interpreter(self) -> None:
        torch = TorchReport(ok=False, python="/usr/bin/python3",
                            error="torch is not installed in /usr/bin/python3")
        assert blocks(render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW))[2] == (
            "> **torch check failed.** torch is not installed in /usr/bin/python3\n"
            ">\n"
            "> If this is not the interpreter you train with, set `DEVAGENT_PYTHON` to it."
        )

    def test_a_cuda_error_inside_a_working_torch_is_quoted(self) -> None:
        torch = TorchReport(ok=True, error="RuntimeError: CUDA error: out of memory",
                            python="/usr/bin/python3", version="2.8.0+cu128", cuda_build="12.8",
                            is_available=True, device_count=1)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0)), torch=torch), now=NOW)
        assert "> **torch reported an error.** RuntimeError: CUDA error: out of memory" in entry.splitlines()


class TestNvidiaSmiDetails:
    SMI = "+----+\n| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |\n+----+\n"

    def test_its_full_output_goes_verbatim_into_a_closed_details_block_at_the_end(self) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)),
                         nvidia_smi=self.SMI, elapsed_s=0.5)
        assert render_gpu_check(check, now=NOW).endswith(
            "\n\n</details>\n\n"
            "<details><summary>nvidia-smi</summary>\n\n"
            "```text\n"
            "+----+\n| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |\n+----+\n"
            "```\n\n"
            "</details>\n"
        )

    def test_backticks_in_its_output_cannot_close_the_fence(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, nvidia_smi="a\n````\nb")
        assert render_gpu_check(check, now=NOW).endswith("`````text\na\n````\nb\n`````\n\n</details>\n")

    def test_without_nvidia_smi_there_is_no_details_block(self) -> None:
        assert "<details>" not in render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU), now=NOW)


def test_the_summary_line_is_the_heading_without_the_date_plus_the_versions_and_the_time_taken() -> None:
    check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, elapsed_s=1.26)
    assert summary_line(check) == (
        "GPU check · ⚠️ no GPU — training will run on the CPU · torch 2.13.0+cpu · 1.3 s"
    )
    gpus = GpuCheck(nvml=nvml_with(a100(0)), torch=torch_cuda(TorchDevice(A100, A100_MEMORY)), elapsed_s=5.3)
    assert summary_line(gpus) == ("GPU check · ✅ 1 × NVIDIA A100-SXM4-80GB (79.2 GiB) · driver 550.54.15 · "
                                  "CUDA 12.8 · torch 2.8.0+cu128 · 5.3 s")


@pytest.mark.parametrize("name", ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090",
                                  "NVIDIA H200 NVL", "NVIDIA RTX 6000 Ada Generation"])
def test_headings_are_short_enough_to_wrap_at_most_once_in_a_600_px_preview(name: str) -> None:
    """About 52 characters of a heading fit on a line at 600 px (scripts/preview-check.sh measures it): the
    116-character headings of before wrapped twice. The versions are in the body and the console line."""
    gpu = a100(0, name=name)
    for torch in (torch_cuda(TorchDevice(name, A100_MEMORY)), TORCH_CPU,
                  TorchReport(ok=False, python="/usr/bin/python3", error="no torch")):
        check = GpuCheck(nvml=nvml_with(gpu, a100(1, name=name)), torch=torch)
        assert len(heading(render_gpu_check(check, now=NOW))) <= 85
    mixed = GpuCheck(nvml=nvml_with(*(a100(i, name=f"{name} rev {i}") for i in range(4))),
                     torch=torch_cuda(TorchDevice(name, A100_MEMORY)))
    assert heading(render_gpu_check(mixed, now=NOW)) == "## 2026-11-27 14:02 · GPU check · ✅ 4 GPUs of 4 kinds"


def test_nvml_cuda_versions_read_as_major_dot_minor() -> None:
    assert [cuda_version_text(v) for v in (12080, 12020, 11040, 13000)] == ["12.8", "12.2", "11.4", "13.0"]


# --- the entry is whole, whatever text comes from outside ---------------------------------------------------

outside_text = st.text(max_size=40)


maybe_text = st.none() | outside_text
maybe_bytes = st.none() | st.integers(0, 2**40)
processes = st.builds(GpuProcess, st.integers(1, 2**22), maybe_bytes, maybe_text)


@st.composite
def checks(draw: st.DrawFn) -> GpuCheck:
    gpus = tuple(
        NvmlGpu(index=i, name=draw(maybe_text), uuid=draw(maybe_text), memory_total=draw(maybe_bytes),
                memory_used=draw(maybe_bytes), utilization_gpu=draw(st.none() | st.integers(0, 100)),
                processes=tuple(draw(st.lists(processes, max_size=2))))
        for i in range(draw(st.integers(0, 3)))
    )
    nvml = NvmlReport(available=draw(st.booleans()), error=draw(maybe_text), driver_version=draw(maybe_text),
                      cuda_driver_version=draw(maybe_text), gpus=gpus)
    devices = tuple(draw(st.lists(st.builds(TorchDevice, outside_text, st.integers(0, 2**40)), max_size=2)))
    torch = TorchReport(ok=draw(st.booleans()), error=draw(st.none() | st.text(max_size=200)),
                        python=draw(outside_text), version=draw(maybe_text), cuda_build=draw(maybe_text),
                        is_available=draw(st.booleans()), device_count=len(devices), devices=devices)
    return GpuCheck(nvml=nvml, torch=torch, nvidia_smi=draw(st.none() | st.text(max_size=200)),
                    elapsed_s=draw(st.floats(0, 1e4)))


def lines_outside_fences(entry: str) -> list[str]:
    """The entry's lines that Markdown reads as Markdown: fenced code blocks (at top level) left out."""
    outside, fence = [], None
    for line in re.split(r"\r\n|\r|\n", entry):
        if fence is None and re.fullmatch(r"`{3,}text", line):
            fence = line.removesuffix("text")
        elif fence is not None and line.startswith(fence) and set(line) == {"`"}:
            fence = None
        elif fence is None:
            outside.append(line)
    return outside


@settings(max_examples=300, deadline=None)
@given(checks())
def test_an_entry_is_one_heading_and_whole_rows_whatever_the_reports_contain(check: GpuCheck) -> None:
    entry = render_gpu_check(check, now=NOW)
    assert entry.startswith("\n## 2026-11-27 14:02 · GPU check · ")
    assert entry.endswith("\n") and not entry.endswith("\n\n")
    outside = lines_outside_fences(entry)
    assert [line for line in outside if line.lstrip().startswith("#")] == [heading(entry)]
    assert len(heading(entry)) <= 86  # two lines at most in a 600 px preview, whatever the GPUs are called
    parts = blocks(entry)
    for before, after in itertools.pairwise(parts):  # each table has its label line above it
        assert not (after.startswith("| ") and not before.startswith(("**NVML:**", "**torch** in "))), (before, after)
    assert "_Checked in " in entry
    assert outside[-1] in ("</details>", "") or outside[-2].startswith("|") or outside[-2].startswith("**NVML:**")
    for table_line in (line for line in outside if line.startswith("| ")):
        columns = len(re.findall(r"(?<!\\)\|", table_line)) - 1
        assert columns in (2, 6), table_line


# --- each part of the entry, edge by edge -------------------------------------------------------------------


class TestTheSummaryLine:
    def test_versions_nvml_could_not_give_are_left_out(self) -> None:
        unavailable = NvmlReport(available=False, error="cannot count GPUs: Insufficient Permissions",
                                 driver_version="550.54.15", cuda_driver_version="12.8")
        assert summary_line(GpuCheck(nvml=unavailable, torch=TORCH_CPU)) == (
            "GPU check · ⚠️ no GPU — training will run on the CPU · torch 2.13.0+cpu · 0.0 s")
        no_cuda = NvmlReport(available=True, driver_version="550.54.15")
        assert summary_line(GpuCheck(nvml=no_cuda, torch=TORCH_CPU)) == (
            "GPU check · ⚠️ no GPU — training will run on the CPU · driver 550.54.15 · torch 2.13.0+cpu · 0.0 s")
        no_driver = NvmlReport(available=True, cuda_driver_version="12.8")
        assert summary_line(GpuCheck(nvml=no_driver, torch=TORCH_CPU)) == (
            "GPU check · ⚠️ no GPU — training will run on the CPU · CUDA 12.8 · torch 2.13.0+cpu · 0.0 s")

    def test_a_failed_torch_check_has_no_version_and_an_unknown_one_is_a_question_mark(self) -> None:
        failed = TorchReport(ok=False, python="/usr/bin/python3", version="2.8.0", error="no torch")
        assert summary_line(GpuCheck(nvml=nvml_with(a100(0), cuda="12.2\n"), torch=failed, elapsed_s=0.04)) == (
            "GPU check · ⚠️ 1 × NVIDIA A100-SXM4-80GB · driver 550.54.15 · CUDA 12.2 · torch check failed · 0.0 s")
        unnamed = TorchReport(ok=True, python="/usr/bin/python3")
        assert summary_line(GpuCheck(nvml=NVML_MISSING, torch=unnamed)).endswith(" · torch ? · 0.0 s")


class TestTheHeadingsGpus:
    def test_one_gpu_torch_cannot_use_is_the_gpu(self) -> None:
        assert heading(render_gpu_check(GpuCheck(nvml=nvml_with(a100(0)), torch=TORCH_CPU), now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ torch cannot use the GPU — it runs on the CPU")

    def test_a_failed_torch_check_leaves_less_room_for_the_gpus(self) -> None:
        failed = TorchReport(ok=False, python="/usr/bin/python3", error="no torch")
        l4 = a100(1, name=L4, memory_total=L4_MEMORY)
        assert heading(render_gpu_check(GpuCheck(nvml=nvml_with(a100(0), l4), torch=failed), now=NOW)) == (
            "## 2026-11-27 14:02 · GPU check · ⚠️ 1 × A100-SXM4-80GB, 1 × L4 · torch check failed")

    @pytest.mark.parametrize(("names", "shown"), [
        # with the memory and the vendor (48 characters just fit); without the vendor; without the memory; neither
        (["NVIDIA A100"] * 2, "2 × NVIDIA A100 (79.2 GiB)"),
        (["NVIDIA " + "X" * 26] * 2, "2 × NVIDIA " + "X" * 26 + " (79.2 GiB)"),
        (["NVIDIA A100", "NVIDIA L4"], "1 × A100 (79.2 GiB), 1 × L4 (79.2 GiB)"),
        (["NVIDIA H100 80GB HBM3", "NVIDIA L40S"], "1 × NVIDIA H100 80GB HBM3, 1 × NVIDIA L40S"),
        (["NVIDIA RTX 6000 Ada Generation", "NVIDIA L4"], "1 × RTX 6000 Ada Generation, 1 × L4"),
        (["NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA A100 80GB PCIe"], "2 GPUs of 2 kinds"),
        (["NVIDIA " + "X" * 60] * 3, "3 × " + "X" * 43 + "…"),  # one kind: its name cut
        ([None, "NVIDIA A100"], "1 × unknown GPU (79.2 GiB), 1 × A100 (79.2 GiB)"),
    ])
    def test_the_gpus_fit_in_48_characters(self, names: list[str | None], shown: str) -> None:
        gpus = [a100(i, name=name) for i, name in enumerate(names)]
        check = GpuCheck(nvml=nvml_with(*gpus), torch=torch_cuda(*[TorchDevice(A100, A100_MEMORY)] * len(gpus)))
        assert heading(render_gpu_check(check, now=NOW)) == f"## 2026-11-27 14:02 · GPU check · ✅ {shown}"
        assert len(shown) <= 48

    def test_a_gpu_whose_memory_is_unknown_shows_its_name_alone(self) -> None:
        gpus = (a100(0, name="NVIDIA A100", memory_total=None), a100(1, name="NVIDIA A100"))
        check = GpuCheck(nvml=nvml_with(*gpus), torch=torch_cuda(*[TorchDevice(A100, A100_MEMORY)] * 2))
        assert heading(render_gpu_check(check, now=NOW)).endswith("✅ 1 × NVIDIA A100, 1 × NVIDIA A100 (79.2 GiB)")


class TestMoreWarnings:
    def test_a_cpu_build_beside_a_driver_that_names_no_cuda_version_and_a_torch_without_one(self) -> None:
        torch = TorchReport(ok=True, python="/usr/bin/python3", version=None, cuda_build=None)
        entry = render_gpu_check(GpuCheck(nvml=NvmlReport(available=True, gpus=(a100(0),)), torch=torch), now=NOW)
        assert blocks(entry)[1].endswith("This torch (?) is a CPU-only build: install a CUDA build.")
        assert blocks(entry)[3] == "**NVML:** driver ? · CUDA ? · 1 GPU"
        assert "| version | ? |" in entry.splitlines()

    def test_torch_that_says_cuda_is_available_but_counts_no_device_uses_no_gpu(self) -> None:
        torch = TorchReport(ok=True, python="/p", version="2.8.0", cuda_build="12.8", is_available=True)
        entry = render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW)
        assert heading(entry) == "## 2026-11-27 14:02 · GPU check · ⚠️ no GPU — training will run on the CPU"
        assert blocks(entry)[1] == NO_GPU_WARNING

    @pytest.mark.parametrize("build", ["12.2", "12.1", "12.x", "twelve"])  # as new, older, unreadable
    def test_a_torch_built_for_the_drivers_cuda_or_older_points_at_cuda_visible_devices(self, build: str) -> None:
        torch = TorchReport(ok=True, python="/p", version="2.8.0", cuda_build=build, is_available=False)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0), cuda="12.2"), torch=torch), now=NOW)
        assert blocks(entry)[1].endswith(": training will run on the CPU. Check `CUDA_VISIBLE_DEVICES` and the error "
                                         "from `python -c \"import torch; torch.cuda.init()\"`.")

    @pytest.mark.parametrize(("build", "driver"), [("13.0", "12.8"), ("12.10", "12.9"), ("12.8.1", "12.8")])
    def test_versions_compare_number_by_number(self, build: str, driver: str) -> None:
        torch = TorchReport(ok=True, python="/p", version="2.8.0", cuda_build=build, is_available=False)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0), cuda=driver), torch=torch), now=NOW)
        assert f"This torch is built for CUDA {build}, newer than the driver supports (CUDA {driver})" in entry

    def test_a_torch_build_without_a_driver_cuda_version_is_no_mismatch_of_versions(self) -> None:
        torch = TorchReport(ok=True, python="/p", version="2.8.0", cuda_build="12.8", is_available=False)
        entry = render_gpu_check(GpuCheck(nvml=NvmlReport(available=True, gpus=(a100(0),)), torch=torch), now=NOW)
        assert "Check `CUDA_VISIBLE_DEVICES` and the error" in blocks(entry)[1]

    @pytest.mark.parametrize("count", [2, 3])
    def test_torch_seeing_as_many_gpus_as_nvml_or_more_is_no_warning(self, count: int) -> None:
        check = GpuCheck(nvml=nvml_with(a100(0), a100(1)), torch=torch_cuda(*[TorchDevice(A100, A100_MEMORY)] * count))
        assert blocks(render_gpu_check(check, now=NOW))[1] == "_Checked in 0.0 s._"

    @pytest.mark.parametrize(("error", "quoted"), [
        (None, "> **torch check failed.** no report"),
        ("   ", "> **torch check failed.**"),
        ("it broke\n  \n\n", "> **torch check failed.** it broke"),  # blank further lines: no fence
        ("it broke\r\nline 2\rline 3", "> **torch check failed.** it broke\n>\n> ```text\n> line 2\n> line 3\n> ```"),
        # blank lines before the rest go; the rest's own indentation and last character stay
        ('exit 1:\n\n  File "t.py"\nValueError: X', '> **torch check failed.** exit 1:\n>\n> ```text\n>   File "t.py"\n'
                                                   "> ValueError: X\n> ```"),
    ])
    def test_a_failed_torch_checks_error_is_quoted_line_by_line(self, error: str | None, quoted: str) -> None:
        torch = TorchReport(ok=False, python="/usr/bin/python3", error=error)
        assert blocks(render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW))[2] == (
            f"{quoted}\n>\n> If this is not the interpreter you train with, set `DEVAGENT_PYTHON` to it.")

    def test_an_error_of_a_working_torch_gets_no_hint(self) -> None:
        torch = TorchReport(ok=True, python="/p", error="RuntimeError: boom\ndetail", is_available=False)
        assert blocks(render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW))[2] == (
            "> **torch reported an error.** RuntimeError: boom\n>\n> ```text\n> detail\n> ```")


class TestMoreOfTheBody:
    def test_nvml_without_gpus_says_what_it_knows_and_its_error(self) -> None:
        nvml = NvmlReport(available=True, error="cannot list\nprocesses", driver_version="550.54.15")
        entry = render_gpu_check(GpuCheck(nvml=nvml, torch=TORCH_CPU), now=NOW)
        assert blocks(entry)[3] == "**NVML:** driver 550.54.15 · CUDA ? · 0 GPUs — cannot list processes"
        assert blocks(entry)[4] == "**torch** in `/usr/bin/python3`:"

    def test_an_unavailable_nvml_without_an_error_says_unknown_error(self) -> None:
        entry = render_gpu_check(GpuCheck(nvml=NvmlReport(available=False), torch=TORCH_CPU), now=NOW)
        assert blocks(entry)[3] == "**NVML:** not available — unknown error"

    def test_one_gpu_is_one_gpu(self) -> None:
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0)), torch=torch_cuda(TorchDevice(A100, 1))), now=NOW)
        assert blocks(entry)[2] == "**NVML:** driver 550.54.15 · CUDA 12.8 · 1 GPU"

    @pytest.mark.parametrize(("used", "total", "cell"), [
        (None, A100_MEMORY, "? / 79.2 GiB"), (GIB, None, "1.0 / ? GiB"), (0, 0, "0.0 / 0.0 GiB")])
    def test_memory_nvml_gave_in_part(self, used: int | None, total: int | None, cell: str) -> None:
        gpu = a100(0, memory_used=used, memory_total=total, utilization_gpu=0)
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(gpu), torch=torch_cuda(TorchDevice(A100, 1))), now=NOW)
        assert f"| 0 | NVIDIA A100-SXM4-80GB | GPU-00000000… | {cell} | 0 % | — |" in entry.splitlines()

    def test_processes_show_what_nvml_knows_of_them(self) -> None:
        processes = (GpuProcess(1, GIB // 2, None), GpuProcess(2, None, "python"), GpuProcess(3, 0, ""))
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(a100(0, processes=processes)),
                                          torch=torch_cuda(TorchDevice(A100, 1))), now=NOW)
        row = "| 0 | NVIDIA A100-SXM4-80GB | GPU-00000000… | 1.5 / 79.2 GiB | 7 % | "
        assert f"{row}1 (0.5 GiB), 2 python, 3 (0.0 GiB) |" in entry.splitlines()

    @pytest.mark.parametrize(("uuid", "cell"), [
        ("GPU-5a7c3b1e", "GPU-5a7c3b1e"), ("GPU-5a7c3b1e-", "GPU-5a7c3b1e-"), ("GPU-5a7c3b1e-0", "GPU-5a7c3b1e…")])
    def test_a_uuid_longer_than_13_characters_is_cut_in_the_table_and_listed_whole(self, uuid: str,
                                                                                  cell: str) -> None:
        gpus = (a100(0, uuid=uuid), a100(1, uuid=None))
        entry = render_gpu_check(GpuCheck(nvml=nvml_with(*gpus), torch=torch_cuda(TorchDevice(A100, 1))), now=NOW)
        assert f"| 0 | NVIDIA A100-SXM4-80GB | {cell} | 1.5 / 79.2 GiB | 7 % | — |" in entry.splitlines()
        assert "| 1 | NVIDIA A100-SXM4-80GB | ? | 1.5 / 79.2 GiB | 7 % | — |" in entry.splitlines()
        listed = "<details><summary>GPU UUIDs</summary>\n\n```text\n0: GPU-5a7c3b1e-0\n```\n\n</details>"
        assert entry.endswith(listed + "\n") is (cell != uuid)
        assert ("<details>" in entry) is (cell != uuid)

    def test_the_uuids_listed_are_those_of_nvml_when_it_works(self) -> None:
        unavailable = NvmlReport(available=False, gpus=(a100(0),))  # gpus a failed NVML still held
        entry = render_gpu_check(GpuCheck(nvml=unavailable, torch=TORCH_CPU), now=NOW)
        assert "<details>" not in entry and "GPU-00000000" not in entry

    def test_an_unnamed_interpreter_is_said_so(self) -> None:
        torch = TorchReport(ok=True, python="", version="2.8.0")
        entry = render_gpu_check(GpuCheck(nvml=NVML_MISSING, torch=torch), now=NOW)
        assert "**torch** in an unnamed interpreter:" in blocks(entry)

    def test_nvidia_smis_output_loses_its_outer_blank_lines_and_a_carriage_return_ends_a_line(self) -> None:
        check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, nvidia_smi="\r\n\nline 1\rline 2\r\n\n")
        assert render_gpu_check(check, now=NOW).endswith(
            "<details><summary>nvidia-smi</summary>\n\n```text\nline 1\nline 2\n```\n\n</details>\n")
        for output in ("  GPU 0: NVIDIA A100 (UUID: GPU-5a7c3b1e)\n", "XID 79 on GPU 0: X\n"):  # spaces, X kept
            check = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, nvidia_smi=output)
            assert render_gpu_check(check, now=NOW).endswith(f"```text\n{output}```\n\n</details>\n")
        empty = GpuCheck(nvml=NVML_MISSING, torch=TORCH_CPU, nvidia_smi="")
        assert "<details><summary>nvidia-smi</summary>" in render_gpu_check(empty, now=NOW)
