"""The wheels the derived image installs from: what they hold, that they are reproducible and install offline."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from devagent.host.wheels import build_wheelhouse, payload_fingerprint


def test_the_payload_fingerprint_changes_with_the_source_and_names_every_carried_wheel() -> None:
    names = [name.split("==")[0] for name, _ in payload_fingerprint()]
    assert sorted(names) == ["click", "devagent", "nvidia_ml_py", "watchdog"]
    assert payload_fingerprint() == payload_fingerprint()


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
    out = subprocess.run([py, "-c", "import devagent.container.agent, devagent.container.watcher, sys; "
                          "import devagent.runs.wrapped, devagent.runs.observer; "
                          "print(sorted(m for m in ('docker', 'paramiko', 'torch') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_out = subprocess.run([target / "bin" / "devagent", "--help"], capture_output=True, text=True, check=True)
    assert "up" in help_out.stdout
    assert sys.prefix != str(target)
