"""Run a command the way a terminal would, and watch it: output, signals, exit status; OOM kills (oom.py) and GPU
memory (gpu_memory.py) beside it.

The command's output reaches our stdout byte for byte (tqdm's ``\\r`` progress, colours, binary), and every chunk
is also handed to a callback that keeps what the notebook shows. When our stdout is a terminal the command gets a
pseudo-terminal of its own for stdout and stderr, so it buffers, colours and draws progress bars as it would in
the terminal; otherwise one pipe carries both, as a terminal shows them. Stdin is inherited: the command reads
the keyboard itself.

Usage (what ``devagent run`` does)::

    outcome = run_streaming(["python", "train.py", "--lr", "3e-4"], on_output=tail.feed)
    sys.exit(outcome.returncode)            # 130 after Ctrl-C, 137 after a SIGKILL, as a shell reports them
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from devagent.runs.cpu_share import children_cpu, cpu_share
from devagent.runs.oom import oom_kill_count

if TYPE_CHECKING:  # the sampler (with NVML's library, ~15 ms of imports) is imported once the command runs
    from devagent.core.runs.gpu_timeline import DeviceTimeline
    from devagent.runs.gpu_memory import GpuSampler

log = logging.getLogger("devagent.process")

CHUNK = 1 << 20  # bytes per read: whatever the command wrote so far, up to this, is passed on at once
PIPE_BYTES = 1 << 20  # the output pipe's size (Linux's default is 64 KiB; unprivileged users may go to 1 MiB)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
DRAIN_S = 2.0  # after the command exits, how long a descendant that still holds the output open is waited for
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
WAIT_S = 0.5  # the longest the main thread waits for the command before it looks for a signal again


@dataclass
class ProcessOutcome:
    """How a command ended, in a shell's terms, and what it used."""

    returncode: int  # exit status, or 128+N when killed by signal N (SIGINT → 130, SIGKILL → 137)
    signal: int | None  # N when killed by a signal
    duration_s: float
    pid: int
    oom_killed: bool  # the cgroup's OOM-kill counter went up during the run
    gpu_peak_bytes: int | None  # peak GPU memory of the process tree, summed over GPUs; None without NVML or GPU
    gpu_total_bytes: int | None  # total memory of the GPUs the tree used; None when it used none
    gpus_used: int  # distinct GPUs the tree appeared on
    gpu_devices: tuple[int, ...] = ()  # their NVML indices
    gpu_timelines: tuple[DeviceTimeline, ...] = ()  # what each of them did over time
    cpu_share: float | None = None  # the tree's CPU time over duration × the cores it could use


class SideOutput(Protocol):
    """Output the command writes elsewhere than its stdout and stderr (a torchrun's rank files: rank_logs.py),
    passed on beside them from a thread of its own while the command runs, and drained when it has ended."""

    def start(self, write: Callable[[bytes], None]) -> None: ...

    def stop(self) -> None: ...


