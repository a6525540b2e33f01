"""SIGINT, SIGTERM and SIGHUP while `up` runs: each one ends it like Ctrl-C, with a rollback, never half-way.

Left to Python, only SIGINT raises (KeyboardInterrupt), and only if SIGINT was not ignored when the process
started: a background job of a shell script (`devagent up … &`, a CI runner) inherits SIGINT ignored, Python then
installs no handler, and a `kill -INT` is lost — `up` went on and made the environment. SIGTERM (`kill`,
`timeout`, systemd) and SIGHUP (the terminal or the ssh session to the server closed) ended the process at once,
leaving a half-made container behind.

`StopSignals` gives all three one handler for as long as `up` runs. It raises `Stopped`, a KeyboardInterrupt, so
every path that undoes on Ctrl-C undoes on all three; and it records the signal, so a rollback can hold further
signals until it is done, and a transaction can still roll back when a library swallowed the exception. SIGHUP
that was ignored at start (`nohup devagent up …`) stays ignored: the user asked `up` to outlive the terminal.

>>> describe(signal.SIGTERM), int(exit_status(signal.SIGTERM))
('terminated (SIGTERM)', 143)
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

from devagent.errors import ExitStatus

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The longest a blocking wait of a command that promises Ctrl-C may last before it looks for a signal again.
POLL_S = 0.2
_DESCRIPTIONS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)",
                                 signal.SIGHUP: "hung up (SIGHUP: the terminal or ssh session closed)"}
_EXIT_STATUSES: dict[int, ExitStatus] = {signal.SIGINT: ExitStatus.INTERRUPTED, signal.SIGTERM: ExitStatus.TERMINATED,
                                         signal.SIGHUP: ExitStatus.HANGUP}


# The hint of every stop of `up` that left nothing behind (docs/reference/exit-codes.md: a failure ends with one).
AGAIN = "nothing of it is left: run the same `devagent up` again (in tmux or screen if the connection may drop)"


def describe(signum: int) -> str:
    """What a stop signal did to the command, as the start of an error message."""
    return _DESCRIPTIONS.get(signum, f"stopped by signal {signum}")


def exit_status(signum: int) -> ExitStatus:
    """The shell's convention, 128 + the signal's number: 130, 143, 129 (docs/reference/exit-codes.md)."""
    return _EXIT_STATUSES.get(signum, ExitStatus.INTERRUPTED)


@contextmanager
def acting_on_stop_signals() -> Iterator[None]:
    """Inside, SIGINT raises KeyboardInterrupt and SIGTERM ends the process, also when they were ignored at start:
    a shell script's background job and a CI runner start commands with SIGINT ignored, and Python then installs
    no KeyboardInterrupt handler, so a Ctrl-C or `kill -INT` was lost. SIGHUP ignored at start stays ignored
    (`nohup` asked for that). Outside the block, the dispositions are as they came. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted: dict[int, Any] = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.getsignal(signum) for signum in wanted}
    for signum, handler in wanted.items():
        if previous[signum] == signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler == signal.SIG_IGN:
                signal.signal(signum, handler)


def wait_for_exit(process: subprocess.Popen[Any]) -> int:
    """PROCESS's exit status, once it ends; a signal's handler runs within POLL_S meanwhile. A plain
    `process.wait()` blocks in waitpid(), and a signal that lands just before it would wait for the process."""
    while True:
        try:
            return process.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            continue


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where Ctrl-C's KeyboardInterrupt would be."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """Raise `Stopped` on SIGINT, SIGTERM and SIGHUP inside the `with` block; the handlers before it come back after.

    Only the main thread can set handlers: elsewhere the block changes nothing (and `received` stays None).
    """

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal inside the block
        self._holding = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if signum == signal.SIGHUP and previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if not self._holding:
            raise Stopped(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Inside, a stop signal is recorded but not raised: for a rollback, or a step that must not be cut in
        half. A second Ctrl-C cannot leave a rollback half-done; `kill -9` still can, and the next up or down
        removes what it left."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside, a stop signal waits, and is raised once the block is done: for a call whose answer the
        rollback needs."""
        before = self.received
        with self.held():
            yield
        if before is None and self.received is not None:
            raise Stopped(self.received)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, previous in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is the closest.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
