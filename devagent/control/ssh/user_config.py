"""The user's ssh config: one `Include` line for devagent's managed config, added and removed as text.

The user's file is never parsed into objects and written back: devagent adds or deletes exactly one line
and keeps every other byte. The real OpenSSH client (`ssh -G`) judges what parses and which values win.

    config = SshConfig(Paths.from_environ())
    config.check_user_config("pytorch-dev")      # before anything is created
    entry = config.entry("pytorch-dev", 49153, "dev")
    config.install(entry, host_public_key)       # under the lock; checks the user's config again
    config.verify_effective(entry)               # ssh -G pytorch-dev shows devagent's values
    config.remove("pytorch-dev")                 # idempotent
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devagent.control.atomic import FileLock, atomic_write, ensure_private_dir
from devagent.control.paths import Paths
from devagent.control.ssh import known_hosts, managed_config
from devagent.core.spec import NAME_RE, host_name_kind
from devagent.core.ssh.command_line import ssh_argv
from devagent.core.ssh.host_entry import HostEntry, check_path, quote
from devagent.errors import DevagentError, ExitStatus

MAX_INCLUDE_DEPTH = 16  # OpenSSH's own limit (READCONF_MAX_DEPTH)

# How `ssh -G` spells the keywords it prints, for messages.
KEYWORDS = {
    "hostname": "HostName",
    "port": "Port",
    "proxyjump": "ProxyJump",
    "user": "User",
    "identityfile": "IdentityFile",
    "hostkeyalias": "HostKeyAlias",
    "userknownhostsfile": "UserKnownHostsFile",
    "stricthostkeychecking": "StrictHostKeyChecking",
}

# OpenSSH: keyword, then whitespace and/or one '=', then the arguments.
_LINE_RE = re.compile(r"^\s*([^\s=]+)\s*(?:=\s*)?(.*)$")


def split_args(text: str) -> list[str]:
    """Split an option's arguments the way OpenSSH does (quotes, backslash escapes, `#` starting a word).

    >>> split_args('"/a b/c" d # note')
    ['/a b/c', 'd']
    """
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        arg: list[str] = []
        quote_char = ""
        while i < n:
            c = text[i]
            escaped = text[i + 1] if i + 1 < n else ""
            if c == "\\" and escaped and (escaped in "'\"\\" or (not quote_char and escaped == " ")):
                i += 1
                arg.append(escaped)
            elif not quote_char and c in " \t":
                break
            elif not quote_char and c in "\"'":
                quote_char = c
            elif quote_char and c == quote_char:
                quote_char = ""
            else:
                arg.append(c)
            i += 1
        args.append("".join(arg))
    return args


def parse_line(line: str) -> tuple[str, list[str]] | None:
    """(lowercase keyword, arguments) of one config line, or None for a blank or comment line.

    >>> parse_line("  User=root\\r\\n"), parse_line("Port = 2200"), parse_line("# Host x")
    (('user', ['root']), ('port', ['2200']), None)
    """
    stripped = line.rstrip(" \t\r\n\f")
    if not stripped.strip() or stripped.lstrip().startswith("#"):
        return None
    match = _LINE_RE.match(stripped)
    if not match:
        return None
    return match.group(1).lower(), split_args(match.group(2))


def _split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings; only '\\n' ends a line for OpenSSH (a '\\r' before it is trailing space)."""
    return [part for part in re.split(rb"(?<=\n)", data) if part]


def _host_pattern_matches(host: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, host, flags=re.S) is not None


def _host_line_matches(host: str, patterns: list[str]) -> bool:
    """Whether a `Host` line applies to HOST: a negated pattern that matches wins, else any positive one."""
    positive = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if _host_pattern_matches(host, pattern[1:]):
                return False
        elif _host_pattern_matches(host, pattern):
            positive = True
    return positive


def _match_may_apply(host: str, args: list[str]) -> bool:
    """Whether a `Match` line may apply to HOST; criteria devagent cannot judge (exec, user) count as yes."""
    i = 0
    while i < len(args):
        criterion = args[i].lower()
        if criterion in ("all", "canonical", "final"):
            i += 1
            continue
        value = args[i + 1] if i + 1 < len(args) else ""
        if criterion in ("host", "originalhost") and not _host_line_matches(host, value.split(",")):
            return False
        i += 2
    return True


def _effective(ssh_g_output: str) -> dict[str, list[str]]:
    """`ssh -G` output as {keyword: [values]} (IdentityFile and a few others repeat)."""
    effective: dict[str, list[str]] = {}
    for out_line in ssh_g_output.splitlines():
        key, _, value = out_line.partition(" ")
        effective.setdefault(key, []).append(value)
    return effective


