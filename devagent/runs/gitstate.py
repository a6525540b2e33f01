"""The state of the code a run ran: commit, branch, and the uncommitted changes as a patch that recreates them.

Read-only: git runs with ``--no-optional-locks`` (no index refresh), untracked files are diffed with
``git diff --no-index`` rather than added with ``git add -N``, and nothing is written to the repository. It also
works in a workspace owned by another user (``-c safe.directory=*``: we only read).

Usage (what ``devagent run`` does before the command starts)::

    info = git_state(Path.cwd())
    if info is not None and info.patch:
        Path("run-7.patch").write_bytes(info.patch)     # `git apply run-7.patch` on info.commit recreates the code
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("devagent.gitstate")

MAX_UNTRACKED_FILES = 200  # untracked files listed and diffed; the rest are counted in untracked_omitted
MAX_UNTRACKED_BYTES = 1024 * 1024  # larger untracked files are listed, with no lines counted and no patch
# Deterministic output whatever the user's configuration says (colour, prefixes, external diff tools, relative).
_DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--no-renames",
                 "--src-prefix=a/", "--dst-prefix=b/")


@dataclass(frozen=True)
class GitInfo:
    """What git says about a work tree.

    ``files`` holds (path, lines added, lines removed) against HEAD for tracked files (binary: 0, 0), then each
    untracked file with its line count as added. ``patch`` recreates the uncommitted state on top of ``commit``
    (``git apply``), untracked files included as new files; it is empty when the tree is clean.
    """

    commit: str | None  # 12 hex digits (more when that is ambiguous); None before the first commit
    branch: str | None  # None when HEAD is detached
    dirty: bool  # changes to tracked files, or untracked files that are not ignored
    files: tuple[tuple[str, int, int], ...]
    patch: bytes
    untracked_omitted: int = 0  # untracked files beyond MAX_UNTRACKED_FILES: neither listed nor in the patch


class _GitError(Exception):
    pass


class _Git:
    """git in one work tree, read-only, with one deadline for all the calls of a ``git_state``."""

    def __init__(self, cwd: Path, deadline: float) -> None:
        self.cwd = cwd
        self.deadline = deadline
        self.env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _GitError("out of time")
        command = ["git", "-c", "core.quotepath=off", "-c", "safe.directory=*", "--no-optional-locks", *args]
        try:
            result = subprocess.run(command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=remaining, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _GitError(str(exc)) from exc
        if result.returncode not in ok:
            raise _GitError(f"git {args[0]} exited with {result.returncode}: "
                            f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout


def git_state(cwd: Path, *, timeout: float = 10.0, exclude: Sequence[Path] = ()) -> GitInfo | None:
    """The git state of the work tree holding CWD; None outside a work tree, without git, or when git does not
    answer within TIMEOUT seconds (all calls together). Paths in EXCLUDE (files or folders, e.g. the lab notebook
    and its assets) are left out of the dirty state, the file list and the patch."""
    deadline = time.monotonic() + timeout
    try:
        top = _Git(cwd, deadline).run("rev-parse", "--show-toplevel").rstrip(b"\n")
    except _GitError as exc:
        log.debug("no git state for %s: %s", cwd, exc)
        return None
    git = _Git(Path(os.fsdecode(top)), deadline)  # from the top, every path git prints is relative to it
    top_path = Path(os.path.realpath(os.fsdecode(top)))
    real = [Path(os.path.realpath(p)) for p in exclude]
    pathspec = tuple(f":(exclude,literal){p.relative_to(top_path).as_posix()}" for p in real
                     if p.is_relative_to(top_path) and p != top_path)
    try:
        return _read_state(git, pathspec)
    except _GitError as exc:
        log.info("no git state for %s: %s", cwd, exc)
        return None


def _read_state(git: _Git, pathspec: tuple[str, ...] = ()) -> GitInfo:
    head = git.run("rev-parse", "--verify", "-q", "--short=12", "HEAD^{commit}", ok=(0, 1)).strip()
    commit = head.decode() if head else None
    branch_out = git.run("symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).strip()
    branch = os.fsdecode(branch_out) if branch_out else None
    status = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *pathspec)
    entries = [e for e in status.split(b"\0") if e]
    untracked = [os.fsdecode(e[3:]) for e in entries if e.startswith(b"?? ")]
    if not entries:
        return GitInfo(commit=commit, branch=branch, dirty=False, files=(), patch=b"")

    # Before the first commit there is no HEAD: compare with the empty tree (in this repository's hash).
    base = "HEAD" if commit is not None else git.run("hash-object", "-t", "tree", "/dev/null").strip().decode()
    files = _numstat(git.run("diff", base, "--numstat", "-z", *_DIFF_OPTIONS, "--", *pathspec))
    patch = git.run("diff", base, "--binary", *_DIFF_OPTIONS, "--", *pathspec)

    omitted = 0
    parts = [patch]
    for index, path in enumerate(path for path in untracked if not path.endswith("/")):  # "x/": a nested repo
        if index >= MAX_UNTRACKED_FILES:
            omitted += 1
            continue
        try:
            added, diff = _untracked(git, path)
        except _GitError as exc:  # out of time, or the file went away: the run still gets the rest
            log.info("untracked file %s left out of the patch: %s", path, exc)
            omitted += 1
            continue
        files.append((path, added, 0))
        parts.append(diff)
    return GitInfo(commit=commit, branch=branch, dirty=True, files=tuple(files), patch=b"".join(parts),
                   untracked_omitted=omitted)


def _numstat(output: bytes) -> list[tuple[str, int, int]]:
    """``git diff --numstat -z`` (without renames): "added TAB removed TAB path NUL"; "-" for binary files."""
    files = []
    for record in output.split(b"\0"):
        if not record:
            continue
        added, removed, path = record.split(b"\t", 2)
        files.append((os.fsdecode(path), _count(added), _count(removed)))
    return files


def _count(field: bytes) -> int:
    return int(field) if field.isdigit() else 0


def _untracked(git: _Git, path: str) -> tuple[int, bytes]:
    """The lines of an untracked file and its new-file diff; (0, b"") for one over MAX_UNTRACKED_BYTES."""
    try:
        size = os.lstat(git.cwd / path).st_size
    except OSError as exc:
        raise _GitError(str(exc)) from exc
    if size > MAX_UNTRACKED_BYTES:
        return 0, b""
    # --numstat with -p: one "added TAB removed TAB name" line, an empty line, then the patch. Exit status 1
    # means "differences", which a new file always has.
    output = git.run("diff", "--no-index", "--numstat", "--patch", "--binary", *_DIFF_OPTIONS,
                     "--", "/dev/null", path, ok=(0, 1))
    stat, _, rest = output.partition(b"\n")
    return _count(stat.split(b"\t", 1)[0]), rest.removeprefix(b"\n")
