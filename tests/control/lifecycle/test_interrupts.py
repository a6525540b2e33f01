"""Stop signals while `up` runs: SIGINT, SIGTERM and SIGHUP each end it like Ctrl-C — a rollback and 128+N —
whatever the process inherited, and neither a second signal nor a swallowed exception leaves it half-done.

The signals are real (signal.raise_signal runs the handler before it returns); the Transaction is the one `up`
uses. tests/integration/test_up_stopped.py sends them to a real `up` at each of its steps.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devagent.cli import main
from devagent.control.atomic import FileLock
from devagent.control.lifecycle.interrupts import (
    AGAIN,
    Stopped,
    StopSignals,
    acting_on_stop_signals,
    describe,
    exit_status,
    wait_for_exit,
)
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.lifecycle.transaction import Transaction
from devagent.control.paths import Paths
from devagent.control.ssh.children import start_ssh
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine
from tests.signals import signal_off_the_main_thread


@pytest.fixture(autouse=True)
def handlers_restored() -> Iterator[None]:
    """Whatever a test does to the handlers, pytest gets its own back. SIGHUP starts as in a terminal session,
    also when the tests run under nohup."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


@pytest.mark.parametrize(("sig", "status", "text"), [
    (signal.SIGINT, ExitStatus.INTERRUPTED, "interrupted"),
    (signal.SIGTERM, ExitStatus.TERMINATED, "terminated (SIGTERM)"),
    (signal.SIGHUP, ExitStatus.HANGUP, "hung up (SIGHUP: the terminal or ssh session closed)"),
])
def test_each_stop_signal_raises_stopped_and_maps_to_128_plus_its_number(sig: int, status: ExitStatus,
                                                                        text: str) -> None:
    with StopSignals() as signals, pytest.raises(Stopped) as raised:
        signal.raise_signal(sig)
    assert isinstance(raised.value, KeyboardInterrupt)  # so every Ctrl-C path handles all three
    assert raised.value.signum == signals.received == sig
    assert exit_status(sig) == status == 128 + sig
    assert describe(sig) == text


def test_ctrl_c_raises_even_when_sigint_was_ignored_at_start() -> None:
    # A background job of a shell script starts with SIGINT ignored, and Python then installs no handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with StopSignals(), pytest.raises(Stopped):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # given back as it was


def test_sighup_ignored_at_start_stays_ignored_as_nohup_asked() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with StopSignals() as signals:
        signal.raise_signal(signal.SIGHUP)
    assert signals.received is None


def test_the_handlers_from_before_come_back_after_the_block() -> None:
    def mine(signum: int, frame: Any) -> None: ...
    signal.signal(signal.SIGTERM, mine)
    with StopSignals():
        assert signal.getsignal(signal.SIGTERM) is not mine
    assert signal.getsignal(signal.SIGTERM) is mine


def test_a_held_signal_is_recorded_and_not_raised() -> None:
    with StopSignals() as signals:
        with signals.held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
        assert signals.received == signal.SIGTERM  # the first one


def test_a_deferred_signal_is_raised_once_the_block_is_done() -> None:
    done: list[str] = []
    with StopSignals() as signals, pytest.raises(Stopped) as raised:
        with signals.deferred():
            signal.raise_signal(signal.SIGHUP)
            done.append("Docker answered")
        done.append("next step")
    assert done == ["Docker answered"]
    assert raised.value.signum == signal.SIGHUP


def test_outside_the_main_thread_nothing_changes() -> None:
    seen: list[object] = []

    def run() -> None:
        with StopSignals() as signals:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(signals.received)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before, None]


# -- every command: inherited dispositions, and waits a signal must end ----------------------------------------


def test_a_command_acts_on_sigint_and_sigterm_it_inherited_ignored_and_gives_them_back() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a script's background job, under nohup
        signal.signal(s, signal.SIG_IGN)
    with acting_on_stop_signals():
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # nohup asked for that
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == [signal.SIG_IGN] * 2


def test_handlers_the_command_did_not_inherit_ignored_stay_as_they_are() -> None:
    def mine(signum: int, frame: object) -> None: ...

    signal.signal(signal.SIGTERM, mine)
    with acting_on_stop_signals():
        assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.getsignal(signal.SIGTERM) is mine


