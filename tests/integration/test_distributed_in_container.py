"""Distributed runs inside a real environment from the offline base image (torch 2.13 CPU, gloo): `devagent run
-- torchrun` over ssh is one section with its world size, effective batch, rank 0's metrics once and the rank that
failed first; a two-node torchrun (two launches, node ranks 0 and 1, rendezvous on 127.0.0.1) is one run per node,
the two linked by their rendezvous. One environment for all of it: torch starts eight times on a 2-core machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.conftest import Env
from tests.runs.test_distributed import DDP

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def sections(workspace: Path) -> dict[int, str]:
    text = (workspace / "lab-notebook.md").read_text()
    out = {}
    for part in text.split("\n## ")[1:]:
        found = re.search(r" · run (\d+) · ", part.splitlines()[0])
        if found:
            out[int(found.group(1))] = part
    return out


def test_torchrun_in_an_environment_is_one_run_per_node(env: Env, name: str, built_image: str) -> None:
    env.up(name, "--gpus", "none")
    try:
        workspace = env.workspace(name)
        (workspace / "train_ddp.py").write_text(DDP)
        command = ("cd ~/workspace && devagent run -- torchrun --nproc-per-node=2 --master-port {port} "
                   "train_ddp.py --batch-size 64 --grad-accum 4 {extra}")
        ok = env.ssh(name, command.format(port=29511, extra=""), timeout=300)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        failed = env.ssh(name, command.format(port=29512, extra="--fail-rank 1"), timeout=300)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        node = ("devagent run -- torchrun --nnodes 2 --nproc-per-node 1 --node-rank {rank} --rdzv-backend c10d "
                "--rdzv-endpoint 127.0.0.1:29513 --rdzv-id job7 train_ddp.py --batch-size 32")
        both = env.ssh(name, f"cd ~/workspace && ({node.format(rank=0)} > node0.log 2>&1 & "
                             f"{node.format(rank=1)} > node1.log 2>&1; s1=$?; wait $!; s0=$?; echo $s0 $s1)",
                       timeout=300)
        assert both.stdout.split() == ["0", "0"], both.stdout + both.stderr

        runs = sections(workspace)
        assert sorted(runs) == [1, 2, 3, 4]
        one = runs[1]
        assert one.splitlines()[0].endswith("· run 1 · train\\_ddp.py · ✅ exit 0") or \
            one.splitlines()[0].endswith("· run 1 · train_ddp.py · ✅ exit 0"), one.splitlines()[0]
        assert "| distributed | torchrun · 2 processes per node × 1 node = world size 2 · backend gloo |" in one
        assert "| effective batch | 64 per process × 2 processes × 4 accumulation steps = 512 |" in one
        assert "— 4 points ·" in one, one  # rank 0's steps, not both ranks'
        assert "local_rank" not in one.split("<summary>output")[0]
        tail = one[one.index("<summary>output"):]
        assert all(tail.count(f"step={step} loss=") == 1 for step in range(4)), tail

        two = runs[2]
        assert "rank 1: ValueError: rank 1 broke at step 2" in two.splitlines()[0], two.splitlines()[0]
        # Torch 2.13's CPU gloo aborts now and then on the way out of a raising rank (SIGABRT), and torchrun may
        # stop rank 1 while it exits: the exception named is rank 1's own either way.
        assert re.search(r"\| error \| `rank 1 failed first( \((exit 1|SIGABRT)\))?: "
                         r"ValueError: rank 1 broke at step 2; "
                         r"rank 0 (stopped by the launcher|exited too \(exit 1\))` \|", two), two

        journal = [json.loads(line) for line in (workspace / ".devagent" / "runs.jsonl").read_text().splitlines()]
        nodes = {r["distributed"]["node_rank"]: r["number"] for r in journal
                 if "exit_kind" in r and r["number"] in (3, 4)}
        assert sorted(nodes) == [0, 1]
        for rank, number in nodes.items():
            assert (f"| node | node rank {rank} of 2 · rendezvous job7@127.0.0.1:29513 · other nodes: "
                    f"run {nodes[1 - rank]} (node {1 - rank}) |") in runs[number], runs[number]
            assert "world size 2" in runs[number]
    finally:
        env.devagent("down", name)
