"""The ssh processes devagent starts (the server link, forwards, notebook servers) end with it.

Each runs in its own session, so a Ctrl-C at the terminal reaches devagent alone (which then ends them itself,
after any rollback that still needs them), and with no terminal, so nothing on the way can prompt. On Linux each
also gets PR_SET_PDEATHSIG: when devagent dies — SIGKILL included — its ssh children get SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from devagent.errors import DevagentError, ExitStatus

_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    # glibc's name first: find_library runs `ldconfig -p` (5-10 ms, on every --host command's way to its login).
    try:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child starts with the stop signals' default actions, and gets SIGTERM when PARENT's thread
    that started it ends (Linux). Set up in the child between fork and exec; a parent already gone by then ends
    the child at once."""

    def preexec() -> None:
        # An ignored signal stays ignored across exec, and ssh keeps ignoring the ones it inherited ignored: then
        # neither close()'s SIGTERM nor the death signal would end it when devagent came with them ignored.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def child_kwargs() -> dict[str, object]:
    """subprocess.Popen's keyword arguments for an ssh child that must end with devagent. PR_SET_PDEATHSIG follows
    the thread that starts the child: start it from the thread that lives as long as it should."""
    return {"start_new_session": True, "preexec_fn": _die_with(os.getpid())}


def start_ssh(argv: Sequence[str], **popen: Any) -> subprocess.Popen[str]:
    """Start the ssh command ARGV (text mode, its stderr piped) as a child that ends with devagent; POPEN gives
    its stdin and stdout. A missing OpenSSH client is a DevagentError (USAGE) that says how to install it."""
    try:
        options: dict[str, Any] = {"stderr": subprocess.PIPE, "text": True, "errors": "replace", **popen,
                                   **child_kwargs()}
        process: subprocess.Popen[str] = subprocess.Popen(list(argv), **options)
        return process
    except FileNotFoundError:
        raise DevagentError("the OpenSSH client (ssh) is not installed", status=ExitStatus.USAGE,
                            hint="install it: apt-get install openssh-client") from None