def test_a_stop_signal_that_lands_just_before_the_wait_for_a_child_ends_it_at_once() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        started = time.monotonic()
        with StopSignals(), pytest.raises(Stopped):
            signal_off_the_main_thread(signal.SIGTERM)
            wait_for_exit(child)  # a plain child.wait() returned, and the handler ran, only after 60 s
        assert time.monotonic() - started < 30
    finally:
        child.kill()
        child.wait()


def test_ssh_children_start_with_the_stop_signals_default_whatever_devagent_inherited() -> None:
    # ssh keeps ignoring what it inherited ignored: close()'s SIGTERM and the death signal would not end it.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    child = start_ssh(["sh", "-c", "grep '^SigIgn' /proc/self/status"], stdin=subprocess.DEVNULL,
                      stdout=subprocess.PIPE)
    out, _ = child.communicate(timeout=30)
    ignored = int(out.split()[1], 16)
    assert [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if ignored & (1 << (s - 1))] == []


@pytest.mark.slow
def test_ctrl_c_stops_a_command_started_as_a_background_job_during_its_login(tmp_path: Path) -> None:
    """`devagent gpus --host srv &` from a script: SIGINT came ignored, and the login to the server (an ssh that
    never logs in here) waited its whole 30 s for it. Now Ctrl-C ends it at once, and leaves no ssh, no folder."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text('#!/bin/sh\necho $$ > "$SSH_PID_FILE.tmp" && mv "$SSH_PID_FILE.tmp" "$SSH_PID_FILE"\n'
                              "exec sleep 120\n")
    (fake / "ssh").chmod(0o755)
    runtime, pid_file = tmp_path / "run", tmp_path / "ssh.pid"
    runtime.mkdir(mode=0o700)
    environ = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "XDG_RUNTIME_DIR": str(runtime),
               "SSH_PID_FILE": str(pid_file), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    # As a shell script's background job starts it (and a CI runner): SIGINT ignored.
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "-m", "devagent",
                             "gpus", "--host", "srv"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pid_file.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)  # the login would wait 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (130, "", "\nError: interrupted\n  hint: run the command again\n")
    ssh_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(ssh_pid, 0)
    assert list(runtime.iterdir()) == []


# -- the transaction ------------------------------------------------------------------------------------------


def transaction(signals: StopSignals | None, undone: list[str], *steps: str) -> Transaction:
    tx = Transaction(lambda line: undone.append(f"report: {line}"), signals)
    for step in steps:
        tx.on_failure(lambda step=step: undone.append(step))  # type: ignore[misc]
    return tx


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_in_the_block_undoes_every_step_in_reverse_and_exits_128_plus_n(sig: int) -> None:
    undone: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "host key", "container", "alias")):
        signal.raise_signal(sig)
    assert undone == ["alias", "container", "host key"]
    assert raised.value.status == 128 + sig
    assert raised.value.message == f"{describe(sig)}; everything `up` had made is removed again"
    assert raised.value.hint == AGAIN  # every failure ends with a hint (docs/reference/exit-codes.md)


def test_a_second_signal_during_the_rollback_does_not_cut_it_short() -> None:
    undone: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "host key", "container") as tx):
        tx.on_failure(lambda: signal.raise_signal(signal.SIGINT))  # Ctrl-C again, while undoing
        signal.raise_signal(signal.SIGHUP)
    assert undone == ["container", "host key"]
    assert raised.value.status == ExitStatus.HANGUP  # the first signal's


def test_a_stop_signal_during_a_whole_step_lets_it_finish_then_undoes_it_too() -> None:
    # Docker's create: until it answers, the container may be listed but not yet removable.
    undone: list[str] = []
    made: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "host key", "container") as tx):
        with tx.whole_step():
            signal.raise_signal(signal.SIGINT)
            made.append("container")
        made.append("files copied in")
    assert made == ["container"]
    assert undone == ["container", "host key"]
    assert raised.value.status == ExitStatus.INTERRUPTED


def test_a_stop_signal_whose_exception_something_swallowed_still_rolls_back() -> None:
    undone: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "container"),
          contextlib.suppress(BaseException)):  # as a library's broad except, or a finalizer, would
        signal.raise_signal(signal.SIGTERM)
    assert undone == ["container"]
    assert raised.value.status == ExitStatus.TERMINATED


def test_a_stop_signal_in_the_last_step_waits_for_it_and_keeps_what_it_made() -> None:
    undone: list[str] = []
    done: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "container") as tx, tx.last_step()):
        done.append("old container removed")
        signal.raise_signal(signal.SIGTERM)
        done.append("new container renamed")
    assert done == ["old container removed", "new container renamed"]
    assert undone == []
    assert raised.value.status == ExitStatus.TERMINATED
    assert raised.value.message == ("terminated (SIGTERM) during the last step of `up`, which then completed: the "
                                    "environment is made and kept")


def test_an_error_in_the_last_step_after_a_signal_is_the_error_shown() -> None:
    undone: list[str] = []
    with (StopSignals() as signals, pytest.raises(DevagentError) as raised,
          transaction(signals, undone, "container") as tx, tx.last_step()):
        signal.raise_signal(signal.SIGTERM)
        raise DevagentError("the rename failed")
    assert raised.value.message == "the rename failed"
    assert undone == ["container"]


def test_without_stop_signals_ctrl_c_still_rolls_back_with_130() -> None:
    undone: list[str] = []
    with pytest.raises(DevagentError) as raised, transaction(None, undone, "container"):
        raise KeyboardInterrupt
    assert undone == ["container"]
    assert raised.value.status == ExitStatus.INTERRUPTED


def test_a_failed_undo_step_is_reported_even_when_the_terminal_is_gone() -> None:
    def closed_terminal(line: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    undone: list[str] = []
    tx = Transaction(closed_terminal)
    tx.on_failure(lambda: undone.append("host key"))
    tx.on_failure(lambda: 1 / 0)
    with pytest.raises(DevagentError) as raised, tx:
        raise KeyboardInterrupt
    assert undone == ["host key"]
    assert raised.value.status == ExitStatus.INTERRUPTED


# -- before the transaction, and the entry point -----------------------------------------------------------------


class SignalledEngine(FakeEngine):
    """An empty engine, and SIGTERM comes while it is asked for the CPU count."""

    def cpu_count(self) -> int:
        signal.raise_signal(signal.SIGTERM)
        return 1


def test_sigterm_before_up_made_anything_exits_143_and_leaves_no_lock(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path / "home", user_ssh_config=tmp_path / "config")
    provisioner = Provisioner(engine=SignalledEngine(), paths=paths)
    with pytest.raises(DevagentError) as raised:
        provisioner.up(EnvSpec(name="box", base_image="base", workspace=str(tmp_path / "ws")))
    assert raised.value.status == ExitStatus.TERMINATED
    assert raised.value.message == "terminated (SIGTERM); `up` had made nothing that needed undoing"
    assert raised.value.hint == "nothing of it is left: run the same `devagent up` again (in tmux or screen if the " \
        "connection may drop)"
    assert not paths.env_lock("box").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_while_waiting_for_another_devagent_exits_143(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path / "home", user_ssh_config=tmp_path / "config")
    provisioner = Provisioner(engine=SignalledEngine(), paths=paths)
    with FileLock(paths.env_lock("box"), purpose="environment 'box'"):  # another devagent's up of box
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(DevagentError) as raised:
            provisioner.up(EnvSpec(name="box", base_image="base", workspace=str(tmp_path / "ws")))
    assert raised.value.status == ExitStatus.TERMINATED


class ClosedTerminal:
    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def flush(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def test_an_error_that_cannot_be_shown_still_exits_with_its_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # After SIGHUP the terminal is gone: the exit status is all that is left to tell.
    monkeypatch.setattr("sys.stderr", ClosedTerminal())
    assert main(["up", "Bad_Name"]) == ExitStatus.USAGE


def test_ctrl_c_in_any_other_command_ends_with_an_error_and_a_hint(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """It printed a bare "Interrupted.": exit-codes.md promises an `Error:` and a `hint:` line for every failure."""
    from devagent.cli import main

    def interrupted(_site: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("devagent.cli.site_options.provisioner", interrupted)
    assert main(["ls"]) == ExitStatus.INTERRUPTED == 130
    assert capsys.readouterr().err == "\nError: interrupted\n  hint: run the command again\n"  # \n: after ^C
