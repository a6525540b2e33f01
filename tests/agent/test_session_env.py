"""The agent gives sshd a devcontainer.json's containerEnv/remoteEnv as one `-o SetEnv` (core/ssh/sshd.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.agent.agent import AgentConfig, _session_env_option
from devagent.core.ssh.sshd import session_env_file


def test_the_image_setenv_then_container_env_then_remote_env(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sshd_config"
    config.write_text('Port 2222\nSetEnv PATH="/opt/conda/bin:/usr/bin" LANG="C.UTF-8" CUDA_HOME="/c"\n')
    env_file = tmp_path / "session-env.json"
    env_file.write_text(session_env_file((("WHO", "me"), ("LANG", "en_GB.UTF-8")),
                                         (("PATH", "/x:${containerEnv:PATH}"), ("CUDA_HOME", None),
                                          ("Q", 'a "b" \\c'), ("D", "${containerEnv:NOPE:dflt}"))).decode())
    monkeypatch.setenv("PATH", "/docker/path")
    monkeypatch.delenv("NOPE", raising=False)
    agent = AgentConfig(workspace=tmp_path, sshd_config=str(config), session_env=str(env_file))
    assert _session_env_option(agent) == [
        "-o", 'SetEnv PATH="/x:/docker/path" LANG="en_GB.UTF-8" WHO="me" Q="a \\"b\\" \\\\c" D="dflt"']


def test_no_file_no_option(tmp_path: Path) -> None:
    agent = AgentConfig(workspace=tmp_path, sshd_config=str(tmp_path / "c"), session_env=str(tmp_path / "none"))
    assert _session_env_option(agent) == []
