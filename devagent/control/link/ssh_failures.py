"""What an ssh failure means, in words a user can act on: the master's own stderr turned into a DevagentError
with its exit status, and the refusal of a forwarding setting by the server's sshd."""

from __future__ import annotations

from pathlib import Path

from devagent.core.ssh.destination import Server
from devagent.errors import DevagentError, ExitStatus


def explain_ssh_failure(server: Server, stderr: str, *, ssh_config: Path) -> DevagentError:
    """What the master's exit means, as a DevagentError carrying ssh's own words.

    >>> explain_ssh_failure(Server("gpu"), "devagent-srv@127.0.0.1: Permission denied (publickey).",
    ...                     ssh_config=Path("/c")).status.name
    'SERVER_AUTH'
    """
    words = stderr.strip()
    details = words or "(ssh printed nothing)"
    if "Bad configuration option" in words or "bad configuration option" in words or (
            "line " in words and "terminating" in words):
        return DevagentError(f"ssh cannot read your ssh config {ssh_config}", status=ExitStatus.SSH_CONFIG,
                             details=details, hint="fix the line ssh names (ssh -G NAME checks it)")
    if "Host key verification failed" in words or "REMOTE HOST IDENTIFICATION HAS CHANGED" in words:
        return DevagentError(f"ssh could not verify {server}'s host key", status=ExitStatus.SERVER_AUTH,
                             details=details,
                             hint=f"connect once by hand (ssh {server}) to check and accept the server's key")
    if "Permission denied" in words or "Too many authentication failures" in words or (
            "no mutual signature" in words) or "Authentication failed" in words:
        return DevagentError(f"ssh could not log in to {server} (authentication failed; devagent never prompts)",
                             status=ExitStatus.SERVER_AUTH, details=details,
                             hint=f"make `ssh -o BatchMode=yes {server} true` work: a key in your ssh config or "
                             "agent (ssh-add) that the server accepts")
    if "Could not resolve hostname" in words or "Name or service not known" in words:
        return DevagentError(f"ssh does not know the server {server}", status=ExitStatus.SERVER_UNREACHABLE,
                             details=details,
                             hint=f"check the name: a Host in your ssh config ({ssh_config}) or a DNS name; "
                             f"`ssh {server}` must work from here")
    return DevagentError(f"ssh could not reach {server}", status=ExitStatus.SERVER_UNREACHABLE, details=details,
                         hint=f"check that `ssh {server}` works from here (the server is up, its sshd answers, "
                         "and any ProxyJump on the way)")


def refused(server: Server, what: str, setting: str, log: str) -> DevagentError:
    return DevagentError(
        f"the sshd on {server} refuses {what}",
        hint=f"devagent needs it: set {setting} in the server's sshd_config (and no DisableForwarding yes), "
        "then reload sshd",
        status=ExitStatus.SERVER_REFUSED, details=log or None)
