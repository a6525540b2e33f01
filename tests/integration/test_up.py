"""`devagent up / ls / ssh / down` end to end: real engine, real sshd in the container, real OpenSSH client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from devagent.core.mounts import home
from tests.integration.conftest import BASE_IMAGE, Env, container_names, wait_for

pytestmark = pytest.mark.docker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestAProvisionedEnvironment:
    @pytest.fixture
    def up(self, env: Env, name: str, built_image: str, docker_client):  # type: ignore[no-untyped-def]
        result = env.up(name)
        yield result
        env.devagent("down", name)

    def test_the_login_through_the_written_alias_is_not_root(self, env: Env, name: str, up) -> None:
        result = env.ssh(name, "id", "-u")
        assert result.returncode == 0, result.output
        assert result.stdout.strip() == "1000"
        assert f"✔ ssh alias {name} (host key pinned)" in up.stdout
        assert "✔ login verified as dev (uid 1000)" in up.stdout

    def test_no_process_in_the_container_runs_as_root_and_none_has_capabilities(
        self, env: Env, name: str, up, docker_client
    ) -> None:
        top = docker_client.containers.get(name).top(ps_args="-o pid,uid,args")
        uids = [row[1] for row in top["Processes"]]
        assert uids and all(uid != "0" for uid in uids), top
        caps = env.ssh(name, "grep -h CapEff /proc/[0-9]*/status | sort -u")
        assert caps.returncode == 0, caps.output
        assert caps.stdout.split() == ["CapEff:", "0000000000000000"]

    def test_sshd_starts_before_the_agent_which_adopts_and_restarts_it(
        self, env: Env, name: str, up, docker_client
    ) -> None:
        container = docker_client.containers.get(name)
        # The container's shell starts sshd, then execs the agent: `up` waits on sshd's banner, not on the
        # agent's Python start (issue 19).
        assert container.attrs["Config"]["Cmd"][2] == home.SSHD_FIRST

        def processes() -> dict[str, tuple[int, int]]:
            """(pid, ppid) of the agent and of sshd's listener, as the container numbers them."""
            out = container.exec_run(["ps", "-eo", "pid=,ppid=,args="]).output.decode()
            found = {}
            for pid, ppid, args in (line.split(None, 2) for line in out.splitlines() if line.strip()):
                if args.startswith("/usr/sbin/sshd -D") or (args.startswith("sshd:") and "listener" in args):
                    found["sshd"] = (int(pid), int(ppid))
                elif " agent " in f"{args} ":
                    found["agent"] = (int(pid), int(ppid))
            return found

        first = processes()
        assert first["sshd"][1] == first["agent"][0], first  # the agent's child: it supervises it
        env_seen = env.ssh(name, "env")
        assert env_seen.returncode == 0 and "DEVAGENT_SSHD_PID" not in env_seen.stdout  # not passed on
        assert env.ssh(name, "kill", str(first["sshd"][0])).returncode in (0, 255)
        wait_for(lambda: processes().get("sshd", first["sshd"]) != first["sshd"], message="sshd started again")
        again = processes()
        assert again["sshd"][1] == again["agent"][0] == first["agent"][0], again
        wait_for(lambda: env.ssh(name, "true").returncode == 0, message="a login to the restarted sshd")
        assert "sshd exited with status" in container.logs().decode()

    def test_the_container_is_hardened_as_promised(self, env: Env, name: str, up, docker_client) -> None:
        attrs = docker_client.containers.get(name).attrs
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert host["Init"] is True
        assert host["Memory"] == 2 * 1024**3
        assert host["PidsLimit"] == 4096
        assert host["ShmSize"] == 2 * 1024**3
        bindings = attrs["NetworkSettings"]["Ports"]["2222/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
        labels = attrs["Config"]["Labels"]
        assert labels["devagent.managed"] == "true" and labels["devagent.name"] == name
        assert attrs["Config"]["Hostname"] == name  # not the temporary name it was created under

    def test_password_keyboard_interactive_and_root_logins_are_refused(self, env: Env, name: str, up) -> None:
        password = env.ssh(name, "true", options=("-o", "PubkeyAuthentication=no",
                                                  "-o", "PreferredAuthentications=password,keyboard-interactive"))
        assert password.returncode == 255
        assert "Permission denied (publickey)" in password.stderr
        root = env.ssh(name, "true", options=("-l", "root"))
        assert root.returncode == 255
        assert "Permission denied" in root.stderr

    def test_a_local_forward_reaches_a_server_inside(self, env: Env, name: str, up) -> None:
        server = subprocess.Popen(
            ["ssh", "-F", str(env.ssh_config), "-o", "BatchMode=yes", name,
             "cd /tmp && echo forwarded > hello.txt && exec python3 -m http.server 8765 --bind 127.0.0.1"],
            env=env.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        local = _free_port()
        tunnel = subprocess.Popen(
            ["ssh", "-F", str(env.ssh_config), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
             "-L", f"127.0.0.1:{local}:127.0.0.1:8765", name], env=env.environ)
        try:
            def fetch() -> str | None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{local}/hello.txt", timeout=2) as r:
                        return r.read().decode()
                except OSError:
                    return None
            assert wait_for(fetch, timeout=30, message="the forwarded http server") == "forwarded\n"
        finally:
            tunnel.terminate()
            server.terminate()
            tunnel.wait(10)
            server.wait(10)

    def test_remote_forwarding_is_refused(self, env: Env, name: str, up) -> None:
        result = env.ssh(name, "true", options=("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:9999:127.0.0.1:22"))
        assert result.returncode == 255
        assert "remote port forwarding failed" in result.stderr

    def test_ls_json_lists_it_in_a_versioned_envelope(self, env: Env, name: str, up) -> None:
        out = json.loads(env.devagent("ls", "--json", check=True).stdout)
        assert out["version"] == 1
        mine = [e for e in out["environments"] if e["name"] == name]
        assert len(mine) == 1
        assert mine[0]["state"] == "running" and mine[0]["ssh_alias"] == name and mine[0]["user"] == "dev"
        assert isinstance(mine[0]["port"], int)

    def test_ssh_sessions_find_the_images_python_and_torch(self, env: Env, name: str, up) -> None:
        result = env.ssh(name, "python -c 'import torch; print(torch.__version__)'; echo $DEVAGENT_WORKSPACE")
        assert result.returncode == 0, result.output
        assert result.stdout.split() == ["2.13.0+cpu", "/home/dev/workspace"]

    def test_devagent_ssh_runs_a_command_through_the_alias(self, env: Env, name: str, up) -> None:
        result = env.devagent("ssh", name, "--", "echo", "hi-from-$(whoami)")
        assert result.returncode == 0, result.output
        assert result.stdout.strip() == "hi-from-dev"

    def test_up_twice_changes_nothing_the_second_time(self, env: Env, name: str, up, docker_client) -> None:
        before_id = docker_client.containers.get(name).id
        files = [env.ssh_config, env.home / "ssh_config", env.home / "known_hosts"]
        before = [p.read_bytes() for p in files]
        again = env.up(name)
        assert f"✔ container {name} verified" in again.stdout
        assert docker_client.containers.get(name).id == before_id
        assert [p.read_bytes() for p in files] == before

    def test_up_with_other_options_refuses_and_names_recreate(self, env: Env, name: str, up) -> None:
        result = env.up(name, "--pids", "2048", check=False)
        assert result.returncode == 12
        assert f"Error: environment {name!r} exists with other options" in result.stderr
        assert "--recreate" in result.stderr

    def test_recreate_replaces_the_container_but_keeps_alias_and_host_key(
        self, env: Env, name: str, up, docker_client
    ) -> None:
        before_id = docker_client.containers.get(name).id
        pinned = (env.home / "known_hosts").read_text()
        result = env.up(name, "--pids", "2048", "--recreate")
        assert f"✔ container {name} replaced" in result.stdout
        after = docker_client.containers.get(name)
        assert after.id != before_id and after.attrs["HostConfig"]["PidsLimit"] == 2048
        assert (env.home / "known_hosts").read_text() == pinned
        login = env.ssh(name, "true", options=("-o", "StrictHostKeyChecking=yes"))
        assert login.returncode == 0, login.output
        assert "HOST IDENTIFICATION HAS CHANGED" not in login.stderr
        assert container_names(docker_client, name) == [name]


def test_down_removes_everything_it_made_and_keeps_the_workspace(env: Env, name: str, built_image: str,
                                                                 docker_client) -> None:
    env.ssh_config.write_text("Host other\n  User someone\n")
    original = env.ssh_config.read_bytes()
    env.up(name)
    assert env.ssh(name, "echo data > ~/workspace/result.txt").returncode == 0
    result = env.devagent("down", name, check=True)
    assert f"✔ removed container {name}" in result.stdout
    assert container_names(docker_client, name) == []
    assert env.ssh_config.read_bytes() == original
    assert not (env.home / "ssh_config").exists() or name not in (env.home / "ssh_config").read_text()
    assert name not in (env.home / "known_hosts").read_text()
    assert not list((env.home / "hostkeys").glob(f"{name}*"))
    assert not env.paths_lock(name).exists()
    assert (env.workspace(name) / "result.txt").read_text() == "data\n"
    again = env.devagent("down", name)
    assert again.returncode == 11
    assert f"Error: no environment named {name!r}" in again.stderr


def test_ten_concurrent_ups_of_different_names_all_land_in_the_config(env: Env, name: str, built_image: str,
                                                                     docker_client) -> None:
    names = [f"{name}-{i}" for i in range(10)]
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(lambda n: env.up(n, "--cpus", "0.5", check=False), names))
        assert [r.returncode for r in results] == [0] * 10, "\n".join(r.output for r in results if r.returncode)
        managed = (env.home / "ssh_config").read_text()
        for n in names:
            assert f"Host {n}\n" in managed
            assert env.ssh(n, "true").returncode == 0
        assert env.ssh_config.read_text().count("Include ") == 1
    finally:
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda n: env.devagent("down", n), names))


