#!/usr/bin/env python3
"""Record a real GPU trace for the timeline's replay tests: every GPU's utilisation, memory, power and
temperature through NVML, while a one-minute load runs on GPU 0 (work, a sleeping phase, work again), and the
section devagent would write for it.

Meant for a lent GPU machine that has the repository but not devagent installed (no Docker, no internet): it
needs only Python, nvidia-ml-py and, for the load, torch.

    python3 scripts/record-gpu-trace.py [--seconds 60] [--interval 0.5] [--python /path/to/python]

With $OUT set, the trace goes to $OUT/gpu-trace.json (the format of tests/runs/fixtures/gpu-trace-synthetic.json,
with "synthetic": false and the driver and GPU names), the picture to $OUT/gpu-timeline.svg and the section's
GPU activity block to $OUT/gpu-activity.md. A real trace then replaces nothing: add it beside the synthetic one
(tests/runs/fixtures/gpu-trace-<gpu>.json) and point a replay test at it. Exit status 1 when NVML sees no GPU.
Not yet run: no GPU machine was lent to the task that wrote it (2026-12-07).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # devagent is not installed on the device machine: use this checkout

from devagent.core.runs.gpu_timeline import DeviceTimeline, hints, timeline_svg  # noqa: E402
from devagent.core.runs.section import gpu_activity  # noqa: E402
from devagent.inside import nvml  # noqa: E402
from devagent.inside.gpu_readings import read_gpu  # noqa: E402

# A third of the time a matmul loop on GPU 0, a third asleep (the idle hint's case), a third the loop again.
LOAD = """
import sys, time, torch
third = float(sys.argv[1]) / 3
x = torch.randn(8192, 8192, device="cuda:0")
def work(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        y = x @ x
        torch.cuda.synchronize()
work(third); time.sleep(third); work(third)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--python", default=os.environ.get("DEVAGENT_PYTHON", sys.executable))
    args = parser.parse_args()
    lib = nvml.pynvml
    error = nvml.init(lib)
    if error is not None:
        print(f"no NVML: {error}", file=sys.stderr)
        return 1
    try:
        count = lib.nvmlDeviceGetCount()
        if not count:
            print("NVML sees no GPU", file=sys.stderr)
            return 1
        handles = {i: lib.nvmlDeviceGetHandleByIndex(i) for i in range(count)}
        devices = [{"index": i, "name": str(nvml.query(lib, lib.nvmlDeviceGetName, h)),
                    "memory_total": read_gpu(lib, h).mem_total} for i, h in handles.items()]
        driver = str(nvml.query(lib, lib.nvmlSystemGetDriverVersion))
        load = subprocess.Popen([args.python, "-c", LOAD, str(args.seconds)])
        started = time.monotonic()
        samples, timelines = [], {i: DeviceTimeline(i) for i in handles}
        last = started
        while load.poll() is None:
            time.sleep(args.interval)
            now = time.monotonic()
            gpus = []
            for i, h in handles.items():
                r = read_gpu(lib, h)
                timelines[i].add(now - started, util=r.util, mem_used=r.mem_used, mem_total=r.mem_total,
                                 power_w=r.power_w, temp_c=r.temp_c, dt=now - last)
                gpus.append({"util": r.util, "mem_used": r.mem_used,
                             "power_mw": round(r.power_w * 1000) if r.power_w is not None else None,
                             "temp_c": r.temp_c})
            samples.append({"t": round(now - started, 3), "gpus": gpus})
            last = now
        duration = time.monotonic() - started
    finally:
        nvml.shutdown(lib)
    trace = {"synthetic": False, "note": f"recorded by scripts/record-gpu-trace.py, load exit {load.returncode}",
             "recorded_by": f"{os.uname().nodename}, driver {driver}, {datetime.now(timezone.utc).isoformat()}",
             "interval_s": args.interval, "devices": devices, "samples": samples}
    out = Path(os.environ.get("OUT", "."))
    (out / "gpu-trace.json").write_text(json.dumps(trace, separators=(",", ":")) + "\n")
    ordered = [timelines[i] for i in sorted(timelines)]
    (out / "gpu-timeline.svg").write_text(timeline_svg(ordered, duration_s=duration, title="recorded trace"))
    block = gpu_activity(ordered, image="gpu-timeline.svg", cpu_share=None)
    (out / "gpu-activity.md").write_text(block + "\n")
    print(block)
    print("\nhints:", hints(ordered, cpu_share=None))
    return 0 if load.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
