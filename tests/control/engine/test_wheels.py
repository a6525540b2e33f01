"""The wheels the derived image installs from: what they hold, that they are reproducible and install offline."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import devagent
from devagent.control.engine import wheels
from devagent.control.engine.wheels import build_wheelhouse, payload_fingerprint


def test_the_payload_fingerprint_changes_with_the_source_and_names_every_carried_wheel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name.split("==")[0] for name, _ in payload_fingerprint()]
    assert sorted(names) == ["click", "devagent", "nvidia_ml_py", "watchdog"]
    assert payload_fingerprint() == payload_fingerprint()

    # A copy of the package stands in for the running one, so the test can change its source.
    package = tmp_path / "devagent"
    shutil.copytree(Path(devagent.__file__).parent, package, symlinks=True)
    monkeypatch.setattr(devagent, "__file__", str(package / "__init__.py"))
    before = payload_fingerprint()
    assert before[1:] == payload_fingerprint()[1:]  # the dependencies' pairs do not depend on the source

    def devagent_pair_after(change: Callable[[], object]) -> tuple[str, str]:
        change()
        return payload_fingerprint()[0]

    seen = [before[0]]
    cli = package / "cli" / "app.py"
    seen.append(devagent_pair_after(lambda: cli.write_bytes(cli.read_bytes() + b"# one more line\n")))
    seen.append(devagent_pair_after(lambda: (package / "core" / "extra.py").write_text("")))  # a new, empty file
    # Renamed, in the same place of the sorted walk: only the name tells it apart.
    seen.append(devagent_pair_after(lambda: (package / "core" / "extra.py").rename(package / "core" / "extrb.py")))
    assert len(set(seen)) == len(seen), seen  # every change is a new fingerprint: no stale cached image
    assert {name for name, _ in seen} == {f"devagent=={devagent.__version__}"}
    (package / "core" / "notes.txt").write_text("not shipped")  # only what ships counts
    (package / "core" / "__pycache__").mkdir(exist_ok=True)
    (package / "core" / "__pycache__" / "x.py").write_text("compiled leftovers")
    assert payload_fingerprint()[0] == seen[-1]


def test_the_shipped_files_and_the_closure_are_what_pathlib_and_md_requires_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """_source_files and _closure_metadata are written for speed (every `up` runs them): the same files, in the
    same order, and the same dependencies as the plain pathlib walk and md.requires they stand for, nested folders,
    links and compiled leftovers included."""
    package = tmp_path / "devagent"
    shutil.copytree(Path(devagent.__file__).parent, package, symlinks=True)
    (package / "core" / "a" / "b").mkdir(parents=True)
    (package / "core" / "a" / "b" / "deep.json").write_text("{}")
    (package / "core" / "a-b.py").write_text("")  # sorts between "a" and "a/b" by string, not by parts
    (package / "core" / "a" / "__pycache__").mkdir()
    (package / "core" / "a" / "__pycache__" / "c.py").write_text("")
    os.symlink(package / "core" / "a", package / "linked")
    monkeypatch.setattr(devagent, "__file__", str(package / "__init__.py"))
    found = [Path(folder, name) for folder, _, names in os.walk(package, followlinks=True) for name in names]
    expected = [(src.relative_to(package).as_posix(), src.read_bytes()) for src in sorted(found)
                if "__pycache__" not in src.parts and src.suffix in wheels.SHIPPED_SUFFIXES]
    assert wheels._source_files() == expected
    assert "linked/b/deep.json" in [rel for rel, _ in expected]

    closure = wheels._closure_metadata(wheels.CONTAINER_REQUIREMENTS)
    names = [name for name, _, _ in closure]
    assert set(wheels.CONTAINER_REQUIREMENTS) <= set(names)
    for name, dist, version in closure:
        assert version == md.version(name) and dist.metadata["Name"] == md.metadata(name)["Name"]
        needed = [r for r in md.requires(name) or [] if ";" not in r]
        assert all(any(r.startswith(other) for other in names) for r in needed), (name, needed)


@pytest.mark.slow  # builds the wheelhouse twice and installs it into a new venv
def test_the_wheelhouse_is_reproducible_and_installs_offline_without_host_dependencies(tmp_path: Path) -> None:
    first = build_wheelhouse(tmp_path / "a")
    second = build_wheelhouse(tmp_path / "b")
    assert [w.read_bytes() for w in first] == [w.read_bytes() for w in second]
    names = sorted(w.name.split("-")[0] for w in first)
    assert names == ["click", "devagent", "nvidia_ml_py", "watchdog"]
    with zipfile.ZipFile(next(w for w in first if w.name.startswith("devagent-"))) as zf:
        metadata = zf.read("devagent-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: docker" not in metadata and "Requires-Dist: paramiko" not in metadata

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(tmp_path / "a"),
                    "devagent"], check=True)
    out = subprocess.run([py, "-c", "import devagent.agent.agent, devagent.agent.watcher, sys; "
                          "import devagent.runs.wrapped, devagent.runs.observer; "
                          "print(sorted(m for m in ('docker', 'paramiko', 'torch') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_out = subprocess.run([target / "bin" / "devagent", "--help"], capture_output=True, text=True, check=True)
    assert "up" in help_out.stdout
    assert sys.prefix != str(target)
