"""run_streaming with real processes: exit statuses, signals, output byte for byte through a pipe and a pty, stdin,
and no GPU figures (nor sampler thread) for a command on no GPU."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import tty
from pathlib import Path
from typing import Any

import pytest

from devagent.inside import nvml
from devagent.runs import streaming
from devagent.runs.gpu_memory import GpuSampler
from devagent.runs.streaming import CHUNK, _SignalRelay, run_streaming
from tests.runs.support import nvml_gpus
from tests.signals import signal_off_the_main_thread

TIMEOUT = 60

# Calls run_streaming in a process of its own (so that signals aimed at it never reach pytest) and writes the
# outcome, plus what the callback saw and the signal handlers afterwards, as JSON to the file in argv[1].
HELPER = r"""
import hashlib, json, os, signal, sys, threading
from devagent.runs.streaming import run_streaming

out_path, argv = sys.argv[1], sys.argv[2:]
seen = hashlib.sha256()
count = [0, 0]

def on_output(chunk):
    seen.update(chunk)
    count[0] += len(chunk)
    count[1] += 1
    if os.environ.get("HELPER_CALLBACK_RAISES"):
        raise RuntimeError("the callback broke")

before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
outcome = run_streaming(argv, on_output=on_output, sample_interval=0.05)
result = dict(
    vars(outcome),
    callback_bytes=count[0],
    callback_chunks=count[1],
    callback_sha256=seen.hexdigest(),
    handlers_restored=all(signal.getsignal(s) is h for s, h in before.items()),
    threads=sorted(t.name for t in threading.enumerate()),
)
with open(out_path, "w") as f:
    json.dump(result, f)
