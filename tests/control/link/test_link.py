"""ServerLink's pure parts and local bookkeeping, without a server: the probe script and what its output means,
what ssh's words mean, Docker contexts, and the folders a killed devagent leaves. The link itself is tested
end to end through the laptop -> server topology (tests/integration/test_server_link.py)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from devagent.control.link.link import (
    FOLDER_PREFIX,
    explain_ssh_failure,
    link_base,
    probe_script,
    read_facts,
    resolve_server,
    sweep_stale,
)
from devagent.core.ssh.destination import Server
from devagent.errors import DevagentError, ExitStatus

GPU = Server("gpu")
FACTS = "user=al\nuid=1000\ngid=100\nhome=/home/al\n"


def test_the_first_usable_socket_is_the_engine() -> None:
    facts = read_facts(GPU, FACTS + "missing=/var/run/docker.sock\nusable=/run/docker.sock\n"
                       "usable=/run/user/1000/docker.sock\n", named=None)
    assert (facts.user, facts.uid, facts.gid, facts.home, facts.docker_socket) == (
        "al", 1000, 100, "/home/al", "/run/docker.sock")


def test_a_socket_the_user_may_not_use_is_a_permission_error_that_names_the_docker_group() -> None:
    with pytest.raises(DevagentError) as caught:
        read_facts(GPU, FACTS + "denied=/var/run/docker.sock\nmissing=/run/user/1000/docker.sock\n", named=None)
    assert caught.value.status == ExitStatus.DOCKER_PERMISSION
    assert caught.value.message == "al on gpu may not use the Docker Engine's socket /var/run/docker.sock " \
                                   "(permission denied)"
    assert caught.value.hint == ("on gpu, add them to the docker group (sudo usermod -aG docker al, then log in "
                                 "again); that group is root-equivalent on that server")


def test_a_usable_rootless_socket_wins_over_a_denied_rootful_one() -> None:
    facts = read_facts(GPU, FACTS + "denied=/var/run/docker.sock\nusable=/run/user/1000/docker.sock\n", named=None)
    assert facts.docker_socket == "/run/user/1000/docker.sock"


def test_a_login_node_needs_no_engine() -> None:
    """A Slurm login node runs only Slurm's commands: no engine there is no error (engine=False)."""
    for output in ("missing=/var/run/docker.sock\n", "denied=/var/run/docker.sock\n"):
        assert read_facts(GPU, FACTS + output, named=None, engine=False).docker_socket == ""
    facts = read_facts(GPU, FACTS + "usable=/run/docker.sock\n", named=None, engine=False)
    assert facts.docker_socket == "/run/docker.sock"


def test_no_socket_anywhere_says_where_it_looked() -> None:
    with pytest.raises(DevagentError) as caught:
        read_facts(GPU, FACTS + "missing=/var/run/docker.sock\nmissing=/run/docker.sock\n"
                   "missing=/var/run/docker.sock\n", named=None)
    assert caught.value.status == ExitStatus.DOCKER_UNAVAILABLE
    assert caught.value.message == "no Docker Engine socket on gpu"
    assert "looked at /var/run/docker.sock, /run/docker.sock; if its socket is elsewhere, name it: " \
           "DEVAGENT_DOCKER_SOCKET" in str(caught.value.hint)


def test_output_without_an_identity_is_not_taken_for_facts() -> None:
    with pytest.raises(DevagentError) as caught:
        read_facts(GPU, "Welcome to the GPU cluster!\n", named=None)
    assert caught.value.status == ExitStatus.SERVER_UNREACHABLE
    assert caught.value.details == "Welcome to the GPU cluster!\n"


@pytest.mark.parametrize("named", [False, True])
def test_the_probe_script_finds_a_socket_under_sh(tmp_path: Path, named: bool) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        env = {"PATH": os.environ["PATH"], "HOME": "/nowhere", "DOCKER_HOST": f"unix://{path}"}
        script = probe_script(str(path) if named else None)
        out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, env=env, check=True)
    facts = read_facts(GPU, out.stdout, named=None)
    assert facts.docker_socket == str(path)
    assert facts.home == "/nowhere"
    assert facts.uid == os.getuid()


def test_the_probe_resolves_each_path_it_is_given_as_the_server_sees_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "real").mkdir(parents=True)
    (home / "link").symlink_to(home / "real")
    paths = ("~", "~/link/x", "code/../y", "/srv//a/./b", "it's a b")
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    out = subprocess.run(["sh", "-s", "--", *paths], input=probe_script(None), capture_output=True, text=True,
                         env=env, check=True)
    facts = read_facts(GPU, FACTS + "usable=/run/docker.sock\n" + out.stdout, named=None, resolve=paths)
    assert facts.resolved == {"~": str(home), "~/link/x": f"{home}/real/x", "code/../y": f"{home}/y",
                              "/srv//a/./b": "/srv/a/b", "it's a b": f"{home}/it's a b"}


def test_probe_output_that_does_not_answer_every_path_resolves_none() -> None:
    facts = read_facts(GPU, FACTS + "usable=/run/docker.sock\nresolved=/a\n", named=None, resolve=("x", "y"))
    assert facts.resolved == {}


def test_a_named_socket_with_spaces_and_quotes_stays_one_word() -> None:
    script = probe_script("/tmp/it's a socket")
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=True)
    assert "missing=/tmp/it's a socket\n" in out.stdout