def test_an_existing_ed25519_identity_can_be_used_instead_of_devagents_key(
    env: Env, name: str, built_image: str, tmp_path
) -> None:
    key = tmp_path / "my key"  # a space in the path, too
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    try:
        env.up(name, "--identity", str(key))
        assert f'IdentityFile "{key}"' in (env.home / "ssh_config").read_text()
        assert env.ssh(name, "true").returncode == 0
        assert not (env.home / "id_ed25519").exists()
        # The owner is the key up ran with: down finds it through the alias's IdentityFile.
        assert env.devagent("down", name, check=True).stdout.startswith(f"✔ removed container {name}\n")
    finally:
        env.devagent("down", name)


def test_up_starts_a_stopped_environment_and_the_agent_checks_the_gpus_again(
    env: Env, name: str, built_image: str, docker_client
) -> None:
    try:
        env.up(name)
        notebook = env.workspace(name) / "lab-notebook.md"
        wait_for(lambda: notebook.exists() and "GPU check" in notebook.read_text(), message="the first GPU check")
        docker_client.containers.get(name).stop(timeout=20)
        again = env.up(name)
        assert f"✔ container {name} verified" in again.stdout
        assert env.ssh(name, "true").returncode == 0
        wait_for(lambda: notebook.read_text().count("· GPU check ·") == 2, message="the GPU check after restart")
        assert notebook.read_text().count("# Lab notebook") == 1
    finally:
        env.devagent("down", name)


