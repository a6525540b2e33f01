"""The save journal and its snapshots are never written through a link planted in the workspace."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pytest

from devagent.agent.journal import Journal
from devagent.nofollow.walk import PathRefused

BASHRC = b"# ~/.bashrc\nexport PATH=$HOME/bin:$PATH\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_bytes(BASHRC)
    (tmp_path / "ws" / ".devagent").mkdir(parents=True, mode=0o755)
    (tmp_path / "ws" / "train.py").write_text("lr = 1e-3\n")
    return tmp_path / "ws"


def test_a_linked_save_journal_is_refused_and_its_target_untouched(ws: Path) -> None:
    bashrc = ws.parent / "home" / ".bashrc"
    (ws / ".devagent" / "saves.jsonl").symlink_to(bashrc)
    with pytest.raises(PathRefused, match=r"saves\.jsonl is a symbolic link"):
        Journal(ws).record_save(ws / "train.py", datetime(2026, 11, 27, 14, 2))
    assert bashrc.read_bytes() == BASHRC


def test_a_linked_snapshots_folder_is_refused_and_nothing_is_copied_behind_it(ws: Path) -> None:
    (ws / ".devagent" / "snapshots").symlink_to(ws.parent / "home")
    journal = Journal(ws)
    # Refused by the journal's no-follow reads (devagent/nofollow/walk.py): a PathRefused, an OSError.
    with pytest.raises(OSError, match=r"symbolic link.*snapshots"):
        journal.baseline(ws / "train.py")
    assert sorted(p.name for p in (ws.parent / "home").iterdir()) == [".bashrc"]


def test_a_link_standing_where_a_snapshot_goes_is_replaced_not_followed(ws: Path) -> None:
    bashrc = ws.parent / "home" / ".bashrc"
    (ws / ".devagent" / "snapshots").mkdir(mode=0o755)
    key = hashlib.sha256(b"train.py").hexdigest()
    (ws / ".devagent" / "snapshots" / key).symlink_to(bashrc)
    journal = Journal(ws)
    (ws / "train.py").write_text("lr = 3e-4\n")
    journal.record_save(ws / "train.py", datetime(2026, 11, 27, 14, 2))
    assert bashrc.read_bytes() == BASHRC
    assert (ws / ".devagent" / "snapshots" / key).read_text() == "lr = 3e-4\n"
    assert not (ws / ".devagent" / "snapshots" / key).is_symlink()
