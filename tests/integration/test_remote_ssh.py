"""Remote-SSH, emulated exactly: the command line VS Code runs (`ssh -T -D PORT -o ConnectTimeout=15 host bash`)
with a bash script on stdin, then its SOCKS5 tunnel to a server inside the container, spoken by hand.

VS Code's install script prints a marker, the architecture and the OS, checks for tar, starts its server and keeps
the session open while the editor talks to the server through the `-D` port. Here the "server" is Python's
http.server on 127.0.0.1 inside the container, and the editor is a raw socket speaking SOCKS5 (RFC 1928).
"""

from __future__ import annotations

import platform
import queue
import secrets
import socket
import struct
import subprocess
import threading
import time

import pytest

from devagent.control.features.doctor_report import free_port
from tests.integration.conftest import Env, wait_for

pytestmark = pytest.mark.docker

HTTP_PORT = 8765  # inside the container, on its own loopback
MARKER = "devagent-remote-ssh-start"

# Shaped like Remote-SSH's install script: marker, facts, tar, wait for the server, say ready, stay.
SCRIPT = f"""\
set -e
echo {MARKER}
uname -m
head -n 1 /etc/os-release
tar --version | head -n 1
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{HTTP_PORT}) 2>/dev/null && break; sleep 0.1; done
echo READY
sleep 30
"""


@pytest.fixture
def up(env: Env, name: str, built_image: str):  # type: ignore[no-untyped-def]
    env.up(name)
    yield
    env.devagent("down", name)


def read_lines(stream, into: queue.Queue[str]) -> None:  # type: ignore[no-untyped-def]
    for line in iter(stream.readline, ""):
        into.put(line.rstrip("\n"))


def lines_until(lines: queue.Queue[str], last: str, *, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != last:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {last!r} within {timeout} s; got {seen}")
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            continue
    return seen


def socks5_get(port: int, host: str, target_port: int, path: str) -> bytes:
    """GET PATH from HOST:TARGET_PORT through the SOCKS5 proxy on 127.0.0.1:PORT, by hand."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")  # version 5, one method: no authentication
        assert s.recv(2) == b"\x05\x00", "the proxy refused 'no authentication'"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", target_port))  # CONNECT IPv4
        reply = b""
        while len(reply) < 10:  # VER REP RSV ATYP(1) BND.ADDR(4) BND.PORT(2)
            chunk = s.recv(10 - len(reply))
            assert chunk, f"the proxy closed the connection after {reply!r}"
            reply += chunk
        assert reply[:2] == b"\x05\x00", f"CONNECT failed: {reply!r}"
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}:{target_port}\r\n\r\n".encode())
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    return response


def test_remote_ssh_dynamic_forward_reaches_a_server_in_the_container(env: Env, name: str, up) -> None:
    listed = f"remote-ssh-{secrets.token_hex(4)}.txt"
    assert env.ssh(name, f"echo hello > ~/{listed}").returncode == 0
    python = env.ssh(name, "command -v python3")
    assert python.returncode == 0 and python.stdout.strip(), python.output
    started = env.ssh(name, f"nohup python3 -m http.server {HTTP_PORT} --bind 127.0.0.1 --directory ~ "
                            ">/dev/null 2>&1 </dev/null & echo $!")
    server_pid = started.stdout.strip()
    assert started.returncode == 0 and server_pid.isdigit(), started.output
    port = free_port()
    # start_new_session: no controlling terminal, so a refused key fails instead of prompting the developer.
    ssh = subprocess.Popen(["ssh", "-T", "-D", f"127.0.0.1:{port}", "-o", "ConnectTimeout=15",
                            "-F", str(env.ssh_config), name, "bash"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env.environ, start_new_session=True)
    try:
        assert ssh.stdin is not None and ssh.stdout is not None
        ssh.stdin.write(SCRIPT)
        ssh.stdin.flush()  # and keep it open, as VS Code does
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(ssh.stdout, lines), daemon=True).start()
        out = lines_until(lines, "READY", timeout=30)
        assert out == [MARKER, platform.machine(), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
                       out[3], "READY"]
        assert out[3].startswith("tar (GNU tar) ")

        response = socks5_get(port, "127.0.0.1", HTTP_PORT, "/")
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK"), head
        assert f'<a href="{listed}">{listed}</a>'.encode() in body, body[:500]
        assert ssh.poll() is None, "the session must stay open while the editor uses the tunnel"
    finally:
        ssh.kill()  # our own ssh, by its pid
        ssh.wait(timeout=10)
        for pipe in (ssh.stdin, ssh.stderr):
            if pipe is not None:
                pipe.close()
        env.ssh(name, f"kill {server_pid}")
    wait_for(lambda: env.ssh(name, f"kill -0 {server_pid}").returncode != 0, timeout=10,
             message="the http server to exit")
