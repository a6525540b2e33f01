"""Write a notebook with one distributed GPU run section, for scripts/preview-check.sh.

    python scripts/preview/distributed_gpu_run.py OUT.md

A `torchrun --nproc-per-node=2` run (rank-tagged output, rank 0's loss, the effective batch) with the per-GPU
timeline of the synthetic GPU trace (tests/runs/fixtures/gpu-trace-synthetic.json, replayed through the test
helpers' stand-in NVML): the distributed rows, the GPU activity table, its hint and the SVG picture. No GPU is
needed; the picture is written beside OUT.md, in OUT.md's assets folder, as `devagent run` writes it.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from devagent.runs.finish import Finished, finish_run  # noqa: E402
from devagent.runs.output_watch import OutputWatch  # noqa: E402
from devagent.runs.place import RunPlace  # noqa: E402
from devagent.runs.runlog import RunLog  # noqa: E402
from tests.runs.support.trace_nvml import TraceNvml  # noqa: E402
from tests.runs.test_gpu_timeline import replay  # noqa: E402

SCRIPT = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--gradient-accumulation-steps", type=int, default=1)
"""


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "train_ddp.py").write_text(SCRIPT)
        runs = RunLog(ws)
        number = runs.reserve("2026-12-07T17:00:00+00:00")
        output = OutputWatch(ranks=True)
        lines = []
        for step in range(40):
            for rank in (0, 1):
                lines.append(f"[rank{rank}]:step={step} loss={2.0 / (step + 1):.4f} lr=0.05\n")
        lines.append("[rank1]:rank 1 saw a slow data loader shard (/data/imagenet/train/shard-00017.tar) "
                     "and waited 12.3 s\n")
        output.feed("".join(lines).encode())
        output.close()
        notebook = out
        notebook.unlink(missing_ok=True)
        finish_run(RunPlace(ws, ws / "lab-notebook.md"), runs, Finished(
            number=number, argv=["torchrun", "--nproc-per-node=2", "train_ddp.py", "--batch-size", "64",
                                 "--gradient-accumulation-steps", "4"],
            cwd=ws, started=datetime(2026, 12, 7, 17, 0, tzinfo=timezone.utc), duration_s=60.0, exit_code=0,
            output=output, gpu_peak=10 << 30, gpu_total=160 << 30, gpus_used=2, gpu_devices=(0, 1),
            gpu_timelines=replay(TraceNvml.load()), cpu_share=0.2, python=sys.executable))
        out.write_text((ws / "lab-notebook.md").read_text())
        assets = out.parent / "lab-notebook.assets"
        assets.mkdir(exist_ok=True)
        for picture in (ws / "lab-notebook.assets").iterdir():
            (assets / picture.name).write_bytes(picture.read_bytes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
