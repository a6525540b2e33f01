"""Where everything of an environment lives: each path spelled once, joined to the folder it is given."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devagent.core import layout

WS = Path("/home/dev/workspace")
HOME = Path("/home/dev")


@pytest.mark.parametrize(("where", "args", "expected"), [
    (layout.default_notebook, (WS,), "/home/dev/workspace/lab-notebook.md"),
    (layout.assets_dir, (WS / "lab-notebook.md",), "/home/dev/workspace/lab-notebook.assets"),
    (layout.assets_dir, (WS / "notes" / "exp.v2.md",), "/home/dev/workspace/notes/exp.v2.assets"),
    (layout.workspace_state, (WS,), "/home/dev/workspace/.devagent"),
    (layout.state_gitignore, (WS,), "/home/dev/workspace/.devagent/.gitignore"),
    (layout.saves_journal, (WS,), "/home/dev/workspace/.devagent/saves.jsonl"),
    (layout.snapshots_dir, (WS,), "/home/dev/workspace/.devagent/snapshots"),
    (layout.runs_journal, (WS,), "/home/dev/workspace/.devagent/runs.jsonl"),
    (layout.run_dir, (WS, 7), "/home/dev/workspace/.devagent/runs/7"),
    (layout.run_lab_file, (WS, 7), "/home/dev/workspace/.devagent/runs/7/lab.jsonl"),
    (layout.kept_section, (WS, 12), "/home/dev/workspace/.devagent/runs/12/section.md"),
    (layout.observed_lab_file, (WS, 4242), "/home/dev/workspace/.devagent/lab/4242.jsonl"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_the_workspaces_files(where: Callable[..., Path], args: tuple[object, ...], expected: str) -> None:
    assert where(*args) == Path(expected)


@pytest.mark.parametrize(("where", "args", "expected"), [
    (layout.default_workspace, (HOME,), "/home/dev/workspace"),
    (layout.agent_home, (HOME,), "/home/dev/.cache/devagent"),
    (layout.agent_record, (HOME,), "/home/dev/.cache/devagent/agent.json"),
    (layout.ready_flag, (HOME,), "/home/dev/.cache/devagent/ready"),
    (layout.gpu_check_file, (HOME,), "/home/dev/.cache/devagent/gpu-check.json"),
    (layout.gpu_usage_file, (HOME,), "/home/dev/.cache/devagent/gpu-usage.json"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_the_login_users_home(where: Callable[[Path], Path], args: tuple[Path], expected: str) -> None:
    assert where(*args) == Path(expected)


def test_the_texts_the_shell_probe_and_the_lab_helper_use_as_they_are() -> None:
    assert (layout.NOTEBOOK, layout.ASSETS, layout.WORKSPACE_STATE, layout.OBSERVED_LAB) == (
        "lab-notebook.md", "lab-notebook.assets", ".devagent", ".devagent/lab")
    assert layout.observed_lab_path(1) == ".devagent/lab/1.jsonl"
    assert layout.HEARTBEAT == ".cache/devagent/health"
    assert sorted(layout.WORKSPACE_FILES) == [".devagent", "lab-notebook.assets", "lab-notebook.md"]
    assert (layout.HOME_WORKSPACE, layout.WORKSPACE_ENV) == ("workspace", "DEVAGENT_WORKSPACE")
    assert layout.login_home("ana") == "/home/ana"


def test_etc_devagent_and_opt_devagent() -> None:
    assert [layout.HOST_KEY_PATH, layout.AUTHORIZED_KEYS_PATH, layout.LAUNCH_CONTEXT_PATH, layout.PEOPLE_PATH,
            layout.SESSION_ENV_PATH] == [
        "/etc/devagent/ssh_host_ed25519_key", "/etc/devagent/authorized_keys", "/etc/devagent/launch.json",
        "/etc/devagent/people.json", "/etc/devagent/session-env.json"]
    assert layout.sshd_config_path("compat") == "/etc/devagent/sshd_config.compat"
    assert (layout.AGENT_VENV, layout.LAB_HELPER_DIR) == ("/opt/devagent/venv", "/opt/devagent/lab")


@pytest.mark.parametrize("join", [layout.run_dir, layout.run_lab_file, layout.kept_section])
def test_runs_are_told_apart_by_number(join: Callable[[Path, int], Path]) -> None:
    assert join(WS, 1) != join(WS, 10)
    assert join(WS, 3).relative_to(WS).parts[:3] == (".devagent", "runs", "3")