@pytest.mark.parametrize(("words", "status", "message"), [
    ("ssh: Could not resolve hostname gpu: Name or service not known", ExitStatus.SERVER_UNREACHABLE,
     "ssh does not know the server gpu"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection refused", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection timed out", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("kex_exchange_identification: Connection closed by remote host", ExitStatus.SERVER_UNREACHABLE,
     "ssh could not reach gpu"),
    ("al@gpu: Permission denied (publickey).", ExitStatus.SERVER_AUTH,
     "ssh could not log in to gpu (authentication failed; devagent never prompts)"),
    ("Received disconnect from 10.0.0.7 port 22:2: Too many authentication failures", ExitStatus.SERVER_AUTH,
     "ssh could not log in to gpu (authentication failed; devagent never prompts)"),
    ("Host key verification failed.", ExitStatus.SERVER_AUTH, "ssh could not verify gpu's host key"),
    ("/home/al/.ssh/config: line 3: Bad configuration option: hostnme\n/home/al/.ssh/config: terminating, 1 bad "
     "configuration options", ExitStatus.SSH_CONFIG, "ssh cannot read your ssh config /c"),
    ("", ExitStatus.SERVER_UNREACHABLE, "ssh could not reach gpu"),
])
def test_what_ssh_said_decides_the_exit_code_and_its_words_are_kept(words: str, status: ExitStatus,
                                                                    message: str) -> None:
    error = explain_ssh_failure(GPU, words, ssh_config=Path("/c"))
    assert (error.status, error.message) == (status, message)
    assert error.details == (words or "(ssh printed nothing)")


def _context(home: Path, name: str, endpoint: str, *, stored_name: str | None = None) -> None:
    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": stored_name or name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": endpoint}}}))


def test_a_docker_context_with_an_ssh_endpoint_is_that_endpoint(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://alice@gpu.lab:2222")
    server = resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert (server.text, server.proxy_jump) == ("ssh://alice@gpu.lab:2222", "alice@gpu.lab:2222")
    # ssh://NAME is the ssh alias of that name, whatever the contexts say
    assert resolve_server("ssh://gpu", environ={"HOME": str(tmp_path)}).text == "ssh://gpu"


def test_docker_config_decides_where_contexts_are(tmp_path: Path) -> None:
    _context(tmp_path / "elsewhere", "gpu", "ssh://bob@h")
    environ = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "elsewhere" / ".docker")}
    assert resolve_server("gpu", environ=environ).text == "ssh://bob@h"
    assert resolve_server("gpu", environ={"HOME": str(tmp_path)}).text == "gpu"  # no context: the alias


def test_a_docker_context_that_is_not_ssh_is_refused_naming_the_way_out(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "tcp://10.0.0.7:2376")
    with pytest.raises(DevagentError) as caught:
        resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.message == "the Docker context 'gpu' does not reach its engine over ssh ('tcp://10.0.0.7:2376')"
    assert "write ssh://gpu for the ssh alias of that name" in str(caught.value.hint)


def test_a_docker_context_with_a_hostile_endpoint_is_refused(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://-oProxyCommand=x")
    with pytest.raises(DevagentError) as caught:
        resolve_server("gpu", environ={"HOME": str(tmp_path)})
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.message.startswith("the Docker context 'gpu': server 'ssh://-oProxyCommand=x' is not usable")


def test_a_context_file_naming_another_context_is_not_taken(tmp_path: Path) -> None:
    _context(tmp_path, "gpu", "ssh://x@y", stored_name="other")
    assert resolve_server("gpu", environ={"HOME": str(tmp_path)}).text == "gpu"


def test_link_folders_go_to_the_users_runtime_folder_when_it_is_private(tmp_path: Path) -> None:
    # A short one, as /run/user/UID is: pytest's own temp paths can be too long for a socket path already.
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    try:
        assert link_base({"XDG_RUNTIME_DIR": str(runtime)}) == runtime
        runtime.chmod(0o755)
        assert link_base({"XDG_RUNTIME_DIR": str(runtime)}) != runtime
    finally:
        runtime.rmdir()
    long = tmp_path / ("x" * 80)
    long.mkdir(mode=0o700)
    assert link_base({"XDG_RUNTIME_DIR": str(long)}) != long


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_folder_whose_devagent_is_gone_is_swept_and_a_living_ones_is_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{FOLDER_PREFIX}dead"
    dead.mkdir()
    (dead / "owner").write_text(f"{_dead_pid()} 1\n")
    alive = tmp_path / f"{FOLDER_PREFIX}alive"
    alive.mkdir()
    start = Path("/proc/self/stat").read_text().rsplit(")", 1)[-1].split()[19]
    (alive / "owner").write_text(f"{os.getpid()} {start}\n")
    reused = tmp_path / f"{FOLDER_PREFIX}reused"  # our pid, but another start time: a pid reused since
    reused.mkdir()
    (reused / "owner").write_text(f"{os.getpid()} 1\n")
    young = tmp_path / f"{FOLDER_PREFIX}young"  # being made right now: no owner yet
    young.mkdir()
    old = tmp_path / f"{FOLDER_PREFIX}old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / "not-a-link"
    other.mkdir()
    (other / "owner").write_text(f"{_dead_pid()} 1\n")
    assert sorted(p.name for p in sweep_stale(tmp_path)) == sorted([dead.name, reused.name, old.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, young.name, other.name])
