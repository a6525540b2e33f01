"""What a user's tools do through an environment's alias, run INSIDE the laptop's namespaces by the --host tests
(`python -m tests.integration.laptop_client forward|vscode SSH_CONFIG NAME`): the laptop's 127.0.0.1 is not the
test's, so the local end of a forward can only be dialled from in there. Prints one line the test compares.

forward: `ssh -N -L PORT:127.0.0.1:2222 NAME`, then the banner of the container's own sshd through it.
vscode:  VS Code Remote-SSH's `ssh -T -D PORT NAME bash` with a script on stdin that starts an HTTP server inside,
         then a GET through the SOCKS5 forward (tests/integration/test_remote_ssh.py does it for a local one).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from tests.integration.test_remote_ssh import HTTP_PORT, SCRIPT, socks5_get


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dial(port: int, timeout: float = 30) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def forward(config: str, name: str) -> str:
    port = free_port()
    ssh = subprocess.Popen(["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
                            "-L", f"127.0.0.1:{port}:127.0.0.1:2222", name], stdin=subprocess.DEVNULL)
    try:
        with dial(port) as s:
            return s.recv(256).split(b"\r\n", 1)[0].decode()
    finally:
        ssh.kill()
        ssh.wait()


def vscode(config: str, name: str) -> str:
    base = ["ssh", "-F", config, "-o", "BatchMode=yes", name]
    started = subprocess.run([*base, f"nohup python3 -m http.server {HTTP_PORT} --bind 127.0.0.1 --directory ~ "
                              ">/dev/null 2>&1 </dev/null & echo $!"], capture_output=True, text=True, check=True)
    try:
        return _vscode(config, name)
    finally:
        subprocess.run([*base, f"kill {started.stdout.strip()}"], check=False)


def _vscode(config: str, name: str) -> str:
    port = free_port()
    ssh = subprocess.Popen(["ssh", "-T", "-D", f"127.0.0.1:{port}", "-o", "ConnectTimeout=15", "-o", "BatchMode=yes",
                            "-F", config, name, "bash"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert ssh.stdin is not None and ssh.stdout is not None
        ssh.stdin.write(SCRIPT)
        ssh.stdin.flush()  # and kept open, as VS Code does
        for line in ssh.stdout:
            if line.strip() == "READY":
                break
        response = socks5_get(port, "127.0.0.1", HTTP_PORT, "/")
        return response.split(b"\r\n", 1)[0].decode()
    finally:
        ssh.kill()
        ssh.wait()


if __name__ == "__main__":
    action, config, name = sys.argv[1:4]
    print({"forward": forward, "vscode": vscode}[action](config, name))
