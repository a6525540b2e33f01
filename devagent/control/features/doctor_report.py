"""`devagent doctor` on the host: gather the facts, run the probe through the ssh alias, judge with core/doctor.

    checks = run_checks(Paths.from_environ(), name="pytorch-dev", environ=os.environ)
    print("\\n".join(render(checks)))

Client-side checks need no environment: the Docker Engine, the OpenSSH client, devagent's Include line, file
permissions OpenSSH insists on, VS Code's `remote.SSH.configFile`. With NAME: the container, what `ssh -G NAME`
resolves to, and — logged in through the alias with the real client, as VS Code does — what Remote-SSH needs inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.engine_data import ContainerInfo
from devagent.control.features.teammates import callers_own
from devagent.control.paths import Paths
from devagent.control.sites.site import SiteName
from devagent.control.ssh import managed_config
from devagent.control.ssh.openssh import client_version
from devagent.control.ssh.user_config import SshConfig, parse_line
from devagent.core import doctor_rules as d
from devagent.core.doctor_rules import Check, skipped
from devagent.core.spec import LABEL_PREFIX, SSHD_PORT
from devagent.core.ssh import job_hop
from devagent.core.ssh.command_line import ssh_argv
from devagent.core.ssh.host_entry import HostEntry
from devagent.core.ssh.sshd import profile_for_client
from devagent.errors import DevagentError

PROBE_TIMEOUT = 60.0
FORWARD_TIMEOUT = 20.0
CONNECT_TIMEOUT = 10  # ssh's ConnectTimeout, seconds
SESSION_WAITS = "DEVAGENT_DOCTOR_SESSION_WAITS"  # the probe is done; the login stays for the forward

# What VS Code's settings.json is called where, relative to the config folder (~/.config on Linux).
VSCODE_FLAVOURS = (("VS Code", "Code"), ("VS Code Insiders", "Code - Insiders"), ("VSCodium", "VSCodium"))


def _default_engine() -> EngineApi:
    from devagent.control.engine.docker_engine import Engine

    return Engine()


def run_checks(paths: Paths, *, name: str | None, environ: Mapping[str, str],
               engine_factory: Callable[[], EngineApi] = _default_engine, ssh: str = "ssh",
               server: str | None = None, servers_used: bool = False) -> list[Check]:
    """Every check, in the order they are shown: the client side, then NAME's environment when given.
    SERVER: the server NAME lives on (ENGINE_FACTORY then reaches its engine over ssh). SERVERS_USED: this machine
    has made environments on servers, so an engine of its own is not needed (a laptop)."""
    rows: list[ContainerInfo] | None = None
    engine = f"Docker Engine{SiteName(server or None).on}"
    adapter: EngineApi | None = None
    try:
        adapter = engine_factory()
        rows = adapter.list_managed()
        # On a shared engine, others' environments are counted apart (those without a recorded owner as yours).
        others = sum(callers_own(c, paths) is False for c in rows)
        count = len(rows) - others
        checks = [Check(engine, True, f"answers; {count} devagent environment{'s' * (count != 1)}"
                        + (f" of yours, {others} of other people" if others else ""))]
    except DevagentError as exc:  # the engine's adapter names the fix (start it; join the docker group)
        if servers_used and name is None:  # doctor without NAME checks this machine's engine
            checks = [skipped(engine, f"{exc.message}; this machine's environments are on servers (`devagent "
                              "doctor NAME` checks one there)")]
        else:
            checks = [Check(engine, False, exc.message, fix=exc.hint)]
    version = client_version(ssh)
    checks += client_checks(paths, environ=environ, version=version)
    if name is not None:
        checks += environment_checks(paths, name=name, containers=rows, version=version, ssh=ssh, server=server)
        if rows is not None:
            checks.append(home_check(adapter, name, next((c for c in rows if c.name == name), None)))
    return checks


def home_check(engine: object, name: str, info: ContainerInfo | None) -> Check:
    """NAME's home volume and its size (information: it never fails), measured in INFO, its container, when it
    runs. ENGINE is the real adapter; a test's stand-in without volumes skips it."""
    from devagent.control.engine.docker_engine import Engine
    from devagent.control.engine.home_volume import size_line

    if not isinstance(engine, Engine):
        return skipped(d.HOME, "this engine adapter does not report volumes")
    try:
        line = size_line(engine, name, info)
    except DevagentError as exc:
        return skipped(d.HOME, exc.message)
    return Check(d.HOME, True, line) if line else skipped(
        d.HOME, f"{name} has no home volume (made before devagent kept homes: `devagent up {name} --recreate` "
        "gives it one)")


