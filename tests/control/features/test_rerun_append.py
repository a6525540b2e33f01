"""The comparison `reproduce --host` appends to a notebook on the server: by the server user's own login (here:
commands run on this machine), only the appended bytes, never through a link planted in the workspace."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pytest

from devagent.control.features.rerun import append_on_server


class Here:
    """A server that is this machine (ServerSite.run)."""

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)


def append(workspace: Path, notebook: Path, text: str) -> None:
    append_on_server(Here(), workspace=PurePosixPath(workspace), notebook=PurePosixPath(notebook), text=text)  # type: ignore[arg-type]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "notes").mkdir(parents=True)
    (tmp_path / "ws" / "notes" / "lab-notebook.md").write_text("# Lab notebook")  # no newline at the end
    return tmp_path / "ws"


def test_the_entry_is_appended_on_a_line_of_its_own(ws: Path) -> None:
    notebook = ws / "notes" / "lab-notebook.md"
    append(ws, notebook, "## one\n")
    append(ws, notebook, "## two · ✅\n")
    assert notebook.read_text() == "# Lab notebook\n## one\n## two · ✅\n"


def test_a_notebook_that_is_a_link_is_refused_and_its_target_unchanged(ws: Path, tmp_path: Path) -> None:
    target = tmp_path / "bashrc"
    target.write_text("export A=1\n")
    notebook = ws / "notes" / "lab-notebook.md"
    notebook.unlink()
    notebook.symlink_to(target)
    with pytest.raises(OSError) as err:
        append(ws, notebook, "touch /tmp/owned\n")
    assert str(err.value) == "lab-notebook.md is not a regular file"
    assert target.read_text() == "export A=1\n"


def test_a_folder_above_the_notebook_swapped_for_a_link_is_refused(ws: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "lab-notebook.md").write_text("theirs\n")
    (ws / "notes").rename(ws / "notes.real")
    (ws / "notes").symlink_to(elsewhere)
    with pytest.raises(OSError) as err:
        append(ws, ws / "notes" / "lab-notebook.md", "## entry\n")
    assert str(err.value) == f"replaced by a link or another folder: {ws / 'notes'}"
    assert (elsewhere / "lab-notebook.md").read_text() == "theirs\n"


def test_a_fifo_in_place_of_the_notebook_is_refused_without_waiting(ws: Path) -> None:
    notebook = ws / "notes" / "lab-notebook.md"
    notebook.unlink()
    os.mkfifo(notebook)
    started = time.monotonic()
    with pytest.raises(OSError) as err:
        append(ws, notebook, "## entry\n")
    assert str(err.value) == "lab-notebook.md is not a regular file"
    assert time.monotonic() - started < 30


def test_a_notebook_outside_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    with pytest.raises(OSError) as err:
        append(ws / "notes", ws / "lab-notebook.md", "## entry\n")
    assert str(err.value) == f"{ws / 'lab-notebook.md'} is not inside the workspace {ws / 'notes'}"
