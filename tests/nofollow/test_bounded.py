"""Bounded reads of files someone else may have planted: regular files only, no links below a root, a size cap."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.nofollow import bounded as bounded_read
from devagent.nofollow.bounded import Lines, read_content
from devagent.nofollow.walk import PathRefused, open_below, open_folder_below, open_regular


def test_a_link_anywhere_below_the_root_is_refused_and_its_target_never_opened(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.py").write_text("secret\n")
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    os.symlink(tmp_path / "outside", root / "pkg" / "lib")
    os.symlink(tmp_path / "outside" / "x.py", root / "pkg" / "y.py")
    for rel in ("pkg/lib/x.py", "pkg/y.py"):
        with pytest.raises(PathRefused) as caught:
            open_below(root, rel)
        assert (caught.value.errno, caught.value.strerror) == (errno.ELOOP, "a symbolic link, not followed")
    with pytest.raises(PathRefused):
        open_folder_below(root, "pkg/lib", create=True)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_what_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.py"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    else:
        os.symlink("/dev/null", path)
    with pytest.raises(PathRefused):
        open_below(tmp_path, "x.py")
    if kind == "device":
        with pytest.raises(PathRefused, match="a character device, not a regular file"):
            open_regular(path)  # followed, and refused for what it leads to
    else:
        with pytest.raises(PathRefused):
            open_regular(path)


def test_missing_and_folders_are_told_apart_from_refusals(tmp_path: Path) -> None:
    (tmp_path / "d.py").mkdir()
    with pytest.raises(FileNotFoundError):
        open_below(tmp_path, "gone.py")
    with pytest.raises(IsADirectoryError):
        open_below(tmp_path, "d.py")
    with pytest.raises(ValueError, match="not a path below the root"):
        open_below(tmp_path, "../x.py")


def test_a_file_over_the_limit_is_hashed_in_chunks_and_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(bounded_read, "CHUNK", 7)
    data = os.urandom(100)
    (tmp_path / "f").write_bytes(data)
    fd = open_regular(tmp_path / "f")
    try:
        content = read_content(fd, limit=99)
    finally:
        os.close(fd)
    assert (content.size, content.sha256, content.data) == (100, hashlib.sha256(data).hexdigest(), None)


@given(st.lists(st.sampled_from([b"a", b"bb", b"\n", b"cccccc", b"\r"]), max_size=60),
       st.integers(min_value=1, max_value=8))
def test_lines_are_the_file_split_at_line_ends_without_those_over_the_limit(parts: list[bytes], max_line: int
                                                                             ) -> None:
    import tempfile

    data = b"".join(parts)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        lines = Lines(os.dup(f.fileno()), max_line=max_line)
        got = list(lines)
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert got == [line for line in expected if len(line) <= max_line]
    assert lines.long_lines == sum(len(line) > max_line for line in expected)
