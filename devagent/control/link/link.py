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
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from devagent.control.link.mux import (
    MUX_C_NEW_STDIO_FWD,
    MUX_C_OPEN_FWD,
    MUX_C_TERMINATE,
    MUX_FWD_LOCAL,
    MUX_S_OK,
    MUX_S_SESSION_OPENED,
    PORT_STREAMLOCAL,
    MuxError,
    Stream,
    expect_ok,
    mux_packet,
    mux_session,
    mux_string,
    read_packet,
)
from devagent.control.link.probe import ServerFacts, probe_script, read_facts
from devagent.control.link.ssh_failures import explain_ssh_failure, refused
from devagent.control.link.stale_links import FOLDER_PREFIX, link_base, start_time, sweep_stale
from devagent.control.paths import Paths
from devagent.control.ssh.children import child_kwargs
from devagent.core.ssh.command_line import KEEPALIVE, ssh_argv
from devagent.core.ssh.destination import Server, parse_server
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.engine.docker_engine import Engine

CONNECT_TIMEOUT = 15  # seconds for the TCP connect and the login (ssh's ConnectTimeout)
LOGIN_TIMEOUT = 30.0  # the whole login, ProxyJump hops included


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
        self._needs_engine = engine  # False: a Slurm login node, where only Slurm's commands run
        self.jump = jump  # ProxyJump: a Slurm login node, SERVER its node (only the master logs in)
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

    def _argv(self, *command: str, flags: Sequence[str] = (), options: Mapping[str, str | int]) -> list[str]:
        """ssh to the server through the master's control socket (-S), with BatchMode, then OPTIONS."""
        return ssh_argv(self._paths.user_ssh_config, self.server, *command, ssh=self._ssh, flags=flags,
                        options=options, control=self.control_path)

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
            (self.folder / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
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
        argv = self._argv(flags=["-M", "-N", "-T"], options={
            "ControlMaster": "yes", "ControlPersist": "no", "ExitOnForwardFailure": "yes",
            "ConnectTimeout": CONNECT_TIMEOUT, **KEEPALIVE,
            # Only what devagent asks for travels over its link: no forwards from the user's config (a
            # LocalForward there would collide with their own session), no agent, no X11.
            "ClearAllForwardings": "yes", "ForwardAgent": "no", "ForwardX11": "no",
            "PermitLocalCommand": "no", "StreamLocalBindMask": "0177", "StreamLocalBindUnlink": "yes",
            **({"ProxyJump": self.jump.proxy_jump} if self.jump is not None else {})})
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
                    sock = mux_session(self.control_path, 2.0)
                    with sock:
                        sock.sendall(mux_packet(MUX_C_TERMINATE, struct.pack(">I", self._next_id())))
                        with contextlib.suppress(OSError, MuxError):
                            read_packet(sock)
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
        cmd = self._argv(command, options={
            "ControlMaster": "no", "ProxyCommand": "false", "RemoteCommand": "none", "RequestTTY": "no",
            "ClearAllForwardings": "yes", "ForwardAgent": "no", "ForwardX11": "no", "PermitLocalCommand": "no",
            "LogLevel": "ERROR"})
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
        with mux_session(self.control_path, LOGIN_TIMEOUT) as sock:
            sock.sendall(mux_packet(MUX_C_OPEN_FWD, struct.pack(">II", request_id, MUX_FWD_LOCAL)
                                 + mux_string(str(self.engine_socket)) + struct.pack(">I", PORT_STREAMLOCAL)
                                 + mux_string(self.facts.docker_socket) + struct.pack(">I", PORT_STREAMLOCAL)))
            try:
                expect_ok(sock, request_id, MUX_S_OK)
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
            return refused(self.server, "forwarding (TCP and Unix sockets)", "AllowTcpForwarding yes (or local)",
                            tcp_refusal)
        sock = self.facts.docker_socket
        cli = self.run(["docker", "-H", f"unix://{sock}", "version", "--format", "{{.Server.Version}}"])
        if cli.returncode == 0:
            return refused(self.server, "to forward the Docker Engine's Unix socket",
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
        control = mux_session(self.control_path, timeout)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control.sendall(mux_packet(MUX_C_NEW_STDIO_FWD, struct.pack(">I", request_id) + mux_string("")
                                    + mux_string("127.0.0.1") + struct.pack(">I", port)))
            for _ in range(2):  # its "stdin" and "stdout": both ends are the same socket
                socket.send_fds(control, [b"\0"], [theirs.fileno()])
            theirs.close()
            try:
                expect_ok(control, request_id, MUX_S_SESSION_OPENED)
            except MuxError:
                log = self._new_log(offset)
                if "administratively prohibited" in log:
                    raise refused(self.server, "TCP forwarding to its own 127.0.0.1",
                                   "AllowTcpForwarding yes (or local; and PermitOpen any)", log) from None
                reason = log.splitlines()[-1] if log else "the ssh master refused the stream"
                raise ConnectionError(f"{self.server}'s 127.0.0.1:{port}: {reason}") from None
        except BaseException:
            mine.close()
            theirs.close()
            control.close()
            raise
        control.settimeout(None)
        stream = Stream(fileno=mine.detach())
        stream._control = control
        stream.settimeout(timeout)
        return stream
