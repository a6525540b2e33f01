"""The real OpenSSH client: its version, and a login through the written alias."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from devagent.errors import DevagentError, ExitStatus


def client_version(ssh: str = "ssh") -> tuple[int, int] | None:
    """(major, minor) of the local OpenSSH client, or None when there is none.

    `ssh -V` prints e.g. 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15' on stderr.
    """
    if shutil.which(ssh) is None:
        return None
    out = subprocess.run([ssh, "-V"], capture_output=True, text=True, check=False)
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else None


def login_through_alias(config: Path, name: str, *, remote_command: tuple[str, ...] = ("id", "-u"),
                        timeout: float = 20.0, ssh: str = "ssh") -> int:
    """Log in with the real client through the alias NAME, run REMOTE_COMMAND (it prints the uid), return it."""
    cmd = [ssh, "-F", str(config), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(timeout)}", name,
           *remote_command]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        raise DevagentError(f"ssh {name} did not answer within {timeout:.0f} s", status=ExitStatus.LOGIN_FAILED,
                            hint=f"check the container: docker logs {name}") from None
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise DevagentError(
            f"the login through the ssh alias {name!r} failed (ssh exit {out.returncode})",
            status=ExitStatus.LOGIN_FAILED, details=out.stderr.strip() or out.stdout.strip(),
            hint=f"run `ssh -v -F {config} {name}` to see why; `docker logs {name}` shows sshd's side",
        )
    return int(out.stdout.strip())
