"""One ssh alias as plain data: the options devagent writes for it and what `ssh -G` must then print.

Pure: no I/O, no environment read. Every value is checked before it can reach a config file, because sshconf
writes values verbatim (a newline starts a new option, `#` starts a comment) and OpenSSH re-splits them
(a space ends a value unless quoted, `%` and `${` are expanded, `'` and `\\` quote and escape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devagent.core.spec import NAME_RE, NAME_RULE, USER_RE
from devagent.core.ssh.job_hop import JobCheck, proxy_command
from devagent.errors import DevagentError, ExitStatus

HOSTNAME = "127.0.0.1"  # a literal: `localhost` may resolve to ::1 first, where Docker published nothing
# What a ProxyJump value may hold (core/ssh/destination.py's Server.proxy_jump): alias, user@host[:port], [v6]:port.
# No space, comma (a second hop), quote, '#', '%', '$' or control character: each would be re-read by sshconf or
# OpenSSH.
_PROXY_JUMP_RE = re.compile(r"[A-Za-z0-9_.@:\[\]-]+")
SERVER_ALIVE_INTERVAL = 30
MAX_HOPS = 2  # a server; or a Slurm cluster's login node, then its node

# Characters that no path devagent writes may hold, and why (the hint names the fix).
_FORBIDDEN_IN_PATH = {
    "\n": "a line break",
    "\r": "a carriage return",
    "\t": "a tab",
    "#": "'#' (sshconf cuts the value there)",
    '"': "a double quote",
    "'": "a single quote (OpenSSH reads it as a quote)",
    "\\": "a backslash (OpenSSH reads it as an escape)",
    "%": "'%' (OpenSSH expands %-tokens in paths)",
    "$": "'$' (OpenSSH expands ${VAR} in paths)",
}


def _usage(message: str, hint: str) -> DevagentError:
    return DevagentError(message, hint=hint, status=ExitStatus.USAGE)


def check_path(what: str, value: str, *, glob: bool = False) -> str:
    """Return VALUE if it is an absolute path OpenSSH and sshconf both keep intact; otherwise raise (USAGE).

    Spaces inside are fine (see `quote`). With glob=True (an Include line) glob characters are refused too.

    >>> check_path("IdentityFile", "/home/me/.ssh/devagent/id_ed25519")
    '/home/me/.ssh/devagent/id_ed25519'
    """
    fix = f"set DEVAGENT_HOME to a plain absolute path (letters, digits, '/', '.', '_', '-', ' ') for {what}"
    if value != value.strip() or not value:
        raise _usage(f"{what} path {value!r} is empty or starts or ends with whitespace", fix)
    if not value.startswith("/"):
        # OpenSSH expands `~` from the passwd entry, not $HOME: what ssh -G prints could not be predicted.
        raise _usage(f"{what} path {value!r} is not absolute", fix)
    for char, why in _FORBIDDEN_IN_PATH.items():
        if char in value:
            raise _usage(f"{what} path {value!r} contains {why}", fix)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _usage(f"{what} path {value!r} contains a control character", fix)
    if glob and any(c in value for c in "*?["):
        raise _usage(f"{what} path {value!r} contains a glob character (Include expands globs)", fix)
    return value


def quote(value: str) -> str:
    """Write VALUE as one ssh config argument: quoted when it holds a space.

    >>> quote("/a b/c"), quote("/a/c")
    ('"/a b/c"', '/a/c')
    """
    return f'"{value}"' if " " in value else value


@dataclass(frozen=True)
class HostEntry:
    """One `Host NAME` block in devagent's managed ssh config. Invalid values raise DevagentError(USAGE).

    >>> e = HostEntry("pytorch-dev", 49153, "dev", "/h/devagent/id_ed25519", "/h/devagent/known_hosts")
    >>> e.options()[:3]
    [('HostName', '127.0.0.1'), ('Port', '49153'), ('User', 'dev')]
    """

    name: str
    port: int
    user: str
    identity_file: str
    known_hosts_file: str
    # For an environment on a server: the ProxyJump value that reaches the server (as the user's own ssh does);
    # on a Slurm cluster, the login node and then the node (`login,gpu07`).
    proxy_jump: str | None = None
    # On a Slurm cluster: the job the alias asks about with each connection (core/ssh/job_hop.py). The
    # block then holds a ProxyCommand that makes PROXY_JUMP's two hops itself and asks the login node beside them.
    job_check: JobCheck | None = None

    def __post_init__(self) -> None:
        validate(self)

    def options(self) -> list[tuple[str, str]]:
        """The block's options in the order they are written, values as they appear in the file."""
        jump = [("ProxyJump", self.proxy_jump)] if self.proxy_jump else []
        if self.job_check is not None:
            jump = [("ProxyCommand", self.proxy_command())]
        return [
            ("HostName", HOSTNAME),
            ("Port", str(self.port)),
            *jump,
            ("User", self.user),
            ("IdentityFile", quote(self.identity_file)),
            ("IdentitiesOnly", "yes"),
            ("HostKeyAlias", self.name),  # the pinned key survives a new published port
            ("UserKnownHostsFile", quote(self.known_hosts_file)),
            ("StrictHostKeyChecking", "yes"),
            ("ForwardAgent", "no"),
            ("ForwardX11", "no"),
            ("ServerAliveInterval", str(SERVER_ALIVE_INTERVAL)),
        ]

    def proxy_command(self) -> str:
        """The ProxyCommand of an alias with a job check (core/ssh/job_hop.py)."""
        assert self.job_check is not None and self.proxy_jump is not None
        login, node = self.proxy_jump.split(",")
        return proxy_command(self.job_check, name=self.name, login=login, node=node, port=self.port)

    def expected_effective(self) -> dict[str, str]:
        """What `ssh -G NAME` must print for the keywords that matter, keyed by its lowercase keyword.

        `ssh -G` prints paths unquoted (spaces and all), `StrictHostKeyChecking yes` as `true`, and one
        `identityfile` line per IdentityFile that applies (ours must be the first).
        """
        jump = {"proxyjump": self.proxy_jump} if self.proxy_jump else {}
        if self.job_check is not None:  # ssh -G prints it as written: %% not yet expanded
            jump = {"proxycommand": self.proxy_command()}
        return {
            **jump,
            "hostname": HOSTNAME,
            "port": str(self.port),
            "user": self.user,
            "identityfile": self.identity_file,
            "hostkeyalias": self.name,
            "userknownhostsfile": self.known_hosts_file,
            "stricthostkeychecking": "true",
        }


