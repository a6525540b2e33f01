"""What ssh's words mean (control/link/ssh_failures.py): the exit code, and ssh's own words kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.control.link.ssh_failures import explain_ssh_failure
from devagent.core.ssh.destination import Server
from devagent.errors import ExitStatus

GPU = Server("gpu")


@pytest.mark.parametrize(("words", "status", "message"), [
    ("ssh: Could not resolve hostname gpu: Name or service not known", ExitStatus.SERVER_UNREACHABLE,
     "ssh does not know the server gpu"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection refused", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection timed out", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("kex_exchange_identification: Connection closed by remote host", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("al@gpu: Permission denied (publickey).", ExitStatus.SERVER_AUTH,
     "ssh could not log in to gpu (authentication failed; devagent never prompts)"),
    ("Received disconnect from 10.0.0.7 port 22:2: Too many authentication failures", ExitStatus.SERVER_AUTH,
     "ssh could not log in to gpu (authentication failed; devagent never prompts)"),
    ("Host key verification failed.", ExitStatus.SERVER_AUTH, "ssh could not verify gpu's host key"),
    ("/home/al/.ssh/config: line 3: Bad configuration option: hostnme\n/home/al/.ssh/config: terminating, 1 bad "
     "configuration options", ExitStatus.SSH_CONFIG, "ssh cannot read your ssh config /c"),
    ("", ExitStatus.SERVER_UNREACHABLE, "ssh could not reach gpu"),
])
def test_what_ssh_said_decides_the_exit_code_and_its_words_are_kept(words: str, status: ExitStatus,
                                                                    message: str) -> None:
    error = explain_ssh_failure(GPU, words, ssh_config=Path("/c"))
    assert (error.status, error.message) == (status, message)
    assert error.details == (words or "(ssh printed nothing)")