"""


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    path = tmp_path / "helper.py"
    path.write_text(HELPER)
    return path


def wrapper_command(helper: Path, result: Path, child_code: str) -> list[str]:
    return [sys.executable, str(helper), str(result), sys.executable, "-c", child_code]


def run_wrapped(helper: Path, tmp_path: Path, child_code: str, *, stdin: bytes = b"",
                env: dict[str, str] | None = None) -> tuple[dict[str, Any], bytes, bytes]:
    """Run CHILD_CODE through the helper with stdout a file; return the outcome, stdout's bytes and stderr."""
    result, stdout_file = tmp_path / "outcome.json", tmp_path / "stdout.bin"
    with stdout_file.open("wb") as out:
        done = subprocess.run(wrapper_command(helper, result, child_code), input=stdin, stdout=out,
                              stderr=subprocess.PIPE, timeout=TIMEOUT, check=False,
                              env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(result.read_text()), stdout_file.read_bytes(), done.stderr


def start_wrapped(helper: Path, result: Path, child_code: str) -> subprocess.Popen[bytes]:
    """The helper in a session of its own (its process group: itself and the child), output on a pipe."""
    return subprocess.Popen(wrapper_command(helper, result, child_code), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def read_until(fd: int, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    data = b""
    while marker not in data:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no {marker!r} within {timeout} s; got {data!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"end of output before {marker!r}; got {data!r}"
        data += chunk
    return data


# -- exit statuses --------------------------------------------------------------------------------------------

def test_a_command_that_succeeds_reports_0_and_its_stdout_and_stderr_arrive_merged(helper: Path,
                                                                                    tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('out\\n'); sys.stdout.flush(); sys.stderr.write('err\\n')"
    outcome, stdout, stderr = run_wrapped(helper, tmp_path, code)
    assert stdout == b"out\nerr\n"
    assert (outcome["returncode"], outcome["signal"], outcome["oom_killed"]) == (0, None, False)
    assert outcome["callback_bytes"] == len(stdout)
    assert outcome["handlers_restored"] is True
    assert stderr == b""


def test_the_exit_status_of_the_command_is_reported_as_is(helper: Path, tmp_path: Path) -> None:
    outcome, _, _ = run_wrapped(helper, tmp_path, "import sys; sys.exit(3)")
    assert (outcome["returncode"], outcome["signal"]) == (3, None)


def test_an_uncaught_exception_is_status_1_with_its_traceback_in_the_output(helper: Path, tmp_path: Path) -> None:
    outcome, stdout, _ = run_wrapped(helper, tmp_path, "1 / 0")
    assert (outcome["returncode"], outcome["signal"]) == (1, None)
    assert stdout.startswith(b"Traceback (most recent call last):")
    assert stdout.endswith(b"ZeroDivisionError: division by zero\n")


def test_a_command_killed_by_sigkill_is_137_with_signal_9(helper: Path, tmp_path: Path) -> None:
    outcome, _, _ = run_wrapped(helper, tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert (outcome["returncode"], outcome["signal"]) == (137, 9)
    assert outcome["oom_killed"] is False  # killed by a signal, not by the OOM killer


def test_the_duration_and_pid_are_the_commands(helper: Path, tmp_path: Path) -> None:
    outcome, stdout, _ = run_wrapped(helper, tmp_path, "import os, time; print(os.getpid()); time.sleep(0.3)")
    assert outcome["pid"] == int(stdout)
    assert 0.3 <= outcome["duration_s"] < 30


def test_a_command_that_cannot_start_raises_and_leaves_the_signal_handlers_as_they_were(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
    with pytest.raises(FileNotFoundError):
        run_streaming([str(tmp_path / "no-such-program")], on_output=lambda _: None)
    assert {s: signal.getsignal(s) for s in before} == before


def test_run_streaming_in_a_thread_other_than_main_runs_without_touching_signals(
        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    before = signal.getsignal(signal.SIGINT)
    chunks: list[bytes] = []
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.append(run_streaming(
        [sys.executable, "-c", "print('from a thread')"], on_output=chunks.append)))
    thread.start()
    thread.join(TIMEOUT)
    assert outcomes[0].returncode == 0
    assert b"".join(chunks) == b"from a thread\n"
    assert capfdbinary.readouterr().out == b"from a thread\n"
    assert signal.getsignal(signal.SIGINT) is before


# -- signals ----------------------------------------------------------------------------------------------------

# Sleeps in short steps, as a training loop's: CPython notices a signal handled between its last check and the start
# of a sleep only when that sleep ends, so one long sleep would make a signal test wait for it, now and then.
SLEEP = "for _ in range(600):\n    time.sleep(0.1)\n"
SLEEPER = "import sys, time\nprint('ready', flush=True)\n" + SLEEP


def test_ctrl_c_to_the_process_group_ends_the_command_with_130_while_the_wrapper_waits(helper: Path,
                                                                                      tmp_path: Path) -> None:
    result = tmp_path / "outcome.json"
    wrapper = start_wrapped(helper, result, SLEEPER)
    assert wrapper.stdout is not None
    read_until(wrapper.stdout.fileno(), b"ready\n")
    os.killpg(wrapper.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = wrapper.communicate(timeout=TIMEOUT)
    assert wrapper.returncode == 0, stderr.decode()  # the wrapper itself ignored it, and reported
    outcome = json.loads(result.read_text())
    assert (outcome["returncode"], outcome["signal"]) == (130, signal.SIGINT)
    assert outcome["handlers_restored"] is True


def test_a_sigint_to_the_wrapper_alone_is_ignored_and_the_command_runs_on(helper: Path, tmp_path: Path) -> None:
    result = tmp_path / "outcome.json"
    code = "import sys; print('ready', flush=True); sys.stdin.readline(); print('finished', flush=True)"
    wrapper = start_wrapped(helper, result, code)
    assert wrapper.stdout is not None and wrapper.stdin is not None
    read_until(wrapper.stdout.fileno(), b"ready\n")
    os.kill(wrapper.pid, signal.SIGINT)
    stdout, stderr = wrapper.communicate(b"go on\n", timeout=TIMEOUT)
    assert wrapper.returncode == 0, stderr.decode()
    assert stdout == b"finished\n"
    assert json.loads(result.read_text())["returncode"] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_sigterm_sighup_and_sigquit_to_the_wrapper_are_passed_on_to_the_command(helper: Path, tmp_path: Path,
                                                                                 signum: int) -> None:
    result = tmp_path / "outcome.json"
    code = ("import signal, sys, time\n"
            "def stop(n, f):\n"
            "    print('command got', n, flush=True); sys.exit(40)\n"
            f"signal.signal({int(signum)}, stop)\n"
            "print('ready', flush=True)\n" + SLEEP)
    wrapper = start_wrapped(helper, result, code)
    assert wrapper.stdout is not None
    read_until(wrapper.stdout.fileno(), b"ready\n")
    os.kill(wrapper.pid, signum)  # the wrapper only: docker stop, a closed ssh session, kill
    stdout, stderr = wrapper.communicate(timeout=TIMEOUT)
    assert wrapper.returncode == 0, stderr.decode()
    assert stdout == f"command got {int(signum)}\n".encode()
    assert json.loads(result.read_text())["returncode"] == 40


def test_a_command_that_dies_of_the_forwarded_sigterm_is_143(helper: Path, tmp_path: Path) -> None:
    result = tmp_path / "outcome.json"
    wrapper = start_wrapped(helper, result, SLEEPER)
    assert wrapper.stdout is not None
    read_until(wrapper.stdout.fileno(), b"ready\n")
    os.kill(wrapper.pid, signal.SIGTERM)
    wrapper.communicate(timeout=TIMEOUT)
    outcome = json.loads(result.read_text())
    assert (outcome["returncode"], outcome["signal"]) == (143, signal.SIGTERM)


def test_a_sigterm_that_lands_while_the_wrapper_waits_reaches_a_command_that_closed_its_output() -> None:
    # Once the output ends, the wrapper waits for the command: a plain wait() ran the handler (which passes SIGTERM
    # on) only when the command ended by itself, 60 s later here.
    before = signal.getsignal(signal.SIGTERM)
    # Sent once the wrapper's handler is in place (until then SIGTERM would end pytest itself).
    signal_off_the_main_thread(signal.SIGTERM, after=1.0, when=lambda: signal.getsignal(signal.SIGTERM) is not before)
    outcome = run_streaming(["sh", "-c", "exec >/dev/null 2>&1; exec sleep 60"], on_output=lambda _: None)
    assert (outcome.returncode, outcome.signal) == (143, signal.SIGTERM)
    assert outcome.duration_s < 30
    assert signal.getsignal(signal.SIGTERM) is before


# -- output, byte for byte --------------------------------------------------------------------------------------

def test_megabytes_of_binary_output_reach_stdout_and_the_callback_byte_for_byte(helper: Path,
                                                                               tmp_path: Path) -> None:
    size = 8 * 1024 * 1024
    expected = random.Random(7).randbytes(size)  # noqa: S311  # test data, reproducible in the child
    code = ("import random, sys\n"
            f"data = random.Random(7).randbytes({size})\n"
            "i = 0\n"
            "sizes = random.Random(8)\n"
            "while i < len(data):\n"  # writes of every size, from 1 byte to 200 KiB
            "    n = sizes.randint(1, 200_000)\n"
            "    sys.stdout.buffer.write(data[i:i + n]); sys.stdout.buffer.flush(); i += n\n")
    outcome, stdout, _ = run_wrapped(helper, tmp_path, code)
    assert outcome["returncode"] == 0
    assert len(stdout) == size
    assert hashlib.sha256(stdout).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert outcome["callback_sha256"] == hashlib.sha256(expected).hexdigest()


def test_progress_bars_colours_and_every_byte_value_pass_through_unchanged(helper: Path, tmp_path: Path) -> None:
    payload = (b"epoch 1:  10%|#         | 1/10\r" b"epoch 1: 100%|##########| 10/10\r\n"
               b"\x1b[31mred\x1b[0m\tno newline at the end:" + bytes(range(256)))
    code = f"import sys; sys.stdout.buffer.write({payload!r})"
    outcome, stdout, _ = run_wrapped(helper, tmp_path, code)
    assert stdout == payload
    assert outcome["callback_bytes"] == len(payload)


def test_a_callback_that_raises_never_stops_the_stream_and_is_reported_once(helper: Path, tmp_path: Path) -> None:
    # 200 lines of 16 KiB: more than CHUNK bytes in all, so the callback is called several times however the
    # reads fall.
    code = "for i in range(200):\n    print(str(i).ljust(16383, '.'), flush=True)\n"
    outcome, stdout, stderr = run_wrapped(helper, tmp_path, code, env={"HELPER_CALLBACK_RAISES": "1"})
    assert stdout == "".join(str(i).ljust(16383, ".") + "\n" for i in range(200)).encode()
    assert len(stdout) > 3 * CHUNK
    assert outcome["returncode"] == 0
    assert outcome["callback_chunks"] > 1
    assert stderr.count(b"the output callback failed; the output still streams") == 1
    assert b"RuntimeError: the callback broke" in stderr


def test_the_command_reads_stdin_itself(helper: Path, tmp_path: Path) -> None:
    code = "import sys; line = sys.stdin.readline(); print('read:', line.strip().upper())"
    outcome, stdout, _ = run_wrapped(helper, tmp_path, code, stdin=b"a line from the keyboard\n")
    assert stdout == b"read: A LINE FROM THE KEYBOARD\n"
    assert outcome["returncode"] == 0


# -- a terminal -------------------------------------------------------------------------------------------------

def open_terminal(rows: int, columns: int) -> tuple[int, int]:
    """A pty for the wrapper, raw (no \\n → \\r\\n), so what the test reads is what the wrapper wrote."""
    master, slave = os.openpty()
    tty.setraw(slave)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def read_all(master: int, process: subprocess.Popen[bytes]) -> bytes:
    data = b""
    while True:
        ready, _, _ = select.select([master], [], [], TIMEOUT)
        assert ready, f"the wrapper went quiet; got {data!r}"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every slave end closed
            break
        if not chunk:
            break
        data += chunk
    process.wait(TIMEOUT)
    return data


def test_in_a_terminal_the_command_gets_a_terminal_of_the_same_size_and_its_bytes_arrive_unchanged(
        helper: Path, tmp_path: Path) -> None:
    master, slave = open_terminal(33, 101)
    result = tmp_path / "outcome.json"
    code = ("import json, os, sys\n"
            "report = dict(stdout=os.isatty(1), stderr=os.isatty(2), size=list(os.get_terminal_size(1)))\n"
            "sys.stdout.buffer.write(json.dumps(report).encode() + b'\\nline\\r\\n\\x1b[1mbold\\x1b[0m\\rover\\n')\n")
    wrapper = subprocess.Popen(wrapper_command(helper, result, code), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        output = read_all(master, wrapper)
    finally:
        os.close(master)
    assert wrapper.returncode == 0, output
    report, _, rest = output.partition(b"\n")
    assert json.loads(report) == {"stdout": True, "stderr": True, "size": [101, 33]}
    assert rest == b"line\r\n\x1b[1mbold\x1b[0m\rover\n"  # the pty added no \r before \n
    assert json.loads(result.read_text())["returncode"] == 0


def test_in_a_terminal_a_resize_reaches_the_command(helper: Path, tmp_path: Path) -> None:
    master, slave = open_terminal(24, 80)
    result = tmp_path / "outcome.json"
    code = ("import os, signal, sys, threading\n"
            "resized = threading.Event()\n"
            "signal.signal(signal.SIGWINCH, lambda n, f: resized.set())\n"
            "print('ready', os.get_terminal_size(1).columns, flush=True)\n"
            "resized.wait(60)\n"
            "print('resized to', os.get_terminal_size(1).columns, os.get_terminal_size(1).lines, flush=True)\n")
    wrapper = subprocess.Popen(wrapper_command(helper, result, code), stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True)
    os.close(slave)
    try:
        assert b"ready 80\n" in read_until(master, b"ready 80\n")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        os.kill(wrapper.pid, signal.SIGWINCH)  # what the kernel sends the terminal's foreground group
        output = read_all(master, wrapper)
    finally:
        os.close(master)
    assert output == b"resized to 132 50\n"


def test_a_resize_before_the_wrapper_knows_its_command_is_kept_and_delivered() -> None:
    # Loaded machines showed it: the command ran and printed before run_streaming attached it to the relay, the
    # user's resize came in between, and the command never heard of it (the resize test waited out its 60 s).
    class Command:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send_signal(self, signum: int) -> None:
            self.sent.append(signum)

    terminal_master, terminal = os.openpty()
    fcntl.ioctl(terminal_master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
    command_master, command_end = os.openpty()
    relay = _SignalRelay(winch=True)
    command = Command()
    with open(terminal, "wb", buffering=0, closefd=False) as out:
        relay._handle(signal.SIGWINCH, None)
        assert command.sent == []
        relay.attach(command, pty_master=command_master, terminal=out)  # type: ignore[arg-type]
        size = struct.unpack("HHHH", fcntl.ioctl(command_end, termios.TIOCGWINSZ, b"\0" * 8))
    for fd in (terminal_master, terminal, command_master, command_end):
        os.close(fd)
    assert command.sent == [signal.SIGWINCH]
    assert size[:2] == (50, 132)


def test_a_command_that_uses_no_gpu_has_no_gpu_figures_and_leaves_no_sampler_thread(helper: Path,
                                                                                     tmp_path: Path) -> None:
    outcome, _, _ = run_wrapped(helper, tmp_path, "print('cpu only')")
    figures = (outcome["gpu_peak_bytes"], outcome["gpu_total_bytes"], outcome["gpus_used"])
    # Without a GPU (nvidia-ml-py is installed: NVML itself says there is none) no sampler runs at all.
    assert figures == ((None, None, 0) if nvml_gpus() == 0 else (0, None, 0))
    assert outcome["threads"] == ["MainThread"]
    assert vars(nvml)["pynvml"] is not None


def test_nvml_starts_once_the_command_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML's start (tens of ms on a GPU server: its library, every GPU opened) does not delay the command."""
    order: list[str] = []
    spawn = streaming._spawn

    def spawned(*args: Any, **kwargs: Any) -> Any:
        result = spawn(*args, **kwargs)
        order.append("command started")
        return result

    def opened(**kwargs: Any) -> None:
        order.append("NVML opened")

    monkeypatch.setattr(streaming, "_spawn", spawned)
    monkeypatch.setattr(GpuSampler, "open", opened)
    assert run_streaming([sys.executable, "-c", "pass"], on_output=lambda _: None).returncode == 0
    assert order == ["command started", "NVML opened"]
