"""git_state against real repositories made with real git in tmp_path; its patch is checked by applying it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from devagent.runs import gitstate
from devagent.runs.gitstate import MAX_UNTRACKED_BYTES, MAX_UNTRACKED_FILES, GitInfo, GitSkipped, git_state


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


def read(repo: Path, **kwargs: object) -> GitInfo:
    info = git_state(repo, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info, GitInfo), info
    return info


def apply_on_commit(repo: Path, info: GitInfo | GitSkipped | None, tmp_path: Path) -> Path:
    """A fresh clone at INFO's commit with INFO's patch applied: the code as it was when git_state ran."""
    assert isinstance(info, GitInfo)
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
    info = read(repo)
    assert info.files == (("dump.csv", 0, 0),)
    assert info.patch == b""
    assert info.dirty is True
    assert (info.left_out, info.withheld) == (("dump.csv",), ())


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


# --- A repository someone else prepared: its configuration never runs a program ---------------------------------

def plant_programs(repo: Path, marker: Path) -> None:
    """Repository settings that make a plain `git status` or `git diff` run a program, each of which appends a
    line to MARKER: an fsmonitor hook, a required clean filter on every file, a textconv, an external diff."""
    hook = marker.parent / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')  # a filter passes the content through
    hook.chmod(0o755)
    for key, value in [("core.fsmonitor", str(hook)), ("filter.evil.clean", str(hook)),
                       ("filter.evil.smudge", str(hook)), ("filter.evil.required", "true"),
                       ("diff.evil.textconv", str(hook)), ("diff.evil.command", str(hook)),
                       ("diff.external", str(hook))]:
        git(repo, "config", key, value)
    gitdir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "attributes").write_text("* filter=evil diff=evil\n")


def give_away(root: Path, uid: int = 12345) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, uid)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another uid")


@needs_root
def test_a_repository_owned_by_another_uid_is_skipped_and_none_of_its_programs_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\n"})
    (repo / "train.py").write_text("lr = 3e-4\n")
    (repo / "new.py").write_text("x = 1\n")
    marker = tmp_path / "marker"
    plant_programs(repo, marker)
    git(repo, "status")  # the plant is real: plain git runs it
    assert marker.exists()
    marker.unlink()
    give_away(repo)

    assert git_state(repo) == GitSkipped(f"the repository at {repo} is owned by uid 12345, not you (uid 0)")
    assert not marker.exists()
    assert {p.stat().st_uid for p in [repo, *repo.rglob("*")]} == {12345}  # nothing of ours was written


@needs_root
def test_a_git_folder_planted_above_the_work_tree_is_never_read(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"  # like /tmp: anyone may create .git in it
    shared.mkdir()
    shared.chmod(0o1777)
    make_repo(shared)
    (shared / "repo").rename(shared / "planted")
    (shared / "planted" / ".git").rename(shared / ".git")
    (shared / "planted").rmdir()
    marker = tmp_path / "marker"
    plant_programs(shared, marker)
    give_away(shared / ".git")
    work = shared / "work"  # ours, with no repository of its own
    work.mkdir()
    (work / "train.py").write_text("print(1)\n")

    info = git_state(work)

    assert info == GitSkipped(f"the repository at {shared} is owned by uid 12345, not you (uid 0)")
    assert not marker.exists()


def test_programs_in_our_own_repositorys_configuration_never_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\n", "notes.txt": b"a\n"})
    (repo / "train.py").write_text("lr = 3e-4\n")
    (repo / "notes.txt").write_text("b\n")
    (repo / "new.py").write_text("x = 1\n")
    marker = tmp_path / "marker"
    plant_programs(repo, marker)  # an archive unpacked with its .git, say
    git(repo, "status")
    assert marker.exists()  # the plant is real: plain git runs it
    marker.unlink()

    info = read(repo)

    assert not marker.exists()
    assert info.files == (("notes.txt", 1, 1), ("train.py", 1, 1), ("new.py", 1, 0))
    git(repo, "config", "--unset", "filter.evil.required")  # the clone below applies the patch with plain git
    git(repo, "config", "--unset", "core.fsmonitor")
    clone = apply_on_commit(repo, info, tmp_path)
    assert tree_files(clone) == tree_files(repo)


def test_filters_from_your_global_configuration_still_run_and_the_repository_cannot_redefine_them(
        tmp_path: Path, isolated_home: Path) -> None:
    repo = make_repo(tmp_path, {"weights.bin": b"v1\n", "data.bin": b"d1\n"})
    marker = tmp_path / "marker"
    trusted = tmp_path / "trusted.sh"
    trusted.write_text(f'#!/bin/sh\necho trusted >> {marker}\ncat\n')
    trusted.chmod(0o755)
    evil = tmp_path / "evil.sh"
    evil.write_text(f'#!/bin/sh\necho evil >> {marker}\ncat\n')
    evil.chmod(0o755)
    (isolated_home / ".gitconfig").write_text(f"[filter \"lfsish\"]\n\tclean = {trusted}\n"
                                              f"[filter \"other\"]\n\tclean = {trusted}\n")
    git(repo, "config", "filter.other.clean", str(evil))  # the repository redefines a driver you installed
    (repo / ".gitattributes").write_text("weights.bin filter=lfsish\ndata.bin filter=other\n")
    (repo / "weights.bin").write_text("v2\n")
    (repo / "data.bin").write_text("d2\n")

    read(repo)

    assert set(marker.read_text().split()) == {"trusted"}  # yours ran (weights.bin); the redefined one did not


def test_a_submodule_is_not_entered(tmp_path: Path) -> None:
    sub = make_repo(tmp_path / "lib", {"lib.py": b"x = 1\n"})
    repo = make_repo(tmp_path, {"a.txt": b"a\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "lib")
    git(repo, "commit", "-qm", "lib")
    marker = tmp_path / "marker"
    plant_programs(repo / "lib", marker)  # configured in .git/modules/lib, where only a git inside lib/ reads it
    (repo / "lib" / "lib.py").write_text("x = 2\n")
    git(repo / "lib", "status")
    assert marker.exists()
    marker.unlink()

    info = read(repo)

    assert not marker.exists()
    assert (info.dirty, info.files) == (False, ())  # a changed file inside a submodule is the submodule's business


# --- What the patch holds: no secrets, and at most MAX_PATCH_BYTES of whole files ---------------------------------

SECRET_FILES = {  # each holds the string "secret-N" (N: its place here), which must never reach the patch
    ".env": b"HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh # secret-0\n",
    "credentials.json": b'{"type": "service_account", "x": "secret-1"}\n',
    "keys/id_ed25519": b"not even a key secret-2\n",
    "certs/server.pem": b"secret-3\n",
    "notes.txt": b"push with ghp_" + b"A1b2C3d4E5f6G7h8I9j0" * 2 + b" secret-4\n",  # by content
    "conf/db.yaml": b'db:\n  password: "s3cr3t-pass"\n  x: secret-5\n',  # by content
    "blob.bin": b"\0\1\2 AKIAABCDEFGHIJKLMNOP secret-6 \0",  # a binary file, by content
}


def test_files_that_look_like_secrets_are_listed_but_never_in_the_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"train.py": b"lr = 1e-3\n", "settings.py": b"DEBUG = True\n",
                                ".env.example": b"HF_TOKEN=\n"})
    (repo / "train.py").write_text("lr = 3e-4\n")
    (repo / "settings.py").write_text('DEBUG = True\nAPI_KEY = "sk-Abc123Def456Ghi789Jkl0"  # secret-7\n')
    (repo / ".env.example").write_text("HF_TOKEN=\nWANDB_MODE=offline  # secret-8\n")  # tracked, by name
    for name, content in SECRET_FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content)
    (repo / "model.py").write_text("token = tokenizer(eos_token='</s>')\n")  # ML vocabulary, no secret

    info = read(repo)

    assert {path for path, _, _ in info.files} == {"train.py", "settings.py", ".env.example", "model.py",
                                                    *SECRET_FILES}
    assert sorted(info.withheld) == sorted([".env.example", "settings.py", *SECRET_FILES])
    assert info.left_out == ()
    assert b"secret-" not in info.patch and b"+lr = 3e-4" in info.patch and b"+token = tok" in info.patch
    for name in SECRET_FILES:
        (repo / name).unlink()  # the clone gets every other change
    for name in (".env.example", "settings.py"):
        git(repo, "checkout", "-q", "--", name)
    assert tree_files(apply_on_commit(repo, info, tmp_path)) == tree_files(repo)


def test_a_path_git_quotes_is_read_back_from_the_diff(tmp_path: Path) -> None:
    name = 'odd\tname "q" \\ é.txt'
    repo = make_repo(tmp_path, {name: b"a\n", "b.txt": b"b\n"})
    (repo / name).write_text("token: ghp_" + "A1b2C3d4E5f6G7h8I9j0" + "\n")
    (repo / "b.txt").write_text("c\n")
    info = read(repo)
    assert info.withheld == (name,)
    assert b"ghp_" not in info.patch and b"+c" in info.patch


def test_the_patch_is_capped_in_whole_files_and_still_applies(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitstate, "MAX_PATCH_BYTES", 64 * 1024)
    text = lambda n, tag: b"".join(b"%s line %06d\n" % (tag, i) for i in range(n))  # noqa: E731
    repo = make_repo(tmp_path, {"a_small.py": b"x = 1\n", "b_huge.txt": text(100, b"old"),
                                "c_mid.txt": text(100, b"old"), "d_small.py": b"y = 1\n"})
    (repo / "a_small.py").write_text("x = 2\n")
    (repo / "b_huge.txt").write_bytes(text(20000, b"new"))  # 400 KiB of diff: past the cap as it streams
    (repo / "c_mid.txt").write_bytes(text(2000, b"new"))  # 40 KiB: fits
    (repo / "d_small.py").write_text("y = 2\n")
    (repo / "e_new.txt").write_bytes(text(2000, b"new"))  # 40 KiB more: no room left
    (repo / "f_new.py").write_text("z = 1\n")

    info = read(repo)

    assert info.left_out == ("b_huge.txt", "e_new.txt")
    assert len(info.patch) <= 64 * 1024
    assert info.patch.count(b"diff --git") == 4
    clone = apply_on_commit(repo, info, tmp_path)
    expected = tree_files(repo)
    expected["b_huge.txt"] = text(100, b"old")  # as committed
    del expected["e_new.txt"]
    assert tree_files(clone) == expected


def test_a_binary_diff_past_the_cap_is_left_out_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitstate, "MAX_PATCH_BYTES", 32 * 1024)
    repo = make_repo(tmp_path, {"w.bin": b"\0" * 10, "a.txt": b"a\n"})
    (repo / "w.bin").write_bytes(os.urandom(200 * 1024))  # incompressible: its binary patch is larger still
    (repo / "a.txt").write_text("b\n")
    info = read(repo)
    assert info.left_out == ("w.bin",)
    assert b"GIT binary patch" not in info.patch and b"+b" in info.patch


def test_a_warning_from_git_for_every_file_does_not_stall_the_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {f"f{i:04}.txt": b"a\n" for i in range(1500)})
    git(repo, "config", "core.autocrlf", "true")  # git warns about line endings, once per file, on stderr
    for i in range(1500):
        (repo / f"f{i:04}.txt").write_bytes(b"a\nb\n")
    info = read(repo, timeout=60)
    assert len(info.files) == 1500 and info.patch.count(b"diff --git") == 1500
