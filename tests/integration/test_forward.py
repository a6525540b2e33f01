"""`devagent forward`, end to end: a real server inside a real environment (Python's http.server on the container's
own 127.0.0.1), reached from here through the real OpenSSH client and the alias, on 127.0.0.1 only; a stop signal
to devagent ends the forward with 128+N and leaves no ssh process behind. All traffic stays on loopback.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devagent.control.tunnels.port_forward import SshForward, any_free_port
from tests.integration.conftest import RUN_PREFIX, Env, wait_for
from tests.integration.forwarding import Forward, is_running

pytestmark = pytest.mark.docker

INSIDE_PORT = 8000  # the environment's own 127.0.0.1: nothing else listens there


@dataclass
class Environment:
    env: Env
    name: str
    page: str  # what the server inside serves at /page.txt


@pytest.fixture(scope="module")
def environment(docker_client: object, built_image: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """One environment for the module, with http.server on its 127.0.0.1:INSIDE_PORT serving the workspace."""
    root = tmp_path_factory.mktemp("forward") / "user"
    (root / ".ssh").mkdir(parents=True, mode=0o700)
    env, name = Env(root), f"{RUN_PREFIX}fw{secrets.token_hex(2)}"
    env.up(name)
    try:
        page = f"served inside {name}: {secrets.token_hex(8)}\n"
        (env.workspace(name) / "page.txt").write_text(page)
        start_http_server(env, name, INSIDE_PORT)
        yield Environment(env, name, page)
    finally:
        env.devagent("down", name)


def start_http_server(env: Env, name: str, port: int) -> None:
    """`python3 -m http.server PORT --bind 127.0.0.1` inside, detached from the ssh session that starts it."""
    started = env.ssh(name, f"cd ~/workspace || exit 1; nohup python3 -m http.server {port} --bind 127.0.0.1 "
                            "</dev/null >/tmp/http-server.log 2>&1 & "
                            f"for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; "
                            "sleep 0.1; done; cat /tmp/http-server.log; exit 1")
    assert started.returncode == 0, started.output


@pytest.fixture
def forwards() -> Iterator[list[Forward]]:
    made: list[Forward] = []
    yield made
    for forward in made:
        forward.kill()


def listeners(port: int) -> list[tuple[str, int]]:
    """(local address, socket inode) of every TCP socket listening on PORT here, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.append((address, int(fields[9])))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing (the test's own connection, say)
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def get(url: str, forward: Forward | None = None) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a 127.0.0.1 URL the test built
            return str(response.read().decode())
    except OSError as exc:
        if forward is None:
            raise
        port = int(url.split(":")[2].split("/", maxsplit=1)[0])
        raise AssertionError(f"{url}: {exc}; devagent {forward.process.poll()}, children {forward.children()}, "
                             f"listeners {listeners(port)}, stderr {forward.stderr}") from exc


# Started as in a terminal session, and as a shell script's background job or a CI runner starts it (SIGINT and
# SIGQUIT ignored): Ctrl-C must end it either way.
@pytest.mark.parametrize(("sig", "status", "ignored"), [
    (signal.SIGINT, 130, ()), (signal.SIGTERM, 143, ()), (signal.SIGHUP, 129, ()),
    (signal.SIGINT, 130, (signal.SIGINT, signal.SIGQUIT)),
], ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGINT-background-job"])
def test_a_server_inside_is_reached_through_the_forward_on_127_0_0_1_only_and_a_stop_signal_leaves_no_ssh(
        environment: Environment, forwards: list[Forward], sig: int, status: int, ignored: tuple[int, ...]) -> None:
    forward = Forward(environment.env, environment.name, f"{INSIDE_PORT}:0", ignored=ignored)
    forwards.append(forward)
    url = forward.url()
    local = int(url.rsplit(":", 1)[1].rstrip("/"))
    assert url == f"http://127.0.0.1:{local}/"
    assert forward.stdout[0] == (f"✔ forwarding {environment.name}'s 127.0.0.1:{INSIDE_PORT} to 127.0.0.1:{local} "
                                 "on this machine\n")

    assert get(url + "page.txt", forward) == environment.page

    # Listening when the URL was printed, on 127.0.0.1 alone, and the listener is devagent's ssh child.
    (ssh_pid,) = forward.children()
    assert Path(f"/proc/{ssh_pid}/comm").read_text().strip() == "ssh"
    (listener,) = listeners(local)
    assert listener[0] == "0100007F"  # 127.0.0.1, little-endian hex
    assert listener[1] in socket_inodes(ssh_pid)

    code, err = forward.stop(sig)
    assert code == status, err
    assert err.endswith("forward closed\n"), err
    assert not is_running(ssh_pid)
    assert listeners(local) == []


def test_a_killed_devagent_takes_its_ssh_with_it(environment: Environment, forwards: list[Forward]) -> None:
    forward = Forward(environment.env, environment.name, f"{INSIDE_PORT}:0")
    forwards.append(forward)
    local = int(forward.url().rsplit(":", 1)[1].rstrip("/"))
    (ssh_pid,) = forward.children()

    forward.stop(signal.SIGKILL)  # no handler runs: only PR_SET_PDEATHSIG can end ssh now

    deadline = time.monotonic() + 30
    while is_running(ssh_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(ssh_pid)
    assert listeners(local) == []


def test_local_defaults_to_the_same_port_number(environment: Environment, forwards: list[Forward]) -> None:
    port = any_free_port()
    start_http_server(environment.env, environment.name, port)
    forward = Forward(environment.env, environment.name, str(port))
    forwards.append(forward)
    assert forward.url() == f"http://127.0.0.1:{port}/"
    assert get(f"http://127.0.0.1:{port}/page.txt", forward) == environment.page
    assert forward.stop()[0] == 130


def test_no_port_and_no_forward_ports_from_a_devcontainer_json_is_refused(environment: Environment) -> None:
    result = environment.env.devagent("forward", environment.name, timeout=60)
    assert (result.returncode, result.stdout) == (2, ""), result.output
    assert result.stderr == (
        f"Error: environment {environment.name!r} names no port to forward (no forwardPorts in a devcontainer.json "
        "it was made from)\n"
        f"  hint: give the port: devagent forward {environment.name} PORT[:LOCAL]\n")


def test_a_local_port_in_use_is_refused_naming_it_and_starts_no_ssh(environment: Environment) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = environment.env.devagent("forward", environment.name, f"{INSIDE_PORT}:{taken}", timeout=60)
    assert result.returncode == 18, result.output
    assert result.stderr == (
        f"Error: port {taken} on this machine's 127.0.0.1 is taken by another program\n"
        "  hint: pick another local port (PORT:LOCAL, or --port), or 0 for any free one; "
        f"`ss -ltnp 'sport = :{taken}'` shows who holds it\n")
    assert result.stdout == ""


def test_nothing_listening_inside_is_said_by_ssh_while_the_forward_stays_up(
        environment: Environment, forwards: list[Forward]) -> None:
    forward = Forward(environment.env, environment.name, f"{any_free_port()}:0")  # nothing listens there inside
    forwards.append(forward)
    url = forward.url()
    with pytest.raises(OSError):  # the connection is accepted here, then closed: ssh could not connect inside
        get(url)
    wait_for(lambda: any("open failed: connect failed: Connection refused" in line for line in forward.stderr),
             message="ssh's error on devagent's stderr")
    assert forward.process.poll() is None  # the forward stays: the server inside may start later
    assert forward.stop()[0] == 130



def test_the_forward_listens_the_moment_ssh_is_said_to_be_up_every_time(environment: Environment) -> None:
    # ssh logs "Local forwarding listening on … port N." before it binds: taken as the sign, about one start in 30
    # printed a URL that refused connections for a moment. Many starts in a row, each checked at once.
    config = environment.env.ssh_config
    for _ in range(30):
        forward = SshForward(config, environment.name, local=any_free_port(), remote=INSIDE_PORT)
        try:
            forward.start()
            forward.wait_listening(timeout=60)
            assert [address for address, _ in listeners(forward.local)] == ["0100007F"], list(forward.tail)
        finally:
            forward.close()
        assert forward.process is not None and not is_running(forward.process.pid)
