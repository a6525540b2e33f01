"""The agent's idle watcher with a stand-in NVML and a fake clock (this machine has no GPU): the usage record
`devagent gpus` reads, the release once every GPU was idle for the limit with nobody busy, and never a release
while an ssh session is open, a `devagent run` runs, a GPU cannot be read or NVML is missing. The ring is bounded
to an hour. `devagent run` processes are found by their command line."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from devagent.agent.idle import IdleWatcher, devagent_runs
from devagent.core.gpu.idle_rule import History, parse_usage
from tests.fake_nvml import FakeNvml

A, B = "GPU-aaaa-idle", "GPU-bbbb-idle"


def two_gpus(*, init_error: str | None = None) -> FakeNvml:
    """A and B, idle; their UUIDs as bytes, as older pynvml gives them."""
    return FakeNvml(uuids=(A.encode(), B.encode()), init_error=init_error)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WALL = datetime(2026, 12, 7, 17, 0, tzinfo=timezone.utc)


def watcher(tmp_path: Path, lib: FakeNvml, clock: Clock, *, busy: list[bool] | None = None,
            limit: float | None = 60.0) -> tuple[IdleWatcher, list[str]]:
    entries: list[str] = []
    state = busy if busy is not None else [False]
    w = IdleWatcher(limit=limit, name="exp", on_release=entries.append, lib=lib, usage_file=tmp_path / "usage.json",
                    interval=10.0, busy=lambda: state[0], clock=clock, wall=lambda: WALL)
    return w, entries


def run_for(w: IdleWatcher, clock: Clock, seconds: float) -> bool:
    """Tick every 10 s for SECONDS; True once a tick released."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 10
        if w.tick():
            return True
    return False


def test_idle_gpus_with_nobody_busy_are_given_back_after_the_limit_and_the_notebook_says_so(
        tmp_path: Path) -> None:
    lib, clock = two_gpus(), Clock()
    w, entries = watcher(tmp_path, lib, clock)
    assert not run_for(w, clock, 50)
    assert run_for(w, clock, 20)
    assert w.released
    [entry] = entries
    assert entry == ("\n## 2026-12-07 17:00 · GPUs given back\n\nThe GPUs were idle for 1m with no ssh session "
                     "open and no `devagent run` running (idle limit 1m): the container stopped and gave back "
                     f"`{A}`, `{B}`. The workspace and the home stay; `devagent up exp` takes GPUs anew.\n")


def test_an_open_ssh_session_or_a_devagent_run_holds_the_gpus_however_long_they_idle(tmp_path: Path) -> None:
    lib, clock = two_gpus(), Clock()
    busy = [True]
    w, _ = watcher(tmp_path, lib, clock, busy=busy)
    assert not run_for(w, clock, 3600)
    busy[0] = False  # the session ends: the limit counts from now
    assert not run_for(w, clock, 50)
    assert run_for(w, clock, 20)


def test_a_working_gpu_or_one_nvml_cannot_read_holds_them(tmp_path: Path) -> None:
    lib, clock = two_gpus(), Clock()
    w, _ = watcher(tmp_path, lib, clock)
    lib.util[1] = 80
    assert not run_for(w, clock, 600)
    lib.util[1] = None  # unknown is not idle
    assert not run_for(w, clock, 600)
    lib.util[1] = 3  # below 5 %: idle
    assert not run_for(w, clock, 50)
    assert run_for(w, clock, 20)


def test_without_a_limit_it_only_records(tmp_path: Path) -> None:
    lib, clock = two_gpus(), Clock()
    w, entries = watcher(tmp_path, lib, clock, limit=None)
    lib.util[0] = 40
    assert not run_for(w, clock, 7200)
    usage = parse_usage((tmp_path / "usage.json").read_text())
    assert usage[A].mean_utilization == 40.0 and usage[A].idle_seconds == 0.0
    assert usage[B].mean_utilization == 0.0 and usage[B].idle_seconds == 7190.0
    record = json.loads((tmp_path / "usage.json").read_text())
    assert record["gpus"][A]["samples"] == 361  # an hour at 10 s, and no more: bounded
    assert record["idle_release_seconds"] is None and entries == []


def test_no_nvml_means_nothing_sampled_and_nothing_given_back(tmp_path: Path) -> None:
    lib = two_gpus(init_error="Driver Not Loaded")
    w, entries = watcher(tmp_path, lib, Clock())
    stopping = threading.Event()
    w.run(stopping)  # returns at once
    assert not stopping.is_set() and entries == [] and not (tmp_path / "usage.json").exists()


def test_run_stops_the_agent_when_it_releases(tmp_path: Path) -> None:
    lib = two_gpus()
    w = IdleWatcher(limit=0.3, name="exp", on_release=lambda _: None, lib=lib, usage_file=tmp_path / "u.json",
                    busy=lambda: False)
    stopping = threading.Event()
    thread = threading.Thread(target=w.run, args=(stopping,))
    thread.start()
    assert stopping.wait(30)
    thread.join(30)
    assert w.released and lib.shut


def test_history_keeps_an_hour() -> None:
    h = History(interval=15.0)
    for t in range(0, 3 * 3600, 15):
        h.add(float(t), {A: 1})
    assert len(h.samples[A]) == 241


def test_devagent_run_processes_are_found_by_their_command_line(tmp_path: Path) -> None:
    def proc(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    proc(10, "/opt/devagent/venv/bin/python3", "/opt/devagent/venv/bin/devagent", "run", "--", "python", "t.py")
    proc(11, "python3", "-m", "devagent", "run", "python", "t.py")
    proc(12, "/opt/devagent/venv/bin/devagent", "agent", "--sshd-config", "/c")
    proc(13, "python", "train.py", "devagent", "run")  # taken for one too: a false one only keeps the GPUs
    proc(14, "bash")
    proc(99, "/opt/devagent/venv/bin/devagent", "run", "x")  # the asker itself
    assert sorted(devagent_runs(tmp_path, me=99)) == [10, 11, 13]
