"""Run a command the way a terminal would, and watch it: output, signals, exit status, OOM kills, GPU memory.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from devagent.runtime import nvml as nvml_guard

log = logging.getLogger("devagent.process")

CHUNK = 1 << 20  # bytes per read: whatever the command wrote so far, up to this, is passed on at once
PIPE_BYTES = 1 << 20  # the output pipe's size (Linux's default is 64 KiB; unprivileged users may go to 1 MiB)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
DRAIN_S = 2.0  # after the command exits, how long a descendant that still holds the output open is waited for
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


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


def run_streaming(argv: Sequence[str], *, on_output: Callable[[bytes], None], env: Mapping[str, str] | None = None,
                  cwd: str | None = None, sample_interval: float = 0.5) -> ProcessOutcome:
    """Run ARGV (in CWD, with ENV) in our process group, stream its output to our stdout unchanged and to
    ON_OUTPUT, and return how it ended.

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
    sampler = GpuSampler.open(interval=sample_interval)
    try:
        with _SignalRelay(winch=terminal) as relay:
            started = time.monotonic()
            process, reader = _spawn(argv, env=env, cwd=cwd, terminal=terminal, out=out)
            relay.attach(process, pty_master=reader if terminal else None, terminal=out if terminal else None)
            if sampler is not None:
                sampler.follow(process.pid)
            try:
                _pump(reader, process, sink)
            finally:
                os.close(reader)
                returncode = process.wait()
                duration = time.monotonic() - started
                relay.detach()
    finally:
        peak, total, gpus = sampler.stop() if sampler is not None else (None, None, 0)
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
    )


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

    def write(self, data: bytes) -> None:
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
            self._forward(signum)

    def detach(self) -> None:
        self._process = self._pty_master = self._terminal = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            return  # the terminal sent it to the command too; we wait for the command to decide
        if signum == signal.SIGWINCH:
            if self._pty_master is not None and self._terminal is not None:
                _copy_window_size(self._terminal, self._pty_master)
                self._forward(signum)  # the pty is nobody's controlling terminal: the kernel signals no one
            return
        if self._process is None:
            self._pending.append(signum)
        else:
            self._forward(signum)

    def _forward(self, signum: int) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)  # a no-op once the command has been reaped


# -- process tree -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` devagent uses."""

    state: str  # "R", "S", "Z" (a zombie: it has ended), ...
    ppid: int
    start_ticks: int | None  # when it started, in ticks after boot (with the pid, one process for good)


def proc_stat(process_dir: str | Path) -> ProcStat | None:
    """Read PROCESS_DIR/stat (PROCESS_DIR is ``/proc/PID``); None when it is gone or unreadable."""
    try:
        with open(os.path.join(process_dir, "stat"), "rb") as f:
            raw = f.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
        fields = raw[raw.rindex(b")") + 2:].split()
        return ProcStat(state=fields[0].decode(), ppid=int(fields[1]),
                        start_ticks=int(fields[19]) if len(fields) > 19 else None)
    except (OSError, ValueError, IndexError):
        return None


def process_tree(root: int, proc: Path = Path("/proc")) -> set[int]:
    """ROOT and all its descendants now (DataLoader workers are children of the training process), from the
    parent pid in each ``PROC/<pid>/stat``. ROOT is always in the set, even when it has already exited."""
    children: dict[int, list[int]] = {}
    try:
        entries = list(os.scandir(proc))
    except OSError:
        return {root}
    for entry in entries:
        if not entry.name.isdigit():
            continue
        stat = proc_stat(entry.path)
        if stat is None:
            continue  # exited meanwhile, or not a process entry
        children.setdefault(stat.ppid, []).append(int(entry.name))
    tree = {root}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


# -- cgroup OOM kills -------------------------------------------------------------------------------------------

