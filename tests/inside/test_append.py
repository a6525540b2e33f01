"""The one locked append: an append decided from the file's content (the next run number) is never raced."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from devagent.inside.append import locked_append


def next_number(existing: bytes) -> bytes:
    return b"%d\n" % (len(existing.splitlines()) + 1)


def _numbering_process(path: str, count: int, go: Any) -> None:
    go.wait()  # all processes start together, so their reads and appends race
    for _ in range(count):
        locked_append(Path(path), next_number)


def test_eight_processes_numbering_by_what_they_read_take_every_number_once(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Barrier(8)
    procs = [ctx.Process(target=_numbering_process, args=(str(path), 50, go)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 8
    assert path.read_text().splitlines() == [str(n) for n in range(1, 401)]


def test_a_decision_sees_the_whole_file_and_starts_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b'{"reserve": 1}\n{"reserve": 2}')  # a line someone left without its newline
    seen: list[bytes] = []

    def decide(existing: bytes) -> bytes:
        seen.append(existing)
        return b'{"reserve": 3}\n'

    assert locked_append(path, decide) == len(b'\n{"reserve": 3}\n')
    assert seen == [b'{"reserve": 1}\n{"reserve": 2}']
    assert path.read_bytes() == b'{"reserve": 1}\n{"reserve": 2}\n{"reserve": 3}\n'
