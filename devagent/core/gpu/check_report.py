"""The GPU check as plain data, and its rendering as one lab-notebook entry.

Pure: no I/O, no clock, no environment read. The container side (devagent/agent/gpucheck.py) fills these
reports from NVML, from the user's own torch (in a subprocess) and from `nvidia-smi`; this module only turns
them into Markdown.

>>> from datetime import datetime
>>> check = GpuCheck(nvml=NvmlReport(available=False, error="NVML Shared Library Not Found"),
...                  torch=TorchReport(ok=True, python="/usr/bin/python3", version="2.13.0+cpu"))
>>> summary_line(check)
'GPU check · ⚠️ no GPU — training will run on the CPU · torch 2.13.0+cpu · 0.0 s'
>>> render_gpu_check(check, now=datetime(2026, 11, 27, 14, 2)).splitlines()[1]
'## 2026-11-27 14:02 · GPU check · ⚠️ no GPU — training will run on the CPU'
"""



from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from devagent.core.markdown import code_span, details, escape_pipes, fence, split_lines, squeeze, table
from devagent.core.runs.output import shorten

GIB = 1024**3
_STATUS = 48  # characters for the GPUs in a heading: it then wraps at most once in a 600 px preview


class GpuProcess(NamedTuple):
    """A process holding memory on a GPU, as NVML reports it (pids are the host's when run in a container)."""

    pid: int
    used_memory: int | None  # bytes; None where the driver does not say (e.g. WDDM, some MIG setups)
    name: str | None  # None where NVML cannot name it (typically: a process outside this container)


