"""A committed devagent.toml and the VS Code files, end to end: `devagent up` with no NAME takes everything from
the workspace's file, places snippets and tasks (merging a user's tasks.json), and `devagent code` says how to
open it; a bad file stops `up` before anything is made."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.conftest import BASE_IMAGE, Env, container_names

pytestmark = pytest.mark.docker


def test_up_reads_devagent_toml_and_places_the_vscode_files(env: Env, name: str, built_image: str,
                                                             docker_client) -> None:
    ws = env.workspace(name)
    (ws / ".vscode").mkdir(parents=True)
    os.chown(ws, 1000, 1000)
    users_task = {"label": "my: lint", "type": "shell", "command": "ruff check ."}
    (ws / ".vscode" / "tasks.json").write_text(json.dumps({"version": "2.0.0", "tasks": [users_task]}, indent=4))
    (ws / "devagent.toml").write_text(
        f'name = "{name}"\nbase_image = "{BASE_IMAGE}"\nmemory = "2g"\npids = 512\nvscode = true\n'
        '[agent]\nwatch = ["src/**/*.py"]\n'
    )
    try:
        result = env.devagent("up", "--workspace", str(ws), "--pids", "1024", check=True)
        assert f"✔ container {name} created" in result.stdout
        assert "  .vscode/devagent.code-snippets: wrote" in result.stdout
        assert "  .vscode/tasks.json: added devagent: run current file, devagent: GPU check" in result.stdout
        info = docker_client.api.inspect_container(name)
        assert info["HostConfig"]["Memory"] == 2 * 1024**3  # from the file
        assert info["HostConfig"]["PidsLimit"] == 1024  # the flag wins over the file's 512
        assert info["Config"]["Cmd"][-2:] == ["--watch", "src/**/*.py"]
        tasks = json.loads((ws / ".vscode" / "tasks.json").read_text())
        assert tasks["tasks"][0] == users_task  # the user's task untouched, first
        assert [t["label"] for t in tasks["tasks"][1:]] == ["devagent: run current file", "devagent: GPU check"]
        assert tasks["tasks"][1]["args"] == ["run", "--", "python", "${file}"]
        snippets = json.loads((ws / ".vscode" / "devagent.code-snippets").read_text())
        assert {s["prefix"] for s in snippets.values()} >= {"da-gpucheck", "da-train", "da-entry"}
        assert (ws / ".vscode" / "tasks.json").stat().st_uid == 1000  # the login user's, like the workspace

        again = env.devagent("up", "--workspace", str(ws), "--pids", "1024", check=True)
        assert f"✔ container {name} verified" in again.stdout
        assert "tasks.json: tasks already in place" in again.stdout

        # `code` is not installed here: devagent prints how to open the workspace instead.
        code = env.devagent("code", name, check=True)
        assert f"code --remote ssh-remote+{name} /home/dev/workspace" in code.stdout
        assert f"vscode://vscode-remote/ssh-remote+{name}/home/dev/workspace" in code.stdout
    finally:
        env.devagent("down", name)


def test_a_bad_devagent_toml_names_its_line_and_nothing_is_made(env: Env, name: str, built_image: str,
                                                                 docker_client) -> None:
    ws = env.workspace(name)
    ws.mkdir(parents=True)
    (ws / "devagent.toml").write_text(f'name = "{name}"\nmemroy = "2g"\n')
    result = env.devagent("up", "--workspace", str(ws))
    assert result.returncode == 2
    assert result.stderr.startswith(f'Error: {ws / "devagent.toml"} line 2: unknown key "memroy"'), result.stderr
    assert 'did you mean "memory"?' in result.stderr
    assert container_names(docker_client, name) == []
    assert not env.home.exists() or not (env.home / "ssh_config").exists()


def test_init_writes_a_commented_file_once(env: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "proj"
    ws.mkdir()
    first = env.devagent("init", "--workspace", str(ws), check=True)
    assert f"✔ wrote {ws / 'devagent.toml'}" in first.stdout
    text = (ws / "devagent.toml").read_text()
    assert text.startswith("# devagent.toml")
    second = env.devagent("init", "--workspace", str(ws))
    assert second.returncode == 12
    assert "exists; left as is" in second.stderr
    assert (ws / "devagent.toml").read_text() == text


def test_init_leaves_what_the_devcontainer_json_says_to_it(env: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "proj"
    (ws / ".devcontainer").mkdir(parents=True)
    (ws / ".devcontainer" / "devcontainer.json").write_text(
        '{"image": "team/base:1", // the team\'s\n "runArgs": ["--memory=8g"],\n'
        ' "hostRequirements": {"gpu": "optional"},}')
    made = env.devagent("init", "--workspace", str(ws), check=True)
    assert made.stdout == (f"✔ wrote {ws / 'devagent.toml'}: uncomment what this code needs, then commit it\n"
                           "  left to .devcontainer/devcontainer.json: memory, base_image, gpus\n")
    text = (ws / "devagent.toml").read_text()
    for key in ("memory", "base_image", "gpus"):
        assert f"\n# {key}: set by .devcontainer/devcontainer.json (a value here overrides it)\n" in text
        assert f"\n#{key} =" not in text
    assert "\n#cpus = " in text and "\n#user = " in text  # what the file does not say is offered as before


def test_init_beside_a_refused_devcontainer_json_writes_the_whole_template(  # type: ignore[no-untyped-def]
        env: Env, tmp_path) -> None:
    ws = tmp_path / "proj"
    (ws / ".devcontainer").mkdir(parents=True)
    (ws / ".devcontainer" / "devcontainer.json").write_text('{"image": "x:1", "privileged": true}')
    made = env.devagent("init", "--workspace", str(ws), check=True)
    assert made.stderr.startswith("devcontainer.json not taken into account: .devcontainer/devcontainer.json: "
                                  "privileged is refused"), made.stderr
    assert "\n#memory = " in (ws / "devagent.toml").read_text()