def run_streaming(argv: Sequence[str], *, on_output: Callable[[bytes], None], env: Mapping[str, str] | None = None,
                  cwd: str | None = None, sample_interval: float = 0.5,
                  side: SideOutput | None = None, on_start: Callable[[], None] | None = None) -> ProcessOutcome:
    """Run ARGV (in CWD, with ENV) in our process group, stream its output to our stdout unchanged and to
    ON_OUTPUT, and return how it ended. SIDE's output, when given, goes the same way. ON_START is called once
    the command has started (work that need not delay it); its exceptions are logged, never raised.

    While it runs, SIGINT is ignored here (Ctrl-C in a terminal reaches the command itself, which shares our
    process group); SIGTERM, SIGHUP and SIGQUIT sent to us are passed on to the command. ON_OUTPUT's exceptions
    are logged, never raised: it cannot stop the stream. Raises OSError when ARGV cannot be started.
    """
    out = _binary_stdout()
    terminal = out is not None and _is_terminal(out)
    for stream in (sys.stdout, sys.stderr):  # what we printed before comes before the command's output
        with contextlib.suppress(Exception):
            stream.flush()
    sink = _Sink(out, on_output)
    oom_before = oom_kill_count()
    cpu_before = children_cpu()
    sampler: GpuSampler | None = None
    try:
        with _SignalRelay(winch=terminal) as relay:
            started = time.monotonic()
            process, reader = _spawn(argv, env=env, cwd=cwd, terminal=terminal, out=out)
            relay.attach(process, pty_master=reader if terminal else None, terminal=out if terminal else None)
            # NVML's start (its library loaded, every GPU opened) while the command starts, not before it
            from devagent.runs.gpu_memory import GpuSampler
            sampler = GpuSampler.open(interval=sample_interval)
            if sampler is not None:
                sampler.follow(process.pid)
            if side is not None:
                side.start(sink.write)
            if on_start is not None:
                try:
                    on_start()
                except Exception:
                    log.exception("preparing the run's record beside the command failed")
            try:
                _pump(reader, process, sink)
            finally:
                os.close(reader)
                returncode = _wait(process)
                duration = time.monotonic() - started
                relay.detach()
    finally:
        if side is not None:  # after the command's end: what it left is read at once
            side.stop()
        peak, total, gpus = sampler.stop() if sampler is not None else (None, None, 0)
        devices = tuple(sorted(sampler.usage.devices)) if sampler is not None else ()
        timelines = sampler.timelines.of(devices) if sampler is not None else ()
    oom_after = oom_kill_count()
    killed_by = -returncode if returncode < 0 else None
    return ProcessOutcome(
        returncode=128 + killed_by if killed_by is not None else returncode,
        signal=killed_by,
        duration_s=duration,
        pid=process.pid,
        oom_killed=oom_before is not None and oom_after is not None and oom_after > oom_before,
        gpu_peak_bytes=peak,
        gpu_total_bytes=total,
        gpus_used=gpus,
        gpu_devices=devices,
        gpu_timelines=timelines,
        cpu_share=cpu_share(children_cpu() - cpu_before, duration),
    )


def _wait(process: subprocess.Popen[bytes]) -> int:
    """Its exit status, in short waits: a handler runs only once the main thread's blocking call returns, and a
    SIGTERM that landed just before a plain wait() would reach the command (which closed its output and runs on)
    only once it ended by itself."""
    while True:
        try:
            return process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            continue


def _spawn(argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: str | None, terminal: bool,
           out: BinaryIO | None) -> tuple[subprocess.Popen[bytes], int]:
    """Start ARGV; return it and the descriptor its output is read from (a pty master, or a pipe)."""
    if not terminal:
        # stderr merged into stdout: one stream, in the order the command wrote it, as a terminal shows it.
        process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=dict(env) if env is not None else None, cwd=cwd)
        assert process.stdout is not None
        reader = os.dup(process.stdout.fileno())  # ours to close; the Popen object closes its own
        process.stdout.close()
        with contextlib.suppress(OSError):  # a bigger pipe: fewer, larger reads when the command floods
            fcntl.fcntl(reader, F_SETPIPE_SZ, PIPE_BYTES)
        return process, reader
    master, slave = pty.openpty()
    try:
        _prepare_pty(slave, out)
        # No setsid: the command stays in our process group and session, so the real terminal (its stdin and
        # controlling terminal) delivers Ctrl-C, Ctrl-Z and job control to it directly.
        process = subprocess.Popen(list(argv), stdout=slave, stderr=slave,
                                   env=dict(env) if env is not None else None, cwd=cwd)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the command holds it now; the master reads EIO once every holder has closed it
    return process, master


def _prepare_pty(slave: int, terminal: BinaryIO | None) -> None:
    # No output processing on our pty: the command's bytes reach our terminal unchanged, and the real terminal
    # applies its own (\n → \r\n) once, as if the command wrote to it directly.
    with contextlib.suppress(termios.error):
        attributes = termios.tcgetattr(slave)
        attributes[1] &= ~termios.OPOST
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
    if terminal is not None:
        _copy_window_size(terminal, slave)