class TorchDevice(NamedTuple):
    """One device as torch sees it: `get_device_name(i)`, `get_device_properties(i).total_memory`."""

    name: str
    total_memory: int  # bytes


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML sees it. Every field NVML could not read is None (NVMLError_NotSupported and kin)."""

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total: int | None = None  # bytes
    memory_used: int | None = None  # bytes
    utilization_gpu: int | None = None  # percent over NVML's last sample period
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class NvmlReport:
    """What NVML says about the machine; available=False (with the error) where NVML could not start."""

    available: bool
    error: str | None = None
    driver_version: str | None = None  # "550.54.15"
    cuda_driver_version: str | None = None  # newest CUDA the driver supports: "12.8" (see cuda_version_text)
    gpus: tuple[NvmlGpu, ...] = ()


@dataclass(frozen=True)
class TorchReport:
    """What the user's own torch says, probed in the user's interpreter.

    ok=False means no report came back (torch missing, the interpreter failed or timed out); error says why.
    ok=True with an error means torch answered but a CUDA query inside the probe failed.
    """

    ok: bool
    error: str | None = None
    python: str = ""  # the interpreter that was probed
    version: str | None = None  # torch.__version__, "2.8.0+cu128"
    cuda_build: str | None = None  # torch.version.cuda; None for a CPU-only build
    is_available: bool = False  # torch.cuda.is_available()
    device_count: int = 0  # torch.cuda.device_count()
    devices: tuple[TorchDevice, ...] = ()


@dataclass(frozen=True)
class GpuCheck:
    """One GPU check: NVML's view, torch's view, the raw `nvidia-smi` output (None without the tool)."""

    nvml: NvmlReport
    torch: TorchReport
    nvidia_smi: str | None = None
    elapsed_s: float = 0.0


NO_GPU_WARNING = (
    "> **No GPU visible.** Training will run on the CPU. "
    "To train on a GPU, start the environment with `--gpus` (e.g. `devagent up NAME --gpus all`) "
    "on a host whose Docker Engine has the NVIDIA runtime (NVIDIA Container Toolkit); "
    "`nvidia-smi` in the container should then list the GPUs."
)
WRONG_PYTHON_HINT = "If this is not the interpreter you train with, set `DEVAGENT_PYTHON` to it."


def cuda_version_text(version: int) -> str:
    """Render NVML's/CUDA's integer version as people write it.

    >>> cuda_version_text(12080), cuda_version_text(11040), cuda_version_text(12020)
    ('12.8', '11.4', '12.2')
    """
    return f"{version // 1000}.{version % 1000 // 10}"


def gib(n: int) -> str:
    """Bytes as GiB with one decimal.

    >>> gib(85_029_158_912)
    '79.2 GiB'
    """
    return f"{n / GIB:.1f} GiB"


def render_gpu_check(check: GpuCheck, *, now: datetime) -> str:
    """Render CHECK as one notebook entry: starts with "\\n## ", ends with exactly one "\\n".

    The heading says what was found and no more (the versions are in the body), so that it wraps at most once in
    a 600 px preview; each table has a label line before it, and the time taken comes before the tables."""
    blocks = [f"## {now:%Y-%m-%d %H:%M} · {_headline(check)}", *_warnings(check),
              f"_Checked in {check.elapsed_s:.1f} s._", _nvml_block(check.nvml)]
    if check.torch.ok:
        blocks.append(_torch_block(check.torch))
    uuids = [gpu.uuid for gpu in _nvml_gpus(check.nvml) if gpu.uuid and _short_uuid(gpu.uuid) != gpu.uuid]
    if uuids:
        blocks.append(_details("GPU UUIDs", "\n".join(f"{gpu.index}: {gpu.uuid}" for gpu in check.nvml.gpus
                                                       if gpu.uuid)))
    if check.nvidia_smi is not None:
        blocks.append(_details("nvidia-smi", check.nvidia_smi))
    return "\n" + "\n\n".join(block for block in blocks if block) + "\n"


def summary_line(check: GpuCheck) -> str:
    """One line for the console: the entry's heading without the date, the driver, CUDA and torch versions, and
    how long the check took."""
    return f"{_headline(check, versions=True)} · {check.elapsed_s:.1f} s"


# --- the heading --------------------------------------------------------------------------------------------


def _headline(check: GpuCheck, *, versions: bool = False) -> str:
    nvml, torch = check.nvml, check.torch
    parts = ["GPU check", _status(check)]
    if versions and nvml.available and nvml.driver_version:
        parts.append(f"driver {squeeze(nvml.driver_version)}")
    if versions and nvml.available and nvml.cuda_driver_version:
        parts.append(f"CUDA {squeeze(nvml.cuda_driver_version)}")
    if not torch.ok:
        parts.append("torch check failed")
    elif versions:
        parts.append(f"torch {squeeze(torch.version or '?')}")
    return " · ".join(parts)


def _status(check: GpuCheck) -> str:
    nvml_gpus = _nvml_gpus(check.nvml)
    failed = "" if check.torch.ok else " · torch check failed"
    if nvml_gpus:
        gpus = [(gpu.name, gpu.memory_total) for gpu in nvml_gpus]
        if _torch_uses_gpu(check.torch):
            return f"✅ {_group(gpus, _STATUS)}"
        if check.torch.ok:
            count = len(nvml_gpus)
            return f"⚠️ torch cannot use {'the GPU' if count == 1 else f'the {count} GPUs'} — it runs on the CPU"
        return f"⚠️ {_group(gpus, _STATUS - len(failed))}"
    if _torch_uses_gpu(check.torch):
        # NVML missing (e.g. libnvidia-ml not mounted) while CUDA works: torch's view is the one that matters.
        return "✅ " + _group([(device.name, device.total_memory) for device in check.torch.devices], _STATUS)
    return "⚠️ no GPU" + ("" if failed else " — training will run on the CPU")


def _group(gpus: list[tuple[str | None, int | None]], budget: int) -> str:
    """Identical GPUs (same name and memory) as "2 × NAME (79.2 GiB)", groups in order of first appearance, in at
    most BUDGET characters: without the memory, then without the vendor's name, then as a count, when longer.

    >>> _group([("NVIDIA A100-SXM4-80GB", 85_899_345_920)] * 2, 48)
    '2 × NVIDIA A100-SXM4-80GB (80.0 GiB)'
    >>> _group([("NVIDIA A100-SXM4-80GB", 85_899_345_920), ("NVIDIA L4", 24_152_899_584)], 48)
    '1 × A100-SXM4-80GB (80.0 GiB), 1 × L4 (22.5 GiB)'
    >>> _group([(f"NVIDIA RTX {n}", None) for n in range(6)], 48)
    '6 GPUs of 6 kinds'
    """
    counts: dict[tuple[str | None, int | None], int] = {}
    for key in gpus:
        counts[key] = counts.get(key, 0) + 1

    def label(memory: bool, vendor: bool) -> str:
        labels = []
        for (name, total), count in counts.items():
            text = squeeze(name or "unknown GPU")
            if not vendor:
                text = text.removeprefix("NVIDIA ")
            labels.append(f"{count} × {text}" + (f" ({gib(total)})" if memory and total is not None else ""))
        return ", ".join(labels)

    for memory, vendor in ((True, True), (True, False), (False, True), (False, False)):
        text = label(memory, vendor)
        if len(text) <= budget:
            return text
    if len(counts) == 1:
        return shorten(label(False, False), budget)
    return f"{len(gpus)} GPUs of {len(counts)} kinds"


# --- warnings -----------------------------------------------------------------------------------------------


def _warnings(check: GpuCheck) -> list[str]:
    nvml_gpus, torch = _nvml_gpus(check.nvml), check.torch
    warnings = []
    if not nvml_gpus and not _torch_uses_gpu(torch):
        warnings.append(NO_GPU_WARNING)
    if nvml_gpus and torch.ok and not _torch_uses_gpu(torch):
        warnings.append(_mismatch_warning(check.nvml, torch))
    elif nvml_gpus and _torch_uses_gpu(torch) and torch.device_count < len(nvml_gpus):
        warnings.append(
            f"> **torch sees {torch.device_count} of the {len(nvml_gpus)} GPUs NVML lists.** "
            "Check `CUDA_VISIBLE_DEVICES`."
        )
    if not torch.ok:
        failed = _quote_error("**torch check failed.**", torch.error or "no report", WRONG_PYTHON_HINT)
        warnings.append(failed)
    elif torch.error:
        warnings.append(_quote_error("**torch reported an error.**", torch.error))
    return warnings


def _mismatch_warning(nvml: NvmlReport, torch: TorchReport) -> str:
    count = len(_nvml_gpus(nvml))
    text = (
        f"> **torch cannot use the GPU{'s' if count != 1 else ''}.** NVML lists {count} "
        f"GPU{'s' if count != 1 else ''}, but `torch.cuda.is_available()` is {torch.is_available} in "
        f"{code_span(squeeze(torch.python))}: training will run on the CPU. "
    )
    driver_cuda = nvml.cuda_driver_version
    if torch.cuda_build is None:
        wanted = f" for CUDA {squeeze(driver_cuda)} or older" if driver_cuda else ""
        version = squeeze(torch.version or "?")
        text += f"This torch ({version}) is a CPU-only build: install a CUDA build{wanted}."
    elif driver_cuda and _newer(torch.cuda_build, driver_cuda):
        text += (
            f"This torch is built for CUDA {squeeze(torch.cuda_build)}, newer than the driver supports "
            f"(CUDA {squeeze(driver_cuda)}): install a torch built for CUDA {squeeze(driver_cuda)} or older, "
            "or update the driver."
        )
    else:
        text += (
            "Check `CUDA_VISIBLE_DEVICES` and the error from "
            "`python -c \"import torch; torch.cuda.init()\"`."
        )
    return text


def _newer(version: str, than: str) -> bool:
    """Whether dotted VERSION is newer than THAN; unreadable versions never count as newer."""
    try:
        return tuple(int(p) for p in version.split(".")) > tuple(int(p) for p in than.split("."))
    except ValueError:
        return False


def _quote_error(title: str, error: str, hint: str | None = None) -> str:
    """A blockquote: TITLE, the error's first line, any further lines in a fenced block, then HINT."""
    first, *rest = split_lines(error.strip())
    lines = [f"{title} {squeeze(first)}".rstrip()]
    if rest:  # the error was stripped: its last line holds more than spaces
        # a bare \r left in would end the blockquote early: the fence holds the lines split_lines gave
        lines += ["", *fence(split_lines("\n".join(rest).strip("\n"))).split("\n")]
    if hint:
        lines += ["", hint]
    return "\n".join(f"> {line}" if line else ">" for line in lines)


