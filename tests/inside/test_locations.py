"""Where things are for a process in an environment: the notebook the running agent writes, and its fallbacks."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devagent.core.gpu.check_report import GpuCheck, NvmlReport, TorchReport
from devagent.inside import locations


@pytest.fixture
def home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DEVAGENT_WORKSPACE", raising=False)
    return isolated_home


def test_the_notebook_the_agent_recorded_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVAGENT_WORKSPACE", str(home / "elsewhere"))
    locations.record_agent(home / "workspace", home / "workspace" / "notes" / "lab.md")
    assert locations.running_notebook() == home / "workspace" / "notes" / "lab.md"
    assert json.loads((home / ".cache" / "devagent" / "agent.json").read_text()) == {
        "workspace": str(home / "workspace"), "notebook": str(home / "workspace" / "notes" / "lab.md")}


def test_without_a_record_the_notebook_is_the_default_one_in_the_workspace(home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert locations.running_notebook() == home / "workspace" / "lab-notebook.md"
    monkeypatch.setenv("DEVAGENT_WORKSPACE", str(home / "code"))
    assert locations.running_notebook() == home / "code" / "lab-notebook.md"
    locations.agent_record().parent.mkdir(parents=True)
    locations.agent_record().write_text("{not json")
    assert locations.running_notebook() == home / "code" / "lab-notebook.md"


def test_the_gpu_check_is_kept_in_the_agents_home(home: Path) -> None:
    check = GpuCheck(nvml=NvmlReport(available=False, error="NVML Shared Library Not Found"),
                     torch=TorchReport(ok=False, python="/usr/bin/python3", error="torch is not installed"))
    locations.save_gpu_check(check, datetime(2026, 11, 27, 14, 2, tzinfo=timezone.utc))
    saved = json.loads((home / ".cache" / "devagent" / "gpu-check.json").read_text())
    assert saved["time"] == "2026-11-27T14:02:00+00:00"
    assert saved["check"]["nvml"]["error"] == "NVML Shared Library Not Found"
    assert [p.name for p in (home / ".cache" / "devagent").iterdir()] == ["gpu-check.json"]  # no .tmp left


def test_without_a_launch_context_the_header_is_minimal(tmp_path: Path) -> None:
    writer = locations.open_notebook(tmp_path / "lab-notebook.md", tmp_path / "no-launch.json", outside_ok=True)
    assert writer.header == "# Lab notebook\n"
