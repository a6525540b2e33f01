"""The reference implementation is the oracle: for every real devcontainer.json in devcontainer_corpus/ (their
sources in SOURCES.md), devagent's parsed and substituted configuration equals the reference Dev Containers
CLI's (`devcontainer read-configuration`, npm @devcontainers/cli, installed by scripts/install-deps.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devagent.core.devcontainer.config_file import read_configuration

CORPUS = Path(__file__).parent / "devcontainer_corpus"
FILES = sorted(CORPUS.glob("*.jsonc"))
# Variables of the caller's environment the files may name; one set, one unset with a default, one unset without.
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/tester", "DA_SET": "from-the-shell"}
SYNTHETIC = """// every variable the specification substitutes before the container exists
{
  "image": "devagent-base:bookworm",
  "containerEnv": {
    "SET": "${localEnv:DA_SET}", "DEFAULT": "${localEnv:DA_UNSET:fallback}", "EMPTY": "${localEnv:DA_UNSET}",
    "ENV": "${env:DA_SET}", "HOME": "${localEnv:HOME}/x", "LOCAL": "${localWorkspaceFolder}",
    "BASE": "${localWorkspaceFolderBasename}", "IN": "${containerWorkspaceFolder}/src",
    "INBASE": "${containerWorkspaceFolderBasename}", "KEEP": "${containerEnv:PATH}", "ID": "${devcontainerId}",
    "UNKNOWN": "${nothing}", "TWO": "${localEnv:DA_SET}-${localEnv:DA_UNSET:b}", /* a block comment */
  },
  "remoteEnv": {"NULL": null, "NUM": "${localEnv:DA_UNSET:1:2}"},
  "${localEnv:DA_SET}": "keys stay",
  "postCreateCommand": ["echo", "${containerWorkspaceFolder}", "a // not a comment", "b /* nor this */"],
  "extensions": ["legacy.extension"],
  "settings": {"a.b": "${localWorkspaceFolder}"},
  "forwardPorts": [8888, "db:5432",],
}
"""


def reference(workspace: Path, config: Path) -> dict[str, object]:
    """`devcontainer read-configuration` of CONFIG in WORKSPACE: the configuration and the container workspace."""
    cli = shutil.which("devcontainer")
    if cli is None:
        raise FileNotFoundError("the devcontainer CLI is missing: npm install -g @devcontainers/cli "
                                "(scripts/install-deps.sh does)")
    result = subprocess.run([cli, "read-configuration", "--workspace-folder", str(workspace), "--config",
                             str(config)], env=ENV, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def test_the_corpus_is_real_and_large_enough() -> None:
    sources = (CORPUS / "SOURCES.md").read_text()
    assert len(FILES) >= 20
    for path in FILES:
        assert f"| {path.name} | " in sources, f"{path.name} has no source in SOURCES.md"
    assert "| pytorch-cpu.jsonc | pytorch/pytorch | .devcontainer/cpu/devcontainer.json |" in sources
    assert "| pytorch-cuda.jsonc | pytorch/pytorch | .devcontainer/cuda/devcontainer.json |" in sources


# text -> (the workspace the reference read it in, its container workspace, the configuration): the reference
# reads each text once per process. A mutation run (scripts/mutation.py) runs these tests once, then again in a
# child forked for each mutant: the children find the answers here instead of starting the CLI (a second or
# more each, twenty-odd files) once more per mutant. The answer depends on the text alone.
_ANSWERS: dict[str, tuple[str, str, dict[str, object]]] = {}


def reference_of(text: str, tmp_path: Path) -> tuple[str, str, dict[str, object]]:
    if text not in _ANSWERS:
        workspace = tmp_path / "proj"
        (workspace / ".devcontainer").mkdir(parents=True)
        config = workspace / ".devcontainer" / "devcontainer.json"
        config.write_text(text)
        expected = reference(workspace, config)
        wanted = expected["configuration"]
        assert isinstance(wanted, dict)
        wanted.pop("configFilePath")
        container_workspace = expected["workspace"]["workspaceFolder"]  # type: ignore[index]
        _ANSWERS[text] = (str(workspace), str(container_workspace), wanted)
    return _ANSWERS[text]


@pytest.mark.parametrize("text_of", [*FILES, "synthetic"], ids=[*(p.stem for p in FILES), "synthetic"])
def test_devagent_reads_what_the_reference_reads(tmp_path: Path, text_of: Path | str) -> None:
    text = SYNTHETIC if text_of == "synthetic" else Path(text_of).read_text()
    workspace, container_workspace, wanted = reference_of(text, tmp_path)
    got = read_configuration(text, source=f"{workspace}/.devcontainer/devcontainer.json", local_workspace=workspace,
                             container_workspace=container_workspace, env=ENV)
    assert got == wanted


def test_the_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the environment passed in counts: core/ is pure."""
    monkeypatch.setenv("DA_SET", "from-os-environ")
    got = read_configuration('{"containerEnv": {"A": "${localEnv:DA_SET}"}}', source="x", local_workspace="/w",
                             container_workspace="/c", env={})
    assert got == {"containerEnv": {"A": ""}}
    assert os.environ["DA_SET"] == "from-os-environ"
