"""A devagent command that holds a forward open (forward, jupyter, tensorboard), run in the background by a test."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.integration.conftest import Env
from tests.signals import starting_with


class Forward:
    """`python -m devagent COMMAND …` running in the background (forward, jupyter, tensorboard), its output read
    line by line."""

    def __init__(self, env: Env, *args: str, command: str = "forward", ignored: tuple[int, ...] = ()) -> None:
        """IGNORED: the stop signals it starts with ignored (none: as in a terminal session, whatever pytest got)."""
        self.command = command
        self.process = subprocess.Popen([*starting_with(ignored=ignored), sys.executable, "-m", "devagent",
                                         command, *args], env=env.environ, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def url(self, *, timeout: float = 90) -> str:
        """The URL it prints once the forward is up."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if not line:
                break
            self.stdout.append(line)
            if line.strip().startswith("open http://"):
                return line.split()[1]
        self.process.kill()
        self.process.wait()
        raise AssertionError(f"no URL from devagent {self.command}: {''.join(self.stdout)}\n{''.join(self.stderr)}")

    def children(self) -> list[int]:
        """Pids of the devagent process's children (its ssh)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def stop(self, sig: int = signal.SIGINT, *, timeout: float = 30) -> tuple[int, str]:
        self.process.send_signal(sig)
        self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return self.process.returncode, "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def is_running(pid: int) -> bool:
    """True while PID exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