# -- client side ------------------------------------------------------------------------------------------------


def client_checks(paths: Paths, *, environ: Mapping[str, str], version: tuple[int, int] | None) -> list[Check]:
    home = Path(environ.get("HOME") or Path.home())
    return [
        openssh_check(version),
        include_check(SshConfig(paths)),
        permissions_check(paths, home=home),
        *vscode_checks(paths, home=home, environ=environ),
    ]


def openssh_check(version: tuple[int, int] | None) -> Check:
    name = "OpenSSH client"
    if version is None:
        return Check(name, False, "no OpenSSH client (ssh) on PATH; VS Code Remote-SSH and `ssh NAME` use it",
                     fix="install it (Debian/Ubuntu: sudo apt-get install openssh-client)")
    text = f"OpenSSH {version[0]}.{version[1]}"
    if profile_for_client(version) == "strict":
        return Check(name, True, f"{text}: allows the strict sshd profile (post-quantum key exchange, needs ≥ 8.5)")
    return Check(name, True, f"{text}: allows the compat sshd profile only (strict needs ≥ 8.5); `devagent up` "
                 "picks compat")


def include_check(config: SshConfig) -> Check:
    """devagent's Include line must be the first line OpenSSH reads in the user's config (first value wins)."""
    name = "Include line"
    user_config = config.paths.user_ssh_config
    include = config.include_line()
    try:
        data: bytes | None = user_config.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        return Check(name, False, f"cannot read {user_config}: {exc.strerror}", fix=f"chmod 600 {user_config}")
    first, ours = _first_and_ours(config, data or b"")
    if first is not None and ours == first[0]:
        return Check(name, True, f"the first line ssh reads in {user_config} is `{first[1].strip()}`")
    if ours is None and not config.names():
        return skipped(name, f"there is no environment yet, so {user_config} needs no Include line "
                       "(`devagent up NAME` adds it)")
    if data is None:
        return Check(name, False, f"{user_config} does not exist, so ssh does not read devagent's config",
                     fix=f"put the line `{include}` in a new {user_config} (or run `devagent up NAME` again)")
    if ours is not None and first is not None:
        return Check(name, False, f"{user_config}:{ours} includes devagent's config, but line {first[0]} "
                     f"`{first[1].strip()}` comes first",
                     fix=f"move `{include}` to the top of {user_config}, above every other line (OpenSSH uses "
                     "the first value it reads)")
    return Check(name, False, f"{user_config} does not include devagent's config",
                 fix=f"add the line `{include}` at the top of {user_config} (or run `devagent up NAME` again)")


def _first_and_ours(config: SshConfig, data: bytes) -> tuple[tuple[int, str] | None, int | None]:
    """(number, text) of the first line OpenSSH reads in DATA, and the number of devagent's Include line."""
    first: tuple[int, str] | None = None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if parse_line(text) is None:
            continue
        if first is None:
            first = (number, text)
        if config._is_our_include(raw, only=False):  # SshConfig's one rule for "our line", relative paths and all
            return first, number
    return first, None


def _identity_files(paths: Paths) -> list[Path]:
    """devagent's key and every IdentityFile its Host blocks name (`up --identity` keys included)."""
    found = [paths.identity]
    try:
        for host in managed_config.hosts(paths.managed_ssh_config):
            value = managed_config.options(paths.managed_ssh_config, host).get("identityfile", "").strip('"')
            if value and Path(value) not in found:
                found.append(Path(value))
    except (OSError, DevagentError):
        pass  # an unreadable managed config shows in the other checks
    return found