def oom_kill_count(proc_self_cgroup: Path = Path("/proc/self/cgroup"),
                   cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """How many processes the kernel's OOM killer has killed in our memory cgroup (cgroup v2 ``memory.events``,
    v1 ``memory.oom_control``); None when that cannot be read.

    Inside a container without a cgroup namespace, /proc/self/cgroup names the host's path while the container
    sees its own cgroup at the mount's root: the path is shortened from the left until the file exists.
    """
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    # A v1 memory controller wins: on a hybrid host the v2 hierarchy has no memory controller.
    if v1_path is not None:
        return _read_oom_kill(cgroup_root / "memory", v1_path, "memory.oom_control")
    if v2_path is not None:
        return _read_oom_kill(cgroup_root, v2_path, "memory.events")
    return None


def _read_oom_kill(mount: Path, cgroup: str, name: str) -> int | None:
    parts = [p for p in cgroup.split("/") if p]
    for start in range(len(parts) + 1):
        try:
            text = mount.joinpath(*parts[start:], name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None  # the file, without the counter (a kernel before 4.13)
    return None


# -- GPU memory -------------------------------------------------------------------------------------------------

@dataclass
class GpuUsage:
    """What a GpuSampler saw: the peak of the tree's summed GPU memory, the GPUs it was on and their memory."""

    peak_bytes: int = 0
    devices: set[int] = field(default_factory=set)
    totals: dict[int, int] = field(default_factory=dict)  # device index → total memory, where NVML tells

    @property
    def total_bytes(self) -> int | None:
        known = [self.totals[d] for d in self.devices if d in self.totals]
        return sum(known) if known else None


class GpuSampler:
    """Samples, in a daemon thread, the GPU memory NVML attributes to a process tree.

    Where NVML's pids are from another pid namespace (a container without the host's pids, the usual case:
    NVML reports host pids) none of them matches the tree; the sampler then counts the rise of each device's used
    memory over what it was when the sampler opened, which includes anything else that started on that GPU.

    >>> GpuSampler.start(4242, nvml=None) is None   # no NVML: no sampler, no thread
    True
    """

    def __init__(self, nvml: Any, handles: dict[int, Any], *, interval: float, proc: Path = Path("/proc")) -> None:
        self._nvml = nvml
        self._handles = handles
        self._interval = interval
        self._proc = proc
        self._baseline: dict[int, int] = {}
        self.usage = GpuUsage()
        for index, handle in handles.items():
            memory = self._field(nvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                self.usage.totals[index] = int(memory.total)
                self._baseline[index] = int(memory.used)
        self._root: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, *, interval: float, nvml: Any = nvml_guard.pynvml,
             proc: Path = Path("/proc")) -> GpuSampler | None:
        """A sampler over every GPU NVML sees; None without NVML, when it cannot start, or with no GPU."""
        error = nvml_guard.init(nvml)
        if error is not None:
            log.debug("no GPU sampling: %s", error)
            return None
        try:
            handles = {}
            for index in range(nvml.nvmlDeviceGetCount()):
                with contextlib.suppress(nvml.NVMLError):  # a lost GPU is left out
                    handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            if handles:
                return cls(nvml, handles, interval=interval, proc=proc)
        except Exception as exc:
            log.debug("no GPU sampling: %s", nvml_guard.error_text(exc))
        nvml_guard.shutdown(nvml)
        return None

    @classmethod
    def start(cls, root: int, *, interval: float = 0.5, nvml: Any = nvml_guard.pynvml,
              proc: Path = Path("/proc")) -> GpuSampler | None:
        """Open a sampler and follow ROOT's tree now (a process that is already running, such as an observed
        one); None where ``open`` gives none."""
        sampler = cls.open(interval=interval, nvml=nvml, proc=proc)
        if sampler is not None:
            sampler.follow(root)
        return sampler

    def follow(self, root: int) -> None:
        """Sample ROOT's tree every interval, in a daemon thread, until ``stop``."""
        self._root = root
        self._thread = threading.Thread(target=self._run, name="devagent-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int, int | None, int]:
        """End the sampling and release NVML. Returns (peak bytes, total bytes of the GPUs used or None when
        none was, number of GPUs used); ``usage`` keeps the details."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        nvml_guard.shutdown(self._nvml)
        return self.usage.peak_bytes, self.usage.total_bytes, len(self.usage.devices)

    def sample(self, root: int) -> int:
        """One sample of ROOT's tree: its GPU memory now, summed over GPUs (also folded into ``usage``)."""
        tree = process_tree(root, self._proc)
        total = 0
        for index, handle in self._handles.items():
            used = self._device_bytes(index, handle, tree)
            if used is not None:
                self.usage.devices.add(index)
                total += used
        self.usage.peak_bytes = max(self.usage.peak_bytes, total)
        return total

    def _device_bytes(self, index: int, handle: Any, tree: set[int]) -> int | None:
        """The tree's memory on one GPU, or None when the tree is not on it."""
        running = [*(self._field(self._nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []),
                   *(self._field(self._nvml.nvmlDeviceGetGraphicsRunningProcesses, handle) or [])]
        known = 0
        matched = unknown = foreign = False
        seen: set[int] = set()
        for process in running:
            pid = int(process.pid)
            if pid in seen:  # a process with a compute and a graphics context is listed twice
                continue
            seen.add(pid)
            if pid in tree:
                matched = True
                if process.usedGpuMemory is None:  # NVML_VALUE_NOT_AVAILABLE (no permission, some vGPUs)
                    unknown = True
                else:
                    known += int(process.usedGpuMemory)
            elif not (self._proc / str(pid)).exists():
                foreign = True
        if matched and not unknown:
            return known
        if (unknown or foreign) and index in self._baseline:
            memory = self._field(self._nvml.nvmlDeviceGetMemoryInfo, handle)
            rise = int(memory.used) - self._baseline[index] if memory is not None else 0
            if rise > 0:
                return max(rise, known)
        return known if matched else None

    def _run(self) -> None:
        assert self._root is not None
        while not self._stop.wait(self._interval):
            try:
                self.sample(self._root)
            except Exception:  # never let a sampling error end the run's streaming or the thread
                log.debug("GPU sample failed", exc_info=True)

    def _field(self, query: Callable[..., Any], *args: Any) -> Any:
        return nvml_guard.query(self._nvml, query, *args)