# --- body blocks --------------------------------------------------------------------------------------------


def _nvml_block(nvml: NvmlReport) -> str:
    if not nvml.available:
        return f"**NVML:** not available — {squeeze(nvml.error or 'unknown error')}"
    facts = [f"driver {nvml.driver_version or '?'}", f"CUDA {nvml.cuda_driver_version or '?'}"]
    count = len(nvml.gpus)
    facts.append(f"{count} GPU{'s' if count != 1 else ''}")
    block = "**NVML:** " + squeeze(" · ".join(facts))
    if nvml.error:
        block += f" — {squeeze(nvml.error)}"
    if not nvml.gpus:
        return block
    rows = [
        [
            str(gpu.index),
            gpu.name or "?",
            _short_uuid(gpu.uuid) if gpu.uuid else "?",
            _memory(gpu.memory_used, gpu.memory_total),
            f"{gpu.utilization_gpu} %" if gpu.utilization_gpu is not None else "?",
            ", ".join(_process(p) for p in gpu.processes) or "—",
        ]
        for gpu in nvml.gpus
    ]
    header = ["GPU", "name", "UUID", "memory used / total", "utilisation", "processes"]
    return block + "\n\n" + _table(header, rows)


def _memory(used: int | None, total: int | None) -> str:
    if used is None and total is None:
        return "?"
    used_text = f"{used / GIB:.1f}" if used is not None else "?"
    total_text = gib(total) if total is not None else "? GiB"
    return f"{used_text} / {total_text}"


