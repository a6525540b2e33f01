"""Time `devagent up` on a built image, up to the proven login, against the floor measured in the same run.

Floor: a plain `docker run` of the same image (sshd with a mounted host key and authorized key) plus the first
OpenSSH login that succeeds. Target: devagent up <= 1.5x the floor. Also times `devagent --help` (target
well under 0.25 s) against a bare `python -c pass`.

    .venv/bin/python benchmarks/up_bench.py [--rounds 5] [--base-image devagent-base:bookworm]

It reports; it does not gate. Runs alternate (floor, devagent, floor, ...) so that machine noise hits both.

devagent runs as installed: with its bytecode cached (in the run's temporary folder, filled by the unmeasured
first round), as a pip install compiles it. A shell with PYTHONDONTWRITEBYTECODE=1 (this build machine's) would
otherwise compile devagent's source on every run, about 65 ms that no installed devagent pays; --no-bytecode
measures that way.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEVAGENT = [sys.executable, "-m", "devagent"]

from benchmarks.up_floor import PORT, docker_run, first_login, floor_keys, published_port  # noqa: E402


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=check, cwd=cwd)


def floor_once(image: str, keydir: Path, name: str) -> float:
    """docker run + the first successful OpenSSH login, in seconds."""
    start = time.perf_counter()
    try:
        cid = run(docker_run(image, keydir, name)).stdout.strip()
        port = published_port(run(["docker", "port", cid, PORT]).stdout)
        return first_login(lambda argv: run(argv, check=False), keydir, port, since=start)
    finally:
        run(["docker", "rm", "-f", name], check=False)


def children_cpu() -> float:
    """User + sys seconds of every child process this one has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: dict[Path, list[float]] = {}  # the CPU time of each measured up (the command and its ssh), by checkout


def devagent_once(env: dict[str, str], base: str, workspace: Path, name: str, tree: Path = REPO) -> float:
    """`devagent up` of the checkout TREE (its code: the working folder and PYTHONPATH), in seconds."""
    env = {**env, "PYTHONPATH": str(tree)}
    start, cpu = time.perf_counter(), children_cpu()
    result = run([*DEVAGENT, "up", name, "--base-image", base, "--workspace", str(workspace), "--memory", "2g"],
                 env=env, check=False, cwd=tree)
    elapsed = time.perf_counter() - start
    CPU.setdefault(tree, []).append(children_cpu() - cpu)
    run([*DEVAGENT, "down", name], env=env, check=False, cwd=tree)
    if result.returncode != 0:
        raise RuntimeError(f"devagent up failed:\n{result.stderr}")
    return elapsed


def median_time(cmd: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(cmd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base-image", default="devagent-base:bookworm")
    parser.add_argument("--no-bytecode", action="store_true", help="compile devagent's source on every run")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another devagent checkout (e.g. `git archive main | tar -x -C DIR`): its up runs in "
                        "the same rounds, against the same floors")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="devagent-bench-") as tmp:
        root = Path(tmp)
        (root / ".ssh").mkdir(mode=0o700)
        env = {**os.environ, "HOME": str(root), "DEVAGENT_HOME": str(root / "dh"),
               "DEVAGENT_SSH_CONFIG": str(root / ".ssh" / "config")}
        if not args.no_bytecode:
            env.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(root / "pycache"))
        image = run([*DEVAGENT, "image", "build", "--base-image", args.base_image], env=env).stdout.split()[2]
        keydir = floor_keys(root, uid=1000, run=run)  # the base image's login user
        prefix = f"bench-{secrets.token_hex(2)}"
        trees = [REPO, *([args.baseline.resolve()] if args.baseline else [])]
        # One unmeasured round each: warm the page cache and Docker's layer cache (and build each tree's image).
        floor_once(image, keydir, f"{prefix}-warm")
        for t, tree in enumerate(trees):
            devagent_once(env, args.base_image, root / f"ws-warm{t}", f"{prefix}-warm{t}", tree)
        floors: list[float] = []
        ups: list[list[float]] = [[] for _ in trees]
        for i in range(args.rounds):
            floors.append(floor_once(image, keydir, f"{prefix}-floor{i}"))
            for t in range(len(trees)) if i % 2 == 0 else reversed(range(len(trees))):  # neither always first
                ups[t].append(devagent_once(env, args.base_image, root / f"ws{i}-{t}", f"{prefix}-up{i}-{t}",
                                            trees[t]))

    help_time = median_time([*DEVAGENT, "--help"], 7)
    python_floor = median_time([sys.executable, "-c", "pass"], 7)
    f, u = statistics.median(floors), statistics.median(ups[0])
    print(f"{'figure':44} {'median':>9} {'floor':>9} {'ratio':>7}  target")
    print(f"{'devagent up (built image) → proven login':44} {u:8.2f}s {f:8.2f}s {u / f:6.2f}x  <= 1.5x")
    print(f"{'  CPU (user+sys) of up and its ssh':44} {statistics.median(CPU[REPO][1:]):8.2f}s")
    if args.baseline:
        b = statistics.median(ups[1])
        print(f"{'  the same, of the baseline checkout':44} {b:8.2f}s {f:8.2f}s {b / f:6.2f}x")
        print(f"{'  CPU (user+sys) of its up and its ssh':44} {statistics.median(CPU[trees[1]][1:]):8.2f}s")
    print(f"{'devagent --help':44} {help_time:8.3f}s {python_floor:8.3f}s {help_time / python_floor:6.2f}x  "
          f"< 0.25 s absolute")
    print(f"bytecode: {'compiled on every run' if args.no_bytecode else 'cached'}")
    print(f"rounds: {args.rounds}; floor runs: {', '.join(f'{x:.2f}' for x in floors)}; "
          f"up runs: {', '.join(f'{x:.2f}' for x in ups[0])}"
          + (f"; baseline up runs: {', '.join(f'{x:.2f}' for x in ups[1])}" if args.baseline else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
