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
    assert "from `devagent.lab`" in section
    assert "no GPU used (CPU run)" in section
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
    assert "from `devagent.lab`" in section  # the helper wrote .devagent/lab/<pid>.jsonl for the agent
    assert "| `loss` | 0.25 |" in section
