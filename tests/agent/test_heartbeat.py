"""The agent's heartbeat for Docker's health check (agent/heartbeat.py): written until the agent stops, sshd's
listening socket read from /proc/net."""

from __future__ import annotations

import threading
from pathlib import Path

from devagent.agent import heartbeat as beat
from devagent.core import health


def test_the_agent_beats_until_it_stops_and_then_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / health.HEALTH_FILE
    answers = iter([[], ["sshd is not running (1 restart; docker logs shows why)"], []])
    clock = iter([100.0, 110.5, 120.9])
    stopping = threading.Event()
    seen: list[str] = []  # the file as each beat finds it: what the beat before wrote

    def problems() -> list[str]:
        if path.exists():
            seen.append(path.read_text())
        if len(seen) == 2:
            stopping.set()  # the third beat is the last
        return next(answers)

    thread = threading.Thread(target=beat.keep_beating, args=(path, problems, stopping),
                              kwargs={"every": 0.01, "clock": lambda: next(clock)})
    thread.start()
    thread.join(5)
    assert seen == ["100 ok\n", "110 sshd is not running (1 restart; docker logs shows why)\n"]
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no temporary file left either


def test_listening_reads_ipv4_and_ipv6_listeners_and_ignores_connections(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(header + "   0: 0100007F:1F90 0100007F:08AE 01 00000000:00000000 00:00000000 "
                                  "00000000  1000        0 1 1\n")
    assert not beat.listening(2222, tmp_path)  # a connection *to* 2222 is not a listener; no tcp6 file is fine
    (tmp_path / "tcp6").write_text(header + "   0: 00000000000000000000000000000000:08AE "
                                   "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
                                   "00000000  1000        0 2 1\n")
    assert beat.listening(2222, tmp_path)
    assert not beat.listening(22, tmp_path)
