"""What the link finds out on the server (control/link/probe.py): the probe script under a real sh, and
what its output means."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from devagent.control.link.probe import probe_script, read_facts
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
