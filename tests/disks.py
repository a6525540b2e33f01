"""Filling a real disk: with the ``small_tmpfs`` fixture (tests/conftest.py), ENOSPC for real."""

from __future__ import annotations

import errno
from pathlib import Path


def fill_disk(folder: Path) -> Path:
    """Fill the file system holding FOLDER until ENOSPC; return the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0")  # the last few bytes of the last page
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
