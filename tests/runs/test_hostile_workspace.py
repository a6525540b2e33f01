"""`devagent run` in folders someone else prepared: links planted in a cloned repository, a shared /tmp with
another user's `.devagent`. Nothing is ever written through a link or into a folder that is not the user's own.

Each test runs the real `python -m devagent run` in a subprocess and checks the files around it byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HOST_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
BASHRC = b"# ~/.bashrc\nexport PATH=$HOME/bin:$PATH\n"
TRAIN = "import sys\nopen('ran', 'w').close()\nprint('epoch=1 loss=0.5')\nsys.exit(0)\n"


def devagent_run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_RUN", "DEVAGENT_LAB_FILE")}
    return subprocess.run([sys.executable, "-m", "devagent", "run", "--", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under FOLDER: a file's bytes, a link's target (so a test sees any change)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def victim_home(tmp_path: Path) -> Path:
    """The files of the user running devagent that a planted link would aim at."""
    home = tmp_path / "home" / "dev"
    (home / "projects").mkdir(parents=True)
    (home / ".bashrc").write_bytes(BASHRC)
    (home / "etc-devagent").mkdir()
    (home / "etc-devagent" / "ssh_host_ed25519_key").write_bytes(HOST_KEY)
    return home


@pytest.fixture
def shared_tmp(tmp_path: Path, victim_home: Path) -> Path:
    """A stand-in for /tmp (sticky, world-writable) holding a `.devagent` someone else made, full of links."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - the shared folder this test is about
    state = shared / ".devagent"
    state.mkdir()
    (state / "runs.jsonl").symlink_to(victim_home / ".bashrc")
    (state / "saves.jsonl").symlink_to(victim_home / ".bashrc")
    (state / ".gitignore").symlink_to(victim_home / ".bashrc")
    (state / "runs").symlink_to(victim_home / "projects")
    (state / "lab").symlink_to(victim_home / "projects")
    (shared / "lab-notebook.md").symlink_to(victim_home / "etc-devagent" / "ssh_host_ed25519_key")
    return shared


# Giving a file to another uid needs root: skipped with the reason elsewhere; CI runs as root, so there they run.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can give a folder to another uid")


def plant_by(shared: Path, how: str) -> None:
    state = shared / ".devagent"
    if how == "another user":
        os.chown(state, 12345, 12345, follow_symlinks=False)
        os.chmod(state, 0o755)  # noqa: S103 - its owner's usual mode
        for entry in [state, *state.iterdir(), shared / "lab-notebook.md"]:
            os.chown(entry, 12345, 12345, follow_symlinks=False)
    else:  # world-writable: anyone could have put the links there
        os.chmod(state, 0o777)  # noqa: S103 - the hostile folder under test


@pytest.mark.parametrize("how", [pytest.param("another user", marks=needs_root), "world-writable"])
def test_a_run_below_a_shared_folder_passes_its_state_folder_by_and_writes_nothing_through_it(
    shared_tmp: Path, victim_home: Path, how: str,
) -> None:
    plant_by(shared_tmp, how)
    job = shared_tmp / "job"
    job.mkdir()
    (job / "train.py").write_text(TRAIN)
    before = tree(victim_home), tree(shared_tmp / ".devagent")
    result = devagent_run(job, sys.executable, "train.py")
    assert result.returncode == 0, result.stderr
    assert (job / "ran").exists()
    assert "run 1 appended to " + str(job / "lab-notebook.md") in result.stderr
    assert f"not using {shared_tmp}/.devagent: " in result.stderr
    assert (tree(victim_home), tree(shared_tmp / ".devagent")) == before


@pytest.mark.parametrize("how", [pytest.param("another user", marks=needs_root), "world-writable"])
def test_a_run_in_the_shared_folder_itself_is_refused_before_the_command_starts(
    shared_tmp: Path, victim_home: Path, how: str,
) -> None:
    plant_by(shared_tmp, how)
    (shared_tmp / "lab-notebook.md").unlink()  # only the state folder in the way
    (shared_tmp / "train.py").write_text(TRAIN)
    before = tree(victim_home), tree(shared_tmp / ".devagent")
    result = devagent_run(shared_tmp, sys.executable, "train.py")
    state = shared_tmp / ".devagent"
    reason = ("belongs to another user (uid 12345): devagent keeps its state only in a folder of its own"
              if how == "another user" else
              "is writable by other users: devagent keeps its state only in a folder of its own")
    hint = ("run from a folder of your own, or name the notebook with --notebook" if how == "another user"
            else f"chmod go-w {state}")
    assert result.returncode == 13
    assert result.stderr.endswith(f"Error: cannot keep this run in {shared_tmp}/lab-notebook.md: {state} {reason}\n"
                                  f"  hint: {hint}\n")
    assert not (shared_tmp / "ran").exists()
    assert (tree(victim_home), tree(shared_tmp / ".devagent")) == before


def test_a_notebook_linked_to_the_host_key_is_refused_and_the_key_stays_as_it_was(tmp_path: Path,
                                                                                   victim_home: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train.py").write_text(TRAIN)
    key = victim_home / "etc-devagent" / "ssh_host_ed25519_key"
    (ws / "lab-notebook.md").symlink_to(key)
    result = devagent_run(ws, sys.executable, "train.py")
    assert result.returncode == 13
    assert result.stderr == (
        f"Error: cannot keep this run in {ws}/lab-notebook.md: {ws}/lab-notebook.md leads to {key}, outside the "
        f"workspace {ws}: devagent does not write through it\n"
        f"  hint: make {ws}/lab-notebook.md a regular file (or a link to one inside {ws})\n")
    assert key.read_bytes() == HOST_KEY
    assert not (ws / "ran").exists()


def test_a_notebook_linked_inside_the_workspace_gets_the_section(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "lab.md").write_text("# my notes\n")
    (ws / "lab-notebook.md").symlink_to("notes/lab.md")
    (ws / "train.py").write_text(TRAIN)
    result = devagent_run(ws, sys.executable, "train.py")
    assert result.returncode == 0, result.stderr
    text = (ws / "notes" / "lab.md").read_text()
    assert text.startswith("# my notes\n\n## ") and "train.py" in text


def test_links_a_cloned_repository_plants_in_the_state_and_assets_folders_are_not_followed(
    tmp_path: Path, victim_home: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train.py").write_text(TRAIN)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=ws, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=ws, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=ws, check=True)
    (ws / "train.py").write_text(TRAIN + "# changed\n")  # a dirty tree: the run's patch is an asset
    (ws / ".devagent").mkdir(mode=0o755)
    (ws / ".devagent" / "runs").symlink_to(victim_home / "projects")
    (ws / "lab-notebook.assets").symlink_to(victim_home / "projects")
    before = tree(victim_home)
    result = devagent_run(ws, sys.executable, "train.py")
    assert result.returncode == 0, result.stderr
    assert f"devagent: run 1 has no folder of its own: {ws}/.devagent/runs is a symbolic link" in result.stderr
    assert tree(victim_home) == before
    section = (ws / "lab-notebook.md").read_text()
    assert "## " in section and "[patch]" not in section  # the patch had nowhere safe to go
