"""What `devagent run` costs a training run, each figure against the same command run directly, in the same run.

    .venv/bin/python benchmarks/run_bench.py [--quick]

Figures (target in brackets):

- fixed cost: ``python -c pass`` through `devagent run` (start, run section, notebook append) minus the command
  alone, median of N [≤ 1 s: one section per run, so this is paid once per training run, not per step];
- throughput: 1 GB of output (300 MB with --quick) written as fast as the script can, through the wrapper to
  /dev/null (best of 2, the best wrapped `pass` taken off), against the same script piped through `cat` to
  /dev/null (best of 2) — the least any wrapper that sees the output costs [wrapper ≥ 0.5× the pipe];
- peak RSS of the wrapper while it streams that output [≤ 80 MiB: the tail and the metrics are bounded].

It reports, it does not gate: the exit status is always 0.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WRAP = [PYTHON, "-m", "devagent", "run", "--"]

FLOOD = """\
import sys
chunk = ({line!r} + b" " * (99 - len({line!r})) + b"\\n") * 10_000
for _ in range({n}):
    sys.stdout.buffer.write(chunk)
"""
PLAIN = b"[train] batch done"  # no metric in it: no curve to draw, so the run's end costs what `pass` costs
METRICS = b"epoch=1 step=12345 loss=0.123456 acc=0.9876 lr=0.0003"


def timed(argv: list[str], cwd: Path, *, through_cat: bool = False) -> float:
    """Seconds ARGV takes with its output to /dev/null, or piped through `cat` to /dev/null."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if through_cat:
        argv = ["sh", "-c", shlex.join(argv) + " | cat"]
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    megabytes = 300 if args.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "nothing.py").write_text("pass\n")
        (ws / "flood.py").write_text(FLOOD.format(n=megabytes, line=PLAIN))
        (ws / "metrics.py").write_text(FLOOD.format(n=megabytes // 3, line=METRICS))

        direct = [timed([PYTHON, "nothing.py"], ws) for _ in range(rounds)]
        wrapped = [timed([*WRAP, PYTHON, "nothing.py"], ws) for _ in range(rounds)]
        cost = statistics.median(wrapped) - statistics.median(direct)
        print(f"fixed cost per run: {cost * 1000:.0f} ms (wrapped {statistics.median(wrapped) * 1000:.0f} ms, "
              f"direct {statistics.median(direct) * 1000:.0f} ms, median of {rounds}) [target ≤ 1000 ms]")

        flood_direct = min(timed([PYTHON, "flood.py"], ws, through_cat=True) for _ in range(2))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # Streaming only: the least a wrapped flood took minus the least a wrapped `pass` took (min against min:
        # on a loaded machine a median fixed cost taken off a best flood time can leave nothing, or less).
        floor_cost = min(wrapped) - min(direct)
        flood_wrapped = min(timed([*WRAP, PYTHON, "flood.py"], ws) for _ in range(2)) - floor_cost
        ratio = flood_direct / flood_wrapped
        print(f"throughput: {megabytes / flood_wrapped:.0f} MB/s wrapped (its fixed cost taken off) vs "
              f"{megabytes / flood_direct:.0f} MB/s through a pipe to cat = {ratio:.2f}× [target ≥ 0.5×]")
        metrics_wrapped = timed([*WRAP, PYTHON, "metrics.py"], ws)
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        section = (ws / "lab-notebook.md").read_text().rsplit("\n## ", 1)[-1]
        share = next((line for line in section.splitlines() if line.startswith("Sources: ")), "")
        print(f"{megabytes // 3} MB of metric lines: {metrics_wrapped:.2f} s in all (with the loss curve drawn); "
              f"metrics read from {share.removeprefix('Sources: ').split('. ')[0]}")
        note = "" if rss_mib > before / 1024 else " (the largest child so far; the wrapper is no larger)"
        print(f"peak RSS of the largest child process (the wrapper, while streaming): {rss_mib:.0f} MiB{note} "
              "[target ≤ 80 MiB]")
        sections = (ws / "lab-notebook.md").read_text().count("\n## ")
        print(f"sections appended: {sections} (expected {rounds + 3})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
