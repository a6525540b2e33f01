"""`python -m devagent`, but `up` pauses at the step named by DEVAGENT_TEST_PAUSE_AT (one of provision.UP_STEPS).

A test harness, not part of devagent: the product reads neither variable. At the step it writes the step's name to
the file DEVAGENT_TEST_PAUSED_FILE and sleeps, so a test can send a signal at a known point and see what `up`
leaves behind. The sleep is interrupted by that signal exactly as any step of `up` would be.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from devagent.cli import main
from devagent.control.lifecycle.provision import UP_STEPS, Provisioner


def pause(self: Provisioner, step: str) -> None:
    """Until the test's signal ends the pause, or the test removes the file (to resume a step that holds
    signals until it is done)."""
    if step != os.environ["DEVAGENT_TEST_PAUSE_AT"]:
        return
    paused = Path(os.environ["DEVAGENT_TEST_PAUSED_FILE"])
    paused.write_text(step)
    deadline = time.monotonic() + 120  # the test fails long before this
    while paused.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    assert os.environ["DEVAGENT_TEST_PAUSE_AT"] in UP_STEPS, f"no such step; the steps are {UP_STEPS}"
    # As in a terminal session, even when the tests run under nohup: SIGHUP ends the process. (SIGINT is left as
    # it came: `up` must handle it whether or not it was ignored.)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    Provisioner.on_step = pause  # type: ignore[method-assign]
    sys.argv[0] = "devagent"
    raise SystemExit(main(sys.argv[1:]))
