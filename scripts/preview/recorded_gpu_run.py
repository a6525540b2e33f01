"""A notebook of the H100 SimpleNet runs recorded on 2026-11-27 (docs/how-to/use-gpus.md), rendered by today's code.

    python scripts/preview/recorded_gpu_run.py OUT.md [--assets DIR]

No GPU is needed: the facts are the ones that machine recorded (its GPU check, both runs' hyperparameters,
metrics, memory and output), put back into the reports devagent renders. The header, the GPU check and both run
sections are written as the agent and `devagent run` would append them, so that the preview check
(scripts/preview-check.sh) sees what a reader of a GPU workspace's notebook sees.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from devagent.core.gpu.check_report import GpuCheck, NvmlGpu, NvmlReport, TorchDevice, TorchReport, render_gpu_check
from devagent.core.notebook import LaunchContext, render_header
from devagent.core.runs.exits import classify_exit
from devagent.core.runs.hparams import argparse_defaults, overlay_argv
from devagent.core.runs.metrics import MetricSummary, sparkline
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.section import RunReport, render_run

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
CWD = "/home/dev/workspace"
ARGS = ["--epochs", "5", "--steps", "200", "--batch-size", "256"]
OUTPUT = {
    1: ["GPU: NVIDIA H100 80GB HBM3 (85.0 GB)", "epoch=1 loss=0.8061 acc=0.7093", "epoch=2 loss=0.3770 acc=0.8448",
        "epoch=3 loss=0.3092 acc=0.8657", "epoch=4 loss=0.2812 acc=0.8781", "epoch=5 loss=0.2644 acc=0.8856"],
    2: ["GPU: NVIDIA H100 80GB HBM3 (85.0 GB)", "epoch=1 loss=0.8968 acc=0.6781", "epoch=2 loss=0.4706 acc=0.8110",
        "epoch=3 loss=0.4124 acc=0.8339", "epoch=4 loss=0.3737 acc=0.8480", "epoch=5 loss=0.3491 acc=0.8592"],
}
# the shape of run 2's loss per step, as its PNG shows it, at the points a sparkline needs; each run's own lowest
# and last values are put in below
SHAPE = [2.31, 1.62, 1.12, 0.93, 0.84, 0.71, 0.62, 0.55, 0.52, 0.49, 0.47, 0.46, 0.43, 0.45, 0.41, 0.42, 0.40,
         0.39, 0.41, 0.38, 0.37, 0.40, 0.36, 0.38, 0.35, 0.37, 0.36, 0.30, 0.35, 0.37]
BEST = {1: (0.180113, 871), 2: (0.227227, 694)}
FINAL = {1: (0.283009, 0.8856), 2: (0.37306, 0.8592)}


def curve(number: int) -> list[float]:
    scale = FINAL[number][0] / SHAPE[-1]
    values = [v * scale for v in SHAPE]
    values[-3], values[-1] = BEST[number][0], FINAL[number][0]
    return values


def header() -> str:
    return render_header(LaunchContext(
        name="pytorch-dev", user="dev", image="devagent/env:3f2a9c1d0e4b",
        base_image="pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
        base_digest="sha256:0d6b3e5fa1c24c0e9b8d7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2",
        launch_command="devagent up pytorch-dev --gpus 0 --memory 32g --cpus 8 --workspace /home/ana/code",
        mounts=(("/home/ana/code", "/home/dev/workspace", "rw"),), limits="memory 32g · 8 cpus · shm 2g · pids 4096",
        gpus="0", ssh_alias="pytorch-dev", devagent_version="0.1.0", created="2026-11-27T03:20:12+00:00"))


def gpu_check() -> str:
    nvml = NvmlReport(available=True, driver_version="580.159.04", cuda_driver_version="13.0", gpus=(
        NvmlGpu(0, "NVIDIA H100 80GB HBM3", "GPU-1189846e-292c-b928-6ad1-e92565edc4ba", 81559 * MIB, 512 * MIB, 0),))
    torch = TorchReport(ok=True, python="/opt/torch/.venv/bin/python3", version="2.11.0+cu130", cuda_build="13.0",
                        is_available=True, device_count=1,
                        devices=(TorchDevice("NVIDIA H100 80GB HBM3", 85_029_158_912),))
    smi = (ROOT / "docs/how-to/use-gpus.md").read_text().split("<details><summary>nvidia-smi</summary>\n\n```text\n")
    return render_gpu_check(GpuCheck(nvml, torch, smi[1].split("```")[0] if len(smi) > 1 else None, 5.3),
                            now=datetime(2026, 11, 27, 3, 22))


def run(number: int, previous: RunRecord | None, *, image: str | None, explained: bool) -> tuple[str, RunRecord]:
    script = (ROOT / "examples/train_simplenet.py").read_text()
    defaults = argparse_defaults(script)
    args = ARGS + (["--lr", "3e-3"] if number == 2 else [])
    argv = ("python3", "train_simplenet.py", *args)
    finals = FINAL[number]
    metrics = [MetricSummary("loss", finals[0], *BEST[number], 1000, final_step=1000),
               MetricSummary("acc", finals[1], finals[1], None, 5, best_point=5),
               MetricSummary("epoch", 5, None, None, 5)]
    record = RunRecord(number, False, "train_simplenet.py", argv, CWD, f"2026-11-27T04:2{7 + 2 * number}:34+00:00",
                       {1: 13.6, 2: 11.2}[number], 0, "success", overlay_argv(defaults, args),
                       {m.name: m.final for m in metrics})
    report = RunReport(
        record=record, started_at=datetime(2026, 11, 27, 4, 27 + 2 * number), exit=classify_exit(0, tail=[]),
        defaults=defaults, previous=previous, git=GitState("913bf41c0ffee", "main", False, (), None),
        edits_since=None, env={"NCCL_VERSION": "2.28.3-1", "NVIDIA_VISIBLE_DEVICES": "0",
                               "TORCH_CUDA_ARCH_LIST": "9.0a"},
        metrics=metrics, metric_sources=("devagent.lab", "output"), curve_name="loss", curve_image=image,
        curve_sparkline=sparkline(curve(number)), curve_range=(min(curve(number)), max(curve(number))),
        gpu=GpuMemory(nvml_peak=819 * MIB, nvml_total=81559 * MIB, torch_allocated=110 * MIB,
                      torch_reserved=128 * MIB, gpus=1, devices=(0,)),
        output_tail=OUTPUT[number], output_lines=len(OUTPUT[number]),
        output_finals={"loss": float(OUTPUT[number][-1].split("loss=")[1].split()[0])}, memory_explained=explained)
    return render_run(report), replace(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--image", help="the loss curve's path, as the section links it (default: a sparkline)")
    parser.add_argument("--only-run-2", action="store_true", help="write only run 2's section (for a screenshot)")
    args = parser.parse_args()
    first, record = run(1, None, image=None, explained=False)
    second, _ = run(2, record, image=args.image, explained=True)
    if args.only_run_2:
        second, _ = run(2, record, image=args.image, explained=False)
        args.out.write_text(second.lstrip("\n"))
    else:
        args.out.write_text(header() + gpu_check() + first + second)


if __name__ == "__main__":
    main()
