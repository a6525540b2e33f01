"""Every OpenSSH command line devagent runs, built here and nowhere else: the alias's logins, the server link's
master and its commands, the forwards, `ssh -G`, `ssh -V` and `ssh -Q`.

One order for every line: the client, its flags, `-F CONFIG`, `-S CONTROL`, `-o BatchMode=yes`, the other `-o`
options in the caller's order, `-L`, the destination, the remote command. OpenSSH reads every option before the
destination whatever their order, and for a `-o` keyword the first value wins; so the order means nothing as
long as no keyword comes twice, which `ssh_argv` refuses.

>>> ssh_argv(Path("/home/me/.ssh/config"), "pytorch-dev", "id", "-u", options={"ConnectTimeout": 20})
['ssh', '-F', '/home/me/.ssh/config', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', 'pytorch-dev', 'id', '-u']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from devagent.core.ssh.destination import Server

LOOPBACK = "127.0.0.1"

# A master connection of the user's own config must not carry devagent's ssh: whatever rides on it (a forward, a
# notebook server) would live as long as that master, not as long as this ssh.
NO_SHARED_MASTER: Mapping[str, str] = {"ControlMaster": "no", "ControlPath": "none"}
# A dead connection (the laptop slept, the server rebooted) ends ssh within a minute, and the command says so.
KEEPALIVE: Mapping[str, int] = {"ServerAliveInterval": 15, "ServerAliveCountMax": 4}


def ssh_argv(config: Path, destination: str | Server, *command: str, ssh: str = "ssh", batch: bool = True,
             flags: Sequence[str] = (), options: Mapping[str, str | int] | None = None,
             forward: tuple[int, int] | None = None, control: Path | None = None) -> list[str]:
    """The OpenSSH client SSH reading CONFIG, to DESTINATION, running COMMAND there (nothing: a login shell).

    DESTINATION is an ssh alias (a validated environment name, or what the user named) or a `Server`, whose
    words end ssh's options with `--`: ssh reads options after the destination too. COMMAND's words reach the
    remote shell joined by spaces, as ssh joins them: quote them first where a word must stay one.
    BATCH: `-o BatchMode=yes`, never a prompt (only `devagent ssh`, which hands ssh the terminal, leaves it out).
    FLAGS: single-letter flags such as -N or -G. OPTIONS: `-o KEY=VALUE` in their order. FORWARD: (LOCAL, REMOTE),
    this machine's 127.0.0.1:LOCAL to the destination's 127.0.0.1:REMOTE. CONTROL: the ControlPath of a master.

    >>> ssh_argv(Path("cfg"), Server("alice@gpu:2222"), "true", control=Path("/run/l/ctl"))
    ['ssh', '-F', 'cfg', '-S', '/run/l/ctl', '-o', 'BatchMode=yes', '-p', '2222', '--', 'alice@gpu', 'true']
    >>> ssh_argv(Path("cfg"), "env1", flags=["-N"], forward=(9999, 8888), batch=False)
    ['ssh', '-N', '-F', 'cfg', '-L', '127.0.0.1:9999:127.0.0.1:8888', 'env1']
    >>> ssh_argv(Path("cfg"), "env1", options={"batchmode": "no"})
    Traceback (most recent call last):
    ...
    ValueError: ssh option BatchMode given twice
    """
    given = dict(options or {})
    keys = [key.lower() for key in given] + (["batchmode"] if batch else [])
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"ssh option {'BatchMode' if key == 'batchmode' else key} given twice")
    argv = [ssh, *flags, "-F", str(config)]
    if control is not None:
        argv += ["-S", str(control)]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    for key, value in given.items():
        argv += ["-o", f"{key}={value}"]
    if forward is not None:
        local, remote = forward
        argv += ["-L", f"{LOOPBACK}:{local}:{LOOPBACK}:{remote}"]
    if isinstance(destination, Server):
        words = destination.ssh_destination()
        argv += [*words[:-1], "--", words[-1]]
    else:
        argv.append(destination)
    return [*argv, *command]


def client_argv(*flags: str, ssh: str = "ssh") -> list[str]:
    """The client asked about itself, connecting nowhere: `ssh -V` (its version), `ssh -Q kex` (what it speaks).

    >>> client_argv("-Q", "kex")
    ['ssh', '-Q', 'kex']
    """
    return [ssh, *flags]
