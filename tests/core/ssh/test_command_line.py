"""The one builder of OpenSSH command lines: its order, its refusals, and that no other module builds one."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devagent.core.ssh.command_line import KEEPALIVE, NO_SHARED_MASTER, client_argv, ssh_argv
from devagent.core.ssh.destination import Server
from devagent.core.ssh.forward_plan import forward_argv

PACKAGE = Path(__file__).resolve().parents[3] / "devagent"
CONFIG = Path("/home/me/.ssh/config")


def test_a_login_through_the_alias_is_the_line_it_always_was() -> None:
    assert ssh_argv(CONFIG, "env1", "id", "-u", options={"ConnectTimeout": 20}) == [
        "ssh", "-F", "/home/me/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "env1", "id", "-u"]


def test_devagent_ssh_leaves_batch_mode_out_so_ssh_may_ask_on_the_terminal() -> None:
    assert ssh_argv(CONFIG, "env1", "ls", batch=False) == ["ssh", "-F", "/home/me/.ssh/config", "env1", "ls"]


def test_ssh_dash_g_is_the_line_it_always_was() -> None:
    assert ssh_argv(CONFIG, "env1", flags=["-G"], batch=False, ssh="/usr/bin/ssh") == [
        "/usr/bin/ssh", "-G", "-F", "/home/me/.ssh/config", "env1"]


def test_options_keep_the_callers_order_after_batch_mode() -> None:
    argv = ssh_argv(CONFIG, "env1", options={"ConnectTimeout": 20, **NO_SHARED_MASTER, **KEEPALIVE})
    assert argv[3:-1] == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "ControlMaster=no",
                          "-o", "ControlPath=none", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]


def test_a_server_ends_the_options_with_a_double_dash_and_an_ipv6_user_goes_in_dash_l() -> None:
    argv = ssh_argv(CONFIG, Server("alice@[fd00::1]:2222"), "docker version", control=Path("/run/x/ctl"))
    assert argv == ["ssh", "-F", "/home/me/.ssh/config", "-S", "/run/x/ctl", "-o", "BatchMode=yes",
                    "-l", "alice", "-p", "2222", "--", "fd00::1", "docker version"]


def test_a_server_named_like_an_option_stays_the_destination() -> None:
    argv = ssh_argv(CONFIG, Server("gpu"), "true")
    assert argv[-3:] == ["--", "gpu", "true"]


@pytest.mark.parametrize("options, batch, key", [
    ({"BatchMode": "no"}, True, "BatchMode"),
    ({"batchmode": "yes"}, True, "BatchMode"),
    ({"ControlMaster": "no", "controlmaster": "yes"}, False, "controlmaster"),
])
def test_a_keyword_given_twice_is_refused_since_its_first_value_would_win_unseen(
        options: dict[str, str], batch: bool, key: str) -> None:
    with pytest.raises(ValueError, match=f"^ssh option {key} given twice$"):
        ssh_argv(CONFIG, "env1", options=options, batch=batch)


def test_without_batch_mode_the_caller_may_set_batchmode_itself() -> None:
    assert ssh_argv(CONFIG, "env1", options={"BatchMode": "no"}, batch=False) == [
        "ssh", "-F", "/home/me/.ssh/config", "-o", "BatchMode=no", "env1"]


def test_the_client_asked_about_itself_connects_nowhere() -> None:
    assert client_argv("-V") == ["ssh", "-V"]
    assert client_argv("-Q", "kex", ssh="/opt/ssh") == ["/opt/ssh", "-Q", "kex"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client (apt-get install openssh-client)")
def test_the_forwards_new_order_means_to_ssh_what_the_old_order_meant(tmp_path: Path) -> None:
    # The builder moved -N -v before -F and BatchMode before ExitOnForwardFailure: `ssh -G` prints what OpenSSH
    # makes of each line, which must not differ.
    config = tmp_path / "config"
    config.write_text("Host env1\n  HostName 127.0.0.1\n  Port 24000\n")
    before = ["ssh", "-F", str(config), "-N", "-v", "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes",
              "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ConnectTimeout=20",
              "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
              "-L", "127.0.0.1:9999:127.0.0.1:8888", "env1"]
    after = forward_argv(config, "env1", local=9999, remote=8888)
    assert sorted(after) == sorted(before)

    def effective(argv: list[str]) -> str:
        return subprocess.run([argv[0], "-G", *argv[1:]], capture_output=True, text=True, check=True,
                              stdin=subprocess.DEVNULL, timeout=30).stdout

    assert effective(after) == effective(before)
    assert "localforward [127.0.0.1]:9999 [127.0.0.1]:8888" in effective(after).splitlines()


# What building an ssh command line looks like in source: a list that starts with the client, or BatchMode/-F spelt
# out. Only the builder may do it.
_BUILDS_ARGV = re.compile(r'\[\s*(?:"ssh"|ssh|self\._ssh|self\.ssh_binary)\s*,|"BatchMode=|"-F"')


def test_only_the_builder_builds_an_ssh_command_line() -> None:
    builders = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                      if _BUILDS_ARGV.search(path.read_text()))
    assert builders == ["core/ssh/command_line.py"]
