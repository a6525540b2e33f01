"""The process tree of a run: real multiprocessing workers on this machine, and a hand-made /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devagent.runs.proctree import process_tree
from tests.runs.support import fake_proc

TIMEOUT = 60

WORKERS = r"""
import json, multiprocessing as mp, os, signal, subprocess, sys

def work(queue):
    grandchild = subprocess.Popen(["sleep", "60"])  # a worker's own child belongs to the run too
    queue.put([os.getpid(), grandchild.pid])
    grandchild.wait()

if __name__ == "__main__":
    ctx = mp.get_context("fork")  # what a DataLoader does on Linux
    queue = ctx.Queue()
    workers = [ctx.Process(target=work, args=(queue,), daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    grandchildren = dict(queue.get(timeout=30) for _ in workers)  # worker pid -> its child's pid
    print(json.dumps({"workers": [w.pid for w in workers], "grandchildren": grandchildren}), flush=True)
    sys.stdin.readline()
    for pid in grandchildren.values():
        os.kill(pid, signal.SIGTERM)
"""


def test_process_tree_finds_dataloader_like_workers_and_their_children() -> None:
    script = subprocess.Popen([sys.executable, "-c", WORKERS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert script.stdout is not None and script.stdin is not None
    try:
        started = json.loads(script.stdout.readline())
        tree = process_tree(script.pid)
        grandchildren = {int(worker): child for worker, child in started["grandchildren"].items()}
        assert tree >= {script.pid, *started["workers"], *grandchildren.values()}
        assert os.getpid() not in tree
        first = started["workers"][0]
        assert process_tree(first) == {first, grandchildren[first]}
    finally:
        script.communicate(b"\n", timeout=TIMEOUT)


def test_process_tree_reads_parent_pids_even_when_the_command_name_has_spaces_and_parentheses(
        tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: 0, 100: 1, 101: 100, 102: 100, 103: 101, 200: 1, 201: 200},
                     comms={101: "pt_data_worker (0) S 1", 103: ") ("})
    assert process_tree(100, proc) == {100, 101, 102, 103}
    assert process_tree(200, proc) == {200, 201}
    assert process_tree(4242, proc) == {4242}  # gone already: only itself
    assert process_tree(100, tmp_path / "no-proc") == {100}
