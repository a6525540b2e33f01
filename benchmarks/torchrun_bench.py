"""What `devagent run` costs a 2-process `torchrun` (gloo, CPU), against the same `torchrun` run directly, in one run.

    .venv/bin/python benchmarks/torchrun_bench.py [--rounds N] [--steps N] [--baseline DIR] [--user-python PY]

Both commands run the same small DDP script (tests/runs/test_distributed.py's kind: a linear model, gloo, every
rank printing `step=N loss=X`), alternating bare and wrapped so that load drifting on a shared machine hits both
alike; each round takes a fresh rendezvous port. Figures (target in brackets):

- the ratio of the medians, wrapped over bare [≤ 1.05×];
- the difference of the medians, in ms (what one distributed run pays, once: start, rank tagging, the section);
- each arm's launch part: from the command's start to its first rank's start, plus from its last rank's end to
  the command's end (every rank writes when it started and ended): what the launcher and the wrapper add, with
  the ranks' own work — torch's import and the training, the noisiest part on a shared machine — left out;
- a third arm, bare `torchrun` with the rank tagging `devagent run` turned on until session 18 (``PET_TEE=3``
  and a ``[rank${rank}]:`` prefix: torchrun then writes each rank's output to a file and tails it back), and a
  fourth with what it asks of a one-node torchrun since (``PET_REDIRECTS=3``: the files only; devagent tails
  them), which split the cost into torchrun's part and devagent's.

With ``--baseline DIR`` (another checkout of devagent, e.g. ``git archive main``'s) a fifth arm times that
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
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

DDP = """\
import os, sys, time
started = time.time()  # before torch's import: the launch's own part ends here
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
with open(os.environ["BENCH_STAMPS"] + os.environ["RANK"], "w") as f:
    f.write(f"{started} {time.time()}")
os._exit(0)  # torch 2.13's CPU gloo aborts now and then in its C++ teardown; the run is done
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TAGGING = {"PET_TEE": "3", "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "[rank${rank}]:"}
REDIRECTS = {"PET_REDIRECTS": "3"}  # what `devagent run` asks of a one-node torchrun since session 18


class Timing(NamedTuple):
    total: float
    before: float  # from the command's start to the first rank's start
    after: float  # from the last rank's end to the command's end

    @property
    def launch(self) -> float:
        """The launch's own part: the ranks' own work (torch's import, training), the noisiest, left out."""
        return self.before + self.after


def timed(argv: list[str], cwd: Path, extra: dict[str, str] | None = None, repo: Path = REPO) -> Timing:
    # PYTHONDONTWRITEBYTECODE (set on the build machine) would make every wrapped run compile devagent from
    # source (~0.2 s); an installed devagent has its bytecode, like torch's in site-packages.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(repo)
    env["PATH"] = os.path.dirname(PYTHON) + os.pathsep + env.get("PATH", "")
    stamps = cwd / "stamps"
    shutil.rmtree(stamps, ignore_errors=True)
    stamps.mkdir()
    env["BENCH_STAMPS"] = str(stamps) + "/rank"
    env.update(extra or {})
    start, wall = time.perf_counter(), time.time()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    total, end = time.perf_counter() - start, time.time()
    ranks = [tuple(map(float, p.read_text().split())) for p in stamps.iterdir()]
    return Timing(total, min(r[0] for r in ranks) - wall, end - max(r[1] for r in ranks))


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
        times: dict[str, list[Timing]] = {"bare": [], "tee": [], "redirects": [], **{arm: [] for arm in repos}}
        for i in range(args.rounds):
            # Rotate which goes first, so none always follows another's cache effects.
            arms = list(times)
            for arm in arms[i % len(arms):] + arms[:i % len(arms)]:
                if arm in repos:
                    times[arm].append(timed([PYTHON, "-m", "devagent", "run", "--", *command()], ws, wrap,
                                            repos[arm]))
                else:
                    times[arm].append(timed(command(), ws, {"tee": TAGGING, "redirects": REDIRECTS}.get(arm)))
        names = {"bare": "bare torchrun", "tee": "torchrun + tee", "redirects": "torchrun + redirects",
                 "wrapped": "devagent run", "baseline": "baseline devagent run"}
        total = {arm: statistics.median(t.total for t in runs) for arm, runs in times.items()}
        launch = {arm: statistics.median(t.launch for t in runs) for arm, runs in times.items()}
        print(f"{'arm':22} {'median':>9} {'min':>9} {'ratio':>7} {'launch part':>12} {'min':>9} {'+ bare':>8}"
              f" {'before':>8} {'after':>8} (medians)")
        for arm, runs in times.items():
            print(f"{names[arm]:22} {total[arm] * 1000:7.0f}ms {min(t.total for t in runs) * 1000:7.0f}ms "
                  f"{total[arm] / total['bare']:6.3f}× {launch[arm] * 1000:10.0f}ms "
                  f"{min(t.launch for t in runs) * 1000:7.0f}ms {(launch[arm] - launch['bare']) * 1000:+6.0f}ms "
                  f"{statistics.median(t.before for t in runs) * 1000:6.0f}ms "
                  f"{statistics.median(t.after for t in runs) * 1000:6.0f}ms")
        b, w = total["bare"], total["wrapped"]
        print(f"ratio {w / b:.3f}× ({(w - b) * 1000:+.0f} ms per run), {args.rounds} rounds alternating, "
              f"{args.steps} steps [target ≤ 1.05×]; by the launch parts (the ranks' own work left out): "
              f"{(launch['wrapped'] - launch['bare']) * 1000:+.0f} ms = "
              f"{(b + launch['wrapped'] - launch['bare']) / b:.3f}× the bare median")
        sections = (ws / "lab-notebook.md").read_text().count("\n## ")
        pictures = len(list((ws / "lab-notebook.assets").glob("*.png")))
        print(f"sections appended: {sections} (expected {(args.rounds + 1) * len(repos)}: warming up included), "
              f"{pictures} loss-curve pictures")
        print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