def permissions_check(paths: Paths, *, home: Path) -> Check:
    """Modes and owners OpenSSH (or devagent's security) insists on, for every file that exists."""
    uid = os.getuid()
    refuses = "ssh refuses it"
    rules: list[tuple[Path, str, int, str, str]] = [
        # path, label, forbidden mode bits, what is wrong then, the fix
        (paths.home, "DEVAGENT_HOME", 0o077, "others can enter it, and it holds your private key",
         f"chmod 700 {paths.home}"),
        *((key, key.name, 0o077, f"others can read your private key ({refuses}: UNPROTECTED PRIVATE KEY FILE)",
           f"chmod 600 {key}") for key in _identity_files(paths)),
        (paths.known_hosts, "known_hosts", 0o022, "others can write it and pin another host key",
         f"chmod go-w {paths.known_hosts}"),
        (paths.managed_ssh_config, "ssh_config", 0o022, f"others can write it ({refuses}: Bad owner or permissions)",
         f"chmod go-w {paths.managed_ssh_config}"),
        (home / ".ssh", "~/.ssh", 0o022, "others can write it and replace your ssh config",
         f"chmod 700 {home / '.ssh'}"),
        (paths.user_ssh_config, _tilde(paths.user_ssh_config, home), 0o022,
         f"others can write it ({refuses}: Bad owner or permissions)", f"chmod 600 {paths.user_ssh_config}"),
    ]
    seen: list[str] = []
    problems: list[str] = []
    fixes: list[str] = []
    for path, label, forbidden, wrong, fix in rules:
        try:
            st = path.stat()
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        seen.append(f"{label} {mode:04o}")
        if st.st_uid not in (0, uid):
            problems.append(f"{path} belongs to uid {st.st_uid}, not to you ({refuses})")
            fixes.append(f"chown {uid} {path}")
        if d.mode_problem(mode, forbidden=forbidden):
            problems.append(f"{path} is {mode:04o}: {wrong}")
            fixes.append(fix)
    name = "file permissions"
    if not seen:
        return skipped(name, f"none of the files exists yet ({paths.home}, {home / '.ssh'})")
    if problems:
        return Check(name, False, "; ".join(problems), fix=" && ".join(dict.fromkeys(fixes)))
    return Check(name, True, ", ".join(seen))


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def settings_files(home: Path, environ: Mapping[str, str]) -> list[tuple[str, Path]]:
    """(label, path) of every VS Code settings.json devagent knows where to find (Linux and macOS)."""
    linux = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    mac = home / "Library" / "Application Support"
    return [(label, base / folder / "User" / "settings.json")
            for base in (linux, mac) for label, folder in VSCODE_FLAVOURS]


def vscode_checks(paths: Paths, *, home: Path, environ: Mapping[str, str]) -> list[Check]:
    default = home / ".ssh" / "config"
    checks: list[Check] = []
    for label, path in settings_files(home, environ):
        if not path.exists():
            continue
        name = f"{label} remote.SSH.configFile"
        try:
            settings = json.loads(d.strip_jsonc(path.read_text(encoding="utf-8")))
        except OSError as exc:
            checks.append(skipped(name, f"cannot read {path}: {exc.strerror}"))
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            checks.append(skipped(name, f"{path} is not JSON with comments devagent can read: {exc}"))
            continue
        checks.append(d.vscode_config_file_check(
            label=label, settings_file=str(path), settings=settings, user_config=str(paths.user_ssh_config),
            default_config=str(default), home=str(home)))
    if not checks:
        name, why = "VS Code remote.SSH.configFile", f"no VS Code settings.json under {home} (Code, Code - " \
            f"Insiders, VSCodium); Remote-SSH then reads {default}"
        if paths.user_ssh_config == default or _includes(default, paths, home=home):
            return [skipped(name, why)]
        return [d.warning(name, f"{why}, which does not include devagent's config (it is in {paths.user_ssh_config},"
                          " DEVAGENT_SSH_CONFIG): VS Code will not find the environments",
                          fix=f'set "remote.SSH.configFile": "{paths.user_ssh_config}" in VS Code\'s settings, or '
                          f"add the line `Include {paths.user_ssh_config}` at the top of {default}")]
    return checks