# Records every request the docker SDK sends to the engine during one devagent command (the wrapper's stderr, last).
RECORDING = """
import sys, requests.sessions
sent = []
send = requests.sessions.Session.send
def recording(self, request, **kwargs):
    sent.append(f"{request.method} {request.path_url}")
    return send(self, request, **kwargs)
requests.sessions.Session.send = recording
from devagent.cli import main
code = main(sys.argv[1:])
print("\\n".join(["REQUESTS", *sent]), file=sys.stderr)
sys.exit(code)
"""


def test_up_asks_the_engine_only_what_the_floor_does_not_know(env: Env, name: str, built_image: str) -> None:
    """Issue 19: `up` made 22 engine requests where a bare `docker run` makes a few. Gone: the ping after the
    client's own /version, the inspect the SDK makes after create, an inspect of every managed container on the
    engine for leftovers, the archive request for the login user's uid (the image's label has it), and two of
    the four image inspects."""
    result = subprocess.run([sys.executable, "-c", RECORDING, "up", name, "--base-image", BASE_IMAGE,
                             "--workspace", str(env.workspace(name)), "--memory", "2g"],
                            capture_output=True, text=True, env=env.environ, timeout=300, check=False)
    try:
        assert result.returncode == 0, result.stderr
        sent = [urllib.parse.unquote(line) for line in result.stderr.split("REQUESTS\n", 1)[1].splitlines()]
        paths = [line.split("?", 1)[0] for line in sent]
        assert not any(p.endswith("/_ping") for p in paths)
        created = next(i for i, p in enumerate(paths) if p.endswith("/containers/create"))
        assert paths[created + 1].startswith("PUT ") and paths[created + 1].endswith("/archive")  # keys, at once
        assert not any(p.startswith("GET ") and p.endswith("/archive") for p in paths)  # no /etc/passwd read
        assert len([p for p in paths if "/images/" in p]) == 2  # the base image and the derived one, once each
        managed = [line for line in sent if "/containers/json" in line and "devagent.managed" in line]
        assert managed and all(f"devagent.name={name}" in line for line in managed)
    finally:
        env.devagent("down", name)
