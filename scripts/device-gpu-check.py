#!/usr/bin/env python3
"""Run devagent's GPU check here, print its notebook entry, and prove that torch can compute on the GPU.

Meant for a bare GPU machine that has the repository but not devagent installed (no Docker, no internet): it
needs only Python, nvidia-ml-py and, in the interpreter it probes, torch.

    python3 scripts/device-gpu-check.py [--python /path/to/python]

The interpreter probed is --python, else $DEVAGENT_PYTHON, else the one running this script. With $OUT set,
the entry goes to $OUT/gpu-check.md and the raw reports to $OUT/gpu-check.json. Exit status 1 when NVML sees
a GPU but torch cannot use it (the probe fails, or the matmul does not run or is wrong); 0 otherwise, also
with no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # devagent is not installed on the device machine: use this checkout

from devagent.agent.gpucheck import probe_nvml, run_gpu_check  # noqa: E402
from devagent.core.gpu.check_report import GpuCheck, render_gpu_check, summary_line  # noqa: E402
from devagent.inside.interpreter import find_user_python  # noqa: E402

# In a subprocess, like the probe itself: this process never imports torch, as the agent never does.
MATMUL = """\
import json, time, torch
if not torch.cuda.is_available():
    print(json.dumps({"ran": False, "reason": "torch.cuda.is_available() is False"}))
    raise SystemExit(0)
torch.manual_seed(0)
a = torch.randn(1024, 1024, device="cuda")
b = torch.randn(1024, 1024, device="cuda")
(a @ b).sum().item()  # warm-up: the first call pays for CUDA context and cuBLAS handles
torch.cuda.synchronize()
start = time.perf_counter()
c = a @ b
torch.cuda.synchronize()
seconds = time.perf_counter() - start
reference = a.double().cpu() @ b.double().cpu()
error = ((c.double().cpu() - reference).abs().max() / reference.abs().max()).item()
print(json.dumps({"ran": True, "device": torch.cuda.get_device_name(0), "seconds": seconds,
                  "max_relative_error": error, "ok": error < 1e-2}))
"""


def run_matmul(python: str, timeout: float = 300) -> dict[str, object]:
    """A 1024 x 1024 matmul on cuda:0 in PYTHON, checked against float64 on the CPU."""
    try:
        result = subprocess.run([python, "-c", MATMUL], capture_output=True, text=True, timeout=timeout,
                                check=False)
    except subprocess.TimeoutExpired:
        return {"ran": False, "reason": f"timed out after {timeout:g} s"}
    except OSError as e:
        return {"ran": False, "reason": f"cannot run {python}: {e}"}
    if result.returncode != 0:
        return {"ran": False, "reason": f"exit status {result.returncode}", "stderr": result.stderr[-2000:]}
    try:
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"ran": False, "reason": "no JSON on stdout", "stdout": result.stdout[-2000:]}


def nvml_query_time(repeats: int = 5) -> float:
    """The fastest of REPEATS full NVML probes (init, every query, shutdown), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        probe_nvml()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--python", help="interpreter to probe (default: $DEVAGENT_PYTHON, else this one)")
    args = parser.parse_args()
    python = args.python or os.environ.get("DEVAGENT_PYTHON") or sys.executable

    print(f"probing torch in: {python}   (the agent's own lookup would pick: {find_user_python()})")
    check: GpuCheck = run_gpu_check(python=python)
    entry = render_gpu_check(check, now=datetime.now())
    print(entry)
    print(summary_line(check))

    matmul = run_matmul(python)
    print(f"CUDA matmul: {json.dumps(matmul)}")
    nvml_s = nvml_query_time()
    print(f"one full NVML probe: {nvml_s * 1e3:.2f} ms (fastest of 5)")

    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "gpu-check.md").write_text(entry, encoding="utf-8")
        raw = {"check": dataclasses.asdict(check), "matmul": matmul, "nvml_probe_s": nvml_s}
        Path(out, "gpu-check.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}/gpu-check.md and {out}/gpu-check.json")

    gpus_visible = check.nvml.available and bool(check.nvml.gpus)
    if gpus_visible and not (check.torch.ok and matmul.get("ok") is True):
        print("FAILED: NVML sees a GPU but torch could not compute on it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
