"""The home that outlives the container (a named volume per environment) and the read-only root file system
around it (devagent/core/mounts/home.py), on the real engine with the real OpenSSH client.

What VS Code's Remote-SSH install script checks before it downloads its server again: the folder
~/.vscode-server/bin/COMMIT/ with `node` and `bin/code-server` in it (it runs `[ -f "$SERVER_SCRIPT" ]` and then
starts that script); a fake tree of that shape stands in for the real one, which needs the internet.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devagent.errors import ExitStatus
from tests.integration.conftest import Env, assert_nothing_left, home_volumes

pytestmark = pytest.mark.docker

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SERVER = f"~/.vscode-server/bin/{COMMIT}"
PACKAGE = "devagent_home_probe"
# The user site of the image's system python (the base image's own python is a venv, whose pip refuses --user);
# pip itself comes from that venv, run by the system python.
USER_PIP = ("PYTHONPATH=$(echo /opt/venv/lib/python3*/site-packages) /usr/bin/python3 -m pip install -q --user "
            "--no-index --break-system-packages")
# What each write leaves in the home, and how the test reads it back.
HOME_FILES = (f"{SERVER}/node", f"{SERVER}/bin/code-server", "~/.cache/pip/probe", "~/.bash_history")


def _wheel(folder: Path) -> Path:
    """A tiny pure-Python wheel, made here (no package index, no build backend)."""
    def record_line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    info = f"{PACKAGE}-1.0.dist-info"
    files = {f"{PACKAGE}/__init__.py": b"VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "\n".join([*(record_line(p, d) for p, d in files.items()), f"{info}/RECORD,,"]) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as wheel:
        for path, data in {**files, f"{info}/RECORD": record.encode()}.items():
            wheel.writestr(path, data)
    path = folder / f"{PACKAGE}-1.0-py3-none-any.whl"
    path.write_bytes(buf.getvalue())
    return path


def _fill_home(env: Env, name: str) -> None:
    """What a user's first days write into the home: VS Code's server, a --user package, caches, history."""
    wheel = _wheel(env.workspace(name))
    made = env.ssh(name, f"set -e; mkdir -p {SERVER}/bin ~/.cache/pip; "
                         f"printf '#!/bin/sh\\necho node-ok\\n' > {SERVER}/node; "
                         f"printf '#!/bin/sh\\necho server-ok\\n' > {SERVER}/bin/code-server; "
                         f"chmod +x {SERVER}/node {SERVER}/bin/code-server; echo kept > ~/.cache/pip/probe; "
                         f"echo 'python train.py' > ~/.bash_history; {USER_PIP} ~/workspace/{wheel.name}")
    assert made.returncode == 0, made.output


def _home_is_there(env: Env, name: str) -> None:
    """All of _fill_home's writes, owned by the login user, and what Remote-SSH's script would do with them."""
    owners = env.ssh(name, "stat -c %U " + " ".join(HOME_FILES))
    assert owners.returncode == 0 and owners.stdout.split() == ["dev"] * len(HOME_FILES), owners.output
    script = env.ssh(name, f'SERVER_SCRIPT={SERVER}/bin/code-server; [ -f "$SERVER_SCRIPT" ] && '
                           f'[ -x {SERVER}/node ] && "$SERVER_SCRIPT" && {SERVER}/node')
    assert (script.returncode, script.stdout) == (0, "server-ok\nnode-ok\n"), script.output
    package = env.ssh(name, f"/usr/bin/python3 -c 'import {PACKAGE} as p; print(p.VALUE, p.__file__)'")
    assert package.returncode == 0 and package.stdout.startswith("42 /home/dev/.local/lib/python3"), package.output
    assert env.ssh(name, "cat ~/.cache/pip/probe").stdout == "kept\n"


def test_the_home_outlives_recreate_down_removes_it_and_keep_home_keeps_it(
        env: Env, name: str, built_image: str, docker_client: Any) -> None:
    env.up(name)
    _fill_home(env, name)
    volume = f"devagent-home-{name}"
    labels = docker_client.api.inspect_volume(volume)["Labels"]
    assert (labels["devagent.managed"], labels["devagent.name"], labels["devagent.home"]) == ("true", name, "true")

    # Other limits: a new container, the same home (and a fresh /tmp).
    env.ssh(name, "echo scratch > /tmp/scratch")
    recreated = env.up(name, "--recreate", "--cpus", "1")
    assert "✔ login verified" in recreated.stdout, recreated.output
    assert docker_client.api.inspect_container(name)["HostConfig"]["NanoCpus"] == 1_000_000_000
    _home_is_there(env, name)
    assert env.ssh(name, "test -e /tmp/scratch || echo gone").stdout == "gone\n"  # /tmp went with the container
    ran = env.ssh(name, "cd ~/workspace && devagent run -- python3 -c 'print(6 * 7)'")
    assert ran.returncode == 0 and "42" in ran.stdout, ran.output

    kept = env.devagent("down", name, "--keep-home")
    assert kept.returncode == 0, kept.output
    assert f"kept the home volume {volume} (" in kept.output
    assert home_volumes(docker_client, name) == [volume]
    env.up(name)  # a later up mounts the kept home again
    _home_is_there(env, name)

    (env.workspace(name) / "data.bin").write_bytes(b"\0" * (3 << 20))  # mounted below the home, not in it
    down = env.devagent("down", name)
    assert down.returncode == 0, down.output
    assert f"✔ removed home volume {volume} (" in down.stdout and " KiB)\n" in down.stdout, down.stdout
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


def test_a_second_environment_never_sees_the_first_ones_home(
        env: Env, name: str, built_image: str, docker_client: Any) -> None:
    other = f"{name}-b"
    env.up(name)
    try:
        assert env.ssh(name, "echo mine > ~/.cache/only-here").returncode == 0
        env.up(other)
        seen = env.ssh(other, "cat ~/.cache/only-here")
        assert seen.returncode != 0 and "No such file" in seen.stderr, seen.output
        assert ".bashrc" in env.ssh(other, "ls -a ~").stdout  # its own home, seeded from the image
    finally:
        env.devagent("down", other)
        env.devagent("down", name)
    assert_nothing_left(env, other, docker_client, workspace_kept=True)


def test_the_root_file_system_is_read_only_and_the_writable_places_are_disk_volumes(
        env: Env, name: str, built_image: str, docker_client: Any) -> None:
    env.up(name)
    try:
        attrs = docker_client.api.inspect_container(name)
        assert attrs["HostConfig"]["ReadonlyRootfs"] is True
        kinds = {m["Destination"]: m["Type"] for m in attrs["Mounts"]}
        assert kinds == {"/home/dev": "volume", "/home/dev/workspace": "bind", "/tmp": "volume",
                         "/var/tmp": "volume", "/etc/devagent": "volume", "/run/lock": "tmpfs"}, kinds
        refused = env.ssh(name, "for p in /etc/x /usr/x /opt/x /x /var/x; do touch $p 2>&1; done")
        assert refused.stdout.count("Read-only file system") == 5, refused.output
        # On the root file system the login user can write nothing: what the scan finds are the mount points of
        # the writable places (each its own file system; /var/lock is a link to /run/lock).
        scan = env.ssh(name, "find / -xdev -writable 2>/dev/null | grep -v ^/proc | sort")
        assert scan.stdout.split() == ["/home/dev", "/run/lock", "/tmp", "/var/lock", "/var/tmp"], scan.output
        writes = env.ssh(name, "set -e; for d in ~ ~/workspace /tmp /var/tmp /run/lock /var/lock /dev/shm; do "
                               "echo x > $d/probe && rm $d/probe; done; echo ok")
        assert writes.stdout == "ok\n", writes.output
        # /tmp allows executing (VS Code, Triton and torch.compile run what they put there).
        run_tmp = env.ssh(name, "printf '#!/bin/sh\\necho ran\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && /tmp/x.sh")
        assert run_tmp.stdout == "ran\n", run_tmp.output
        # torch.compile's cache (Inductor's, in /tmp): the image has no C compiler to compile with, so the test
        # checks that the cache folder torch picks can be made and written, which is what the read-only root
        # could have broken.
        cache = env.ssh(name, "python3 -c 'import os; from torch._inductor.runtime.cache_dir_utils import "
                              "cache_dir; d = cache_dir(); os.makedirs(d, exist_ok=True); "
                              "open(os.path.join(d, \"probe\"), \"w\").close(); print(d)'", timeout=120)
        assert cache.stdout == "/tmp/torchinductor_dev\n", cache.output
        key = env.ssh(name, "stat -c '%U %a' /etc/devagent/ssh_host_ed25519_key; stat -c '%U %a' /etc/devagent")
        assert key.stdout.split("\n")[:2] == ["dev 600", "root 755"], key.output
    finally:
        env.devagent("down", name)


def test_a_home_that_belongs_to_another_uid_is_an_error_that_names_the_fix(
        env: Env, name: str, built_image: str, docker_client: Any) -> None:
    volume = f"devagent-home-{name}"
    env.up(name)
    image = docker_client.api.inspect_container(name)["Config"]["Image"]  # the one the next up uses too
    assert env.devagent("down", name, "--keep-home").returncode == 0
    # As a home made for another user (a teammate's image built for another uid) would be.
    docker_client.containers.run(image, ["4242", "/h"], entrypoint="chown", user="0", remove=True,
                                 volumes={volume: {"bind": "/h", "mode": "rw"}})
    refused = env.up(name, check=False)
    assert refused.returncode == ExitStatus.CONFLICT, refused.output
    assert (f"Error: the home of {name!r} (the volume {volume}) belongs to another user than the login user 'dev' "
            f"of {image}\n") in refused.stderr, refused.stderr
    assert "belongs to uid 4242, not to dev (uid 1000)" in refused.stderr
    hint = f"docker run --rm --user 0 -v {volume}:/h --entrypoint chown {image} -R dev: /h"
    assert hint in refused.stderr
    assert home_volumes(docker_client, name) == [volume]  # the failed up leaves the home it did not make
    assert_nothing_left_but_the_home(env, name, docker_client)

    docker_client.containers.run(image, ["-R", "dev:", "/h"], entrypoint="chown", user="0", remove=True,
                                 volumes={volume: {"bind": "/h", "mode": "rw"}})  # the hint's fix
    env.up(name)
    assert env.devagent("down", name).returncode == 0
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


def assert_nothing_left_but_the_home(env: Env, name: str, docker_client: Any) -> None:
    from tests.integration.conftest import container_names

    assert container_names(docker_client, name) == []
    assert not env.paths_lock(name).exists()