def _process(process: GpuProcess) -> str:
    text = str(process.pid)
    if process.name:
        text += f" {process.name}"
    if process.used_memory is not None:
        text += f" ({gib(process.used_memory)})"
    return text


def _short_uuid(uuid: str) -> str:
    """A GPU UUID cut to its first 8 hex digits, as in ``GPU-5a7c3b1e…`` (the entry lists them whole, folded):
    a whole UUID is too wide for a table at 600 px.

    >>> _short_uuid("GPU-5a7c3b1e-0f2d-4c1b-9a8e-1234567890ab"), _short_uuid("MIG-1")
    ('GPU-5a7c3b1e…', 'MIG-1')
    """
    text = squeeze(uuid)
    return text if len(text) <= 13 else text[:12] + "…"


def _torch_block(torch: TorchReport) -> str:
    label = f"**torch** in {code_span(squeeze(torch.python)) or 'an unnamed interpreter'}:"
    return label + "\n\n" + _torch_table(torch)


def _torch_table(torch: TorchReport) -> str:
    rows = [
        ["version", torch.version or "?"],
        ["CUDA build", torch.cuda_build or "none (CPU-only build)"],
        ["`torch.cuda.is_available()`", str(torch.is_available)],
        ["`torch.cuda.device_count()`", str(torch.device_count)],
    ]
    rows += [[f"device {i}", f"{device.name} · {gib(device.total_memory)}"] for i, device in
             enumerate(torch.devices)]
    return _table(["torch", "result"], rows)


def _details(summary: str, text: str) -> str:
    # Markdown ends a line at \r too: split there, so the fence's lines are the lines a reader sees.
    return details(summary, fence(split_lines(text.strip("\r\n"))))


# --- tables -------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    """HEADER and ROWS as a table. Cells are outside text or Markdown written here: each is kept on one line
    and every `|` in it escaped (GFM honours `\\|` inside code spans too)."""
    return table(header, [[escape_pipes(squeeze(cell)) for cell in row] for row in rows])


# --- shared predicates --------------------------------------------------------------------------------------


def _nvml_gpus(nvml: NvmlReport) -> tuple[NvmlGpu, ...]:
    return nvml.gpus if nvml.available else ()


def _torch_uses_gpu(torch: TorchReport) -> bool:
    return torch.ok and torch.is_available and torch.device_count > 0
