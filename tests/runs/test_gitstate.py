"""git_state against real repositories made with real git in tmp_path; its patch is checked by applying it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from devagent.runs.gitstate import MAX_UNTRACKED_BYTES, MAX_UNTRACKED_FILES, GitInfo, git_state


@pytest.fixture(autouse=True)
def quiet_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No system config, no discovery above tmp_path, a fixed author (HOME is already a temporary folder)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Ada")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "ada@example.com")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path: Path, files: dict[str, bytes] | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name, content in (files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content)
    if files:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "first")
    return repo


def index_fingerprint(repo: Path) -> tuple[str, int]:
    index = repo / ".git" / "index"
    return hashlib.sha256(index.read_bytes()).hexdigest(), index.stat().st_mtime_ns


def apply_on_commit(repo: Path, info: GitInfo, tmp_path: Path) -> Path:
    """A fresh clone at INFO's commit with INFO's patch applied: the code as it was when git_state ran."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert info.commit is not None
    git(clone, "checkout", "-q", info.commit)
    patch = tmp_path / "state.patch"
    patch.write_bytes(info.patch)
    git(clone, "apply", "--binary", str(patch))
    return clone


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def test_outside_a_work_tree_there_is_no_git_state(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None


def test_without_git_there_is_no_git_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(repo) is None


def test_a_repository_with_no_commits_has_a_branch_and_no_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert git_state(repo) == GitInfo(commit=None, branch="main", dirty=False, files=(), patch=b"")


def test_before_the_first_commit_staged_and_untracked_files_are_the_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "staged.py").write_text("a = 1\nb = 2\n")
    git(repo, "add", "staged.py")
    (repo / "new.py").write_text("print('hi')\n")
    info = git_state(repo)
    assert info is not None
    assert (info.commit, info.branch, info.dirty) == (None, "main", True)
    assert info.files == (("staged.py", 2, 0), ("new.py", 1, 0))
    assert b"+++ b/staged.py" in info.patch and b"+++ b/new.py" in info.patch


def test_a_clean_tree_gives_the_commit_and_branch_and_no_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\n", ".gitignore": b"data/\n"})
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"\0" * 100)  # ignored: neither dirty nor listed
    info = git_state(repo)
    assert info == GitInfo(commit=git(repo, "rev-parse", "--short=12", "HEAD").strip(), branch="main",
                           dirty=False, files=(), patch=b"")
    assert info.commit is not None and len(info.commit) == 12


def test_a_dirty_tree_lists_tracked_and_untracked_changes_and_its_patch_recreates_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\nepochs = 10\n", "my data/prep script.py": b"x = 1\n",
                                "gone.py": b"bye\n"})
    (repo / "train.py").write_bytes(b"lr = 3e-4\nepochs = 10\nbatch = 64\n")
    (repo / "my data" / "prep script.py").write_bytes(b"x = 2\n")
    (repo / "gone.py").unlink()
    (repo / "notes with spaces.md").write_text("one\ntwo\nthree")  # no newline at the end: still 3 lines
    (repo / "résumé ünïcode.txt").write_text("é\n")
    (repo / "empty").write_bytes(b"")
    (repo / "sub").mkdir()
    (repo / "sub" / "link").symlink_to("../train.py")
    before = index_fingerprint(repo)

    info = git_state(repo / "my data")  # from a subfolder: paths stay relative to the top
    assert info is not None
    assert info.dirty is True
    assert dict((p, (a, r)) for p, a, r in info.files) == {
        "gone.py": (0, 1),
        "my data/prep script.py": (1, 1),
        "train.py": (2, 1),
        "empty": (0, 0),
        "notes with spaces.md": (3, 0),
        "résumé ünïcode.txt": (1, 0),
        "sub/link": (1, 0),
    }
    assert index_fingerprint(repo) == before  # nothing written, not even an index refresh
    assert git(repo, "status", "--porcelain", "--untracked-files=all").count("??") == 4  # still untracked
    clone = apply_on_commit(repo, info, tmp_path)
    assert tree_files(clone) == tree_files(repo)
    assert os.readlink(clone / "sub" / "link") == "../train.py"


def test_binary_files_count_zero_lines_and_travel_in_the_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"weights.bin": bytes(range(256)) * 4})
    (repo / "weights.bin").write_bytes(bytes(reversed(range(256))) * 4)
    (repo / "new.bin").write_bytes(b"\0\1\2\3" * 10)
    info = git_state(repo)
    assert info is not None
    assert info.files == (("weights.bin", 0, 0), ("new.bin", 0, 0))
    assert info.patch.count(b"GIT binary patch") == 2
    assert tree_files(apply_on_commit(repo, info, tmp_path)) == tree_files(repo)


def test_a_detached_head_has_a_commit_and_no_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "a.txt").write_text("b\n")
    git(repo, "commit", "-q", "-am", "second")
    git(repo, "checkout", "-q", "HEAD~1")
    info = git_state(repo)
    assert info is not None
    assert (info.commit, info.branch, info.dirty) == (git(repo, "rev-parse", "--short=12", "HEAD").strip(), None,
                                                      False)


def test_large_untracked_files_are_listed_without_lines_or_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "dump.csv").write_bytes(b"1,2\n" * (MAX_UNTRACKED_BYTES // 4 + 1))
    info = git_state(repo)
    assert info is not None
    assert info.files == (("dump.csv", 0, 0),)
    assert info.patch == b""
    assert info.dirty is True


def test_untracked_files_beyond_the_limit_are_counted_not_listed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "out").mkdir()
    for i in range(MAX_UNTRACKED_FILES + 5):
        (repo / "out" / f"{i:04}.txt").write_text(f"{i}\n")
    info = git_state(repo, timeout=60)
    assert info is not None
    assert len(info.files) == MAX_UNTRACKED_FILES
    assert info.untracked_omitted == 5
    assert info.patch.count(b"new file mode") == MAX_UNTRACKED_FILES


def test_a_nested_repository_is_not_read_as_an_untracked_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    make_repo(repo / "vendor", {"lib.py": b"x = 1\n"})  # vendor/repo: a repository of its own
    info = git_state(repo)
    assert info is not None
    assert (info.dirty, info.files, info.patch) == (True, (), b"")


def test_a_workspace_owned_by_another_user_is_read_without_complaint(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give files away")
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\n"})
    (repo / "train.py").write_text("lr = 3e-4\n")
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 12345, 12345)
    refused = subprocess.run(["git", "status"], cwd=repo, capture_output=True, text=True, check=False)
    assert "dubious ownership" in refused.stderr  # plain git refuses this repository
    info = git_state(repo)
    assert info is not None
    assert (info.branch, info.dirty, info.files) == ("main", True, (("train.py", 1, 1),))
    assert {p.stat().st_uid for p in [repo, *repo.rglob("*")]} == {12345}  # nothing of ours was written


def test_git_that_does_not_answer_in_time_gives_no_state(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    assert git_state(repo, timeout=0) is None


def test_user_configuration_does_not_change_the_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    for key, value in [("color.ui", "always"), ("diff.noprefix", "true"), ("diff.relative", "true"),
                       ("diff.external", "false"), ("core.quotepath", "true")]:
        git(repo, "config", key, value)
    (repo / "a.txt").write_text("b\n")
    (repo / "ü.txt").write_text("c\n")
    info = git_state(repo)
    assert info is not None
    assert info.files == (("a.txt", 1, 1), ("ü.txt", 1, 0))
    assert b"\x1b[" not in info.patch
    assert tree_files(apply_on_commit(repo, info, tmp_path)) == tree_files(repo)
