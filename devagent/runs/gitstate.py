"""The state of the code a run ran: commit, branch, and the uncommitted changes as a patch that recreates them.

Read-only: git runs with ``--no-optional-locks`` (no index refresh), untracked files are diffed with
``git diff --no-index`` rather than added with ``git add -N``, and nothing is written to the repository.

Safe in a repository someone else prepared. git reads a repository's own configuration, and some of it runs
programs: a ``core.fsmonitor`` hook runs at every ``git status``, a filter driver's ``clean`` command at every diff
of a file its ``.gitattributes`` names. A ``.git`` planted above the work tree (``/tmp/.git``, CVE-2022-24765) or
unpacked from an archive would run them as you, during every run. So:

- only a repository owned by us is read — its work tree, its ``.git`` and its git folder, as git itself checks
  (git's own refusal is kept, no ``safe.directory`` is passed; a ``safe.directory`` in your global configuration
  does not widen devagent's check). Any other gives ``GitSkipped`` with the reason;
- every call pins what would run a program, whoever owns the repository: no fsmonitor, no hooks, no external
  diff or textconv, no transport (so no lazy fetch in a partial clone), submodules not entered, and every filter
  driver the repository's own configuration defines switched off (those of your global and the system
  configuration, such as git-lfs, stay: you installed them).

The patch holds no file that looks like a secret (by name or content: ``devagent.core.runs.secrets``) and at most
``MAX_PATCH_BYTES``; what is left out is named, and the patch stays whole files, so it still applies.

Usage (what ``devagent run`` does before the command starts)::

    info = git_state(Path.cwd())
    if isinstance(info, GitInfo) and info.patch:
        Path("run-7.patch").write_bytes(info.patch)     # `git apply run-7.patch` on info.commit recreates the code
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devagent.core.runs.secrets import secret_file, secret_text
from devagent.nofollow.walk import open_regular

log = logging.getLogger("devagent.gitstate")

MAX_UNTRACKED_FILES = 200  # untracked files listed and diffed; the rest are counted in untracked_omitted
MAX_UNTRACKED_BYTES = 1024 * 1024  # larger untracked files are listed, with no lines counted and no patch
MAX_PATCH_BYTES = 8 * 1024 * 1024  # the whole patch; files that do not fit are left out whole
# Deterministic output whatever the user's configuration says (colour, prefixes, external diff tools, relative).
_DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--no-renames",
                 "--ignore-submodules=dirty", "--src-prefix=a/", "--dst-prefix=b/")
# Settings that would make a read run a program, pinned for every call (command-line settings win over the
# repository's). An empty core.fsmonitor is "off" for every git since 2.16 (a path before 2.36, a boolean after).
_SAFE_CONFIG = ("core.quotepath=off", "core.fsmonitor=", "core.hooksPath=/dev/null", "safe.bareRepository=explicit",
                "protocol.allow=never", "diff.external=")
_TRUSTED_SCOPES = frozenset({b"system", b"global", b"command"})  # yours and the machine's, not the repository's
_FILTER_KEY_RE = re.compile(rb"filter\.(.+)\.(?:clean|smudge|process|required)")
_REFUSED_RE = re.compile(rb"dubious ownership in repository at '(.+?)'|unsafe repository \('(.+?)' is owned")
_HEADER = b"diff --git "
_READ_PIECE = 64 * 1024


@dataclass(frozen=True)
class GitInfo:
    """What git says about a work tree.

    ``files`` holds (path, lines added, lines removed) against HEAD for tracked files (binary: 0, 0), then each
    untracked file with its line count as added. ``patch`` recreates the uncommitted state on top of ``commit``
    (``git apply``), untracked files included as new files — all but the files in ``withheld`` and ``left_out``;
    it is empty when the tree is clean.
    """

    commit: str | None  # 12 hex digits (more when that is ambiguous); None before the first commit
    branch: str | None  # None when HEAD is detached
    dirty: bool  # changes to tracked files, or untracked files that are not ignored
    files: tuple[tuple[str, int, int], ...]
    patch: bytes
    untracked_omitted: int = 0  # untracked files beyond MAX_UNTRACKED_FILES: neither listed nor in the patch
    withheld: tuple[str, ...] = ()  # listed files that look like secrets: never in the patch
    left_out: tuple[str, ...] = ()  # listed files not in the patch for size: over 1 MiB untracked, or past the cap


@dataclass(frozen=True)
class GitSkipped:
    """A repository that was found and not read, and why."""

    reason: str


class _GitError(Exception):
    pass


class _GitRefused(_GitError):
    """git refuses the repository: it belongs to someone else."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _Git:
    """git in one work tree, read-only, with one deadline for all the calls of a ``git_state``."""

    def __init__(self, cwd: Path, deadline: float) -> None:
        self.cwd = cwd
        self.deadline = deadline
        self.overrides: tuple[str, ...] = ()  # more `-c` settings: the repository's filter drivers switched off
        # GIT_ALLOW_PROTOCOL set and empty: no transport at all, whatever protocol.<name>.allow the repository
        # sets; GIT_NO_LAZY_FETCH (git 2.45+) says the same to a partial clone.
        self.env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0",
                    "GIT_ALLOW_PROTOCOL": "", "GIT_NO_LAZY_FETCH": "1", "GIT_PROTOCOL_FROM_USER": "0"}

    def command(self, args: Sequence[str]) -> list[str]:
        settings = [arg for setting in (*_SAFE_CONFIG, *self.overrides) for arg in ("-c", setting)]
        return ["git", "--no-pager", *settings, "--no-optional-locks", *args]

    def remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _GitError("out of time")
        return remaining

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        remaining = self.remaining()
        try:
            result = subprocess.run(self.command(args), cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=remaining, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _GitError(str(exc)) from exc
        if result.returncode not in ok:
            _raise_for(args[0], result.returncode, result.stderr)
        return result.stdout

    def stream(self, *args: str) -> Iterator[bytes]:
        """The output of one call in pieces of at most 64 KiB, each the whole or a part of one line, so that it is
        never held whole; killed at the deadline. Raises _GitError at the end if git failed."""
        remaining = self.remaining()
        # stderr goes to a file: a pipe read only after stdout could fill (a warning per file) and stall git.
        with tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(self.command(args), cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=stderr)
            except OSError as exc:
                raise _GitError(str(exc)) from exc
            timer = threading.Timer(remaining, process.kill)
            timer.start()
            try:
                assert process.stdout is not None
                while piece := process.stdout.readline(_READ_PIECE):
                    yield piece
                returncode = process.wait()
            finally:
                timer.cancel()
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()
            stderr.seek(0)
            errors = stderr.read(64 * 1024)
        if returncode != 0:
            if returncode < 0:
                raise _GitError(f"git {args[0]} ran out of time")
            _raise_for(args[0], returncode, errors)


def _raise_for(command: str, returncode: int, stderr: bytes) -> None:
    refused = _REFUSED_RE.search(stderr)
    if refused:
        raise _GitRefused(os.fsdecode(refused.group(1) or refused.group(2)))
    raise _GitError(f"git {command} exited with {returncode}: {stderr.decode(errors='replace').strip()}")


def git_state(cwd: Path, *, timeout: float = 10.0, exclude: Sequence[Path] = ()) -> GitInfo | GitSkipped | None:
    """The git state of the work tree holding CWD; GitSkipped for a repository that is not ours; None outside a
    work tree, without git, or when git does not answer within TIMEOUT seconds (all calls together). Paths in
    EXCLUDE (files or folders, e.g. the lab notebook and its assets) are left out of the dirty state, the file
    list and the patch."""
    deadline = time.monotonic() + timeout
    try:
        found = _Git(cwd, deadline).run("rev-parse", "--show-toplevel", "--absolute-git-dir").split(b"\n")
    except _GitRefused as exc:
        where = Path(exc.path)
        return GitSkipped(_not_ours(where, [where, where / ".git"])
                          or f"git refuses the repository at {where}: it is not owned by you")
    except _GitError as exc:
        log.debug("no git state for %s: %s", cwd, exc)
        return None
    top, gitdir = Path(os.fsdecode(found[0])), Path(os.fsdecode(found[1]))
    reason = _not_ours(top, [top, top / ".git", gitdir])
    if reason is not None:
        return GitSkipped(reason)
    git = _Git(top, deadline)  # from the top, every path git prints is relative to it
    top_path = Path(os.path.realpath(top))
    real = [Path(os.path.realpath(p)) for p in exclude]
    pathspec = tuple(f":(exclude,literal){p.relative_to(top_path).as_posix()}" for p in real
                     if p.is_relative_to(top_path) and p != top_path)
    try:
        drivers = _repository_filters(git)
        unsafe = [name for name in drivers if "=" in name or "\n" in name]
        if unsafe:
            return GitSkipped(f"the repository at {top} defines a filter that cannot be switched off "
                              f"({unsafe[0]!r})")
        git.overrides = tuple(f"filter.{name}.{key}" for name in drivers
                              for key in ("clean=", "smudge=", "process=", "required=false"))
        return _read_state(git, pathspec)
    except _GitError as exc:
        log.info("no git state for %s: %s", cwd, exc)
        return None


def _not_ours(top: Path, paths: Sequence[Path]) -> str | None:
    """Why the repository at TOP is not read (a path of it owned by another uid), or None when it is ours. Links
    are followed, as git follows them."""
    me = os.geteuid()
    for path in paths:
        try:
            owner = os.stat(path).st_uid
        except FileNotFoundError:
            continue  # no .git in the work tree: its git folder is elsewhere (core.worktree), and checked too
        except OSError as exc:
            return f"the repository at {top} cannot be checked ({exc.strerror})"
        if owner != me:
            return f"the repository at {top} is owned by uid {owner}, not you (uid {me})"
    return None


def _repository_filters(git: _Git) -> list[str]:
    """Filter drivers that the repository's own configuration (``.git/config``, its worktree configuration and
    what they include) defines or changes: all of them where git cannot say where a setting comes from (before
    2.26)."""
    try:
        listing = git.run("config", "--list", "--show-scope", "--name-only", "-z").split(b"\0")
        entries = list(zip(listing[0::2], listing[1::2], strict=False))
    except _GitError:
        entries = [(b"", name) for name in git.run("config", "--list", "--name-only", "-z").split(b"\0")]
    names = []
    for scope, key in entries:
        match = _FILTER_KEY_RE.fullmatch(key)
        if match and scope not in _TRUSTED_SCOPES:
            name = os.fsdecode(match.group(1))
            if name not in names:
                names.append(name)
    return names


@dataclass
class _Patch:
    """The patch being put together: whole files, none that looks secret, at most MAX_PATCH_BYTES."""

    top: Path
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    withheld: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    def room(self) -> int:
        return MAX_PATCH_BYTES - self.size

    def offer(self, path: str, diff: bytes | None) -> None:
        """Add PATH's diff unless it looks secret or does not fit (None: it was already too big to keep)."""
        if secret_file(path) or (diff is not None and _secret_diff(self.top / path, diff)):
            self.withheld.append(path)
        elif diff is None or len(diff) > self.room():
            self.left_out.append(path)
        else:
            self.parts.append(diff)
            self.size += len(diff)


def _read_state(git: _Git, pathspec: tuple[str, ...] = ()) -> GitInfo:
    head = git.run("rev-parse", "--verify", "-q", "--short=12", "HEAD^{commit}", ok=(0, 1)).strip()
    commit = head.decode() if head else None
    branch_out = git.run("symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).strip()
    branch = os.fsdecode(branch_out) if branch_out else None
    status = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
                     "--ignore-submodules=dirty", "--", *pathspec)
    entries = [e for e in status.split(b"\0") if e]
    untracked = [os.fsdecode(e[3:]) for e in entries if e.startswith(b"?? ")]
    if not entries:
        return GitInfo(commit=commit, branch=branch, dirty=False, files=(), patch=b"")

    # Before the first commit there is no HEAD: compare with the empty tree (in this repository's hash).
    base = "HEAD" if commit is not None else git.run("hash-object", "-t", "tree", "/dev/null").strip().decode()
    files = _numstat(git.run("diff", base, "--numstat", "-z", *_DIFF_OPTIONS, "--", *pathspec))
    patch = _Patch(git.cwd)
    for path, diff in _file_diffs(git.stream("diff", base, "--binary", *_DIFF_OPTIONS, "--", *pathspec), patch):
        patch.offer(path, diff)

    omitted = 0
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
        patch.offer(path, diff)
    return GitInfo(commit=commit, branch=branch, dirty=True, files=tuple(files), patch=b"".join(patch.parts),
                   untracked_omitted=omitted, withheld=tuple(patch.withheld), left_out=tuple(patch.left_out))


def _file_diffs(pieces: Iterator[bytes], patch: _Patch) -> Iterator[tuple[str, bytes | None]]:
    """Split ``git diff --binary`` output into one diff per file: (path, its diff), or (path, None) for a diff
    that grew past the patch's room, which is dropped as it streams by. Each file's diff starts with a line
    "diff --git "; no line inside a diff starts so (text lines start with " ", "+", "-", "@" or "\\", and the
    base85 lines of a binary patch hold no space)."""
    path: str | None = None
    diff: bytearray | None = None
    at_line_start = True
    for piece in pieces:
        starts_line, at_line_start = at_line_start, piece.endswith(b"\n")
        if starts_line and piece.startswith(_HEADER):
            if path is not None:
                yield path, bytes(diff) if diff is not None else None
            path, diff = _header_path(piece), bytearray(piece)
            continue
        if diff is not None:
            diff += piece
            if len(diff) > patch.room():
                diff = None  # too big to keep whatever follows: stop holding it
    if path is not None:
        yield path, bytes(diff) if diff is not None else None


def _header_path(header: bytes) -> str:
    """The path of a "diff --git a/P b/P" line. Without renames both sides name the same path, quoted alike, so
    the line splits in the middle, even when P holds spaces.

    >>> _header_path(b'diff --git a/my data/x y.py b/my data/x y.py\\n')
    'my data/x y.py'
    >>> _header_path(b'diff --git "a/t\\\\tb \\\\"q\\\\"" "b/t\\\\tb \\\\"q\\\\""\\n')
    't\\tb "q"'

    """
    sides = header[len(_HEADER):].rstrip(b"\n")
    side = sides[:(len(sides) - 1) // 2]
    if side.startswith(b'"'):
        side = _unquote(side)
    return os.fsdecode(side[2:])


_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13,
            ord('"'): 34, ord("\\"): 92}


def _unquote(quoted: bytes) -> bytes:
    """A path as git quotes it in C style: backslash escapes and octal bytes between double quotes."""
    body, out, i = quoted[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == 92 and i + 1 < len(body):
            if body[i + 1] in _ESCAPES:
                out.append(_ESCAPES[body[i + 1]])
                i += 2
            else:
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
        else:
            out.append(body[i])
            i += 1
    return bytes(out)


def _secret_diff(path: Path, diff: bytes) -> bool:
    """Whether a file's diff holds a secret: its lines (without the diff's marks), or, for a binary diff (whose
    content is compressed), the first MiB of the file itself."""
    if b"\nGIT binary patch\n" in diff:
        return secret_text(_head(path).decode("utf-8", errors="replace"))
    lines = diff.decode("utf-8", errors="replace").split("\n")
    return secret_text("\n".join(line[1:] for line in lines))


def _head(path: Path) -> bytes:
    """The first MAX_UNTRACKED_BYTES of a regular file, not through a link, never blocking; b"" otherwise."""
    try:
        fd = open_regular(path, follow_links=False)
    except OSError:  # PathRefused too: a link, a FIFO, a device
        return b""
    try:
        return os.read(fd, MAX_UNTRACKED_BYTES)
    except OSError:
        return b""
    finally:
        os.close(fd)


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


def _untracked(git: _Git, path: str) -> tuple[int, bytes | None]:
    """The lines of an untracked file and its new-file diff; (0, None) for one over MAX_UNTRACKED_BYTES."""
    try:
        size = os.lstat(git.cwd / path).st_size
    except OSError as exc:
        raise _GitError(str(exc)) from exc
    if size > MAX_UNTRACKED_BYTES:
        return 0, None
    # --numstat with -p: one "added TAB removed TAB name" line, an empty line, then the patch. Exit status 1
    # means "differences", which a new file always has.
    output = git.run("diff", "--no-index", "--numstat", "--patch", "--binary", *_DIFF_OPTIONS,
                     "--", "/dev/null", path, ok=(0, 1))
    stat_line, _, rest = output.partition(b"\n")
    return _count(stat_line.split(b"\t", 1)[0]), rest.removeprefix(b"\n")
