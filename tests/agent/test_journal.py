"""The save journal (agent/journal.py): what counts as a save, the changed lines, the snapshots."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.agent.journal import Journal, count_changed_lines
from devagent.core.notebook import SaveRecord
from tests.agent.watcher_support import (
    NOW,
)


class TestJournal:
    def test_a_save_is_recorded_only_when_the_content_changed(self, ws: Path) -> None:
        journal = Journal(ws)
        first = journal.record_save(ws / "train.py", NOW)
        assert first is not None and (first.lines_added, first.lines_removed) == (2, 0)  # never seen: all new
        assert journal.record_save(ws / "train.py", NOW) is None
        (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
        second = journal.record_save(ws / "train.py", NOW)
        assert second is not None and (second.lines_added, second.lines_removed) == (1, 1)

    def test_its_state_is_read_back_from_disk_by_a_new_journal(self, ws: Path) -> None:
        journal = Journal(ws)
        journal.baseline(ws / "train.py")
        (ws / "train.py").write_text("import torch\nlr = 3e-4\n")
        recorded = journal.record_save(ws / "train.py", NOW)
        again = Journal(ws)
        assert again.saves_since(0) == [recorded]
        assert again.record_save(ws / "train.py", NOW) is None  # same content as the last save
        assert (ws / ".devagent" / ".gitignore").read_text().endswith("\n*\n")

    def test_saves_since_takes_an_index_or_a_time(self, ws: Path) -> None:
        journal = Journal(ws)
        for minute in range(3):
            (ws / "train.py").write_text(f"step = {minute}\n")
            journal.record_save(ws / "train.py", NOW.replace(minute=minute))
        assert [r.time[11:16] for r in journal.saves_since(1)] == ["14:01", "14:02"]
        assert [r.time[11:16] for r in journal.saves_since(NOW.replace(minute=1))] == ["14:02"]
        assert [r.time[11:16] for r in journal.saves_since("2026-11-27T14:00:30+00:00")] == ["14:01", "14:02"]

    def test_lines_another_process_appends_are_seen_and_a_torn_line_is_skipped(
        self, ws: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        journal = Journal(ws)
        journal.record_save(ws / "train.py", NOW)
        other = SaveRecord("2026-11-27T14:05:00.000+00:00", "model.py", "0" * 64, 1, 0)
        with journal.path.open("a") as f:
            f.write(other.to_json() + "\n" + '{"time": "2026-11-27T14:06')  # a crash mid-line
        assert [r.path for r in journal.saves_since(0)] == ["train.py", "model.py"]
        (ws / "train.py").write_text("changed\n")
        with caplog.at_level(logging.WARNING, logger="devagent.journal"):
            journal.record_save(ws / "train.py", NOW)
        assert [r.path for r in journal.saves_since(0)] == ["train.py", "model.py", "train.py"]
        assert len(caplog.records) == 1 and "skipping an unreadable line" in caplog.messages[0]

    def test_repetitive_lines_do_not_inflate_the_counts(self) -> None:
        # difflib's autojunk would treat these frequent lines as junk and report 150 lines changed.
        lines = ["def f():", "    pass", ""] * 100
        changed = list(lines)
        changed[151] = "    return 1"
        before, after = ("\n".join(x).encode() for x in (lines, changed))
        assert count_changed_lines(before, after) == (1, 1)

    def test_snapshots_of_files_that_are_gone_are_pruned(self, ws: Path) -> None:
        journal = Journal(ws)
        (ws / "old.py").write_text("x = 1\n")
        journal.baseline(ws / "old.py")
        journal.baseline(ws / "train.py")
        assert len(os.listdir(journal.snapshots_dir)) == 2
        assert journal.prune_snapshots({"train.py"}, older_than=time.time() + 1) == 1
        assert journal.knows(ws / "train.py") and not journal.knows(ws / "old.py")

    @given(
        st.lists(st.sampled_from(["a", "b", "", "    pass"]), max_size=40),
        st.lists(st.sampled_from(["a", "b", "", "    pass"]), max_size=40),
    )
    def test_line_counts_always_add_up_to_the_change_in_length(self, old: list[str], new: list[str]) -> None:
        before, after = ("".join(line + "\n" for line in x).encode() for x in (old, new))
        added, removed = count_changed_lines(before, after)
        assert added - removed == len(new) - len(old)
        assert 0 <= added <= len(new) and 0 <= removed <= len(old)
        assert count_changed_lines(before, before) == (0, 0)
