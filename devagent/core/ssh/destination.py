"""The GPU server a laptop drives (`--host SERVER`), as plain data: what the user typed, checked, and how OpenSSH
is to be told about it.

SERVER is whatever the user types after `ssh`: an alias from their own ssh config (`gpu-server`), `user@host`,
`user@host:port`, `ssh://user@host[:port]`, and IPv6 literals in brackets (`[::1]:2222`, `alice@[fd00::1]`).
The text reaches OpenSSH twice: as the destination of devagent's own `ssh` (an argv word) and as the value of
`ProxyJump` in each environment's alias (a config line). Both read more than a host name: a leading `-` is an
option (`-oProxyCommand=…` runs a command), a comma in ProxyJump separates hops, `%` is a token, a space or a
quote re-splits the line, and a remote shell would read metacharacters. So only the characters a host name, a
login name and a port need are let through, and anything else is refused before anything runs.

Pure: no I/O, no environment read.

>>> s = parse_server("ssh://alice@gpu.example.org:2222")
>>> s.user, s.host, s.port, s.ssh_destination(), s.proxy_jump
('alice', 'gpu.example.org', 2222, ['-p', '2222', 'alice@gpu.example.org'], 'alice@gpu.example.org:2222')
>>> parse_server("gpu-server").ssh_destination(), parse_server("[::1]:22").ssh_destination()
(['gpu-server'], ['-p', '22', '::1'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from devagent.errors import DevagentError, ExitStatus

# A host name or an alias from the user's ssh config: DNS labels (letters, digits, '-'), dots, and '_' (common in
# aliases). It may not start with '-' (an option) or '.'.
_HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# A login name as useradd and most directories allow it; '.' for first.last.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+")  # inside [ ]: hex groups, '::', an embedded IPv4
_MAX_LENGTH = 255
EXAMPLES = "an alias from your ssh config (gpu-server), user@host, user@host:port or ssh://user@host:port"

# What is refused first and why: each a reason the user can act on.
_NAMED = {
    " ": "a space",
    "\t": "a tab",
    ",": "a comma (ProxyJump reads it as a second jump host)",
    "%": "'%' (OpenSSH expands %-tokens)",
    "$": "'$'",
    "'": "a quote",
    '"': "a quote",
    "`": "a backquote",
    "\\": "a backslash",
    ";": "';'",
    "&": "'&'",
    "|": "'|'",
    "<": "'<'",
    ">": "'>'",
    "(": "'('",
    ")": "')'",
    "*": "a glob character",
    "?": "a glob character",
    "!": "'!' (a negation in ssh config patterns)",
    "#": "'#' (a comment in ssh config)",
    "=": "'=' (ssh config reads it as a separator)",
    "~": "'~'",
}


def _refuse(text: str, why: str) -> DevagentError:
    return DevagentError(f"server {text!r} is not usable: {why}", hint=f"give {EXAMPLES}", status=ExitStatus.USAGE)


@dataclass(frozen=True)
class Server:
    """A server as the user named it. Made through `parse_server` or directly: both check TEXT.

    TEXT is what devagent records and shows; USER, HOST and PORT are what it says to OpenSSH (None where the
    user's ssh config decides: an alias, or no port given).

    >>> Server("alice@gpu").user, Server("gpu").user
    ('alice', None)
    """

    text: str
    user: str | None = field(init=False, compare=False)
    host: str = field(init=False, compare=False)
    port: int | None = field(init=False, compare=False)
    ipv6: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        user, host, port, ipv6 = _split(self.text)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "ipv6", ipv6)

    def __str__(self) -> str:
        return self.text

    def ssh_destination(self) -> list[str]:
        """The argv tail that names the server to OpenSSH after its own options.

        OpenSSH cannot read `user@::1` (a colon is a port), so an IPv6 server's user goes in `-l`.

        >>> Server("alice@[fd00::1]:2222").ssh_destination()
        ['-l', 'alice', '-p', '2222', 'fd00::1']
        """
        argv: list[str] = []
        if self.user is not None and self.ipv6:
            argv += ["-l", self.user]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.user is not None and not self.ipv6:
            return [*argv, f"{self.user}@{self.host}"]
        return [*argv, self.host]

    @property
    def proxy_jump(self) -> str:
        """The ProxyJump value that reaches the server as the user's own ssh would (their config applies to it).

        >>> Server("ssh://gpu:2222").proxy_jump, Server("alice@[::1]").proxy_jump
        ('gpu:2222', 'alice@[::1]')
        """
        host = f"[{self.host}]" if self.ipv6 else self.host
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


def parse_server(text: str) -> Server:
    """TEXT as a Server, or a DevagentError (USAGE) that names what is wrong in it and the forms that work.

    >>> parse_server("alice@gpu:2222").proxy_jump
    'alice@gpu:2222'
    >>> parse_server("-oProxyCommand=touch /tmp/x")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: server '-oProxyCommand=touch /tmp/x' is not usable: it starts with '-' \
(ssh would read an option)
      hint: give an alias from your ssh config (gpu-server), user@host, user@host:port or ssh://user@host:port
    """
    return Server(text)


def _split(text: str) -> tuple[str | None, str, int | None, bool]:
    _check_characters(text)
    rest = text
    if rest.lower().startswith("ssh://"):
        rest = rest[len("ssh://"):]
        if rest.endswith("/"):  # OpenSSH accepts ssh://host/ (an empty path)
            rest = rest[:-1]
        if "/" in rest:
            raise _refuse(text, "an ssh:// address has no path")
    elif "/" in rest:
        raise _refuse(text, "it contains '/' (only ssh:// addresses are taken)")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.split("@", 1)
        if "@" in rest:
            raise _refuse(text, "it contains '@' twice (name a login with '@' in it in your ssh config: User)")
        if not _USER_RE.fullmatch(user):
            raise _refuse(text, f"the user {user!r} is not a plain login name (letters, digits, '.', '_', '-')")
    host, port_text, ipv6 = _host_and_port(text, rest)
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or port_text.startswith("0"):
            raise _refuse(text, f"the port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return user, host, port, ipv6


def _check_characters(text: str) -> None:
    if not isinstance(text, str) or not text:
        raise _refuse(str(text), "it is empty")
    if len(text) > _MAX_LENGTH:
        raise _refuse(text[:40] + "…", f"it is longer than {_MAX_LENGTH} characters")
    if text.startswith("-"):
        raise _refuse(text, "it starts with '-' (ssh would read an option)")
    for char in text:
        if ord(char) < 32 or ord(char) == 127:
            raise _refuse(text, "it contains a control character (a line break, a tab…)")
        if char in _NAMED:
            raise _refuse(text, f"it contains {_NAMED[char]}")
        if not char.isascii():
            raise _refuse(text, f"it contains {char!r} (only ASCII host and user names are taken)")


def _host_and_port(text: str, rest: str) -> tuple[str, str | None, bool]:
    """REST (what follows user@) as (host, port text or None, whether the host is an IPv6 literal)."""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise _refuse(text, "an IPv6 address opened with '[' is not closed with ']'")
        host, after = rest[1:close], rest[close + 1:]
        if not host or not _IPV6_RE.fullmatch(host) or ":" not in host:
            raise _refuse(text, f"{host!r} between '[' and ']' is not an IPv6 address")
        if after and not after.startswith(":"):
            raise _refuse(text, f"{after!r} after ']' is not ':PORT'")
        return host, after[1:] if after else None, True
    if rest.count(":") > 1:
        raise _refuse(text, "an IPv6 address needs brackets: [::1] or user@[::1]:2222")
    host, _, port_text = rest.partition(":")
    if not host:
        raise _refuse(text, "it names no host")
    if not _HOST_RE.fullmatch(host):
        raise _refuse(text, f"the host {host!r} is not a host name (letters, digits, '.', '_', '-')")
    return host, port_text if ":" in rest else None, False
