"""The laptop -> GPU server topology on one machine, for the --host tests. Real parts only, loopback only.

The SERVER is this machine: its real Docker Engine, and a real OpenSSH server (`/usr/sbin/sshd -D`) that the test
starts with its own config and host key, key-only, listening on 127.0.0.1:<free port>. Its users are the ones
`make test-users` made (scripts/test-server-users.sh): devagent-srv and devagent-srv2 (docker group) and
devagent-nodock (not). Each user's authorized keys live in the test's own folder (AuthorizedKeysFile), never in
their homes.

The LAPTOP is a network namespace with only its own `lo` (up) and a mount namespace in which the engine's socket
is hidden (an empty file bind-mounted over /run/docker.sock, which /var/run/docker.sock points to), and where
/root/.ssh is the laptop's (OpenSSH reads ~/.ssh/config from the passwd entry's home, not $HOME). A holder
process (`unshare`) keeps both alive; commands run in them with `nsenter -t PID -n -m`. From there neither the
engine nor any 127.0.0.1 port of the server can be reached, except through ssh: the laptop's ssh config reaches
each sshd with `ProxyCommand socat - UNIX-CONNECT:<relay>`, and a relay on the server side (`socat UNIX-LISTEN`,
in this machine's network namespace) carries it to 127.0.0.1:PORT. Unix sockets are files, so they cross network
namespaces. The laptop has its own HOME, DEVAGENT_HOME, DEVAGENT_SSH_CONFIG and key; each sshd's host key is
pinned in the laptop's known_hosts (StrictHostKeyChecking yes).

Use (a pytest fixture, `topology`, is defined at the bottom; import it into a test module or conftest):

    def test_something(topology: Topology) -> None:
        laptop = topology.laptop
        laptop.ssh("gpu-server", "id", "-un")           # -> Result(0, "devagent-srv\\n", "")
        laptop.devagent("ls", "--host", "gpu-server")   # python -m devagent in the laptop, this worktree's code
        laptop.python("-c", "...")                       # any Python in the laptop
        sshd = topology.start_sshd(allow_tcp_forwarding="no")        # a broken server
        laptop.add_alias("no-tcp", sshd, user="devagent-srv")        # ...and a Host for it

Aliases made from the start: `gpu-server` (devagent-srv) and `gpu-server2` (devagent-srv2), each on its own
sshd (two servers); `gpu-nodock` (devagent-nodock, on gpu-server's sshd). The server's own engine is what every
alias reaches: containers a test makes there are found by the usual docker fixtures.

Cleanup, also when a test fails: the holder, the relays and the sshds are killed by pid and waited for, and the
folder is removed. Each run records what it started in /tmp/devagent-topology-<pytest pid>/pids, so the next run
kills (by pid, after checking its start time still matches) what a killed run left behind, and removes its folder.
Needs root (namespaces, sshd on behalf of other users); elsewhere the tests skip, and in CI (CI=true) they fail.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import Result, _unavailable

REPO = Path(__file__).resolve().parents[2]
SERVER_USERS = ("devagent-srv", "devagent-srv2", "devagent-nodock")
HOST_KEY_ALIAS_PREFIX = "devagent-test-sshd"
_STATE_PREFIX = "devagent-topology-"
SSHD = "/usr/sbin/sshd"
# The tools the topology needs; `make test` installs them (scripts/install-deps.sh).
TOOLS = ("unshare", "nsenter", "socat", "ssh", "ssh-keygen", "ip", "mount")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> str:
    """When PID started (clock ticks since boot, /proc/PID/stat field 22): with the pid, it names one process (a
    command line may not be readable yet right after exec, and a pid is reused). Empty once PID is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def descendants(pids: Sequence[int]) -> list[int]:
    """Every living process below PIDS (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether PID is a process that has not ended (a zombie has: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(condition: object, *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


@dataclass
class Sshd:
    """A test sshd on 127.0.0.1:port, and the relay that carries a Unix socket to it."""

    port: int
    folder: Path
    host_key_alias: str
    host_public_key: str
    relay: Path  # the Unix socket the laptop's ProxyCommand connects to
    process: subprocess.Popen[bytes] = field(repr=False)
    relay_process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")

    def authorize(self, user: str, public_key: str) -> None:
        path = self.folder / "authorized_keys" / user
        with open(path, "a") as f:
            f.write(public_key.strip() + "\n")
        path.chmod(0o644)


class Laptop:
    """The laptop: a network + mount namespace held by a process, with its own HOME and ssh config."""

    def __init__(self, root: Path, holder: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.holder = holder
        self.home = root / "home"
        self.ssh_dir = self.home / ".ssh"
        self.devagent_home = self.ssh_dir / "devagent"
        self.ssh_config = self.ssh_dir / "config"
        self.known_hosts = self.ssh_dir / "known_hosts"
        self.key = self.ssh_dir / "id_ed25519"

    @property
    def pid(self) -> int:
        return self.holder.pid

    @property
    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text().strip()

    @property
    def environ(self) -> dict[str, str]:
        """What every command in the laptop gets: no DOCKER_HOST, this worktree's code first on PYTHONPATH."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "CI")}
        return {**keep, "HOME": str(self.home), "DEVAGENT_HOME": str(self.devagent_home),
                "DEVAGENT_SSH_CONFIG": str(self.ssh_config), "PYTHONPATH": str(REPO),
                "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(self.root / "tmp")}

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", *argv]

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: object
              ) -> subprocess.Popen[bytes]:
        """Start ARGV in the laptop (stdin/stdout/stderr as given in KWARGS)."""
        return subprocess.Popen(self._argv(argv), env={**self.environ, **(env or {})}, cwd=self.root,
                                **kwargs)  # type: ignore[call-overload, no-any-return]

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
            timeout: float = 120) -> Result:
        proc = subprocess.run(self._argv(argv), env={**self.environ, **(env or {})}, cwd=self.root, input=input,
                              capture_output=True, text=True, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def python(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Result:
        return self.run([sys.executable, *args], env=env, timeout=timeout)

    def devagent(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300,
                 check: bool = False) -> Result:
        result = self.python("-m", "devagent", *args, env=env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"devagent {' '.join(args)} in the laptop failed ({result.returncode}):\n"
                                 f"{result.output}")
        return result

    def ssh(self, *args: str, timeout: float = 60) -> Result:
        """The real ssh client in the laptop, with the laptop's config and BatchMode."""
        return self.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", *args], timeout=timeout)

    def add_alias(self, alias: str, sshd: Sshd, *, user: str, identity: Path | None = None,
                  proxy_command: str | None = None, extra: Sequence[str] = ()) -> None:
        """A `Host ALIAS` block reaching SSHD as USER through its relay, with the laptop's key (or IDENTITY) and
        the sshd's pinned host key. PROXY_COMMAND replaces the relay; EXTRA lines go into the block."""
        proxy = proxy_command or f"socat - UNIX-CONNECT:{sshd.relay}"
        lines = [f"Host {alias}", f"  User {user}", "  HostName 127.0.0.1", f"  Port {sshd.port}",
                 f"  ProxyCommand {proxy}", f"  IdentityFile {identity or self.key}",
                 "  IdentitiesOnly yes", f"  HostKeyAlias {sshd.host_key_alias}",
                 f"  UserKnownHostsFile {self.known_hosts}", "  StrictHostKeyChecking yes",
                 *(f"  {line}" for line in extra), ""]
        text = self.ssh_config.read_text() if self.ssh_config.exists() else ""
        self.ssh_config.write_text(text + "\n".join(lines) + "\n")


class Topology:
    """A laptop and the server's sshds; a context manager that removes all of it."""

    def __init__(self, root: Path) -> None:
        self.root = root  # short (Unix socket paths), under /tmp
        self.sshds: list[Sshd] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self.laptop: Laptop

    # -- bookkeeping: what this run started, for the next run if this one is killed ---------------------------

    def _record(self, process: subprocess.Popen[bytes]) -> None:
        self._processes.append(process)
        with open(self.root / "pids", "a") as f:
            f.write(f"{process.pid} {_start_time(process.pid)}\n")

    @staticmethod
    def sweep_leftovers() -> None:
        """Kill (by pid, when it is still the process that was recorded: the same start time) what a killed test
        run left, and remove its folder."""
        for folder in Path("/tmp").glob(f"{_STATE_PREFIX}*"):
            owner = folder.name.removeprefix(_STATE_PREFIX).split("-")[0]
            if not owner.isdigit() or Path(f"/proc/{owner}").exists():
                continue
            with contextlib.suppress(OSError):
                for line in (folder / "pids").read_text().splitlines():
                    pid, _, started = line.partition(" ")
                    if pid.isdigit() and started and _start_time(int(pid)) == started:
                        for each in [int(pid), *descendants([int(pid)])]:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(each, signal.SIGKILL)
            shutil.rmtree(folder, ignore_errors=True)

    # -- the server ------------------------------------------------------------------------------------------------

    def start_sshd(self, *, allow_tcp_forwarding: str = "yes", allow_stream_local_forwarding: str = "yes",
                   disable_forwarding: str = "no", extra: Sequence[str] = ()) -> Sshd:
        """A new sshd on 127.0.0.1:<free port>, its relay, its host key pinned in the laptop's known_hosts, and the
        laptop's key authorized for every server user. EXTRA lines go into its sshd_config (the first value of
        an option wins: those set here cannot be changed that way)."""
        folder = Path(tempfile.mkdtemp(prefix="sshd-", dir=self.root))
        folder.chmod(0o755)  # sshd reads the authorized keys as the user
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True)
        (folder / "authorized_keys").mkdir(mode=0o755)
        alias = f"{HOST_KEY_ALIAS_PREFIX}-{len(self.sshds)}"
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        for attempt in range(5):  # a free port may be taken by another test between its probe and sshd's bind
            port = _free_port()
            config = folder / "sshd_config"
            config.write_text("\n".join([
                f"ListenAddress 127.0.0.1:{port}", f"HostKey {folder / 'host_key'}", "PidFile none",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}/%u", "AuthenticationMethods publickey",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                "UsePAM no", "StrictModes no", "PermitRootLogin no", f"AllowUsers {' '.join(SERVER_USERS)}",
                f"AllowTcpForwarding {allow_tcp_forwarding}",
                f"AllowStreamLocalForwarding {allow_stream_local_forwarding}",
                f"DisableForwarding {disable_forwarding}",
                "X11Forwarding no", "AllowAgentForwarding no", "PrintMotd no", "LogLevel VERBOSE",
                "MaxStartups 100:30:200", "PerSourcePenalties no" if _sshd_has_penalties() else "", *extra, ""]))
            check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
            assert check.returncode == 0, f"the test sshd's config is wrong: {check.stderr}"
            log_path = folder / f"sshd-{attempt}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log, start_new_session=True)
            self._record(process)
            _wait_for(lambda log_path=log_path, process=process:  # type: ignore[misc]
                      b"Server listening" in log_path.read_bytes() or process.poll() is not None,
                      timeout=20, message="the test sshd to listen")
            if process.poll() is None:
                break
            assert b"Address already in use" in log_path.read_bytes(), log_path.read_text()
        else:
            raise AssertionError("no free port for the test sshd after 5 tries")
        (folder / "sshd.log").symlink_to(log_path.name)
        relay = folder / "relay.sock"
        relay_process = subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{relay},fork,mode=600", f"TCP:127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._record(relay_process)
        _wait_for(relay.exists, timeout=20, message="the relay's socket")
        public = (folder / "host_key.pub").read_text().split()
        sshd = Sshd(port=port, folder=folder, host_key_alias=alias, host_public_key=" ".join(public[:2]),
                    relay=relay, process=process, relay_process=relay_process)
        for user in SERVER_USERS:
            sshd.authorize(user, self.laptop.public_key)
        with open(self.laptop.known_hosts, "a") as f:
            f.write(f"{alias} {sshd.host_public_key}\n")
        self.sshds.append(sshd)
        return sshd

    # -- the laptop --------------------------------------------------------------------------------------------------

    def _start_laptop(self) -> Laptop:
        root = self.root / "laptop"
        (root / "home" / ".ssh").mkdir(parents=True, mode=0o700)
        (root / "tmp").mkdir(mode=0o700)
        hidden = root / "no-engine-here"
        hidden.write_text("")
        # The holder: lo up, the engine's socket covered, then sleep until killed. Its mount namespace is private,
        # so the bind mount never shows outside.
        # ~/.ssh of root's passwd home (where OpenSSH looks without -F: it ignores $HOME) is the laptop's. Not all
        # of /root: the interpreter may live there (pyenv).
        Path("/root/.ssh").mkdir(mode=0o700, exist_ok=True)
        script = (f"ip link set lo up && mount --bind {hidden} /run/docker.sock && "
                  f"mount --bind {root / 'home' / '.ssh'} /root/.ssh && "
                  f"touch {root}/ready && exec sleep infinity")
        holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                   "sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(root / "holder.log", "wb"),  # noqa: SIM115
                                  start_new_session=True)
        self._record(holder)
        _wait_for(lambda: (root / "ready").exists() or holder.poll() is not None, timeout=20,
                  message="the laptop's namespaces")
        assert holder.poll() is None, (root / "holder.log").read_text()
        laptop = Laptop(root, holder)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(laptop.key)],
                       check=True)
        laptop.ssh_config.write_text("")
        laptop.ssh_config.chmod(0o600)
        laptop.known_hosts.write_text("")
        return laptop

    def __enter__(self) -> Topology:
        try:
            self.laptop = self._start_laptop()
            first = self.start_sshd()
            second = self.start_sshd()
            self.laptop.add_alias("gpu-server", first, user="devagent-srv")
            self.laptop.add_alias("gpu-server2", second, user="devagent-srv2")
            self.laptop.add_alias("gpu-nodock", first, user="devagent-nodock")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill everything started here and what it started (sshd's sessions, socat's forks, anything a test ran
        in the laptop), by pid, and remove the folder."""
        killed: list[int] = []
        for _ in range(3):  # a session may fork while it is being killed
            alive = [p.pid for p in self._processes if p.poll() is None]
            below = descendants(self.pids)
            for pid in [*below, *alive]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += below
            for process in self._processes:
                process.wait(timeout=20)
            if not descendants(self.pids):
                break
        # Orphans are reaped by init: wait until they are gone, so that "nothing left" holds when this returns.
        _wait_for(lambda: not [pid for pid in killed if running(pid)], timeout=20, message="killed processes to go")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]


@functools.cache
def _sshd_has_penalties() -> bool:
    """OpenSSH >= 9.8 penalises sources that fail; every test connects from 127.0.0.1 (so never here on 9.2)."""
    out = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False)
    text = out.stderr + out.stdout
    import re

    found = re.search(r"OpenSSH_(\d+)\.(\d+)", text)
    return bool(found) and (int(found.group(1)), int(found.group(2))) >= (9, 8)  # type: ignore[union-attr]


def topology_available() -> str | None:
    """Why the topology cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the laptop -> server topology needs root (network namespaces, an sshd for other users)"
    missing = [tool for tool in (*TOOLS, SSHD) if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run `make deps`"
    for user in SERVER_USERS:
        if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
            return f"the server user {user} is missing: run `make test-users`"
    return None


def open_topology() -> Iterator[Topology]:
    """The `topology` fixture's body (tests/integration/conftest.py): a fresh laptop and two sshds (gpu-server,
    gpu-server2), removed after the test."""
    reason = topology_available()
    if reason:
        _unavailable(reason)
    Topology.sweep_leftovers()
    root = Path(tempfile.mkdtemp(prefix=f"{_STATE_PREFIX}{os.getpid()}-", dir="/tmp"))
    root.chmod(0o755)  # sshd reads the authorized keys inside as the server users
    with Topology(root) as topo:
        yield topo
