"""`devagent reproduce` for real: a CPU run of the SimpleNet example with a fixed seed in an environment from the
offline base image (which has torch), re-created in a fresh environment and workspace from its notebook alone, with
equal metrics; a run whose patch no longer applies is refused (21) and leaves nothing behind; an image that was
never pushed gets the "local only" warning."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import RUN_PREFIX, Env, container_names

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_simplenet.py"
COMMAND = "devagent run -- python3 train.py --epochs 2 --steps 5 --seed 7"


@dataclass
class Original:
    env: Env
    name: str
    workspace: Path


@pytest.fixture(scope="module")
def module_original(built_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Original]:
    """One environment for the module (an up and a torch run cost a minute here) whose workspace is a git
    repository with one uncommitted change, and one run in it. Tests that change its files put them back."""
    root = tmp_path_factory.mktemp("reproduce") / "user"
    (root / ".ssh").mkdir(parents=True, mode=0o700)
    env, name = Env(root), f"{RUN_PREFIX}{secrets.token_hex(3)}"
    env.up(name, "--gpus", "none")
    ws = env.workspace(name)
    shutil.copy(EXAMPLE, ws / "train.py")
    (ws / ".gitignore").write_text("lab-notebook.*\n")
    for path in (ws / "train.py", ws / ".gitignore"):
        os.chown(path, 1000, 1000)  # the login user's, as its own saves would be
    made = env.ssh(name, "cd ~/workspace && git init -q && git add train.py .gitignore && "
                         "git -c user.name=t -c user.email=t@example.invalid commit -qm first && "
                         "sed -i 's/default=64)/default=32)/' train.py", timeout=60)
    assert made.returncode == 0, made.stderr
    ran = env.ssh(name, f"cd ~/workspace && {COMMAND}", timeout=240)
    assert ran.returncode == 0, ran.stderr
    yield Original(env, name, ws)
    env.devagent("down", name)


@pytest.fixture
def original(module_original: Original) -> Iterator[Original]:
    """The module's environment, its notebook and patch as the run left them, and put back after the test."""
    notebook = module_original.workspace / "lab-notebook.md"
    patch = module_original.workspace / "lab-notebook.assets" / "run-1.patch"
    saved = {path: path.read_bytes() for path in (notebook, patch)}
    yield module_original
    for path, data in saved.items():
        path.write_bytes(data)


def final_loss(text: str) -> str:
    return re.findall(r"^epoch=2 loss=(\S+)", text, re.M)[-1]


def test_a_run_is_reproduced_in_a_fresh_environment_with_equal_metrics(original: Original, tmp_path: Path) -> None:
    env, name = original.env, original.name
    notebook = original.workspace / "lab-notebook.md"
    section = notebook.read_text()
    assert "<details><summary>reproduce this run</summary>" in section
    assert "exists only on the engine that built it (no registry digest)" in section

    repro = tmp_path / "repro"
    result = env.devagent("reproduce", f"{notebook}#run-1", "--workspace", str(repro), timeout=600)
    try:
        assert result.returncode == 0, result.output
        assert ("⚠ the image devagent/env:" in result.stderr
                and "exists only on this engine (no registry digest): the reproduction is exact here and nowhere "
                "else" in result.stderr)
        assert "applying run-1.patch" in result.stderr
        loss = final_loss(result.stdout)
        assert re.search(r"^  loss \S+ vs \S+ ✓$", result.stdout, re.M), result.stdout
        assert f"✔ run 1 reproduced (environment {name}-run1;" in result.stdout
        # The code is the run's: its commit with its uncommitted change applied.
        assert "default=32)" in (repro / "train.py").read_text()
        new_text = (repro / "lab-notebook.md").read_text()
        assert re.search(r"^## .* · run 1 · train\.py · ✅ exit 0$", new_text, re.M)
        assert re.search(r"^## .* · reproduction of run 1 · ✅ acc \S+ vs \S+ ✓; epoch 2 vs 2 ✓; loss \S+ vs \S+ ✓$",
                         new_text, re.M), new_text
        assert re.search(r"^## .* · run 1 reproduced · ✅ acc .* loss \S+ vs \S+ ✓\nas run 1 in `"
                         + re.escape(str(repro / "lab-notebook.md")) + f"` \\(environment `{name}-run1`\\)$",
                         notebook.read_text(), re.M)
        assert final_loss(notebook.read_text()) == loss  # the output tail of run 1 shows the same epoch line
    finally:
        env.devagent("down", f"{name}-run1")


def test_a_run_whose_patch_no_longer_applies_is_refused_and_leaves_nothing(original: Original, tmp_path: Path,
                                                                            docker_client) -> None:
    env, name = original.env, original.name
    patch = original.workspace / "lab-notebook.assets" / "run-1.patch"
    patch.write_text(patch.read_text().replace("default=64)", "default=65)"))
    repro = tmp_path / "repro"
    result = env.devagent("reproduce", f"{original.workspace / 'lab-notebook.md'}#run-1", "--workspace", str(repro))
    assert result.returncode == 21, result.output
    assert f"Error: run 1's patch {patch} does not apply to commit " in result.stderr
    assert ("  hint: add --anyway to go on with the code at its commit, without the run's uncommitted changes"
            in result.stderr)
    assert not repro.exists()
    assert container_names(docker_client, f"{name}-run1") == []


def test_a_run_from_an_image_neither_pushed_nor_here_is_refused_naming_what_is_missing(
        original: Original, tmp_path: Path) -> None:
    env = original.env
    notebook = original.workspace / "lab-notebook.md"
    text = notebook.read_text()
    gone = re.sub(r'"image": "devagent/env:[0-9a-f]+"', '"image": "devagent/env:000000000000"', text)
    assert gone != text
    notebook.write_text(gone)
    repro = tmp_path / "repro"
    result = env.devagent("reproduce", f"{notebook}#run-1", "--workspace", str(repro))
    assert result.returncode == 21, result.output
    assert ("Error: run 1 cannot be reproduced exactly: it lacks the image devagent/env:000000000000, which has no "
            "registry digest and is not on this engine\n") in result.stderr
    assert "  hint: add --anyway to go on with what exists (an image built from devagent-base:bookworm" \
        in result.stderr
    assert not repro.exists()