def _includes(config: Path, paths: Paths, *, home: Path) -> bool:
    """Whether CONFIG has an Include line naming the user's ssh config or devagent's managed one, as OpenSSH
    reads the path: ``~/`` is HOME, a relative path is below ~/.ssh (globs are not expanded)."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    wanted = {os.path.normpath(paths.user_ssh_config), os.path.normpath(paths.managed_ssh_config)}
    for line in text.splitlines():
        words = line.replace("=", " ", 1).split()
        if len(words) < 2 or words[0].lower() != "include":
            continue
        for arg in (w.strip('"') for w in words[1:]):
            path = str(home) + arg[1:] if arg.startswith("~/") else arg
            if os.path.normpath(home / ".ssh" / path) in wanted:  # an absolute path replaces what is before it
                return True
    return False


# -- the environment --------------------------------------------------------------------------------------------


def environment_checks(paths: Paths, *, name: str, containers: list[ContainerInfo] | None,
                       version: tuple[int, int] | None, ssh: str = "ssh", server: str | None = None) -> list[Check]:
    """NAME's container, its alias, and (when it runs) the container side. CONTAINERS: devagent's, as `ls`
    sees them; None when the Docker Engine does not answer."""
    checks: list[Check] = []
    info: ContainerInfo | None = None
    up = f"devagent up {name}"
    if containers is None:
        engine = f"the Docker Engine{SiteName(server or None).on}"
        checks.append(skipped("container running", f"{engine} does not answer (see above)"))
        why_not = f"{engine} does not answer"
    else:
        # By its name too: a container an interrupted up left as NAME-new-… carries NAME's label.
        info = next((c for c in containers if c.labels.get(f"{LABEL_PREFIX}name", c.name) == name == c.name),
                    None)
        if info is None:
            checks.append(Check("container running", False, f"no environment named {name}",
                                fix=f"`devagent ls` lists the environments; `{up}` creates it"))
            why_not = f"there is no container {name}"
        elif info.status != "running":
            code = f" (exit code {info.exit_code})" if info.exit_code is not None else ""
            checks.append(Check("container running", False, f"{name} is {info.status}{code}",
                                fix=f"`{up}` starts it again (`docker logs {name}` shows why it stopped)"))
            why_not = "the container is not running"
        else:
            where = SiteName(server or None).loopback
            checks.append(Check("container running", True,
                                f"{name} is running, sshd published on {where}:{info.host_port}"))
            why_not = ""
        if info is not None:
            checks.append(d.health_check(info.health, info.health_output, name=name) if not why_not
                          else skipped(d.HEALTH, why_not))
            checks.append(_profile_check(info, version, name))
    checks.append(alias_check(paths, name=name, info=info if not why_not else None, ssh=ssh))
    if why_not:
        return checks + [skipped(item, why_not) for item in d.CONTAINER_SIDE]
    host_workspace = info.labels.get(f"{LABEL_PREFIX}workspace") if info else None
    return checks + container_side_checks(paths, name=name, host_workspace=host_workspace, ssh=ssh)


def _profile_check(info: ContainerInfo, version: tuple[int, int] | None, name: str) -> Check:
    profile = info.labels.get(f"{LABEL_PREFIX}sshd-profile", "")
    if profile != "strict" or profile_for_client(version) == "strict":
        return Check("sshd profile", True, f"{profile or 'unknown'}; your OpenSSH client speaks it")
    return Check("sshd profile", False, "the container's sshd offers post-quantum key exchange only (strict), "
                 "which your OpenSSH client (< 8.5) cannot speak",
                 fix=f"upgrade OpenSSH to 8.5 or newer, or `devagent up {name} --recreate --sshd-profile compat`")


def alias_check(paths: Paths, *, name: str, info: ContainerInfo | None, ssh: str = "ssh") -> Check:
    """`ssh -G NAME` resolves to the values devagent wrote (and, when the container runs, to its port)."""
    label = f"ssh -G {name}"
    up = f"devagent up {name}"
    try:
        block = managed_config.options(paths.managed_ssh_config, name)
    except DevagentError as exc:
        return Check(label, False, exc.message, fix=exc.hint)
    if not block:
        return Check(label, False, f"devagent's ssh config {paths.managed_ssh_config} has no Host {name}",
                     fix=f"`{up}` writes it again")
    try:
        jump, check = block.get("proxyjump"), None
        if "proxycommand" in block:  # an environment in a Slurm job: only the command devagent writes
            hop = job_hop.parse(block["proxycommand"])
            if hop is None or hop[:2] != (name, int(block["port"])):
                raise ValueError("its ProxyCommand is not the one devagent writes")
            jump, check = hop[2], hop[3]
        entry = HostEntry(name=name, port=int(block["port"]), user=block["user"],
                          identity_file=block["identityfile"].strip('"'), known_hosts_file=str(paths.known_hosts),
                          proxy_jump=jump, job_check=check)
    except (KeyError, ValueError, DevagentError) as exc:
        return Check(label, False, f"devagent's Host {name} block in {paths.managed_ssh_config} is incomplete "
                     f"({exc})", fix=f"`{up}` writes it again")
    if info is not None and info.host_port is not None and info.host_port != entry.port:
        return Check(label, False, f"the alias points at port {entry.port}, but the container publishes "
                     f"{info.host_port} (it was restarted outside devagent)", fix=f"`{up}` updates the alias")
    try:
        SshConfig(paths, ssh_binary=ssh).verify_effective(entry)
    except DevagentError as exc:
        return Check(label, False, _with_details(exc), fix=exc.hint)
    via = f" via {entry.proxy_jump}" if entry.proxy_jump else ""
    if entry.job_check is not None:
        via += f" (asking Slurm first whether job {entry.job_check.job_id} still runs)"
    return Check(label, True, f"devagent's values: 127.0.0.1:{entry.port}{via} as {entry.user}, key "
                 f"{entry.identity_file}, host key pinned as {name}")


def _with_details(exc: DevagentError) -> str:
    """EXC's message and its detail lines on one line; an override message already tells its first detail."""
    lines = [line.strip() for line in (exc.details or "").strip().splitlines() if line.strip()]
    if "overrides devagent's" in exc.message:
        lines = lines[1:]
    return exc.message + (f" ({'; '.join(lines)})" if lines else "")


