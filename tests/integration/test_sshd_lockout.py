"""Other local users cannot lock the owner out of sshd.

Every local user of the server can reach the published port on 127.0.0.1, and Docker's proxy makes each of them
appear to sshd as one and the same address. These tests play such a user against a real environment — on
OpenSSH 9.2 (Debian 12) and on OpenSSH 10.0 (Debian 13, where PerSourcePenalties exists and is on by default) —
and then log in as the owner with the real client through the alias.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_IMAGE, NEWER_OPENSSH_BASE_IMAGE, Env

pytestmark = pytest.mark.docker

# base image → the session fixture that builds its derived image
BASES = {"openssh-9.2": (BASE_IMAGE, "built_image"), "openssh-10.0": (NEWER_OPENSSH_BASE_IMAGE, "newer_openssh_image")}
IDLE = 100  # pre-auth connections another user holds open
WRONG_KEY_LOGINS = 5
OWNER_LOGIN_TIMEOUT = 30.0


@pytest.fixture(params=sorted(BASES))
def port(request: pytest.FixtureRequest, env: Env, name: str) -> Iterator[int]:
    """An environment on the parametrised base image; its published sshd port."""
    base_image, image_fixture = BASES[request.param]
    request.getfixturevalue(image_fixture)
    env.up(name, base_image=base_image)
    try:
        rows = json.loads(env.devagent("ls", "--json", check=True).stdout)["environments"]
        yield next(int(r["port"]) for r in rows if r["name"] == name)
    finally:
        env.devagent("down", name)


@contextmanager
def idle_connections(port: int, count: int, *, attempts: int = 3000, timeout: float = 60.0
                     ) -> Iterator[list[socket.socket]]:
    """COUNT connections to 127.0.0.1:PORT that an sshd child has taken (each received the banner) and that never
    send a byte. A connection sshd drops (MaxStartups drops some at random before its full value) is replaced, as
    an attacker would, within ATTEMPTS connects in all. At most COUNT are open at a time; all are closed on exit."""
    held: list[socket.socket] = []
    waiting: set[socket.socket] = set()
    tried = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        try:
            while len(held) < count:
                while len(held) + len(waiting) < count and tried < attempts:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    tried += 1
                    waiting.add(s)
                    selector.register(s, selectors.EVENT_READ)
                if not waiting or time.monotonic() > deadline:
                    raise AssertionError(f"sshd took only {len(held)} of {count} idle connections "
                                         f"({tried} connects in {timeout:.0f} s)")
                for key, _ in selector.select(timeout=1.0):
                    s = key.fileobj  # type: ignore[assignment]
                    selector.unregister(s)
                    waiting.discard(s)
                    if s.recv(256).startswith(b"SSH-"):  # the banner; b"" when sshd (through the proxy) dropped it
                        held.append(s)
                    else:
                        s.close()
            yield held
        finally:
            for s in [*held, *waiting]:
                s.close()


def owner_login(env: Env, name: str) -> tuple[int, float, str]:
    """`ssh -F CONFIG NAME true` as the owner: (exit status, seconds, stderr)."""
    started = time.monotonic()
    result = env.ssh(name, "true", timeout=OWNER_LOGIN_TIMEOUT)
    return result.returncode, time.monotonic() - started, result.stderr


def test_the_owner_logs_in_while_another_user_holds_100_idle_connections(env: Env, name: str, port: int) -> None:
    with idle_connections(port, IDLE) as held:
        assert len(held) == IDLE
        code, seconds, stderr = owner_login(env, name)
    assert code == 0, f"the owner's login failed after {seconds:.1f} s: {stderr}"
    assert seconds < 15, f"the owner's login took {seconds:.1f} s"


def test_the_owner_logs_in_after_five_logins_with_a_wrong_key(env: Env, name: str, port: int,
                                                               tmp_path: Path) -> None:
    wrong = tmp_path / "not-the-owners-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    for attempt in range(1, WRONG_KEY_LOGINS + 1):
        refused = subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(wrong),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "-p", str(port), "dev@127.0.0.1", "true"],
            capture_output=True, text=True, env=env.environ, timeout=30, check=False)
        assert refused.returncode == 255
        assert "Permission denied (publickey)" in refused.stderr, f"attempt {attempt}: {refused.stderr}"
    code, seconds, stderr = owner_login(env, name)
    assert code == 0, f"the owner's login failed after {seconds:.1f} s: {stderr}"
