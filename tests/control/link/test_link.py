"""The link's pure parts without a server (control/link/link.py): a server named as a Docker context. The link
itself is tested end to end through the laptop -> server topology (tests/integration/test_server_link.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from devagent.control.link.link import resolve_server
from devagent.errors import DevagentError, ExitStatus


def _context(home: Path, name: str, endpoint: str, *, stored_name: str | None = None) -> None:
    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": stored_name or name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": endpoint}}}))


def test_a_docker_context_with_an_ssh_endpoint_is_that_endpoint(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://alice@gpu.lab:2222")
    server = resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert (server.text, server.proxy_jump) == ("ssh://alice@gpu.lab:2222", "alice@gpu.lab:2222")
    # ssh://NAME is the ssh alias of that name, whatever the contexts say
    assert resolve_server("ssh://gpu", environ={"HOME": str(tmp_path)}).text == "ssh://gpu"


def test_docker_config_decides_where_contexts_are(tmp_path: Path) -> None:
    _context(tmp_path / "elsewhere", "gpu", "ssh://bob@h")
    environ = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "elsewhere" / ".docker")}
    assert resolve_server("gpu", environ=environ).text == "ssh://bob@h"
    assert resolve_server("gpu", environ={"HOME": str(tmp_path)}).text == "gpu"  # no context: the alias


def test_a_docker_context_that_is_not_ssh_is_refused_naming_the_way_out(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "tcp://10.0.0.7:2376")
    with pytest.raises(DevagentError) as caught:
        resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.message == "the Docker context 'gpu' does not reach its engine over ssh ('tcp://10.0.0.7:2376')"
    assert "write ssh://gpu for the ssh alias of that name" in str(caught.value.hint)


def test_a_docker_context_with_a_hostile_endpoint_is_refused(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://-oProxyCommand=x")
    with pytest.raises(DevagentError) as caught:
        resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.message.startswith("the Docker context 'gpu': server 'ssh://-oProxyCommand=x' is not usable")


def test_a_context_file_naming_another_context_is_not_taken(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://x@y", stored_name="other")
    assert resolve_server("gpu", environ={"HOME": str(tmp_path)}).text == "gpu"