def container_side_checks(paths: Paths, *, name: str, host_workspace: str | None, ssh: str = "ssh") -> list[Check]:
    """ONE login through the alias with the real client, as VS Code connects: the probe on stdin, and a real local
    forward (`-L`) of that same login, tried while the session waits once the probe is done. On a server each
    login through the alias is also a login to the server (its ProxyJump): one, not one for each check."""
    login = d.LOGIN
    fix = f"run `ssh -v -F {paths.user_ssh_config} {name}` to see why; `docker logs {name}` shows sshd's side"
    port = free_port()
    # The probe runs in a subshell (it has its own `exit`); then the session says so and waits on stdin until the
    # forward has been tried.
    script = f"(\n{d.PROBE_SCRIPT}\n)\necho {SESSION_WAITS}\ncat >/dev/null\n"
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            ssh_argv(paths.user_ssh_config, name, "sh", "-s", ssh=ssh, forward=(port, SSHD_PORT),
                     options={"ConnectTimeout": CONNECT_TIMEOUT, "ExitOnForwardFailure": "yes"}),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdin is not None and proc.stdout is not None
        lines: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.append(raw.decode(errors="replace"))
                if raw.rstrip(b"\n") == SESSION_WAITS.encode():
                    done.set()
            done.set()  # the end of its output: ssh has exited, or is about to

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        forwarding: Check | None = None
        finished = False
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(script.encode())
                proc.stdin.flush()
            finished = done.wait(PROBE_TIMEOUT)
            if finished and d.probe_reached("".join(lines)) and proc.poll() is None:
                forwarding = forwarding_check(port, name=name, exited=proc.poll)
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the session's `cat` ends, and with it the login
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    output = "".join(lines)
    if not finished:
        return [Check(login, False, f"ssh {name} did not answer within {PROBE_TIMEOUT:.0f} s", fix=fix),
                *(skipped(item, "the login through the alias failed") for item in d.CONTAINER_SIDE[1:])]
    if not d.probe_reached(output):
        said = stderr.strip().splitlines()[-1:] or ["it printed nothing"]
        return [Check(login, False, f"ssh {name} exited with status {proc.returncode}: {said[0]}", fix=fix),
                *(skipped(item, "the login through the alias failed") for item in d.CONTAINER_SIDE[1:])]
    if forwarding is None:
        forwarding = Check(d.FORWARDING, False, f"ssh {name} ended before the forward could be tried",
                           fix=FORWARD_FIX.format(name=name))
    if not forwarding.ok and stderr.strip():
        forwarding = Check(forwarding.name, False, f"{forwarding.detail}: {stderr.strip().splitlines()[-1]}",
                           fix=forwarding.fix)
    values = d.parse_probe(output)
    return [d.login_check(values, name=name), forwarding,
            *d.container_checks(values, d.Environment(name, host_workspace))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FORWARD_FIX = ("devagent's sshd allows local forwarding: `devagent up {name} --recreate` restores its "
               "configuration")


def forwarding_check(port: int, *, name: str, exited: Callable[[], int | None],
                     timeout: float = FORWARD_TIMEOUT) -> Check:
    """A real local forward through the alias (ssh's `-L 127.0.0.1:PORT:127.0.0.1:22`, of the probe's login) to
    the container's own sshd: its banner proves TCP forwarding, which Remote-SSH needs (`ssh -D` or `-L`).
    EXITED: whether ssh has ended (its status), as Popen.poll."""
    label = d.FORWARDING
    fix = FORWARD_FIX.format(name=name)
    deadline = time.monotonic() + timeout
    while True:
        status = exited()
        if status is not None:
            return Check(label, False, f"ssh -L exited with status {status}", fix=fix)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(5)
                data = s.recv(256)
        except ConnectionRefusedError:  # ssh has not bound the port yet (it does so after the login)
            if time.monotonic() > deadline:
                return Check(label, False, f"ssh -L did not open 127.0.0.1:{port} within {timeout:.0f} s", fix=fix)
            time.sleep(0.05)
            continue
        except OSError as exc:
            data = f"{exc}".encode()
        if data.startswith(b"SSH-"):
            banner = data.split(b"\r\n", 1)[0].decode(errors="replace")
            return Check(label, True, f"a local forward reached the container's sshd ({banner})")
        return Check(label, False, "a local forward opened but carried nothing"
                     + (f" ({data[:60]!r})" if data else " (sshd refused the channel)"), fix=fix)
