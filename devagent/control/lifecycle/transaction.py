"""The undo list of a step-by-step operation (`up`): every step made registers how to undo it, and a failure — Ctrl-C,
SIGTERM and SIGHUP included — undoes them all, in reverse.

    with Transaction(report, signals) as tx:
        cid = engine.create(...)
        tx.on_failure(lambda: engine.remove(cid))
        ...                                  # any exception or stop signal here removes the container again
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from devagent.control.lifecycle.interrupts import AGAIN, StopSignals, describe, exit_status
from devagent.errors import DevagentError

Report = Callable[[str], None]
T = TypeVar("T")


class Transaction:
    """Undo steps, run in reverse when the block fails — Ctrl-C, SIGTERM and SIGHUP included (pipx's
    preserve_venv, as a class).

    Every step is attempted even if an earlier one fails; the first error is the one the user sees. With SIGNALS,
    further stop signals wait until the rollback is done, and a stop signal whose exception something swallowed
    (a library's broad `except`, a finalizer) still rolls the block back when it ends.
    """

    def __init__(self, report: Report, signals: StopSignals | None = None) -> None:
        self.report = report
        self.signals = signals
        self._undo: list[Callable[[], object]] = []
        self._late_signal = False  # a stop signal came during the last step

    def on_failure(self, step: Callable[[], object]) -> None:
        self._undo.append(step)

    def whole_step(self) -> contextlib.AbstractContextManager[None]:
        """A step a stop signal must not cut in half, because its undo needs to know what it made; the signal
        is raised once the step is done."""
        return self.signals.deferred() if self.signals else contextlib.nullcontext()

    @contextlib.contextmanager
    def last_step(self) -> Iterator[None]:
        """The block's last step, which undoing would only make worse (`--recreate`: the old container goes and
        the new one takes its name). Stop signals wait for it; one that came is reported once it is done."""
        if self.signals is None:
            yield
            return
        before = self.signals.received
        with self.signals.held():
            try:
                yield
            finally:
                self._late_signal = before is None and self.signals.received is not None

    def alongside(self, work: Callable[[], object], main: Callable[[], T]) -> T:
        """MAIN here while WORK (a step that registers its own undo) runs on a thread of its own: `up` writes the
        ssh alias while the engine starts the container. MAIN's error wins (WORK's is then dropped), but only once
        WORK has ended, stop signals meanwhile held back, so that a rollback undoes all it did; WORK's error is
        raised after MAIN succeeded."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # handed to the main thread, which raises it
                errors.append(exc)

        worker = threading.Thread(target=run, name="alongside", daemon=True)
        worker.start()
        try:
            result = main()
        finally:
            with self.whole_step():
                worker.join()
        if errors:
            raise errors[0]
        return result

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        signum = self.signals.received if self.signals else None
        if self._late_signal:
            if exc_type is None:
                raise DevagentError(f"{describe(signum or signal.SIGINT)} during the last step of `up`, which "
                                    "then completed: the environment is made and kept",
                                    status=exit_status(signum or signal.SIGINT),
                                    hint="check it with `devagent ls`; `devagent down NAME` removes it")
            signum = None  # the step's own error is the one to show
        elif exc_type is None and signum is None:
            return
        with self.signals.held() if self.signals else contextlib.nullcontext():
            for step in reversed(self._undo):
                try:
                    step()
                except Exception as undo_exc:  # keep undoing
                    with contextlib.suppress(Exception):  # a closed terminal must not stop the rollback
                        self.report(f"rollback step failed: {undo_exc}")
        if signum is None and isinstance(exc, KeyboardInterrupt):
            signum = getattr(exc, "signum", signal.SIGINT)
        if signum is not None:
            raise DevagentError(f"{describe(signum)}; everything `up` had made is removed again",
                                status=exit_status(signum), hint=AGAIN) from None
