"""What `devagent run` costs a 2-process `torchrun` (gloo, CPU), against the same `torchrun` run directly, in one run.

    .venv/bin/python benchmarks/torchrun_bench.py [--rounds N] [--steps N] [--baseline DIR] [--user-python PY]

Both commands run the same small DDP script (tests/runs/test_distributed.py's kind: a linear model, gloo, every
rank printing `step=N loss=X`), alternating bare and wrapped so that load drifting on a shared machine hits both
alike; each round takes a fresh rendezvous port. Figures (target in brackets):

- the ratio of the medians, wrapped over bare [≤ 1.05×];
- the difference of the medians, in ms (what one distributed run pays, once: start, rank tagging, the section);
- a third arm, bare `torchrun` with the rank tagging `devagent run` turns on (``PET_TEE=3`` and a
  ``[rank${rank}]:`` prefix: torchrun then writes each rank's output to a file and tails it back), which splits
  the cost into torchrun's own tee and devagent's.

With ``--baseline DIR`` (another checkout of devagent, e.g. ``git archive main``'s) a fourth arm times that
devagent's `devagent run` in the same rounds. With ``--user-python PY`` (an interpreter with matplotlib) the
wrapped runs draw their loss-curve picture with it (DEVAGENT_PYTHON), as a user's environment with matplotlib
does; without it the picture's interpreter is the first `python3` on PATH outside this venv.

Torch's own start (two ranks importing torch) dominates both; the steps are kept short so that the figure is the
wrapper's cost on a real launch, not diluted by a long training loop. It reports, it does not gate: the exit
status is 0 unless a command failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

DDP = """\
import os, sys
import torch
import torch.distributed as dist
steps = int(sys.argv[1])
dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(steps):
    loss = model(torch.randn(64, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step={step} loss={loss.item():.4f}", flush=True)
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)  # torch 2.13's CPU gloo aborts now and then in its C++ teardown; the run is done
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TAGGING = {"PET_TEE": "3", "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "[rank${rank}]:"}


def timed(argv: list[str], cwd: Path, extra: dict[str, str] | None = None, repo: Path = REPO) -> float:
    # PYTHONDONTWRITEBYTECODE (set on the build machine) would make every wrapped run compile devagent from
    # source (~0.2 s); an installed devagent has its bytecode, like torch's in site-packages.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(repo)
    env["PATH"] = os.path.dirname(PYTHON) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--baseline", type=Path, default=None, help="another devagent checkout to time too")
    parser.add_argument("--user-python", default=None, help="DEVAGENT_PYTHON for the wrapped runs")
    args = parser.parse_args()
    torchrun = shutil.which("torchrun", path=os.path.dirname(PYTHON))
    if torchrun is None:
        print("needs torch (and its torchrun) in this interpreter: pip install torch", file=sys.stderr)
        return 2
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "train_ddp.py").write_text(DDP)

        def command() -> list[str]:
            return [torchrun, "--nproc-per-node=2", "--master-port", str(_free_port()), "train_ddp.py",
                    str(args.steps)]

        wrap = {"DEVAGENT_PYTHON": args.user_python} if args.user_python else {}
        repos = {"wrapped": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        timed(command(), ws)  # warm the page cache for torch's import, for both sides alike
        for repo in repos.values():  # and devagent's (and its bytecode)
            timed([PYTHON, "-m", "devagent", "run", "--", *command()], ws, wrap, repo)
        times: dict[str, list[float]] = {"bare": [], "tee": [], **{arm: [] for arm in repos}}
        for i in range(args.rounds):
            # Rotate which goes first, so none always follows another's cache effects.
            arms = list(times)
            for arm in arms[i % len(arms):] + arms[:i % len(arms)]:
                if arm in repos:
                    times[arm].append(timed([PYTHON, "-m", "devagent", "run", "--", *command()], ws, wrap,
                                            repos[arm]))
                else:
                    times[arm].append(timed(command(), ws, TAGGING if arm == "tee" else None))
        bare, tee, wrapped = times["bare"], times["tee"], times["wrapped"]
        b, t, w = (statistics.median(x) for x in (bare, tee, wrapped))
        print(f"bare torchrun:    median {b * 1000:.0f} ms (min {min(bare) * 1000:.0f}, max {max(bare) * 1000:.0f})")
        print(f"torchrun + tee:   median {t * 1000:.0f} ms (min {min(tee) * 1000:.0f}, max {max(tee) * 1000:.0f})"
              f" = {t / b:.3f}× bare")
        print(f"devagent run:     median {w * 1000:.0f} ms (min {min(wrapped) * 1000:.0f}, "
              f"max {max(wrapped) * 1000:.0f})")
        print(f"ratio {w / b:.3f}× ({(w - b) * 1000:+.0f} ms per run; "
              f"min against min {min(wrapped) / min(bare):.3f}×), "
              f"{args.rounds} rounds alternating, {args.steps} steps [target ≤ 1.05×]")
        print(f"devagent's own part: {w / t:.3f}× torchrun with the same tagging ({(w - t) * 1000:+.0f} ms)")
        if "baseline" in times:
            base = statistics.median(times["baseline"])
            print(f"baseline devagent run: median {base * 1000:.0f} ms (min {min(times['baseline']) * 1000:.0f}, "
                  f"max {max(times['baseline']) * 1000:.0f}) = {base / b:.3f}× bare, {base / t:.3f}× tagged")
        sections = (ws / "lab-notebook.md").read_text().count("\n## ")
        pictures = len(list((ws / "lab-notebook.assets").glob("*.png")))
        print(f"sections appended: {sections} (expected {(args.rounds + 1) * len(repos)}: warming up included), "
              f"{pictures} loss-curve pictures")
        print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
