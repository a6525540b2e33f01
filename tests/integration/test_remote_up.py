"""`devagent up NAME --host SERVER` from a laptop that reaches the server only through ssh (tests/integration/
topology.py: a network and mount namespace with only `lo` and no engine socket, a real test sshd on this machine's
127.0.0.1 reached through a Unix-socket relay, this machine's real Docker Engine as the server's).

The story a user lives: up on the server, the alias on the laptop jumping through it (the laptop cannot reach the
environment's port otherwise), ssh, a -L forward and VS Code's -D session through it, `devagent run` writing the
notebook on the server, ls with a HOST column across two servers, down leaving nothing on either side; and each
failure with its exit code, nothing left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devagent.errors import ExitStatus
from tests.integration.conftest import BASE_IMAGE, Result, container_names, home_volumes, wait_for
from tests.integration.topology import Laptop, Topology, descendants

pytestmark = pytest.mark.docker

SERVER_HOMES = {"gpu-server": Path("/home/devagent-srv"), "gpu-server2": Path("/home/devagent-srv2")}
SERVER_UIDS = {"gpu-server": "devagent-srv", "gpu-server2": "devagent-srv2"}

CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""


def up(laptop: Laptop, name: str, host: str, *extra: str, check: bool = True) -> Result:
    return laptop.devagent("up", name, "--host", host, "--base-image", BASE_IMAGE, "--memory", "2g", *extra,
                           check=check, timeout=900)


def record(laptop: Laptop, name: str) -> dict[str, object] | None:
    path = laptop.devagent_home / "environments" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None  # type: ignore[no-any-return]


def nothing_on_the_laptop(laptop: Laptop, name: str) -> None:
    assert record(laptop, name) is None
    managed = laptop.devagent_home / "ssh_config"
    assert not managed.exists() or f"Host {name}\n" not in managed.read_text()
    known = laptop.devagent_home / "known_hosts"
    assert not known.exists() or name not in known.read_text()
    assert not list((laptop.devagent_home / "hostkeys").glob(f"{name}*"))
    assert "Include" not in laptop.ssh_config.read_text() or managed.exists()


def _printed_url(process: subprocess.Popen[bytes], timeout: float = 90) -> str:
    """The URL `devagent forward` prints (`  open http://…`) once the forward is up; an AssertionError after
    TIMEOUT seconds, or when it ends first."""
    assert process.stdout is not None
    fd, seen, deadline = process.stdout.fileno(), b"", time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
        for line in seen.decode(errors="replace").splitlines():
            if line.strip().startswith("open http://"):
                return line.split()[1]
    raise AssertionError(f"no URL from devagent forward within {timeout:.0f} s: {seen.decode(errors='replace')}")


def forwarded_page(laptop: Laptop, name: str) -> str:
    """A page served by `python3 -m http.server` on environment NAME's 127.0.0.1:8000, fetched in the laptop through
    `devagent forward NAME 8000:0`, which Ctrl-C then ends."""
    started = laptop.ssh(name, "cd ~/workspace || exit 1; echo remote-page > page.txt; nohup python3 -m http.server "
                               "8000 --bind 127.0.0.1 </dev/null >/tmp/http.log 2>&1 & for _ in $(seq 100); do "
                               "(exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    assert started.returncode == 0, started.output
    forward = laptop.popen([sys.executable, "-m", "devagent", "forward", name, "8000:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        url = _printed_url(forward)
        page = laptop.python("-c", "import sys, urllib.request; "
                                   "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end='')",
                             url + "page.txt")
        assert page.returncode == 0, page.output
    finally:
        forward.send_signal(signal.SIGINT)
        _, err = forward.communicate(timeout=30)
    assert forward.returncode == 130 and err.decode().endswith("forward closed\n"), err.decode()
    return page.stdout


@pytest.fixture
def workspaces(name: str) -> Iterator[list[Path]]:
    """Server-side folders a test made or may make (~/devagent/NAME of each server user), removed afterwards."""
    made = [home / "devagent" / f"{name}{suffix}" for home in SERVER_HOMES.values() for suffix in ("", "-b")]
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


class TestFromTheLaptop:
    def test_up_ssh_forwards_vscode_run_ls_and_down_all_through_the_server(
            self, topology: Topology, name: str, workspaces: list[Path], docker_client: object) -> None:
        laptop = topology.laptop
        made = up(laptop, name, "gpu-server", "--vscode")
        assert f"✔ ssh alias {name} via gpu-server (host key pinned)\n" in made.stdout
        workspace = SERVER_HOMES["gpu-server"] / "devagent" / name
        assert f"  workspace {workspace} on gpu-server → /home/dev/workspace\n" in made.stdout
        # --vscode: the snippets and tasks in the workspace on the server, written in the environment as its user.
        assert "  .vscode/devagent.code-snippets: " in made.stdout and "  .vscode/tasks.json: " in made.stdout
        for placed in ("devagent.code-snippets", "tasks.json"):
            assert (workspace / ".vscode" / placed).stat().st_uid == workspace.stat().st_uid
        saved = record(laptop, name)
        assert saved is not None and saved["server"] == "gpu-server"
        port = saved["port"]
        assert isinstance(port, int)

        # The environment's port is on the server's loopback: the laptop cannot dial it, only jump to it.
        assert laptop.python("-c", CONNECT, str(port)).stdout == "ConnectionRefusedError\n"
        block = laptop.run(["ssh", "-G", "-F", str(laptop.ssh_config), name]).stdout.splitlines()
        assert {"hostname 127.0.0.1", f"port {port}", "proxyjump gpu-server", f"hostkeyalias {name}",
                "stricthostkeychecking true"} <= set(block)

        login = laptop.ssh(name, "id", "-u")
        server_uid = subprocess.run(["id", "-u", SERVER_UIDS["gpu-server"]], capture_output=True, text=True,
                                    check=True).stdout
        assert (login.returncode, login.stdout) == (0, server_uid), login.output  # the server user's uid, not 0
        assert workspace.stat().st_uid == int(server_uid)

        client = [sys.executable, "-m", "tests.integration.laptop_client"]
        forwarded = laptop.run([*client, "forward", str(laptop.ssh_config), name], timeout=60)
        assert forwarded.stdout.startswith("SSH-2.0-OpenSSH_"), forwarded.output
        vscode = laptop.run([*client, "vscode", str(laptop.ssh_config), name], timeout=90)
        assert vscode.stdout.startswith("HTTP/1.0 200 OK"), vscode.output

        # `devagent forward` through the alias: a server on the environment's 127.0.0.1 reached from the laptop.
        assert forwarded_page(laptop, name) == "remote-page\n"

        ran = laptop.ssh(name, "cd ~/workspace && devagent run -- python3 -c 'print(42)'", timeout=120)
        assert ran.returncode == 0 and "42" in ran.stdout, ran.output
        notebook = workspace / "lab-notebook.md"
        wait_for(lambda: notebook.exists() and "· run 1 ·" in notebook.read_text(), timeout=30,
                 message="the run's section in the notebook on the server")

        before = topology.sshds[0].log.count("Accepted publickey for ")
        doctor = laptop.devagent("doctor", name)
        assert doctor.returncode == 0, doctor.output
        # One login to the server for its engine, one through the alias (its jump) for the probe and the forward.
        assert topology.sshds[0].log.count("Accepted publickey for ") - before == 2
        assert "✔ Docker Engine on gpu-server — answers" in doctor.stdout
        assert f"✔ container running — {name} is running, sshd published on gpu-server's 127.0.0.1:{port}\n" \
            in doctor.stdout
        assert f"✔ ssh -G {name} — devagent's values: 127.0.0.1:{port} via gpu-server as dev" in doctor.stdout
        assert "✔ TCP forwarding — a local forward reached the container's sshd" in doctor.stdout

        listed = laptop.devagent("ls", check=True)
        header, row = listed.stdout.splitlines()
        assert header.split() == ["NAME", "STATE", "HEALTH", "PORT", "USER", "GPUS", "INVITED", "HOST", "WORKSPACE"]
        assert row.split()[0] == name and row.split()[-2:] == ["gpu-server", str(workspace)]

        gone = laptop.devagent("down", name, check=True)
        assert gone.stdout.startswith(
            f"✔ removed container {name}\n✔ removed ssh alias {name} and its pinned host key\n"
            f"✔ removed host key\n✔ removed devagent's record of {name} on gpu-server\n"
            f"✔ removed home volume devagent-home-{name} ("), gone.output  # the home's size follows, then ")"
        assert gone.stdout.endswith(")\n") and gone.stdout.count("\n") == 5, gone.output
        assert container_names(docker_client, name) == []
        nothing_on_the_laptop(laptop, name)
        assert notebook.exists()  # down keeps the workspace, as locally
        assert laptop.devagent("ls", check=True).stdout == "no environments; create one with: devagent up NAME\n"


    def test_the_alias_keeps_working_after_docker_restart_of_the_container_on_the_server(
            self, topology: Topology, name: str, workspaces: list[Path], docker_client) -> None:  # type: ignore[no-untyped-def]
        laptop = topology.laptop
        up(laptop, name, "gpu-server")
        alias = (laptop.devagent_home / "ssh_config").read_bytes()
        docker_client.api.restart(name, timeout=5)  # on the server, behind devagent's back
        wait_for(lambda: laptop.ssh(name, "true").returncode == 0, timeout=60,
                 message="the alias to log in again after the restart")
        assert laptop.ssh(name, "id", "-un").stdout == "dev\n"
        assert (laptop.devagent_home / "ssh_config").read_bytes() == alias  # the port stayed: nothing rewritten
        laptop.devagent("down", name, check=True)


    def test_the_home_on_the_servers_engine_outlives_recreate_and_down_removes_it(
            self, topology: Topology, name: str, workspaces: list[Path], docker_client) -> None:  # type: ignore[no-untyped-def]
        laptop = topology.laptop
        up(laptop, name, "gpu-server")
        written = laptop.ssh(name, "mkdir -p ~/.vscode-server/bin/c && echo kept > ~/.vscode-server/bin/c/node")
        assert written.returncode == 0, written.output
        recreated = up(laptop, name, "gpu-server", "--recreate", "--cpus", "1")
        assert "✔ login verified" in recreated.stdout, recreated.output
        assert laptop.ssh(name, "stat -c %U ~/.vscode-server/bin/c/node; cat ~/.vscode-server/bin/c/node"
                          ).stdout == "dev\nkept\n"
        down = laptop.devagent("down", name, check=True)
        assert f"✔ removed home volume devagent-home-{name} (" in down.stdout, down.output
        assert home_volumes(docker_client, name) == []  # gone from the server's engine

    def test_a_teammate_invited_to_an_environment_on_a_server_jumps_through_that_server(
            self, topology: Topology, name: str, workspaces: list[Path]) -> None:
        laptop = topology.laptop
        up(laptop, name, "gpu-server")
        alice = laptop.root / "alice"
        alice.mkdir(mode=0o700)
        laptop.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(alice / "id_ed25519")])
        shutil.copy(alice / "id_ed25519.pub", alice / "alice.pub")

        shared = laptop.devagent("share", name, "--key", str(alice / "alice.pub"))
        assert shared.returncode == 0, shared.output  # over the server's engine, found from devagent's record
        exported = laptop.devagent("share", name, "--export", "alice", check=True).stdout
        assert "  ProxyJump gpu-server\n" in exported and "  HostName 127.0.0.1\n" in exported
        block, _, pin = exported.partition("# and append this line to ~/.ssh/known_hosts")
        # Her machine: the exported block and pin, and her own way to the server (here the laptop's gpu-server).
        server_block = laptop.ssh_config.read_text().split("Host gpu-server\n", 1)[1].split("\nHost ", 1)[0]
        (alice / "config").write_text(block + "\nHost gpu-server\n" + server_block + "\n")
        (alice / "known_hosts").write_text(pin.split("\n", 1)[1])
        login = laptop.run(["ssh", "-F", str(alice / "config"), "-o", f"UserKnownHostsFile={alice / 'known_hosts'}",
                            "-o", "BatchMode=yes", "-i", str(alice / "id_ed25519"), name, "id", "-un"], timeout=60)
        assert (login.returncode, login.stdout) == (0, "dev\n"), login.output

        unshared = laptop.devagent("unshare", name, "alice")
        assert unshared.returncode == 0, unshared.output
        again = laptop.run(["ssh", "-F", str(alice / "config"), "-o", f"UserKnownHostsFile={alice / 'known_hosts'}",
                            "-o", "BatchMode=yes", "-i", str(alice / "id_ed25519"), name, "true"], timeout=60)
        assert again.returncode == 255 and "Permission denied (publickey)" in again.stderr, again.output
        laptop.devagent("down", name, check=True)


class TestSeveralServers:
    def test_ls_shows_both_servers_a_name_is_unique_across_them_and_an_unreachable_one_fails_none(
            self, topology: Topology, name: str, workspaces: list[Path]) -> None:
        laptop = topology.laptop
        other = f"{name}-b"
        up(laptop, name, "gpu-server")
        up(laptop, other, "gpu-server2")
        rows = json.loads(laptop.devagent("ls", "--json", check=True).stdout)["environments"]
        assert [(r["name"], r["host"], r["state"]) for r in rows] == [(name, "gpu-server", "running"),
                                                                     (other, "gpu-server2", "running")]
        only = json.loads(laptop.devagent("ls", "--json", "--host", "gpu-server2", check=True).stdout)
        assert [r["name"] for r in only["environments"]] == [other]

        taken = up(laptop, name, "gpu-server2", check=False)
        assert taken.returncode == ExitStatus.CONFLICT
        assert f"Error: environment {name!r} exists on gpu-server; names are unique across servers\n" in taken.stderr

        topology.sshds[1].process.kill()  # gpu-server2 goes away
        topology.sshds[1].process.wait()
        listed = laptop.devagent("ls")
        assert listed.returncode == 0, listed.output
        lines = listed.stdout.splitlines()
        assert lines[1].split()[:2] == [name, "running"]
        assert lines[2].split()[:2] == [other, "unreachable"] and "gpu-server2" in lines[2]
        assert "gpu-server2: unreachable: ssh could not reach gpu-server2" in listed.stderr

        refused = laptop.devagent("down", other)
        assert refused.returncode == ExitStatus.SERVER_UNREACHABLE, refused.output
        assert record(laptop, other) is not None  # nothing was removed on the laptop either
        laptop.devagent("down", name, check=True)


class TestFailures:
    def test_a_key_the_server_refuses_is_an_authentication_error_with_ssh_s_words_and_no_prompt(
            self, topology: Topology, name: str) -> None:
        laptop = topology.laptop
        stranger = laptop.root / "stranger_ed25519"
        laptop.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)])
        laptop.add_alias("wrong-key", topology.sshds[0], user="devagent-srv", identity=stranger)
        result = up(laptop, name, "wrong-key", check=False)
        assert result.returncode == ExitStatus.SERVER_AUTH, result.output
        assert "Error: ssh could not log in to wrong-key (authentication failed; devagent never prompts)\n" \
            in result.stderr
        assert "Permission denied (publickey)" in result.stderr  # ssh's own words
        nothing_on_the_laptop(laptop, name)

    def test_a_server_user_outside_the_docker_group_is_told_to_join_it(self, topology: Topology, name: str) -> None:
        result = up(topology.laptop, name, "gpu-nodock", check=False)
        assert result.returncode == ExitStatus.DOCKER_PERMISSION, result.output
        assert "may not use the Docker Engine's socket" in result.stderr
        assert "add them to the docker group" in result.stderr
        nothing_on_the_laptop(topology.laptop, name)

    def test_a_server_that_refuses_tcp_forwarding_says_which_setting_and_leaves_nothing(
            self, topology: Topology, name: str, workspaces: list[Path], docker_client: object) -> None:
        laptop = topology.laptop
        laptop.add_alias("no-tcp", topology.start_sshd(allow_tcp_forwarding="no"), user="devagent-srv")
        result = up(laptop, name, "no-tcp", check=False)
        assert result.returncode == ExitStatus.SERVER_REFUSED, result.output
        assert "Error: the sshd on no-tcp refuses forwarding (TCP and Unix sockets)\n" in result.stderr
        assert "AllowTcpForwarding yes" in result.stderr
        assert container_names(docker_client, name) == []
        nothing_on_the_laptop(laptop, name)
        assert not (SERVER_HOMES["gpu-server"] / "devagent" / name).exists()

    def test_an_existing_workspace_the_server_user_cannot_write_is_refused(
            self, topology: Topology, name: str, docker_client: object) -> None:
        locked = SERVER_HOMES["gpu-server"] / f"locked-{name}"
        locked.mkdir(mode=0o755)  # root's
        try:
            result = up(topology.laptop, name, "gpu-server", "--workspace", locked.name, check=False)
            uid = subprocess.run(["id", "-u", "devagent-srv"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            assert result.returncode == ExitStatus.USAGE, result.output
            assert (f"Error: workspace {locked} on gpu-server is not writable by uid {uid}, the login user inside "
                    "the container\n") in result.stderr
            assert container_names(docker_client, name) == []
            nothing_on_the_laptop(topology.laptop, name)
        finally:
            locked.rmdir()

    def test_a_link_that_drops_mid_up_is_rolled_back_on_the_server_and_the_laptop(
            self, topology: Topology, name: str, workspaces: list[Path], docker_client: object) -> None:
        laptop = topology.laptop
        paused = laptop.root / "paused"
        proc = laptop.popen([sys.executable, "-m", "tests.integration.paused_devagent", "up", name, "--host",
                             "gpu-server", "--base-image", BASE_IMAGE, "--memory", "2g"],
                            env={"DEVAGENT_TEST_PAUSE_AT": "started", "DEVAGENT_TEST_PAUSED_FILE": str(paused)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(paused.exists, timeout=600, message="up to reach the started container")
            assert container_names(docker_client, name)  # made on the server, under its temporary name
            relay = topology.sshds[0].relay_process
            for pid in descendants([relay.pid]):  # the relayed connections, not the relay: the server stays up
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            paused.unlink()
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == ExitStatus.SERVER_UNREACHABLE, (out + err).decode()
        assert b"the ssh connection to gpu-server dropped" in err
        assert container_names(docker_client, name) == []
        nothing_on_the_laptop(laptop, name)
        assert not (SERVER_HOMES["gpu-server"] / "devagent" / name).exists()