def _copy_window_size(terminal: BinaryIO, pty_fd: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        size = fcntl.ioctl(terminal.fileno(), termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, size)


def _pump(fd: int, process: subprocess.Popen[bytes], sink: _Sink) -> None:
    """Pass everything read from FD to SINK until the end of the output, or shortly after the command exited
    while a descendant (a daemon it started) still holds the output open."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline: float | None = None
    while True:
        if deadline is None and process.poll() is not None:
            deadline = time.monotonic() + DRAIN_S
        if deadline is not None and time.monotonic() > deadline:
            return
        # The command exited: read what is left, and stop at the first moment nothing is.
        if not poller.poll(0 if deadline is not None else 500):
            if deadline is not None:
                return
            continue
        try:
            data = os.read(fd, CHUNK)
        except OSError as exc:
            if exc.errno == errno.EIO:  # a pty master once every slave end is closed: normal on Linux
                return
            raise
        if not data:
            return
        sink.write(data)


class _Sink:
    """Our stdout, unchanged, and the caller's callback; neither may stop the stream."""

    def __init__(self, out: BinaryIO | None, on_output: Callable[[bytes], None]) -> None:
        self._out = out
        self._on_output = on_output
        self._callback_errors = 0
        self._lock = threading.Lock()  # the pump and a side output's thread write alike

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._out is not None:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError) as exc:
                # A reader that went away (`| head`) must not kill a training run: keep draining, stop showing.
                log.warning("cannot write the command's output to stdout any more: %s", exc)
                self._out = None
        try:
            self._on_output(data)
        except Exception:
            self._callback_errors += 1
            if self._callback_errors == 1:
                log.exception("the output callback failed; the output still streams")
            else:
                log.debug("the output callback failed again (%d times)", self._callback_errors)


def _binary_stdout() -> BinaryIO | None:
    return getattr(sys.stdout, "buffer", None)  # None: no stdout at all (pythonw), or a text-only replacement


def _is_terminal(out: BinaryIO) -> bool:
    try:
        return os.isatty(out.fileno())
    except (OSError, ValueError, AttributeError):  # a replaced stdout without a descriptor
        return False


class _SignalRelay:
    """Signal handling while the command runs: SIGINT ignored, SIGTERM/SIGHUP/SIGQUIT passed on, SIGWINCH copied
    onto the pty. Handlers can only be set from the main thread; elsewhere nothing changes."""

    def __init__(self, *, winch: bool) -> None:
        self._signals = [signal.SIGINT, *FORWARDED, *([signal.SIGWINCH] if winch else [])]
        self._previous: dict[int, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._pty_master: int | None = None
        self._terminal: BinaryIO | None = None

    def __enter__(self) -> _SignalRelay:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in self._signals:
            # A Python handler, not SIG_IGN: an ignored signal stays ignored across exec, and the command must get
            # the default SIGINT (exec resets a handled signal to its default).
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def attach(self, process: subprocess.Popen[bytes], *, pty_master: int | None, terminal: BinaryIO | None) -> None:
        self._process, self._pty_master, self._terminal = process, pty_master, terminal
        pending, self._pending = self._pending, []
        for signum in pending:  # arrived between installing the handlers and the start
            self._deliver(signum)

    def detach(self) -> None:
        self._process = self._pty_master = self._terminal = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            return  # the terminal sent it to the command too; we wait for the command to decide
        if self._process is None:
            # The command may already run (and have printed) before attach(): a resize then is kept, not lost.
            self._pending.append(signum)
        else:
            self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        if signum == signal.SIGWINCH:
            if self._pty_master is not None and self._terminal is not None:
                _copy_window_size(self._terminal, self._pty_master)
                self._forward(signum)  # the pty is nobody's controlling terminal: the kernel signals no one
            return
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)  # a no-op once the command has been reaped
