"""A server named only by a workspace's devagent.toml (a cloned repository's, perhaps) is used once the user has
agreed to it — asked once in a terminal, remembered per server — or named it with --host or DEVAGENT_HOST.
The server here is 127.0.0.1:1, where nothing listens: once devagent goes there, the real ssh is refused (exit 15),
which proves it went; a refusal before that (exit 2) proves it did not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from devagent.cli import main, site_options
from devagent.control.paths import Paths
from devagent.errors import ExitStatus

SERVER = "127.0.0.1:1"


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cloned repository whose devagent.toml names a server; the current folder."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / "devagent.toml").write_text(f'name = "exp"\nhost = "{SERVER}"\n')
    monkeypatch.chdir(folder)
    monkeypatch.delenv("DEVAGENT_HOST", raising=False)
    return folder


def trusted() -> Path:
    return Paths.from_environ().home / "trusted-servers.json"


def at_a_terminal(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    monkeypatch.setattr(site_options, "interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))


def test_without_a_terminal_a_server_only_the_file_names_is_refused_naming_both_ways(
        checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up"]) == ExitStatus.USAGE
    assert capsys.readouterr().err == (
        f"Error: {checkout / 'devagent.toml'} names the server '{SERVER}', which you have not agreed to use: a "
        "file in a workspace does not choose a server on its own\n"
        f"  hint: pass --host {SERVER} (or set DEVAGENT_HOST={SERVER}) to use it, or --local for this machine's "
        "engine; or run `devagent up` once in a terminal and answer yes (remembered)\n")
    assert not trusted().exists()


def test_a_no_at_the_prompt_makes_nothing_and_remembers_nothing(checkout: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    at_a_terminal(monkeypatch, "n\n")
    assert main(["up"]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"{checkout / 'devagent.toml'} names the server '{SERVER}': devagent would log in there "
                          "with your ssh config and keys, make the environment there and write its alias through it.\n"
                          f"Use {SERVER} (remembered for every workspace that names it)? [y/N]: ")
    assert err.endswith(f"Error: not using the server '{SERVER}' that {checkout / 'devagent.toml'} names; nothing "
                        f"was made\n  hint: pass --host {SERVER} (or set DEVAGENT_HOST={SERVER}) to use it, or "
                        "--local for this machine's engine\n")
    assert "ssh could not reach" not in err
    assert not trusted().exists()


def test_a_yes_at_the_prompt_goes_to_the_server_and_is_remembered_for_it(
        checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    at_a_terminal(monkeypatch, "y\n")
    assert main(["up"]) == ExitStatus.SERVER_UNREACHABLE  # it went there
    assert "Error: ssh could not reach 127.0.0.1:1\n" in capsys.readouterr().err
    assert json.loads(trusted().read_text()) == {"version": 1, "servers": [SERVER]}
    assert trusted().stat().st_mode & 0o777 == 0o600

    monkeypatch.setattr(site_options, "interactive", lambda: False)  # remembered: no question, also in a script
    assert main(["up"]) == ExitStatus.SERVER_UNREACHABLE
    assert "Use 127.0.0.1:1" not in capsys.readouterr().err


@pytest.mark.parametrize("how", ["--host", "DEVAGENT_HOST"])
def test_a_server_the_user_names_needs_no_consent(checkout: Path, how: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    if how == "--host":
        args = ["up", "--host", SERVER]
    else:
        monkeypatch.setenv("DEVAGENT_HOST", SERVER)
        args = ["up"]
    assert main(args) == ExitStatus.SERVER_UNREACHABLE
    assert "Error: ssh could not reach 127.0.0.1:1\n" in capsys.readouterr().err
    assert not trusted().exists()
