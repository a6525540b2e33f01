"""devagent.lab as a training script uses it: each scenario is a real script in a subprocess of its own (the helper
keeps module state, and it must be seen to never break the script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60


def run_script(code: str, *, cwd: Path, lab_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEVAGENT_LAB_FILE"}
    if lab_file is not None:
        env["DEVAGENT_LAB_FILE"] = str(lab_file)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(isinstance(r.pop("_t"), float) for r in records)
    return records


@pytest.mark.torch
def test_lines_go_to_the_file_devagent_run_names(tmp_path: Path) -> None:
    lab_file = tmp_path / "runs" / "7" / "lab.jsonl"
    done = run_script("""
        import math, torch
        from devagent import lab
        lab.hparams({"lr": 3e-4, "batch_size": 64, "layers": [4, 4], "device": torch.device("cpu")})
        for step in range(3):
            lab.log(step=step, loss=torch.tensor(0.5) / (step + 1), acc=step / 4)
        lab.log({"val/loss": torch.tensor(0.25, dtype=torch.float64)}, step=torch.tensor(3))
        lab.log(step=4, loss=float("nan"), grad=math.inf, neg=-math.inf, flag=True, big=10**20)
        lab.log(step=5, name="resnet", vector=torch.ones(3), nothing=None, loss=0.125)
        lab.flush()
        print("trained")
    """, cwd=tmp_path, lab_file=lab_file)
    assert (done.returncode, done.stdout) == (0, "trained\n")
    assert "devagent.lab" not in done.stderr  # torch may warn of its own missing numpy; the helper said nothing
    assert without_time(read_lines(lab_file)) == [
        {"_hparams": {"lr": 3e-4, "batch_size": 64, "layers": [4, 4], "device": "cpu"}},
        {"step": 0, "loss": 0.5, "acc": 0.0},
        {"step": 1, "loss": 0.25, "acc": 0.25},
        {"step": 2, "loss": pytest.approx(1 / 6), "acc": 0.5},
        {"step": 3, "val/loss": 0.25},
        {"step": 4, "loss": "nan", "grad": "inf", "neg": "-inf", "flag": 1, "big": 10**20},
        {"step": 5, "loss": 0.125},  # text, tensors of several values and None are not numbers: left out
    ]


def test_values_with_item_are_read_without_numpy_or_torch_being_imported(tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.jsonl"
    done = run_script("""
        import sys
        from decimal import Decimal
        from fractions import Fraction
        from devagent import lab

        class Float32:  # what a numpy scalar offers: .item()
            def item(self):
                return 0.75

        class Broken:
            def item(self):
                raise RuntimeError("a CUDA error")

        lab.log(step=1, np_like=Float32(), dec=Decimal("0.5"), frac=Fraction(1, 4), broken=Broken(), _t=5, _x=1)
        lab.hparams(np_like=Float32(), nan=float("nan"), obj=object)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "torch")))
    """, cwd=tmp_path, lab_file=lab_file)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
    assert without_time(read_lines(lab_file)) == [
        {"step": 1, "np_like": 0.75, "dec": 0.5, "frac": 0.25},  # names starting with _ are reserved
        {"_hparams": {"np_like": 0.75, "nan": "nan", "obj": "<class 'object'>"}},
    ]


def test_a_real_numpy_scalar_is_a_number(tmp_path: Path) -> None:
    pytest.importorskip("numpy")  # not a dependency of devagent; the duck-typed stand-in above always runs
    lab_file = tmp_path / "lab.jsonl"
    done = run_script("""
        import numpy as np
        from devagent import lab
        lab.log(step=np.int64(2), loss=np.float32(0.5), acc=np.array(0.25))
    """, cwd=tmp_path, lab_file=lab_file)
    assert done.returncode == 0, done.stderr
    assert without_time(read_lines(lab_file)) == [{"step": 2, "loss": 0.5, "acc": 0.25}]


def test_without_devagent_run_lines_go_to_the_workspace_the_agent_watches(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / ".devagent").mkdir(parents=True, mode=0o755)
    (workspace / "exp" / "a").mkdir(parents=True)
    done = run_script("""
        import os
        from devagent import lab
        lab.log(step=1, loss=2.0)
        print(os.getpid())
    """, cwd=workspace / "exp" / "a")
    assert done.returncode == 0, done.stderr
    lab_file = workspace / ".devagent" / "lab" / f"{int(done.stdout)}.jsonl"
    assert without_time(read_lines(lab_file)) == [{"step": 1, "loss": 2.0}]


def test_with_neither_a_named_file_nor_a_workspace_nothing_is_written_anywhere(tmp_path: Path) -> None:
    assert not any((folder / ".devagent").exists() for folder in (tmp_path, *tmp_path.parents))
    (tmp_path / "exp").mkdir()
    done = run_script("""
        from devagent import lab
        lab.hparams(lr=0.1)
        lab.log(step=1, loss=2.0)
        print("done")
    """, cwd=tmp_path / "exp")
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
    assert [p.name for p in tmp_path.rglob("*")] == ["exp"]


# Giving a file to another uid needs root: skipped with the reason elsewhere; CI runs as root, so there they run.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can give a folder to another uid")


@pytest.mark.parametrize("how", [pytest.param("another user", marks=needs_root), "world-writable"])
def test_a_state_folder_someone_else_could_have_prepared_is_passed_by(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shared = tmp_path / "tmp"  # a stand-in for /tmp
    (shared / ".devagent").mkdir(parents=True)
    (shared / ".devagent" / "lab").symlink_to(home)  # the helper's lines would land in the victim's home
    if how == "another user":
        os.chown(shared / ".devagent", 12345, 12345)
    else:
        os.chmod(shared / ".devagent", 0o777)  # noqa: S103 - the hostile folder under test
    (shared / "job").mkdir()
    done = run_script("""
        from devagent import lab
        lab.log(step=1, loss=2.0)
        print("done")
    """, cwd=shared / "job")
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
    assert list(home.iterdir()) == []


def test_a_link_in_the_state_folder_is_never_written_through(tmp_path: Path) -> None:
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("export PATH=$HOME/bin:$PATH\n")
    (tmp_path / "ws" / ".devagent").mkdir(parents=True, mode=0o755)
    (tmp_path / "ws" / ".devagent" / "lab").symlink_to(bashrc.parent)  # planted in a cloned repository
    done = run_script("""
        from devagent import lab
        lab.log(step=1, loss=2.0)
        print("done")
    """, cwd=tmp_path / "ws")
    assert (done.returncode, done.stdout) == (0, "done\n")
    assert done.stderr == (f"devagent.lab: not recording metrics any more: OSError: {tmp_path}/ws/.devagent/lab is "
                           "not a folder of this user's own: nothing is written through it\n")
    assert [p.name for p in bashrc.parent.iterdir()] == [".bashrc"]


@pytest.mark.parametrize("target", ["a-file/lab.jsonl", "a-folder"])
def test_a_file_that_cannot_be_written_costs_one_warning_and_never_the_script(tmp_path: Path, target: str) -> None:
    (tmp_path / "a-file").write_text("a regular file, not a folder\n")
    (tmp_path / "a-folder").mkdir()
    done = run_script("""
        from devagent import lab
        for step in range(100):
            lab.log(step=step, loss=1.0)
            lab.hparams(lr=0.1)
        lab.flush()
        print("still training")
    """, cwd=tmp_path, lab_file=tmp_path / target)
    assert (done.returncode, done.stdout) == (0, "still training\n")
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("devagent.lab: not recording metrics any more: ")
    assert (tmp_path / "a-file").read_text() == "a regular file, not a folder\n"


def test_lines_from_many_threads_stay_whole(tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.jsonl"
    done = run_script("""
        import threading
        from devagent import lab
        def work(n):
            for step in range(500):
                lab.log(step=step, worker=n, text_padding=0.123456789)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
    """, cwd=tmp_path, lab_file=lab_file)
    assert done.returncode == 0, done.stderr
    records = read_lines(lab_file)
    assert len(records) == 8 * 500
    assert sorted((r["worker"], r["step"]) for r in records) == [(n, s) for n in range(8) for s in range(500)]


def test_importing_the_helper_imports_neither_torch_nor_numpy(tmp_path: Path) -> None:
    done = run_script("""
        import sys
        before = set(sys.modules)
        import devagent.lab
        print(sorted(set(sys.modules) - before))
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    added = set(json.loads(done.stdout.replace("'", '"')))
    assert not {m for m in added if m.split(".")[0] in ("torch", "numpy", "typing")}
    assert added <= {"__future__", "devagent", "devagent.lab", "devagent.core", "devagent.core.layout", "json",
                     "json.decoder", "json.scanner", "json.encoder", "_json", "math", "threading", "_weakrefset",
                     "atexit", "contextlib"}


