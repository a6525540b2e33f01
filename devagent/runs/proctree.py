"""The process tree of a run, from procfs: a process's state, parent and start time, and all its descendants now
(DataLoader workers are children of the training process)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
