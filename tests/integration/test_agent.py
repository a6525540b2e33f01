"""The agent inside a real environment: the notebook's header and GPU check, saves journaled, sshd supervised,
a clean stop, and no process as root."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.conftest import Env, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def up(env: Env, name: str, built_image: str):  # type: ignore[no-untyped-def]
    env.up(name, "--gpus", "none")
    yield env.workspace(name)
    env.devagent("down", name)


def notebook_text(workspace) -> str:  # type: ignore[no-untyped-def]
    path = workspace / "lab-notebook.md"
    return path.read_text() if path.exists() else ""


def test_the_notebook_on_the_host_has_the_header_and_a_no_gpu_check_with_the_images_torch(
    env: Env, name: str, up
) -> None:
    text = wait_for(lambda: "GPU check" in notebook_text(up) and notebook_text(up), timeout=60,
                    message="the GPU check entry")
    assert text.startswith(f"# Lab notebook — {name}\n")
    assert "| launched | `devagent up " in text and "--gpus none" in text
    assert "base `devagent-base:bookworm` `@sha256:" in text  # the digest shortened: 12 hex digits and "…"
    assert f"| login | `ssh {name}` as dev |" in text
    heading = re.search(r"^## .* · GPU check · (.*)$", text, re.M)
    assert heading, text
    assert heading.group(1) == "⚠️ no GPU — training will run on the CPU"
    assert "| version | 2.13.0+cpu |" in text
    assert "> **No GPU visible.** Training will run on the CPU." in text
    assert text.count("# Lab notebook") == 1


def test_a_save_from_inside_the_container_is_journaled_once(env: Env, name: str, up) -> None:
    assert env.ssh(name, "printf 'lr = 3e-4\\n' > ~/workspace/train.py").returncode == 0
    journal = up / ".devagent" / "saves.jsonl"

    def records() -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []

    wait_for(lambda: [r for r in records() if r["path"] == "train.py"], timeout=30, message="the first save")
    # vim-style rename save of a new version, then a touch that changes nothing
    assert env.ssh(name, "cd ~/workspace && printf 'lr = 1e-3\\nbs = 64\\n' > .train.py.tmp && "
                         "mv .train.py.tmp train.py && sleep 0.5 && touch train.py").returncode == 0
    saves = wait_for(lambda: len([r for r in records() if r["path"] == "train.py"]) >= 2 and records(),
                     timeout=30, message="the second save")
    train = [r for r in saves if r["path"] == "train.py"]
    assert len(train) == 2
    assert (train[1]["lines_added"], train[1]["lines_removed"]) == (2, 1)
    assert "## " not in notebook_text(up).split("GPU check", 1)[-1]  # saves go to the journal, not the notebook


def test_gpu_check_on_demand_appends_a_second_entry(env: Env, name: str, up) -> None:
    wait_for(lambda: "GPU check" in notebook_text(up), timeout=60, message="the first GPU check")
    result = env.ssh(name, "devagent gpu-check")
    assert result.returncode == 0, result.output
    assert "GPU check · ⚠️ no GPU" in result.stdout
    assert notebook_text(up).count("· GPU check ·") == 2
    cache = env.ssh(name, "cat ~/.cache/devagent/gpu-check.json")
    cached = json.loads(cache.stdout)
    assert cached["summary"].startswith("GPU check · ⚠️ no GPU — training will run on the CPU · torch 2.13.0+cpu")
    assert cached["check"]["torch"]["version"] == "2.13.0+cpu"


def test_the_agent_restarts_sshd_when_it_dies(env: Env, name: str, up, docker_client) -> None:
    container = docker_client.containers.get(name)
    # Kill the listener by its pid inside the container (the agent's child), then log in again.
    inner = container.exec_run(["sh", "-c", "ps -o pid=,args= -u dev | grep '[l]istener' | awk '{print $1}'"])
    pid = inner.output.decode().split()[0]
    assert container.exec_run(["kill", "-9", pid]).exit_code == 0
    wait_for(lambda: "sshd exited with status" in container.logs().decode(), timeout=10, message="the agent noticing")
    login = wait_for(lambda: env.ssh(name, "true").returncode == 0, timeout=30, message="sshd back")
    assert login
    assert "restarting in" in container.logs().decode()


def test_docker_stop_shuts_the_agent_down_cleanly_and_quickly(env: Env, name: str, up, docker_client) -> None:
    container = docker_client.containers.get(name)
    container.stop(timeout=20)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    # The agent logs to stdout (sshd's -e messages go to stderr, merged in no fixed order), and Docker's log copier
    # may still be copying the last lines when `stop` returns: wait for them rather than read once.
    def agent_log() -> str:
        return container.logs(stdout=True, stderr=False).decode()

    # A GPU check still probing when the stop came may log its line after "stopped" (its thread is a daemon):
    # what matters is that the agent got to "stopped", after "stopping", and exited 0.
    def position(lines: list[str], message: str) -> int | None:
        return next((i for i, line in enumerate(lines) if line.endswith(f" {message}")), None)

    wait_for(lambda: position(agent_log().splitlines(), "stopped") is not None, timeout=10,
             message="the agent's 'stopped' line")
    lines = agent_log().splitlines()
    stopping, stopped = position(lines, "stopping"), position(lines, "stopped")
    assert stopping is not None and stopped is not None and stopping < stopped


def test_no_process_in_the_container_is_root(env: Env, name: str, up, docker_client) -> None:
    env.ssh(name, "sleep 2 & true")
    rows = docker_client.containers.get(name).top(ps_args="-o pid,uid,args")["Processes"]
    assert rows and [r for r in rows if r[1] == "0"] == []


def test_watch_globs_and_polling_are_passed_to_the_agent(env: Env, name: str, built_image: str,
                                                         docker_client) -> None:
    env.up(name, "--watch", "src/**/*.py", "--poll-saves")
    try:
        assert "polling" in docker_client.containers.get(name).logs().decode()
        assert env.ssh(name, "cd ~/workspace && mkdir -p src && echo 'a = 1' > src/model.py "
                             "&& echo 'b = 2' > other.py").returncode == 0
        journal = env.workspace(name) / ".devagent" / "saves.jsonl"
        wait_for(lambda: journal.exists() and "src/model.py" in journal.read_text(), timeout=30,
                 message="the polled save")
        paths = [json.loads(line)["path"] for line in journal.read_text().splitlines()]
        assert paths == ["src/model.py"]
        assert env.up(name, check=False).returncode == 12  # other agent options: a different environment
    finally:
        env.devagent("down", name)