@pytest.mark.torch
def test_at_exit_torch_cuda_memory_is_recorded_only_when_the_script_used_cuda(tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.jsonl"
    done = run_script("""
        import torch
        from devagent import lab
        lab.log(step=1, loss=torch.tensor(1.0))  # a CPU-only torch: no CUDA, no _torch line
    """, cwd=tmp_path, lab_file=lab_file)
    assert done.returncode == 0, done.stderr
    assert without_time(read_lines(lab_file)) == [{"step": 1, "loss": 1.0}]


def test_at_exit_the_peak_memory_is_summed_over_the_devices_torch_reports(tmp_path: Path) -> None:
    # A stand-in `torch` module in sys.modules (this machine has no GPU): the helper only asks sys.modules.
    lab_file = tmp_path / "lab.jsonl"
    done = run_script("""
        import sys, types
        cuda = types.SimpleNamespace(
            is_available=lambda: True, is_initialized=lambda: True, device_count=lambda: 2,
            max_memory_allocated=lambda i: [1000, 2000][i], max_memory_reserved=lambda i: [4096, 8192][i])
        sys.modules["torch"] = types.SimpleNamespace(cuda=cuda)
        from devagent import lab
    """, cwd=tmp_path, lab_file=lab_file)
    assert done.returncode == 0, done.stderr
    assert without_time(read_lines(lab_file)) == [
        {"_torch": {"max_memory_allocated": 3000, "max_memory_reserved": 12288, "devices": 2}}]


def test_a_torch_that_fails_at_exit_does_not_change_the_exit_status(tmp_path: Path) -> None:
    done = run_script("""
        import sys, types
        def broken():
            raise RuntimeError("CUDA driver shutting down")
        sys.modules["torch"] = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=broken))
        from devagent import lab
        sys.exit(3)
    """, cwd=tmp_path, lab_file=tmp_path / "lab.jsonl")
    assert done.returncode == 3
    assert done.stderr == "devagent.lab: not recording metrics any more: RuntimeError: CUDA driver shutting down\n"