def _hostname(ssh_g_output: str, name: str) -> str:
    """The HostName `ssh -G NAME` printed, lowercase (NAME when it printed none)."""
    return _effective(ssh_g_output).get("hostname", [name])[0].lower()


def _other_names(name: str) -> list[str]:
    """Names to suggest instead of NAME, most like it first; each a valid name that means no host on its own."""
    candidates = [f"{name[:59]}-dev", f"dev-{name[:59]}", f"{name[:59]}-env", f"env-{name[:59]}"]
    return [c for c in candidates if NAME_RE.fullmatch(c) and host_name_kind(c) is None]


@dataclass(frozen=True)
class ConfigLine:
    """One option line met while reading a config in OpenSSH's order (Includes expanded in place)."""

    file: Path
    number: int
    text: str
    keyword: str  # lowercase; "devagent-include" marks where devagent's managed config is read
    args: list[str]
    active: bool  # applies to the host walked for (Match criteria devagent cannot judge count as applying)

    def where(self) -> str:
        return f"{self.file}:{self.number}: {self.text}"


@dataclass(frozen=True)
class Override:
    keyword: str
    expected: str
    actual: str
    line: ConfigLine | None


class SshConfig:
    """The user's ssh config, devagent's managed config and known_hosts, changed together under one lock."""

    def __init__(self, paths: Paths, *, ssh_binary: str = "ssh") -> None:
        self.paths = paths
        self.ssh_binary = ssh_binary

    # -- public API ------------------------------------------------------------------------------------------

    def include_line(self) -> str:
        """The one line devagent adds to the user's config (no line ending)."""
        managed = check_path("Include", str(self.paths.managed_ssh_config), glob=True)
        return f"Include {quote(managed)}"

    def names(self) -> list[str]:
        """The aliases in devagent's managed config."""
        return managed_config.hosts(self.paths.managed_ssh_config)

    def check_user_config(self, name: str) -> None:
        """Raise DevagentError(SSH_CONFIG) if the user's config fails to parse, defines NAME, or sends NAME to
        another host (a new alias NAME would take `ssh NAME` over)."""
        config = self.paths.user_ssh_config
        if not config.exists():
            return
        result = self._ssh_g(name)
        if result.returncode != 0:
            raise self._parse_error(name, result)
        for line in self._walk(name):
            if line.keyword == "host" and name in line.args:
                raise DevagentError(
                    f"your ssh config already defines Host {name}: {line.where()}",
                    hint=f"pick another environment name, or rename or delete that Host block in {line.file}",
                    status=ExitStatus.SSH_CONFIG,
                )
        if name in self.names():
            return  # devagent's own alias already: its HostName is devagent's, and verify_effective checks it
        target = _hostname(result.stdout, name)
        if target == name:
            return
        # A catch-all (a HostName above the first Host line, or under `Host *`) sends every name to one host and
        # singles none out. Only a HostName the config gives NAME and not any name (a made-up one here) makes NAME
        # one of the user's hosts; `HostName %h.corp.example` does, as the made-up name gets another host.
        anyone = self._target(f"devagent-probe-{secrets.token_hex(4)}")
        if target == anyone:
            return
        setter = next((ln for ln in self._walk(name) if ln.active and ln.keyword == "hostname"), None)
        free = next((c for c in _other_names(name) if self._target(c) in (c, anyone) and not self._defines(c)),
                    None)
        raise DevagentError(
            f"your ssh config sends {name} to {target}" + (f": {setter.where()}" if setter else ""),
            hint=f"an environment named {name} would take `ssh {name}` over: pick another name"
                 + (f", e.g. {free}" if free else
                    f", or keep it out of the block that sends it elsewhere (e.g. `Host * !{name}`)"),
            status=ExitStatus.SSH_CONFIG,
        )

    def install(self, entry: HostEntry, host_public_key: str) -> None:
        """Write ENTRY to the managed config, pin its host key, make sure the user's config includes ours."""
        if entry.known_hosts_file != str(self.paths.known_hosts):
            raise ValueError(f"UserKnownHostsFile {entry.known_hosts_file} is not {self.paths.known_hosts}")
        include = self.include_line()
        with FileLock(self.paths.lock):
            self.check_user_config(entry.name)
            # The managed file is complete before the user's config points at it.
            managed_config.put(self.paths.managed_ssh_config, entry)
            known_hosts.pin(self.paths.known_hosts, entry.name, host_public_key)
            self._add_include(include)

    def needs_update(self, entry: HostEntry, host_public_key: str) -> bool:
        """Whether install(ENTRY, KEY) would change the Host block, the pinned key or the Include line."""
        written = managed_config.options(self.paths.managed_ssh_config, entry.name)
        if written != {key.lower(): value for key, value in entry.options()}:
            return True
        pinned = known_hosts.lookup(self.paths.known_hosts, entry.name)
        if pinned != known_hosts.normalize_key(host_public_key):
            return True
        data = self._read_user_config()
        return data is None or not any(self._is_our_include(raw, only=False) for raw in _split_lines(data))

    def remove(self, name: str) -> bool:
        """Remove NAME's block and key, and our Include line once no host is left; True if NAME was there."""
        with FileLock(self.paths.lock):
            removed = managed_config.remove(self.paths.managed_ssh_config, name)
            unpinned = known_hosts.unpin(self.paths.known_hosts, name)
            if not self.names():
                self._remove_include()
                self.paths.managed_ssh_config.unlink(missing_ok=True)
        return removed or unpinned

    def verify_effective(self, entry: HostEntry) -> None:
        """Raise DevagentError(SSH_CONFIG) naming the user's line and the fix if `ssh -G NAME` differs."""
        config = self.paths.user_ssh_config
        if not config.exists():
            raise DevagentError(
                f"your ssh config {config} does not exist, so ssh {entry.name} cannot use devagent's config",
                hint=f"run `devagent up {entry.name}` again", status=ExitStatus.SSH_CONFIG)
        result = self._ssh_g(entry.name)
        if result.returncode != 0:
            raise self._parse_error(entry.name, result)
        effective = _effective(result.stdout)
        overrides = []
        for key, expected in entry.expected_effective().items():
            # IdentityFile accumulates; the first listed is the first offered, and ours must be it.
            actual = effective.get(key, ["(not set)"])[0]
            if actual != expected:
                overrides.append(Override(key, expected, actual, None))
        if overrides:
            raise self._override_error(entry.name, overrides)

    # -- the user's config, as text --------------------------------------------------------------------------

    def _read_user_config(self) -> bytes | None:
        try:
            return self.paths.user_ssh_config.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DevagentError(
                f"cannot read your ssh config {self.paths.user_ssh_config}: {exc.strerror}",
                hint=f"make it readable: chmod 600 {self.paths.user_ssh_config}",
                status=ExitStatus.SSH_CONFIG,
            ) from exc

    def _is_our_include(self, raw: bytes, *, only: bool) -> bool:
        parsed = parse_line(raw.decode("utf-8", errors="replace"))
        if parsed is None or parsed[0] != "include" or not parsed[1]:
            return False
        ours = [self._resolve_include(arg) == self._managed for arg in parsed[1]]
        return all(ours) if only else any(ours)

    def _add_include(self, include: str) -> None:
        data = self._read_user_config()
        if data is not None and any(self._is_our_include(raw, only=False) for raw in _split_lines(data)):
            return  # already there, perhaps moved by the user: leave it where it is
        newline = b"\r\n" if data and re.match(rb"[^\n]*\r\n", data) else b"\n"
        line = include.encode("utf-8") + newline
        if data is None:
            ensure_private_dir(Path(os.path.realpath(self.paths.user_ssh_config)).parent)
            atomic_write(self.paths.user_ssh_config, line, mode=0o600)
        else:
            self._backup(data)
            # First value wins in OpenSSH: above everything, devagent's values beat the user's global ones.
            atomic_write(self.paths.user_ssh_config, line + data)

    def _remove_include(self) -> None:
        data = self._read_user_config()
        if data is None:
            return
        lines = _split_lines(data)
        kept = [raw for raw in lines if not self._is_our_include(raw, only=True)]
        if len(kept) != len(lines):
            self._backup(data)
            atomic_write(self.paths.user_ssh_config, b"".join(kept))

    def _backup(self, data: bytes) -> None:
        ensure_private_dir(self.paths.backups)
        atomic_write(self.paths.backups / f"{self.paths.user_ssh_config.name}.bak", data, mode=0o600)

    # -- reading configs the way OpenSSH does ----------------------------------------------------------------

    @property
    def _managed(self) -> Path:
        return Path(os.path.normpath(self.paths.managed_ssh_config))

    def _resolve_include(self, arg: str) -> Path:
        """An Include argument as OpenSSH reads it from a user config: relative to ~/.ssh, `~` from $HOME."""
        if not arg.startswith(("/", "~")):
            arg = "~/.ssh/" + arg
        return Path(os.path.normpath(os.path.expanduser(arg)))

    def _walk(self, host: str) -> Iterator[ConfigLine]:
        """Every option line of the user's config and the files it Includes, in OpenSSH's order, for HOST.

        devagent's managed config is not entered; a "devagent-include" line marks where it is read.
        """
        yield from self._walk_file(self.paths.user_ssh_config, host, active=True, depth=0)

    def _walk_file(self, path: Path, host: str, *, active: bool, depth: int) -> Iterator[ConfigLine]:
        try:
            data = path.read_bytes()
        except OSError:
            return  # ssh -G has already judged the files it can read
        outer, current = active, active
        for number, raw in enumerate(data.split(b"\n"), start=1):
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            parsed = parse_line(text)
            if parsed is None:
                continue
            keyword, args = parsed
            # A Host or Match line starts a block; an included file's blocks apply only if its Include does.
            if keyword == "host":
                current = outer and _host_line_matches(host, args)
            elif keyword == "match":
                current = outer and _match_may_apply(host, args)
            line = ConfigLine(path, number, text, keyword, args, current)
            yield line
            if keyword != "include":
                continue
            for arg in args:
                pattern = self._resolve_include(arg)
                if pattern == self._managed:
                    yield ConfigLine(path, number, text, "devagent-include", args, current)
                    continue
                for target in sorted(glob.glob(str(pattern))):
                    if Path(target) != self._managed and depth < MAX_INCLUDE_DEPTH:
                        yield from self._walk_file(Path(target), host, active=current, depth=depth + 1)

    def _target(self, name: str) -> str:
        """The host `ssh NAME` would connect to, by the user's config (NAME itself when it sets no HostName)."""
        return _hostname(self._ssh_g(name).stdout, name)

    def _defines(self, name: str) -> bool:
        return any(ln.keyword == "host" and name in ln.args for ln in self._walk(name))

    def _ssh_g(self, name: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ssh_argv(self.paths.user_ssh_config, name, ssh=self.ssh_binary, flags=["-G"], batch=False),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
            )
        except FileNotFoundError as exc:
            raise DevagentError(
                f"the OpenSSH client {self.ssh_binary!r} was not found",
                hint="install it (Debian/Ubuntu: sudo apt-get install openssh-client)",
                status=ExitStatus.SSH_CONFIG,
            ) from exc

    def _parse_error(self, name: str, result: subprocess.CompletedProcess[str]) -> DevagentError:
        config = self.paths.user_ssh_config
        return DevagentError(
            f"your ssh config {config} does not parse (ssh -G exits with status {result.returncode})",
            details=result.stderr.strip() or None,
            hint=f"fix the line named above, check with `ssh -G -F {config} {name}`, then run devagent again",
            status=ExitStatus.SSH_CONFIG,
        )

    def _override_error(self, name: str, overrides: list[Override]) -> DevagentError:
        config = self.paths.user_ssh_config
        include = self.include_line()
        lines = list(self._walk(name))
        ours = next((line for line in lines if line.keyword == "devagent-include"), None)
        ours_active = next((ln for ln in lines if ln.keyword == "devagent-include" and ln.active), None)
        if ours is None:
            return DevagentError(
                f"your ssh config {config} does not include devagent's config, so ssh {name} ignores it",
                details="\n".join(self._describe(o) for o in overrides),
                hint=f"add the line `{include}` at the top of {config} (or run `devagent up {name}` again)",
                status=ExitStatus.SSH_CONFIG,
            )
        if ours_active is None:
            return DevagentError(
                f"devagent's Include line is inside a Host or Match block that does not apply to {name}: "
                f"{ours.where()}",
                details="\n".join(self._describe(o) for o in overrides),
                hint=f"move `{include}` to the top of {ours.file}, above every Host and Match block",
                status=ExitStatus.SSH_CONFIG,
            )
        before = lines[: lines.index(ours_active)]
        found = [
            Override(o.keyword, o.expected, o.actual,
                     next((line for line in before if line.active and line.keyword == o.keyword), None))
            for o in overrides
        ]
        first = found[0]
        where = f", set by {first.line.where()}" if first.line else ""
        return DevagentError(
            f"your ssh config overrides devagent's {KEYWORDS[first.keyword]} for {name}: "
            f"{first.actual} wins over {first.expected}{where}",
            details="\n".join(self._describe(o) for o in found),
            hint=f"move devagent's line `{include}` ({ours_active.file}:{ours_active.number}) to the top of "
                 f"{ours_active.file}, above every Host and Match block "
                 "(OpenSSH uses the first value it reads)",
            status=ExitStatus.SSH_CONFIG,
        )

    @staticmethod
    def _describe(override: Override) -> str:
        text = f"{KEYWORDS[override.keyword]}: ssh uses {override.actual}, devagent set {override.expected}"
        return text + (f" (set by {override.line.where()})" if override.line else "")