def valid_proxy_jump(value: object, *, hops: int = 1) -> bool:
    """Whether VALUE may be written as a ProxyJump value: one hop as core/ssh/destination.py's Server.proxy_jump
    writes it, or up to HOPS of them joined by commas (an environment on a Slurm cluster: `login,node`).

    >>> valid_proxy_jump("alice@gpu:2222"), valid_proxy_jump("gpu\\n  ProxyCommand sh"), valid_proxy_jump("-oX")
    (True, False, False)
    >>> valid_proxy_jump("login,gpu07"), valid_proxy_jump("login,gpu07", hops=2), valid_proxy_jump("a,-oX", hops=2)
    (False, True, False)
    """
    if not isinstance(value, str):
        return False
    each = value.split(",")
    return len(each) <= hops and all(not hop.startswith("-") and _PROXY_JUMP_RE.fullmatch(hop) for hop in each)


def validate(entry: HostEntry) -> None:
    """Raise DevagentError(USAGE) naming the fix if ENTRY holds a value a config file would not keep."""
    if not isinstance(entry.name, str) or not NAME_RE.fullmatch(entry.name):
        raise _usage(f"invalid ssh alias {entry.name!r}", NAME_RULE)
    if isinstance(entry.port, bool) or not isinstance(entry.port, int) or not 1 <= entry.port <= 65535:
        raise _usage(f"invalid ssh port {entry.port!r}", "use a whole number from 1 to 65535")
    if not isinstance(entry.user, str) or not USER_RE.fullmatch(entry.user):
        raise _usage(f"invalid ssh user {entry.user!r}", "use a lowercase POSIX user name, e.g. dev")
    check_path("IdentityFile", entry.identity_file)
    check_path("UserKnownHostsFile", entry.known_hosts_file)
    if entry.proxy_jump is not None and not valid_proxy_jump(entry.proxy_jump, hops=MAX_HOPS):
        # parse_server refused anything else before; this guards the file against what reaches it some other way
        raise _usage(f"invalid ProxyJump {entry.proxy_jump!r}",
                     "name the server as you reach it with ssh: an alias, user@host[:port] or ssh://user@host:port")
    if entry.job_check is not None:
        check = entry.job_check
        if entry.proxy_jump is None or len(entry.proxy_jump.split(",")) != MAX_HOPS or not check.valid():
            raise _usage(f"invalid Slurm job check for {entry.name!r}: job {check.job_id!r}, partition "
                         f"{check.partition!r}, hops {entry.proxy_jump!r}",
                         "the job id is digits, the partition a Slurm name, the hops the login node and the node")
        try:
            check_path("ssh config", check.config)
        except DevagentError as exc:  # the inner ssh's -F: the user's ssh config, not a path under DEVAGENT_HOME
            raise _usage(exc.message, "set DEVAGENT_SSH_CONFIG to a plain absolute path (letters, digits, '/', "
                         "'.', '_', '-', ' ')") from None
