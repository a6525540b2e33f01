"""Run summaries inside a real environment from the offline base image: `devagent run` over ssh, the
`devagent.lab` helper in the image's own interpreter, and a run nobody wrapped, observed by the agent."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import Env, wait_for

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_simplenet.py"


@pytest.fixture
def workspace(env: Env, name: str, built_image: str):  # type: ignore[no-untyped-def]
    env.up(name, "--gpus", "none")
    ws = env.workspace(name)
    shutil.copy(EXAMPLE, ws / "train.py")
    yield ws
    env.devagent("down", name)


def sections(workspace: Path) -> list[str]:
    path = workspace / "lab-notebook.md"
    text = path.read_text() if path.exists() else ""
    return ["## " + part for part in text.split("\n## ")[1:]]


def test_devagent_run_over_ssh_appends_a_run_section_with_the_helpers_metrics(env: Env, name: str,
                                                                              workspace: Path) -> None:
    result = env.ssh(name, "cd ~/workspace && devagent run -- python3 train.py --epochs 2 --steps 5 --lr 0.01",
                     timeout=180)
    assert result.returncode == 0, result.stderr
    assert "WARNING: no GPU visible — training runs on the CPU" in result.stdout
    assert re.search(r"^epoch=2 loss=\d", result.stdout, re.M), result.stdout
    runs = [s for s in sections(workspace) if " · run " in s.splitlines()[0]]
    assert len(runs) == 1
    section = runs[0]
    assert re.search(r"· run 1 · train\.py · ✅ exit 0$", section.splitlines()[0]), section.splitlines()[0]
    assert "| `lr` | `1e-3` | **`0.01`** |" in section
    # The image's own interpreter imports devagent.lab (the .pth devagent puts there), so its series wins.
    assert "Sources: `devagent.lab`" in section
    assert "| GPUs | none (CPU run) |" in section and "GPU memory" not in section
    record = json.loads((workspace / ".devagent" / "runs.jsonl").read_text().splitlines()[-1])
    assert record["number"] == 1 and record["exit_code"] == 0 and not record["observed"]


def test_a_run_nobody_wrapped_is_observed_by_the_agent(env: Env, name: str, workspace: Path) -> None:
    (workspace / "slow_train.py").write_text(
        "import argparse, time\n"
        "from devagent import lab\n"
        "p = argparse.ArgumentParser(); p.add_argument('--lr', type=float, default=0.1); a = p.parse_args()\n"
        "for step in range(4):\n"
        "    lab.log(step=step, loss=1.0 / (step + 1))\n"
        "    time.sleep(1)\n"
    )
    result = env.ssh(name, "cd ~/workspace && python3 slow_train.py --lr 0.5", timeout=60)
    assert result.returncode == 0, result.stderr
    section = wait_for(lambda: next((s for s in sections(workspace) if "(observed)" in s.splitlines()[0]), None),
                       timeout=30, message="the observed run's section")
    assert isinstance(section, str)
    assert re.search(r"· run 1 \(observed\) · slow_train\.py · ", section.splitlines()[0]), section
    assert "| `lr` | `0.1` | **`0.5`** |" in section
    assert "Sources: `devagent.lab`." in section  # the helper wrote .devagent/lab/<pid>.jsonl for the agent
    assert "| `loss` | 0.25 (step 3) |" in section
    # Moved into the run's folder once the section is appended (a moment after it: wait, don't race it).
    wait_for((workspace / ".devagent" / "runs" / "1" / "lab.jsonl").is_file, timeout=30,
             message="the helper's series moved into the run's folder")
    assert list((workspace / ".devagent" / "lab").iterdir()) == []


CASES = {
    "exception": ("raise ValueError('bad shape')", 1, "❌ exit 1 · ValueError: bad shape"),
    "sigkill": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137, "💀 killed (137) · SIGKILL"),
    # Ctrl-C in a terminal signals the whole foreground process group: the wrapper ignores it, the script stops.
    "ctrl-c": ("import os, signal, time; os.killpg(os.getpgrp(), signal.SIGINT); time.sleep(30)", 130,
               "⛔ interrupted (130)"),
    "silent": ("pass", 0, "✅ exit 0"),
    "megabytes": ("import sys\nfor i in range(20000): sys.stdout.write('x' * 200 + f' loss={1 / (i + 1)}\\n')",
                  0, "✅ exit 0"),
    "binary": ("import sys; sys.stdout.buffer.write(bytes(range(256)) * 64)", 0, "✅ exit 0"),
    "dataloader": ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
                   "if __name__ == '__main__':\n"
                   "    d = TensorDataset(torch.randn(64, 4))\n"
                   "    for i, (x,) in enumerate(DataLoader(d, batch_size=16, num_workers=2)):\n"
                   "        print(f'step={i} loss={float(x.abs().mean()):.4f}', flush=True)\n", 0, "✅ exit 0"),
    # Over the container's memory limit (2 GiB, no swap): the kernel's OOM killer, as the cgroup records it.
    "oom": ("chunks = []\nwhile True: chunks.append(bytearray(256 * 1024 * 1024))", 137,
            "💀 killed (137) · out of memory killer?"),
}


def test_runs_inside_the_container_pass_their_exit_through_and_are_classified(env: Env, name: str,
                                                                             workspace: Path) -> None:
    for case, (body, _, _) in CASES.items():
        (workspace / f"{case}.py").write_text(body + "\n")
    for number, (case, (_, code, label)) in enumerate(CASES.items(), start=1):
        result = env.ssh(name, f"cd ~/workspace && devagent run -- python3 {case}.py > /dev/null", timeout=180)
        assert result.returncode == code, (case, result.stderr)
        section = [s for s in sections(workspace) if f" · run {number} · " in s.splitlines()[0]]
        assert len(section) == 1, (case, sections(workspace)[-1:])
        assert section[0].splitlines()[0].endswith(f"· {case}.py · {label}"), (case, section[0].splitlines()[0])
        if case == "megabytes":
            assert "| `loss` | 5e-05 |" in section[0], section[0]  # the last of 20,000 printed values
        if case == "dataloader":
            assert "| `loss` |" in section[0]
    # The agent is still there after all of it (the OOM kill hit the run, not the environment).
    assert env.ssh(name, "devagent --version").returncode == 0
