"""The runs journal: run numbers and what each run recorded, under the workspace so it survives restarts.

Layout, inside the workspace::

    .devagent/runs.jsonl     append-only: a reservation line ``{"reserve": N, ...}`` when a run starts (so two runs
                             started together get different numbers), then the run's RunRecord when it ends
    .devagent/runs/N/        the run's own files: the helper's lab.jsonl, the section kept back when the notebook
                             could not be written

The reservation reads the journal and appends to it under one lock (devagent/inside/append.py), so the number
is the next one whoever else reserves at the same moment. A line that does not parse (a crash, a full disk and a
failed truncate left half of one) is skipped with a warning, and the next append starts on a line of its own, so
a torn line never takes the next record with it. Nothing here follows a symbolic link
(devagent/nofollow/walk.py).

>>> from pathlib import Path; import tempfile
>>> log = RunLog(Path(tempfile.mkdtemp()))
>>> log.reserve("2026-11-27T14:00:00+00:00"), log.reserve("2026-11-27T14:01:00+00:00")
(1, 2)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from devagent.core import layout
from devagent.core.runs.record import RunRecord
from devagent.inside.append import locked_append
from devagent.inside.workspace_state import prepare_workspace_state, state_folder_problem
from devagent.nofollow.walk import make_dirs_beneath, read_beneath

log = logging.getLogger("devagent.run")


class RunLog:
    """Numbers runs and keeps their records (one JSON line each); safe across processes and containers."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(os.path.abspath(workspace))
        self.path = layout.runs_journal(self.workspace)

    def reserve(self, started: str, *, node: tuple[str, int | None] | None = None) -> int:
        """The next run number, taken for good (a run that dies before its record still used it). NODE, for one
        node of a multi-node run: its rendezvous and node rank, so that the other nodes' runs can name it."""
        def reservation(lines: list[str]) -> tuple[int, str]:
            number = 1 + max((_number(line) for line in lines), default=0)
            data: dict[str, object] = {"reserve": number, "started": started}
            if node is not None:
                data["rendezvous"], data["node_rank"] = node
            return number, json.dumps(data)

        return self._append_locked(reservation)

    def record(self, record: RunRecord) -> None:
        self._append_locked(lambda lines: (record.number, record.to_json()))

    def records(self) -> list[RunRecord]:
        """Finished runs, in the order they finished. A line that is not JSON is skipped with a warning (a last
        line without its newline quietly: it may be an append in progress)."""
        if state_folder_problem(self.workspace) is not None:
            return []  # not devagent's folder: nothing in it is believed
        try:
            text = read_beneath(self.workspace, self.path).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("runs journal %s: not read (%s)", self.path, exc)
            return []
        out: list[RunRecord] = []
        lines = text.split("\n")
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                if index < len(lines) - 1:
                    log.warning("runs journal %s: skipping line %d, which is not whole JSON: %.60r", self.path,
                                index + 1, line)
                continue
            if isinstance(data, dict) and "reserve" in data:
                continue  # a reservation: not a finished run
            try:
                out.append(RunRecord.from_json(line))
            except ValueError as exc:
                log.warning("runs journal %s: skipping line %d (%s)", self.path, index + 1, exc)
        return out

    def nodes(self, rendezvous: str) -> dict[int, int | None]:
        """Runs of the multi-node job RENDEZVOUS, started or finished: run number → node rank."""
        if state_folder_problem(self.workspace) is not None:
            return {}
        try:
            text = read_beneath(self.workspace, self.path).decode("utf-8", errors="replace")
        except OSError:
            return {}
        found: dict[int, int | None] = {}
        for line in text.split("\n"):
            if rendezvous not in line:
                continue  # cheap: most lines are other runs
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            number = data.get("reserve", data.get("number"))
            shape = data.get("distributed")
            distributed: dict[str, object] = shape if isinstance(shape, dict) else data
            if isinstance(number, int) and distributed.get("rendezvous") == rendezvous:
                rank = distributed.get("node_rank")
                found[number] = rank if isinstance(rank, int) else None
        return found

    def make_run_dir(self, number: int) -> Path:
        """RUNS/NUMBER, created (no link followed on the way): the run's own files go there."""
        folder = layout.run_dir(self.workspace, number)
        prepare_workspace_state(self.workspace)
        make_dirs_beneath(self.workspace, folder)
        return folder

    def previous(self, script: str | None, *, before: int) -> RunRecord | None:
        """The latest finished run of SCRIPT with a number below BEFORE (any run when SCRIPT is None)."""
        for record in reversed(self.records()):
            if record.number < before and (script is None or record.script == script):
                return record
        return None

    def _append_locked(self, decide: Callable[[list[str]], tuple[int, str]]) -> int:
        """Under the lock of runs.jsonl: read every line, let DECIDE give (number, line to append), append it."""
        prepare_workspace_state(self.workspace)
        decided: list[int] = []

        def line(existing: bytes) -> bytes:
            number, text = decide(existing.decode("utf-8", errors="replace").splitlines())
            decided.append(number)
            return (text + "\n").encode()

        locked_append(self.path, line, root=self.workspace)
        return decided[-1]


def _number(line: str) -> int:
    try:
        data = json.loads(line)
    except ValueError:
        return 0
    if not isinstance(data, dict):
        return 0
    value = data.get("reserve", data.get("number", 0))
    return value if isinstance(value, int) else 0
