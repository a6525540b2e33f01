"""OpenSSH from the outside: the local client's version, sshd's banner, and a login through the written alias.

Docker's proxy accepts connections before sshd listens, so a TCP connect proves nothing: readiness is the banner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from devagent.core.ssh.command_line import client_argv, ssh_argv
from devagent.core.ssh.sshd import openssh_version
from devagent.errors import DevagentError, ExitStatus


def client_version(ssh: str = "ssh") -> tuple[int, int] | None:
    """(major, minor) of the local OpenSSH client, or None when there is none.

    `ssh -V` prints e.g. 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15' on stderr.
    """
    return client_version_soon(ssh)()


def client_version_soon(ssh: str = "ssh") -> Callable[[], tuple[int, int] | None]:
    """client_version, its `ssh -V` started now and waited for when the result is asked for: `up` starts it before
    its own imports, which then run meanwhile (issue 19)."""
    if shutil.which(ssh) is None:
        return lambda: None
    proc = subprocess.Popen(client_argv("-V", ssh=ssh), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found: list[tuple[int, int] | None] = []

    def wait() -> None:
        out, err = proc.communicate()
        found.append(openssh_version(err + out))

    # A daemon thread reads the answer and reaps the child as soon as it ends: `up` may stop (a refused option,
    # a file error) before it asks, and a child nobody waited for stays a zombie for the rest of the process.
    waiter = threading.Thread(target=wait, name="ssh -V", daemon=True)
    waiter.start()

    def result() -> tuple[int, int] | None:
        waiter.join()
        return found[0] if found else None
    return result


def openssh_at_least(banner: str, version: tuple[int, int]) -> bool:
    """Whether an sshd banner ('SSH-2.0-OpenSSH_9.2p1 Debian-2') names OpenSSH VERSION or newer.

    >>> openssh_at_least("SSH-2.0-OpenSSH_9.2p1 Debian-2", (9, 9)), openssh_at_least("SSH-2.0-OpenSSH_10.0", (9, 9))
    (False, True)
    """
    found = openssh_version(banner)
    return found is not None and found >= version


def login_through_alias(config: Path, name: str, *, remote_command: tuple[str, ...] = ("id", "-u"),
                        timeout: float = 20.0, ssh: str = "ssh", gate: Callable[[], None] | None = None,
                        env: Mapping[str, str] | None = None) -> int:
    """Log in with the real client through the alias NAME, run REMOTE_COMMAND (it prints the uid), return it.

    GATE runs while the client logs in; the command gets one line on its stdin once GATE returned, none (EOF) if
    GATE raised (its error is then raised, once ssh has ended): a REMOTE_COMMAND that starts with GATED_BY_STDIN
    does nothing before GATE has succeeded. ENV: added to ssh's environment (the alias's ProxyCommand sees it)."""
    cmd = ssh_argv(config, name, *remote_command, ssh=ssh, options={"ConnectTimeout": int(timeout)})
    child_env = {**os.environ, **env} if env else None
    try:
        if gate is None:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5, check=False,
                                 env=child_env)
        else:
            out = _gated_run(cmd, gate, timeout=timeout + 5, env=child_env)
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


# A remote command's start that waits for login_through_alias's GATE: `read` fails at EOF, and `&&` stops there.
GATED_BY_STDIN = "read -r _ && "


def _gated_run(cmd: list[str], gate: Callable[[], None], *, timeout: float,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            gate()
        except BaseException:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=timeout)  # EOF: the command stops before its first step
            proc.kill()  # nothing, when it has ended
            raise
        try:
            stdout, stderr = proc.communicate("\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


Connect = Callable[[int, float], socket.socket]
POLL_S = 0.01  # between tries for sshd's banner, in its first FAST_POLL_FOR_S
FAST_POLL_FOR_S = 3.0
SLOW_POLL_S = 0.1  # a container slower than that to boot is not sped up by trying more often
CHECK_EVERY_S = 0.2  # how often the container is asked whether it still runs (an engine request)


def connect_local(port: int, timeout: float) -> socket.socket:
    """A stream to this machine's 127.0.0.1:PORT (where a local environment's sshd is published)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def wait_for_banner(port: int, *, timeout: float, still_starting: Callable[[], None],
                    connect: Connect = connect_local) -> str:
    """Return sshd's banner ('SSH-2.0-OpenSSH_9.2') once it answers on 127.0.0.1:PORT — this machine's, or
    through CONNECT a server's (ServerLink.connect: a channel of the one ssh login to that server).

    STILL_STARTING is called between tries, at most every CHECK_EVERY_S (it asks the engine); it raises when
    the container has exited.
    """
    start = time.monotonic()
    deadline, next_check = start + timeout, start
    last_error = "no answer"
    while True:
        try:
            with connect(port, 2.0) as s:
                s.settimeout(2)
                data = s.recv(256)
                if data.startswith(b"SSH-"):
                    return data.split(b"\r\n", 1)[0].decode(errors="replace")
                last_error = "connection closed before the banner" if not data else f"unexpected {data[:20]!r}"
        except OSError as exc:
            last_error = str(exc)
        now = time.monotonic()
        if now >= next_check or now >= deadline:
            still_starting()
            next_check = now + CHECK_EVERY_S
        if now >= deadline:
            raise DevagentError(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s ({last_error})",
                                status=ExitStatus.CONTAINER_FAILED,
                                hint="the container's log (docker logs NAME) shows what the agent and sshd said")
        # sshd answers within a few tens of ms of the start: a try costs a loopback connect (or one round trip
        # through the link), and every ms between its first answer and our try shows in up's time.
        time.sleep(POLL_S if now - start < FAST_POLL_FOR_S else SLOW_POLL_S)
