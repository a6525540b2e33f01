"""The ssh config contract at scale (slow): ten processes installing at once, and install then remove over
generated configs, each judged by the real OpenSSH client (tests/control/ssh/test_user_config.py holds the
scenarios one by one)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devagent.control.paths import Paths
from devagent.control.ssh import known_hosts
from devagent.control.ssh.user_config import SshConfig
from devagent.errors import DevagentError, ExitStatus
from tests.control.ssh.test_user_config import (
    HOST_KEY,
    NAME,
    assert_ssh_uses_devagents_values,
    entry_for,
    include_line,
    ssh_g,
    use_fixture,
)

pytestmark = pytest.mark.slow


# -- concurrency ---------------------------------------------------------------------------------------------


def _install_one(home: str, name: str) -> None:
    paths = Paths.from_environ({"HOME": home, "DEVAGENT_HOME": f"{home}/.ssh/devagent",
                                "DEVAGENT_SSH_CONFIG": f"{home}/.ssh/config"})
    SshConfig(paths).install(entry_for(paths, name, port=40000 + int(name.split("-")[1])), HOST_KEY)


class TestConcurrency:
    def test_ten_processes_installing_different_names_all_land(self, paths: Paths,
                                                               isolated_home: Path) -> None:
        original = use_fixture(paths, isolated_home, "host_star_first.conf")
        names = [f"env-{i}" for i in range(10)]
        context = multiprocessing.get_context("spawn")  # a fresh interpreter each, like ten devagent commands
        processes = [context.Process(target=_install_one, args=(str(isolated_home), name)) for name in names]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
        assert sorted(SshConfig(paths).names()) == names
        assert paths.user_ssh_config.read_bytes() == include_line(paths) + b"\n" + original
        for name in names:
            assert known_hosts.lookup(paths.known_hosts, name) is not None
            assert ssh_g(paths.user_ssh_config, name)["port"] == [str(40000 + int(name.split("-")[1]))]


# -- properties over generated configs -----------------------------------------------------------------------

_OPTIONS = [
    "User root", "Port 2200", "HostName jump.example.com", "IdentityFile ~/.ssh/id_rsa", "ForwardAgent yes",
    "ServerAliveInterval 5", "StrictHostKeyChecking no", "UserKnownHostsFile ~/.ssh/other_known_hosts",
    "HostKeyAlias someone-else", "IdentitiesOnly no", "Include ~/.ssh/nothing-here/*",
]
_BLOCKS = ["Host *", "Host gitlab", "Host pytorch-*", "Host *.example.com !bad", "Match all",
           "Match host pytorch-dev", "Match host gitlab,*.internal"]


@st.composite
def user_configs(draw: st.DrawFn) -> bytes:
    """Random mixes of comments, blanks, Host/Match blocks and options; LF or CRLF; final newline or not."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["comment", "blank", "block", "option", "option"]))
        if kind == "comment":
            comments = ["# a comment", "#", "  # indented # twice", f"# Host {NAME}"]
            lines.append(draw(st.sampled_from(comments)))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
        elif kind == "block":
            lines.append(draw(st.sampled_from(_BLOCKS)))
        else:
            keyword, value = draw(st.sampled_from(_OPTIONS)).split(" ", 1)
            keyword = draw(st.sampled_from([keyword, keyword.lower(), keyword.upper()]))
            separator = draw(st.sampled_from([" ", "\t", "=", " = ", "  "]))
            indent = draw(st.sampled_from(["", "  ", "\t"]))
            lines.append(f"{indent}{keyword}{separator}{value}")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines)
    if lines and draw(st.booleans()):
        text += newline
    return text.encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(original=user_configs())
def test_install_only_adds_one_line_and_remove_restores_the_exact_bytes_for_generated_configs(
        paths: Paths, original: bytes) -> None:
    paths.user_ssh_config.write_bytes(original)
    sshconfig = SshConfig(paths)
    entry = entry_for(paths)
    try:
        sshconfig.install(entry, HOST_KEY)
    except DevagentError as exc:
        # A config that sends NAME to another host (HostName under a block that matches it) is refused before
        # anything is written (issue 10, item 3): the user's bytes stay as they were.
        assert exc.status is ExitStatus.SSH_CONFIG and f"your ssh config sends {NAME} to" in exc.message
        assert b"hostname" in original.lower()
        assert paths.user_ssh_config.read_bytes() == original
        assert not paths.managed_ssh_config.exists()
        return
    end = original.find(b"\n")
    newline = b"\r\n" if end > 0 and original[end - 1:end] == b"\r" else b"\n"  # the first line's ending
    assert paths.user_ssh_config.read_bytes() == include_line(paths) + newline + original
    assert_ssh_uses_devagents_values(paths, entry)
    sshconfig.verify_effective(entry)
    assert sshconfig.remove(NAME) is True
    assert paths.user_ssh_config.read_bytes() == original
    assert not paths.managed_ssh_config.exists()
