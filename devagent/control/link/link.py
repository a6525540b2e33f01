"""One ssh login to a GPU server for a whole devagent command: the user's own OpenSSH client and config as a
ControlMaster, the server's Docker Engine on a forwarded Unix socket, commands and TCP streams through the master.

    with ServerLink(parse_server("gpu-server"), paths=paths) as link:
        link.engine.list_managed()                 # docker SDK on unix://<private folder>/docker.sock
        link.run(["mkdir", "-p", "devagent/x"])    # a command on the server, no new login
        sock = link.connect(49153, timeout=5)      # a stream to the server's 127.0.0.1:49153

Why this shape (measured in docs/explanation/remote-engine.md): the docker SDK's own ssh:// transports either
ignore the user's ssh config (paramiko: no ProxyJump, no Port) or start an ssh process per request; one master and
a forwarded socket costs one login, then about a millisecond per request, and everything in the user's config
applies (ProxyJump through a bastion, their keys and agent, ControlPath settings are overridden).

The master is `ssh -M -S <ctl> -N` with BatchMode (never a prompt) and ControlPersist=no. devagent speaks the
multiplexing protocol (OpenSSH's PROTOCOL.mux, version 4) to it for forwards and streams: each answer is definite
(a refused TCP connect on the server comes back as a failure, not as a socket that closes), and no ssh process is
started per stream. Commands go through `ssh -S <ctl>` clients, which OpenSSH quotes and runs as usual.

Private and never left behind: the control socket and the forwarded engine socket live in a 0700 folder from
mkdtemp (sockets 0600: OpenSSH's StreamLocalBindMask), under $XDG_RUNTIME_DIR or /tmp (a Unix socket path holds at
most 107 bytes, so not under DEVAGENT_HOME). On Linux every ssh child gets PR_SET_PDEATHSIG: when devagent dies,
even by SIGKILL, its ssh processes die with it, and the next link removes a folder whose owner is gone. The ssh
children run in their own session, so a Ctrl-C in the terminal reaches devagent (which rolls back through the
link) and not the link itself.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from devagent.control.paths import Paths
from devagent.control.ssh.children import child_kwargs
from devagent.core.ssh.destination import Server, parse_server
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.engine.docker_engine import Engine

CONNECT_TIMEOUT = 15  # seconds for the TCP connect and the login (ssh's ConnectTimeout)
LOGIN_TIMEOUT = 30.0  # the whole login, ProxyJump hops included
FOLDER_PREFIX = "devagent-link-"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS; leave room for the names inside
DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

# -- the multiplexing protocol (OpenSSH PROTOCOL.mux) --------------------------------------------------------------
_MUX_VERSION = 4
MUX_MSG_HELLO = 0x00000001
MUX_C_TERMINATE = 0x10000005
MUX_C_OPEN_FWD = 0x10000006
MUX_C_NEW_STDIO_FWD = 0x10000008
MUX_S_OK = 0x80000001
MUX_S_PERMISSION_DENIED = 0x80000002
MUX_S_FAILURE = 0x80000003
MUX_S_SESSION_OPENED = 0x80000006
MUX_FWD_LOCAL = 1
_PORT_STREAMLOCAL = 0xFFFFFFFE  # (u_int)-2: the "host" is a Unix socket path


class MuxError(ConnectionError):
    """The master answered a request with a failure (or not at all)."""


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">I", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    payload = struct.pack(">I", kind) + body
    return struct.pack(">I", len(payload)) + payload


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise MuxError("the ssh master closed the control connection")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    (length,) = struct.unpack(">I", _read_exact(sock, 4))
    payload = _read_exact(sock, length)
    (kind,) = struct.unpack(">I", payload[:4])
    return kind, payload[4:]


def _mux_session(control_path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(control_path))
        sock.sendall(_packet(MUX_MSG_HELLO, struct.pack(">I", _MUX_VERSION)))
        kind, body = _read_packet(sock)
        if kind != MUX_MSG_HELLO or struct.unpack(">I", body[:4])[0] != _MUX_VERSION:
            raise MuxError(f"the ssh master speaks another multiplexing protocol ({kind:#x} {body[:4].hex()})")
    except BaseException:
        sock.close()
        raise
    return sock


def _expect_ok(sock: socket.socket, request_id: int, ok: int) -> None:
    kind, body = _read_packet(sock)
    if kind == ok and struct.unpack(">I", body[:4])[0] == request_id:
        return
    reason = ""
    if kind in (MUX_S_FAILURE, MUX_S_PERMISSION_DENIED) and len(body) >= 8:
        (size,) = struct.unpack(">I", body[4:8])
        reason = body[8:8 + size].decode(errors="replace")
    raise MuxError(reason or f"unexpected answer {kind:#x} from the ssh master")


class _Stream(socket.socket):
    """A stream through the master: one end of a socket pair whose other end the master holds. The control
    connection that asked for it must stay open while it is used (the master ends the stream when it closes)."""

    _control: socket.socket | None = None

    def _real_close(self, *args: object, **kwargs: object) -> None:
        super()._real_close(*args, **kwargs)  # type: ignore[misc]
        if self._control is not None:
            self._control.close()
            self._control = None


# -- the server's facts ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerFacts:
    """Who devagent is on the server, and the engine socket it uses there."""

    user: str
    uid: int
    gid: int
    home: str
    docker_socket: str
    # Each path the link was asked to resolve (as typed: `~/x`, relative to the home, or absolute) → as the server
    # sees it: absolute, `..` and links resolved (links in the part that exists); '' where it could not be.
    resolved: Mapping[str, str] = field(default_factory=dict)


def probe_script(docker_socket: str | None) -> str:
    """The POSIX sh script (run as `sh -s -- PATH…`, whatever the login shell) that prints the server user's facts,
    for each candidate engine socket that exists whether that user may use it, and each PATH resolved."""
    if docker_socket is not None:
        candidates = shlex.quote(docker_socket)
    else:
        # DOCKER_HOST (when the server's environment sets one), the rootful engine, then rootless Docker's.
        candidates = " ".join([
            '"${DOCKER_HOST#unix://}"', *DEFAULT_SOCKETS,
            '"${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/docker.sock"', '"/run/user/$(id -u)/docker.sock"'])
    return "\n".join([
        "printf 'user=%s\\n' \"$(id -un)\"",
        "printf 'uid=%s\\n' \"$(id -u)\"",
        "printf 'gid=%s\\n' \"$(id -g)\"",
        "printf 'home=%s\\n' \"$HOME\"",
        'case "${DOCKER_HOST:-}" in unix://*) ;; *) DOCKER_HOST= ;; esac',
        f"for s in {candidates}; do",
        '  [ -n "$s" ] || continue',
        '  if [ -S "$s" ]; then',
        "    if [ -r \"$s\" ] && [ -w \"$s\" ]; then printf 'usable=%s\\n' \"$s\"; "
        "else printf 'denied=%s\\n' \"$s\"; fi",
        "  else printf 'missing=%s\\n' \"$s\"; fi",
        "done",
        # The paths to resolve: one line each, in order; one that resolves to a name with a newline is not usable.
        "nl=$(printf '\\nx'); nl=${nl%x}",
        'for w in "$@"; do',
        '  case $w in "~") a=$HOME ;; "~/"*) a=$HOME/${w#"~/"} ;; /*) a=$w ;; *) a=$HOME/$w ;; esac',
        '  r=$(realpath -m -- "$a" 2>/dev/null) || r=',
        '  case $r in *"$nl"*) r= ;; esac',
        "  printf 'resolved=%s\\n' \"$r\"",
        "done",
        "",
    ])


def read_facts(server: Server, output: str, *, named: str | None, resolve: Sequence[str] = (),
               engine: bool = True) -> ServerFacts:
    """The probe's OUTPUT as ServerFacts (RESOLVE: the paths it was given, in order), or the DevagentError that says
    why the engine cannot be used. ENGINE=False: a server that needs none (a Slurm login node, asked only to run
    Slurm's commands); its docker_socket is then '' where none is usable.

    >>> read_facts(Server("gpu"), "user=al\\nuid=1000\\ngid=1000\\nhome=/home/al\\nmissing=/var/run/docker.sock\\n"
    ...            "usable=/run/user/1000/docker.sock\\n", named=None).docker_socket
    '/run/user/1000/docker.sock'
    """
    values: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    resolved: list[str] = []
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "resolved":
            resolved.append(value)
        elif key in ("usable", "denied", "missing"):
            found.append((key, value))
        elif key in ("user", "uid", "gid", "home"):
            values.setdefault(key, value)
    if not (values.get("uid", "").isdigit() and values.get("gid", "").isdigit() and values.get("user")):
        raise DevagentError(f"devagent could not find out who it is on {server} (`id` printed nothing usable)",
                            hint=f"check that `ssh {server} id` works and prints a uid",
                            status=ExitStatus.SERVER_UNREACHABLE, details=output)
    usable = [path for kind, path in found if kind == "usable"]
    denied = [path for kind, path in found if kind == "denied"]
    user = values["user"]
    if not engine and not usable:
        usable = [""]
    if not usable and denied:
        raise DevagentError(
            f"{user} on {server} may not use the Docker Engine's socket {denied[0]} (permission denied)",
            hint=f"on {server}, add them to the docker group (sudo usermod -aG docker {user}, then log in again); "
            "that group is root-equivalent on that server",
            status=ExitStatus.DOCKER_PERMISSION)
    if not usable:
        looked = ", ".join(dict.fromkeys(path for _, path in found)) or "(nothing)"
        raise DevagentError(
            f"no Docker Engine socket on {server}" + (f" at {named}" if named else ""),
            hint=f"start Docker there (sudo systemctl start docker, or rootless: systemctl --user start docker); "
            f"looked at {looked}; if its socket is elsewhere, name it: DEVAGENT_DOCKER_SOCKET",
            status=ExitStatus.DOCKER_UNAVAILABLE)
    return ServerFacts(user=user, uid=int(values["uid"]), gid=int(values["gid"]), home=values.get("home", ""),
                       docker_socket=usable[0],
                       resolved=dict(zip(resolve, resolved, strict=True)) if len(resolved) == len(resolve) else {})


# -- what ssh said ---------------------------------------------------------------------------------------------------

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


def _refused(server: Server, what: str, setting: str, log: str) -> DevagentError:
    return DevagentError(
        f"the sshd on {server} refuses {what}",
        hint=f"devagent needs it: set {setting} in the server's sshd_config (and no DisableForwarding yes), "
        "then reload sshd",
        status=ExitStatus.SERVER_REFUSED, details=log or None)


# -- process hygiene ---------------------------------------------------------------------------------------------------

def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot) from /proc, so a reused pid is not taken for the owner;
    '' where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _start_time(pid) in ("", started)


def link_base(environ: Mapping[str, str]) -> Path:
    """Where link folders go: $XDG_RUNTIME_DIR when it is ours and short enough, else the temp folder."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and len(runtime) < _SOCKET_PATH_MAX - 40:
        with contextlib.suppress(OSError):
            st = os.stat(runtime)
            if st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700:
                return Path(runtime)
    base = Path(tempfile.gettempdir())
    # A long TMPDIR would leave no room for the socket names: the system's own temp folder then.
    return base if len(str(base)) < _SOCKET_PATH_MAX - 40 else Path("/tmp")  # noqa: S108 (a mkdtemp inside)


def sweep_stale(base: Path) -> list[Path]:
    """Remove link folders under BASE whose devagent is gone (killed before it could clean up). Returns them."""
    removed = []
    for folder in base.glob(f"{FOLDER_PREFIX}*"):
        try:
            st = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.getuid():
                continue
            owner = (folder / "owner").read_text().split()
        except FileNotFoundError:
            # Between mkdtemp and writing its owner, a folder has none for a moment; an old one never will.
            with contextlib.suppress(OSError):
                if time.time() - folder.lstat().st_mtime > 60:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:
            continue
        if len(owner) == 2 and owner[0].isdigit() and not _alive(int(owner[0]), owner[1]):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


# -- the link ----------------------------------------------------------------------------------------------------------

def resolve_server(text: str, *, environ: Mapping[str, str]) -> Server:
    """TEXT as a Server: a Docker context of that name whose endpoint is ssh://…, else what the user types after
    ssh. A context wins over an ssh alias of the same name; `ssh://NAME` names the alias.

    The context is read from Docker's own files ($DOCKER_CONFIG, default ~/.docker: contexts/meta/<sha256 of
    the name>/meta.json); the docker CLI is not needed.
    """
    import hashlib
    import json

    if text and "/" not in text and "@" not in text and ":" not in text:
        home = environ.get("HOME") or str(Path.home())
        config = Path(environ.get("DOCKER_CONFIG") or Path(home) / ".docker")
        meta = config / "contexts" / "meta" / hashlib.sha256(text.encode()).hexdigest() / "meta.json"
        try:
            data = json.loads(meta.read_text())
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            raise DevagentError(f"the Docker context {text!r} cannot be read: {exc}", status=ExitStatus.USAGE,
                                hint=f"fix or remove it (docker context rm {text}), or write ssh://{text} for "
                                "the ssh alias of that name") from None
        if isinstance(data, dict) and data.get("Name") == text:
            endpoint = ((data.get("Endpoints") or {}).get("docker") or {}).get("Host")
            if not isinstance(endpoint, str) or not endpoint.startswith("ssh://"):
                raise DevagentError(
                    f"the Docker context {text!r} does not reach its engine over ssh ({endpoint!r})",
                    hint=f"devagent drives servers over ssh: give the server as you ssh to it, or write "
                    f"ssh://{text} for the ssh alias of that name", status=ExitStatus.USAGE)
            try:
                return parse_server(endpoint)
            except DevagentError as exc:
                raise DevagentError(f"the Docker context {text!r}: {exc.message}", hint=exc.hint,
                                    status=exc.status) from None
    return parse_server(text)


class ServerLink:
    """ONE ssh login to the server for a whole devagent command (a context manager).

    Open, use and close a link in one thread: on Linux its ssh processes end when the thread that started them
    ends (PR_SET_PDEATHSIG follows the thread), which is what makes them die with devagent. Links to several
    servers may live in several threads at once.
    """

    def __init__(self, server: Server, *, paths: Paths, report: Callable[[str], None] = lambda _: None,
                 docker_socket: str | None = None, environ: Mapping[str, str] | None = None,
                 ssh: str = "ssh", resolve: Sequence[str] = (), engine: bool = True,
                 jump: Server | None = None) -> None:
        self.server = server
        self.jump = jump  # `ssh -J`: a Slurm login node, SERVER its node (only the master logs in)
        self._needs_engine = engine  # False: a Slurm login node, where only Slurm's commands run
        self._resolve = tuple(resolve)  # paths the probe resolves too (facts.resolved): no command of their own
        self._paths = paths
        self._report = report
        self._named_socket = docker_socket
        self._environ = os.environ if environ is None else environ
        self._ssh = ssh
        self._folder: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._request_id = 0
        self.facts: ServerFacts

    # paths inside the private folder
    @property
    def folder(self) -> Path:
        assert self._folder is not None, "use ServerLink as a context manager"
        return self._folder

    @property
    def control_path(self) -> Path:
        return self.folder / "ctl"

    @property
    def engine_socket(self) -> Path:
        return self.folder / "docker.sock"

    @property
    def _log(self) -> Path:
        return self.folder / "ssh.log"

    def _options(self) -> list[str]:
        return [self._ssh, "-F", str(self._paths.user_ssh_config), "-S", str(self.control_path),
                "-o", "BatchMode=yes"]

    def _popen_kwargs(self) -> dict[str, object]:
        # Its own session: a Ctrl-C in the terminal reaches devagent, which still needs the link to roll back. No
        # terminal either, so nothing on the way (a ProxyJump host's ssh, which gets no BatchMode) can prompt.
        return child_kwargs()

    # -- open and close ------------------------------------------------------------------------------------------

    def __enter__(self) -> ServerLink:
        base = link_base(self._environ)
        sweep_stale(base)
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=base))
        try:
            (self.folder / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
            self._start_master()
            self.facts = self._probe()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _start_master(self) -> None:
        self._report(f"ssh {self.server}")
        argv = [*self._options(), "-M", "-N", "-T",
                "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-o", "ExitOnForwardFailure=yes",
                "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=4",
                # Only what devagent asks for travels over its link: no forwards from the user's config (a
                # LocalForward there would collide with their own session), no agent, no X11.
                "-o", "ClearAllForwardings=yes", "-o", "ForwardAgent=no", "-o", "ForwardX11=no",
                "-o", "PermitLocalCommand=no", "-o", "StreamLocalBindMask=0177", "-o", "StreamLocalBindUnlink=yes",
                *(["-J", self.jump.proxy_jump] if self.jump is not None else []), *self._destination()]
        with open(self._log, "wb") as log:
            self._master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                            **self._popen_kwargs())  # type: ignore[call-overload]
        # The docker SDK takes 0.2-0.5 s to import: do it while ssh logs in (another process), not after.
        import devagent.control.engine.docker_engine  # noqa: F401

        deadline = time.monotonic() + LOGIN_TIMEOUT
        delay = 0.005
        while not self.control_path.exists():
            if self._master.poll() is not None:
                raise explain_ssh_failure(self.server, self._log_text(), ssh_config=self._paths.user_ssh_config)
            if time.monotonic() > deadline:
                raise DevagentError(f"ssh to {self.server} did not log in within {LOGIN_TIMEOUT:.0f} s",
                                    status=ExitStatus.SERVER_UNREACHABLE, details=self._log_text() or None,
                                    hint=f"check that `ssh {self.server}` works from here")
            time.sleep(delay)  # the master has no other way to say it is logged in than its socket appearing
            delay = min(delay * 1.5, 0.05)

    def _destination(self) -> list[str]:
        # ssh reads options after the destination too (and then the command's words as options): '--' ends them.
        dest = self.server.ssh_destination()
        return [*dest[:-1], "--", dest[-1]]

    def _log_text(self) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""
        # The known_hosts notice is not an error and not what the user needs to read.
        return "\n".join(line for line in text.splitlines() if not line.startswith("Warning: Permanently added"))

    def close(self) -> None:
        """End the link: the engine client, the master (-O exit, then its pid), the folder. Safe to call twice."""
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self._engine.close()
            self._engine = None
        master, self._master = self._master, None
        if master is not None:
            if master.poll() is None and self._folder is not None:
                with contextlib.suppress(OSError, MuxError):
                    sock = _mux_session(self.control_path, 2.0)
                    with sock:
                        sock.sendall(_packet(MUX_C_TERMINATE, struct.pack(">I", self._next_id())))
                        with contextlib.suppress(OSError, MuxError):
                            _read_packet(sock)
            try:
                master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _next_id(self) -> int:
        with self._lock:
            self._request_id += 1
            return self._request_id

    def _check_master(self) -> None:
        if self._master is None or self._folder is None:
            raise RuntimeError("the link is closed")
        if self._master.poll() is not None:
            raise DevagentError(f"the ssh connection to {self.server} dropped", status=ExitStatus.SERVER_UNREACHABLE,
                                details=self._log_text() or None,
                                hint=f"check that `ssh {self.server}` works from here, then run the command again")

    # -- the server's facts ----------------------------------------------------------------------------------

    def _probe(self) -> ServerFacts:
        out = self.run(["sh", "-s", "--", *self._resolve], input=probe_script(self._named_socket).encode(),
                       timeout=LOGIN_TIMEOUT)
        if out.returncode != 0:
            raise DevagentError(f"devagent could not look around on {self.server} (sh exit {out.returncode})",
                                status=ExitStatus.SERVER_UNREACHABLE,
                                details=(out.stderr or out.stdout).decode(errors="replace") or None,
                                hint=f"check that `ssh {self.server} sh -c id` works")
        return read_facts(self.server, out.stdout.decode(errors="replace"), named=self._named_socket,
                          resolve=self._resolve, engine=self._needs_engine)

    # -- commands ---------------------------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """Run ARGV on the server through the master (no new login). Each word is quoted for the remote shell, so
        it arrives as one argument whatever it holds. A command that fails is returned, not raised; a link that
        dropped or a command that did not finish within TIMEOUT is a DevagentError."""
        self._check_master()
        command = " ".join(shlex.quote(word) for word in argv)
        # ControlMaster=no and no way to reach the server but the master: if its socket were gone, a client would
        # otherwise log in on its own, a second login that could prompt or reach another machine.
        cmd = [*self._options(), "-o", "ControlMaster=no", "-o", "ProxyCommand=false", "-o", "RemoteCommand=none",
               "-o", "RequestTTY=no", "-o", "ClearAllForwardings=yes", "-o", "ForwardAgent=no",
               "-o", "ForwardX11=no", "-o", "PermitLocalCommand=no", "-o", "LogLevel=ERROR",
               *self._destination(), command]
        try:
            result = subprocess.run(cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                                    capture_output=True, timeout=timeout, check=False,
                                    **self._popen_kwargs())  # type: ignore[call-overload]
        except subprocess.TimeoutExpired:
            raise DevagentError(f"`{command}` on {self.server} did not finish within {timeout:.0f} s",
                                status=ExitStatus.SERVER_UNREACHABLE,
                                hint=f"check the server's load and the link: ssh {self.server} uptime") from None
        if result.returncode == 255:
            self._check_master()  # 255 is also a remote command's own status: only a dead master says more
        return result  # type: ignore[no-any-return]

    # -- the engine --------------------------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The server's Docker Engine on the forwarded socket (unix://<folder>/docker.sock), made on first use."""
        if self._engine is None:
            self._forward_engine()
            from devagent.control.engine.docker_engine import Engine

            self._engine = Engine.at(f"unix://{self.engine_socket}", server=str(self.server))
        return self._engine

    def _forward_engine(self) -> None:
        self._check_master()
        offset = self._log_size()
        request_id = self._next_id()
        with _mux_session(self.control_path, LOGIN_TIMEOUT) as sock:
            sock.sendall(_packet(MUX_C_OPEN_FWD, struct.pack(">II", request_id, MUX_FWD_LOCAL)
                                 + _string(str(self.engine_socket)) + struct.pack(">I", _PORT_STREAMLOCAL)
                                 + _string(self.facts.docker_socket) + struct.pack(">I", _PORT_STREAMLOCAL)))
            try:
                _expect_ok(sock, request_id, MUX_S_OK)
            except MuxError as exc:
                raise DevagentError(f"ssh could not forward {self.server}'s Docker Engine socket: {exc}",
                                    status=ExitStatus.SERVER_REFUSED, details=self._log_text() or None,
                                    hint="check the local temp folder is writable") from None
        # A forward is set up locally; whether sshd lets it through shows only on the first connection.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(LOGIN_TIMEOUT)
            probe.connect(str(self.engine_socket))
            try:
                # ssh closes a connection sshd refused at once: the request itself may then meet a broken pipe
                # (EPIPE, which click would turn into a silent exit 1), not only the answer.
                probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = probe.recv(64)
            except OSError:
                answer = b""
        if not answer.startswith(b"HTTP/"):
            raise self._explain_engine_refusal(self._new_log(offset))

    def _explain_engine_refusal(self, log: str) -> DevagentError:
        """Why a connection to the forwarded engine socket was closed at once. The probe found the socket there and
        usable, and sshd gives the client one reason for every refusal of a Unix socket ("connect failed: open
        failed"), so ask further: whether TCP forwarding is refused (which refuses sockets too), and whether the
        engine answers the docker CLI on the server."""
        tcp_refusal = self._tcp_refusal()
        if tcp_refusal is not None:
            return _refused(self.server, "forwarding (TCP and Unix sockets)", "AllowTcpForwarding yes (or local)",
                            tcp_refusal)
        sock = self.facts.docker_socket
        cli = self.run(["docker", "-H", f"unix://{sock}", "version", "--format", "{{.Server.Version}}"])
        if cli.returncode == 0:
            return _refused(self.server, "to forward the Docker Engine's Unix socket",
                            "AllowStreamLocalForwarding yes (or local)", log)
        words = (cli.stderr or cli.stdout).decode(errors="replace").strip()
        if cli.returncode == 127:  # no docker CLI there: either is possible
            return DevagentError(
                f"the sshd on {self.server} refuses to forward the Docker Engine's socket {sock}, "
                "or no engine listens on it", status=ExitStatus.SERVER_REFUSED, details=log or None,
                hint="set AllowStreamLocalForwarding yes (or local) in the server's sshd_config, and check that "
                "Docker runs there (sudo systemctl status docker)")
        return DevagentError(f"no Docker Engine answers on {self.server} at {sock}",
                             status=ExitStatus.DOCKER_UNAVAILABLE, details=words or log or None,
                             hint="start Docker there (sudo systemctl start docker, or rootless: systemctl --user "
                             "start docker); if its socket is elsewhere, name it: DEVAGENT_DOCKER_SOCKET")

    def _tcp_refusal(self) -> str | None:
        """The master's words when sshd refuses TCP forwarding (a stream to the server's 127.0.0.1:1, where nothing
        listens: allowed, it is refused by the kernel instead), or None."""
        try:
            self.connect(1, timeout=LOGIN_TIMEOUT).close()
        except DevagentError as exc:
            if exc.status == ExitStatus.SERVER_REFUSED:
                return exc.details or ""
            raise
        except ConnectionError:
            pass
        return None

    def _log_size(self) -> int:
        try:
            return self._log.stat().st_size
        except OSError:
            return 0

    def _new_log(self, offset: int, *, wait_for: str = "open failed", timeout: float = 5.0) -> str:
        """The lines the master logged after OFFSET that hold WAIT_FOR (its reason for a refused channel), waiting
        for one to appear for up to TIMEOUT; all it logged since OFFSET when none does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self._log, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
            except OSError:
                text = ""
            lines = [line for line in text.splitlines() if wait_for in line]
            if lines:
                return "\n".join(lines)
            if time.monotonic() > deadline:
                return text.strip()
            time.sleep(0.01)

    # -- streams ------------------------------------------------------------------------------------------------------

    def connect(self, port: int, *, timeout: float) -> socket.socket:
        """A stream to the server's 127.0.0.1:PORT through the master, with TIMEOUT set on it.

        ConnectionError when nothing listens there (its message is sshd's reason, e.g. "connect failed:
        Connection refused"); TimeoutError when the master does not answer within TIMEOUT; a DevagentError
        (SERVER_REFUSED) when sshd forbids TCP forwarding, (SERVER_UNREACHABLE) when the link has dropped."""
        self._check_master()
        offset = self._log_size()
        request_id = self._next_id()
        control = _mux_session(self.control_path, timeout)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control.sendall(_packet(MUX_C_NEW_STDIO_FWD, struct.pack(">I", request_id) + _string("")
                                    + _string("127.0.0.1") + struct.pack(">I", port)))
            for _ in range(2):  # its "stdin" and "stdout": both ends are the same socket
                socket.send_fds(control, [b"\0"], [theirs.fileno()])
            theirs.close()
            try:
                _expect_ok(control, request_id, MUX_S_SESSION_OPENED)
            except MuxError:
                log = self._new_log(offset)
                if "administratively prohibited" in log:
                    raise _refused(self.server, "TCP forwarding to its own 127.0.0.1",
                                   "AllowTcpForwarding yes (or local; and PermitOpen any)", log) from None
                reason = log.splitlines()[-1] if log else "the ssh master refused the stream"
                raise ConnectionError(f"{self.server}'s 127.0.0.1:{port}: {reason}") from None
        except BaseException:
            mine.close()
            theirs.close()
            control.close()
            raise
        control.settimeout(None)
        stream = _Stream(fileno=mine.detach())
        stream._control = control
        stream.settimeout(timeout)
        return stream
