"""Distributed runs are one run: `devagent run -- torchrun …` gives one section with the run's shape, its
effective batch, rank 0's metrics, each output line once, and the rank that failed first.

The launcher's command line and the effective batch alone are tested in tests/core/runs/test_distributed.py;
here the rank prefixes and torchrun's error report as the run's output reads them, then real two-process runs
with gloo on the CPU (torch from the venv; they skip, saying so, where torch is missing).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devagent.agent.watcher import SaveHandler
from devagent.core.runs.distributed import merge_rank_lines, torchrun_failure
from devagent.core.runs.exits import ExitInfo, distributed_exit
from devagent.runs.observer import RunObserver
from devagent.runs.output_watch import OutputWatch
from devagent.runs.place import RunPlace
from devagent.runs.runlog import RunLog
from devagent.runs.wrapped import rank_tagging

# --- the launcher's command line --------------------------------------------------------------------------------


def test_rank_tagging_leaves_the_users_choice() -> None:
    assert rank_tagging(["torchrun", "--nproc-per-node=2", "t.py"], {}) == {
        "PET_TEE": "3", "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "[rank${rank}]:"}
    assert rank_tagging(["torchrun", "--tee", "1", "t.py"], {}) == {}
    assert rank_tagging(["torchrun", "--redirects=3", "t.py"], {}) == {}
    assert rank_tagging(["torchrun", "t.py", "-r", "1"], {}) != {}  # the script's own -r is not torchrun's
    assert rank_tagging(["python", "t.py"], {"WORLD_SIZE": "2"}) == {}


# --- what the output says ----------------------------------------------------------------------------------------

REPORT = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
t.py FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-07_16:51:23
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 28817)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 28817
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-07_16:51:23
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 28818)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""
RANKED = """\
[rank0]:step=0 loss=0.79
[rank1]:step=0 loss=0.79
[rank0]:step=1 loss=0.37
[rank1]:[rank1]: Traceback (most recent call last):
[rank1]:[rank1]:   File "t.py", line 19, in <module>
[rank1]:[rank1]: ValueError: rank 1 broke at step 1
[rank0]:[rank0]: RuntimeError: Connection closed by peer
"""


def test_metrics_come_from_rank_0_and_never_from_the_report() -> None:
    watch = OutputWatch(ranks=True)
    watch.feed((RANKED + REPORT).encode())
    watch.close()
    assert watch.series.points["loss"] == [(0, 0.79), (1, 0.37)]
    assert not any("rank" in name for name in watch.series.points)
    plain = OutputWatch()  # today's reading of the same output: both ranks' points, the report as a metric
    plain.feed((RANKED + REPORT).encode())
    plain.close()
    assert len(plain.series.points["loss"]) == 3


def test_tail_shows_each_line_once_with_its_rank_where_ranks_differ() -> None:
    watch = OutputWatch(ranks=True)
    watch.feed(RANKED.encode())
    watch.close()
    assert watch.tail == [
        "step=0 loss=0.79", "[rank 0] step=1 loss=0.37", "[rank 1] Traceback (most recent call last):",
        '[rank 1]   File "t.py", line 19, in <module>', "[rank 1] ValueError: rank 1 broke at step 1",
        "[rank 0] RuntimeError: Connection closed by peer"]
    assert merge_rank_lines(["[rank0]:a", "[rank1]:a", "[rank0]:a", "[rank1]:a"]) == ["a", "a"]


def test_the_rank_that_failed_first_and_the_others() -> None:
    lines = (RANKED + REPORT).splitlines()
    assert torchrun_failure(lines) is not None
    info = distributed_exit(ExitInfo("failure", 1, "❌ exit 1 · ChildFailedError:", "ChildFailedError:"), lines)
    assert info == ExitInfo(
        "failure", 1, "❌ exit 1 · rank 1: ValueError: rank 1 broke at step 1",
        "rank 1 failed first (exit 1): ValueError: rank 1 broke at step 1; rank 0 stopped by the launcher")
    # torchrun saw rank 0 (which only lost its peer) exit first: rank 1's own exception is still the cause.
    raced = (RANKED + REPORT.replace("rank      : 0 (", "rank      : X (").replace("rank      : 1 (", "rank      : 0 (")
             .replace("rank      : X (", "rank      : 1 (").replace("exitcode  : -15", "exitcode  : 1"))
    assert distributed_exit(ExitInfo("failure", 1, "", None), raced.splitlines()).detail == (
        "rank 1 failed first (exit 1): ValueError: rank 1 broke at step 1; rank 0 exited too (exit 1)")
    # torchrun saw rank 0 exit first and stopped rank 1, which had raised and was on its way out (SIGTERM):
    # rank 1's own exception is the cause, and its exit code is the launcher's, not its own.
    swapped = REPORT.replace("rank      : 0 (", "rank      : X (").replace("rank      : 1 (", "rank      : 0 (")
    stopped = RANKED + swapped.replace("rank      : X (", "rank      : 1 (")
    assert distributed_exit(ExitInfo("failure", 1, "", None), stopped.splitlines()).detail == (
        "rank 1 failed first: ValueError: rank 1 broke at step 1; rank 0 exited too (exit 1)")
    success = ExitInfo("success", 0, "✅ exit 0", None)
    assert distributed_exit(success, lines) is success


def test_lab_records_rank_0_only_unless_told(tmp_path: Path) -> None:
    target = tmp_path / "lab.jsonl"
    script = "from devagent import lab; lab.log(step=0, loss=1.0)"
    for rank, extra in (("0", {}), ("1", {}), ("1", {"DEVAGENT_LAB_ALL_RANKS": "1"})):
        env = {**os.environ, "DEVAGENT_LAB_FILE": str(target), "RANK": rank, **extra}
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    lines = target.read_text().splitlines()
    assert len(lines) == 2
    assert '"_rank": 1' in lines[1]


def test_nodes_of_one_rendezvous(tmp_path: Path) -> None:
    runs = RunLog(tmp_path)
    first = runs.reserve("2026-12-07T17:00:00+00:00", node=("j7@127.0.0.1:29400", 0))
    runs.reserve("2026-12-07T17:00:00+00:00")
    second = runs.reserve("2026-12-07T17:00:01+00:00", node=("j7@127.0.0.1:29400", 1))
    assert runs.nodes("j7@127.0.0.1:29400") == {first: 0, second: 1}


# --- real runs: torchrun with gloo on the CPU ---------------------------------------------------------------------

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or shutil.which("torchrun", path=os.path.dirname(sys.executable))
    is None, reason="needs torch (and its torchrun) in the interpreter running the tests: pip install torch")

DDP = textwrap.dedent("""\
    import argparse
    import os
    import sys
    import torch
    import torch.distributed as dist

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--fail-rank", type=int, default=-1)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for step in range(args.steps):
        loss = model(torch.randn(args.batch_size, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 2 and rank == args.fail_rank:
            raise ValueError(f"rank {rank} broke at step {step}")
        print(f"step={step} loss={loss.item():.4f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    # torch 2.13's CPU gloo aborts about one exit in six here ("terminate called without an active exception",
    # SIGABRT), with or without devagent: leave without the C++ teardown, as the run itself is done.
    sys.stdout.flush()
    os._exit(0)
""")


def _devagent_run(workspace: Path, *command: str, tmp: Path | None = None,
                  new_session: bool = False) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if tmp is not None:  # where devagent's and torchrun's temporary folders go, to look for leftovers
        env["TMPDIR"] = str(tmp)
    return subprocess.Popen([sys.executable, "-m", "devagent", "run", "--", *command], cwd=workspace, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=new_session)


def _run_folders(tmp: Path) -> list[str]:
    """The rank-output folders left in TMP: devagent's own, or torchrun's (its tee makes one and keeps it)."""
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("devagent-ranks-", "torchelastic_")))


def _section(notebook: Path, number: int) -> str:
    text = notebook.read_text(encoding="utf-8")
    start = re.search(rf"· run {number}(?: \(observed\))? ·", text).start()  # type: ignore[union-attr]
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, bytes]]]:
    """One workspace, two runs of two ranks each (one succeeds, one where rank 1 fails): torch starts four
    times on a 2-core machine, so the tests share them. Their temporary folder is the workspace's tmp/."""
    workspace = tmp_path_factory.mktemp("ddp")
    (workspace / "train_ddp.py").write_text(DDP)
    tmp = workspace / "tmp"
    tmp.mkdir()
    results = []
    for extra in ((), ("--fail-rank", "1")):
        port = str(_free_port())
        process = _devagent_run(workspace, "torchrun", "--nproc-per-node=2", "--master-port", port,
                                "train_ddp.py", "--batch-size", "64", "--grad-accum", "2", *extra, tmp=tmp)
        out, _ = process.communicate(timeout=240)
        results.append((process.returncode, out))
    return workspace, results


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_torchrun_is_one_run_with_its_shape_and_rank_0_metrics(ddp_runs: tuple[Path, list[tuple[int, bytes]]],
                                                               ) -> None:
    workspace, results = ddp_runs
    code, out = results[0]
    assert code == 0, out.decode(errors="replace")
    section = _section(workspace / "lab-notebook.md", 1)
    assert "| distributed | torchrun · 2 processes per node × 1 node = world size 2 · backend gloo |" in section
    assert "| effective batch | 64 per process × 2 processes × 2 accumulation steps = 256 |" in section
    assert re.search(r"\| `loss` \| [^|]+ \|", section), section
    assert "`loss` " in section and "— 4 points ·" in section, section  # rank 0's four steps, not eight
    tail = section[section.index("<summary>output"):]
    for step in range(4):  # every rank printed it: shown once, without a rank
        assert tail.count(f"step={step} loss=") == 1, tail
    assert "local_rank" not in section.split("<summary>output")[0]
    records = RunLog(workspace).records()
    assert records[0].distributed is not None
    assert records[0].distributed["world_size"] == 2
    assert set(records[0].metrics) == {"loss"}


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_torchrun_names_the_rank_that_failed_first(ddp_runs: tuple[Path, list[tuple[int, bytes]]]) -> None:
    workspace, results = ddp_runs
    code, out = results[1]
    assert code == 1, out.decode(errors="replace")
    section = _section(workspace / "lab-notebook.md", 2)
    heading = section.splitlines()[0]
    assert heading.endswith("· ❌ exit 1 · rank 1: ValueError: rank 1 broke at step 2"), heading
    # Rank 0 is either stopped by torchrun or fails itself on the closed connection first (then torchrun may
    # stop rank 1 on its way out, and its exit code is the launcher's): a race. Torch 2.13's CPU gloo also
    # aborts now and then on the way out of a raising rank (SIGABRT): the exception is still rank 1's own.
    assert re.search(r"\| error \| `rank 1 failed first( \((exit 1|SIGABRT)\))?: ValueError: rank 1 broke at step 2; "
                     r"rank 0 (stopped by the launcher|exited too \(exit 1\))` \|", section), section
    assert "local_rank" not in section.split("<summary>output")[0]  # the report is no metric


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_torchrun_leaves_no_rank_files_and_shows_every_line(ddp_runs: tuple[Path, list[tuple[int, bytes]]],
                                                           ) -> None:
    """devagent tags a one-node torchrun's ranks from their files in a folder of its own, and removes it: none
    is left after a run that succeeded or one where a rank failed (torchrun's own tee would keep its folder)."""
    workspace, results = ddp_runs
    assert _run_folders(workspace / "tmp") == []
    ok, failed = (out.decode(errors="replace").splitlines() for _, out in results)
    for rank in (0, 1):  # the user's terminal saw every line of every rank, tagged, once
        steps = [re.match(r"step=(\d+) ", line[len(f"[rank{rank}]:"):]) for line in ok
                 if line.startswith(f"[rank{rank}]:step=")]
        assert [m.group(1) for m in steps if m] == ["0", "1", "2", "3"], ok
    assert any(line.startswith("[rank1]:") and "ValueError: rank 1 broke at step 2" in line for line in failed)


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_ctrl_c_on_a_torchrun_leaves_no_rank_files(tmp_path: Path) -> None:
    (tmp_path / "train_ddp.py").write_text(DDP)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    process = _devagent_run(tmp_path, "torchrun", "--nproc-per-node=2", "--master-port", str(_free_port()),
                            "train_ddp.py", "--steps", "1000000", tmp=tmp, new_session=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the ranks are training: their lines came through
        seen.append(line)
        if line.startswith(b"[rank0]:step="):
            break
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    out, _ = process.communicate(timeout=240)
    assert process.returncode != 0, b"".join(seen) + out
    assert _run_folders(tmp) == []
    assert "· run 1 ·" in (tmp_path / "lab-notebook.md").read_text(encoding="utf-8")


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_two_nodes_are_one_run_each_linked_by_rendezvous(tmp_path: Path) -> None:
    (tmp_path / "train_ddp.py").write_text(DDP)
    endpoint = f"127.0.0.1:{_free_port()}"
    launches = [
        _devagent_run(tmp_path, "torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node),
                      "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "job7",
                      "train_ddp.py", "--batch-size", "32")
        for node in (0, 1)
    ]
    for launch in launches:
        out, _ = launch.communicate(timeout=240)
        assert launch.returncode == 0, out.decode(errors="replace")
    records = {r.number: r for r in RunLog(tmp_path).records()}
    assert sorted(records) == [1, 2]
    assert {r.distributed["rendezvous"] for r in records.values() if r.distributed} == {f"job7@{endpoint}"}
    notebook = tmp_path / "lab-notebook.md"
    by_node = {r.distributed["node_rank"]: n for n, r in records.items() if r.distributed}
    for node, number in by_node.items():
        other = by_node[1 - node]
        section = _section(notebook, number)
        assert f"| node | node rank {node} of 2 · rendezvous job7@{endpoint} · other nodes: run {other} " \
               f"(node {1 - node}) |" in section, section
        assert "world size 2" in section
        assert "| effective batch | 32 per process × 2 processes × 1 accumulation step = 64 |" in section


@pytest.mark.torch
@needs_torch
@pytest.mark.slow
def test_an_observed_torchrun_is_one_run_with_rank_0s_metrics(tmp_path: Path) -> None:
    """torchrun typed in a terminal, nobody wrapping it: the agent's observer follows torchrun, not its ranks."""
    (tmp_path / "train_ddp.py").write_text(DDP.replace(
        '    print(f"step={step}', '    lab.log(step=step, loss=loss.item())\n    print(f"step={step}').replace(
        "import torch\n", "import torch\nfrom devagent import lab\n", 1))
    RunLog(tmp_path).make_run_dir(0)  # the workspace's .devagent/, where the helper writes unwrapped runs' lines
    place = RunPlace(tmp_path, tmp_path / "lab-notebook.md")
    observer = RunObserver(place, is_watched=SaveHandler(None, root=tmp_path).is_watched)  # type: ignore[arg-type]
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun is not None
    launch = subprocess.Popen([torchrun, "--nproc-per-node=2", "--master-port", str(_free_port()), "train_ddp.py",
                               "--batch-size", "16"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        finished += observer.scan()
        if launch.poll() is not None and not observer.following:
            break
        time.sleep(0.2)
    assert launch.wait(timeout=10) == 0
    assert finished == [1]
    section = _section(place.notebook, 1)
    assert section.startswith("· run 1 (observed) · train_ddp.py ·"), section
    assert "| distributed | torchrun · 2 processes per node × 1 node = world size 2 · backend gloo |" in section
    assert "| effective batch | 16 per process × 2 processes × 1 accumulation step = 32 |" in section
    assert "`loss` " in section and "— 4 points ·" in section, section  # rank 0's lab lines, found by its pid


def test_step_n_loss_x_lines_are_metrics_from_rank_0() -> None:
    """The issue's DDP script prints ``step N loss X`` on every rank: today no metrics at all."""
    watch = OutputWatch(ranks=True)
    watch.feed(b"".join(b"[rank%d]:step %d loss %.2f\n" % (rank, step, 1 / (step + 1))
                        for step in range(3) for rank in (0, 1)))
    watch.close()
    assert watch.series.points["loss"] == [(0, 1.0), (1, 0.5), (2, 0.33)]


def test_ranks_launched_by_their_environment_are_recorded_once(tmp_path: Path) -> None:
    """`srun devagent run -- python train.py`: each rank runs the wrapper with WORLD_SIZE and RANK set."""
    (tmp_path / "t.py").write_text("import argparse, os\np = argparse.ArgumentParser()\n"
                                   "p.add_argument('--batch-size', type=int, default=8)\np.parse_args()\n"
                                   "print('loss=0.5 rank', os.environ['RANK'])\nraise SystemExit(3)\n")
    results = []
    for rank in ("1", "0"):
        env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_LAB_FILE", "DEVAGENT_RUN")}
        results.append(subprocess.run(
            [sys.executable, "-m", "devagent", "run", "--", sys.executable, "t.py", "--batch-size", "4"],
            cwd=tmp_path, env={**env, "WORLD_SIZE": "2", "RANK": rank}, capture_output=True, text=True,
            timeout=120, check=False))
    assert [r.returncode for r in results] == [3, 3]
    assert "devagent: rank 1 of 2: not recorded (rank 0 records the run)" in results[0].stderr
    assert "loss=0.5 rank 1" in results[0].stdout
    assert [r.number for r in RunLog(tmp_path).records()] == [1]
    section = _section(tmp_path / "lab-notebook.md", 1)
    assert r"| distributed | WORLD\_SIZE 2 in its environment · this is rank 0 · backend not named in the " \
           "command or script |" in section, section
    assert "| effective batch | 4 per process × 2 processes = 8 (no gradient accumulation argument: 1 step " \
           "assumed) |" in section
