"""Signals in tests, set explicitly: a test that sends a signal must not depend on the dispositions that whoever
ran pytest left it (a CI runner's background job starts with SIGINT ignored; `nohup` ignores SIGHUP).

    subprocess.Popen([*starting_with(), *argv])                          # as in a terminal session
    subprocess.Popen([*starting_with(ignored=(signal.SIGINT,)), *argv])  # as a script's background job
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _names(signals: list[int]) -> str:
    return ",".join(signal.Signals(s).name.removeprefix("SIG") for s in signals)


def starting_with(*, ignored: tuple[int, ...] = ()) -> list[str]:
    """The words to put before a command so that it starts with the stop signals' default actions, as in a
    terminal session, except IGNORED, which it starts with ignored (a shell script's background job: SIGINT and
    SIGQUIT; nohup: SIGHUP). coreutils' env sets them and execs the command (same pid): no preexec_fn, which is
    not safe in a test process with threads."""
    default = [s for s in STOP_SIGNALS if s not in ignored]
    return ["env", f"--default-signal={_names(default)}", *([f"--ignore-signal={_names(list(ignored))}"]
                                                             if ignored else [])]


def signal_off_the_main_thread(sig: int, *, after: float = 0.2,
                               when: Callable[[], bool] = lambda: True) -> threading.Thread:
    """SIG, AFTER seconds once WHEN holds, handled on a thread of its own: Python's C-level handler notes it there
    and the main thread's blocking call goes on, exactly as when a signal lands after the main thread's last
    check for signals and before its call blocks. Its Python handler runs once the main thread next looks."""

    def send() -> None:
        deadline = time.monotonic() + 60
        while not when() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after)
        signal.pthread_kill(threading.get_ident(), sig)

    thread = threading.Thread(target=send, daemon=True, name="signal-off-main")
    thread.start()
    return thread
