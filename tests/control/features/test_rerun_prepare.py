"""`devagent reproduce`'s checks before anything is made: each gap is named, a refusal leaves nothing, and
--anyway goes on with what exists. A real git repository; an engine that only answers which images it has."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devagent.control.features.rerun import LocalFiles, parse_target, prepare
from devagent.core.runs.reproduce_block import ReproduceFacts, render_reproduce
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

LOCAL = "devagent/env:3f2a9c1d0e4b"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


class Images(FakeEngine):
    """An engine that holds the images PRESENT and no other."""

    def __init__(self, *present: str) -> None:
        super().__init__(all_images=False)
        self.images.update(dict.fromkeys(present, "sha256:1"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "code"
    ws.mkdir()
    (ws / ".devagent").mkdir()
    (ws / "train.py").write_text("lr = 1\n")
    subprocess.run([*GIT, "init", "-q"], cwd=ws, check=True)
    subprocess.run([*GIT, "add", "train.py"], cwd=ws, check=True)
    subprocess.run([*GIT, "commit", "-qm", "first"], cwd=ws, check=True)
    return ws


def commit_of(ws: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws, capture_output=True, text=True,
                          check=True).stdout.strip()[:12]


def write_run(ws: Path, facts: ReproduceFacts) -> str:
    block = render_reproduce(facts, notebook="lab-notebook.md")
    (ws / "lab-notebook.md").write_text(f"# Lab notebook\n\n## 2026-11-27 14:05 · run 1 · train.py · ✅ exit 0\n"
                                        f"{block}\n")
    return f"{ws / 'lab-notebook.md'}#run-1"


def facts_for(ws: Path, **changes: Any) -> ReproduceFacts:
    base = ReproduceFacts(number=1, env_name="exp", image=LOCAL, pinned=None, base_image="debian:12",
                          up_args=("--gpus", "none"), commit=commit_of(ws), patch=None,
                          argv=("python", "train.py"), cwd="/home/dev/workspace", metrics={"loss": 0.5})
    return replace(base, **changes)


def refusal(target: str, engine: Images, **kwargs: Any) -> DevagentError:
    with pytest.raises(DevagentError) as err:
        prepare(target, name=None, into=None, anyway=False, engine=engine, files=LocalFiles(),
                report=lambda _: None, **kwargs)
    return err.value


def test_a_run_is_cloned_at_its_commit_with_its_patch_applied(workspace: Path) -> None:
    (workspace / "train.py").write_text("lr = 2\n")
    patch = workspace / "lab-notebook.assets" / "run-1.patch"
    patch.parent.mkdir()
    patch.write_bytes(subprocess.run(["git", "diff"], cwd=workspace, capture_output=True, check=True).stdout)
    (workspace / "train.py").write_text("lr = 3\n")  # changed again since the run
    target = write_run(workspace, facts_for(workspace, patch="lab-notebook.assets/run-1.patch"))
    said: list[str] = []
    plan = prepare(target, name=None, into=None, anyway=False, engine=Images(LOCAL), files=LocalFiles(),
                   report=said.append)
    assert plan.new_workspace == workspace.parent / "exp-run1"
    assert (plan.new_workspace / "train.py").read_text() == "lr = 2\n"
    assert plan.image == LOCAL
    assert plan.warnings == [f"the image {LOCAL} exists only on this engine (no registry digest): the reproduction "
                             "is exact here and nowhere else"]
    assert said[-1] == "applying run-1.patch"


def test_a_pinned_image_is_used_by_its_digest_and_needs_not_be_here(workspace: Path) -> None:
    pinned = "r.local:5000/env:v1@sha256:" + "ab" * 32
    plan = prepare(write_run(workspace, facts_for(workspace, image="r.local:5000/env:v1", pinned=pinned)),
                   name="again", into=None, anyway=False, engine=Images(), files=LocalFiles(),
                report=lambda _: None)
    assert (plan.image, plan.name, plan.warnings) == (pinned, "again", [])


def test_every_gap_is_named_in_one_refusal_and_nothing_is_made(workspace: Path) -> None:
    target = write_run(workspace, facts_for(workspace, commit=None))
    err = refusal(target, Images())
    assert err.status == ExitStatus.NOT_REPRODUCIBLE
    assert err.message == ("run 1 cannot be reproduced exactly: it lacks the code (no git commit recorded); the "
                           f"image {LOCAL}, which has no registry digest and is not on this engine")
    assert err.hint == "add --anyway to go on with what exists (an image built from debian:12, the workspace's " \
        "code as it is now)"
    assert not (workspace.parent / "exp-run1").exists()


def test_anyway_copies_the_workspace_without_devagents_files_and_builds_from_the_base(workspace: Path) -> None:
    target = write_run(workspace, facts_for(workspace, commit=None))
    plan = prepare(target, name=None, into=None, anyway=True, engine=Images(), files=LocalFiles(),
                   report=lambda _: None)
    assert plan.image is None and plan.base_image == "debian:12"
    assert sorted(p.name for p in plan.new_workspace.iterdir()) == [".git", "train.py"]
    assert plan.warnings[0].startswith("going on without the code (no git commit recorded)")


def test_a_commit_the_repository_lost_is_refused_and_the_clone_removed(workspace: Path) -> None:
    err = refusal(write_run(workspace, facts_for(workspace, commit="0" * 12)), Images(LOCAL))
    assert (err.status, err.message) == (ExitStatus.NOT_REPRODUCIBLE,
                                         f"the run's commit {'0' * 12} is not in {workspace}")
    assert not (workspace.parent / "exp-run1").exists()


def test_a_run_with_a_secret_in_its_command_is_refused_even_with_anyway(workspace: Path) -> None:
    target = write_run(workspace, facts_for(workspace, argv=("python", "train.py", "--token=‹redacted›")))
    with pytest.raises(DevagentError) as err:
        prepare(target, name=None, into=None, anyway=True, engine=Images(LOCAL), files=LocalFiles(),
                report=lambda _: None)
    assert err.value.status == ExitStatus.NOT_REPRODUCIBLE
    assert err.value.message == ("run 1 had secrets in its command or environment, which devagent never records")


def test_a_missing_run_a_run_without_a_block_and_a_taken_workspace_are_told_apart(workspace: Path,
                                                                                   tmp_path: Path) -> None:
    target = write_run(workspace, facts_for(workspace))
    err = refusal(target.replace("#run-1", "#run-2"), Images(LOCAL))
    assert (err.status, err.message) == (ExitStatus.USAGE, f"{workspace / 'lab-notebook.md'} has no run 2")
    (workspace / "old.md").write_text("## 2026-11-27 14:05 · run 1 · t.py · ✅ exit 0\nno block\n")
    err = refusal(f"{workspace / 'old.md'}#run-1", Images(LOCAL))
    assert err.status == ExitStatus.NOT_REPRODUCIBLE and "has no reproduce block" in err.message
    with pytest.raises(DevagentError) as taken:
        prepare(target, name=None, into=str(tmp_path), anyway=False, engine=Images(LOCAL), files=LocalFiles(),
                report=lambda _: None)
    assert (taken.value.status, taken.value.message) == (ExitStatus.USAGE, f"{tmp_path} exists")


@pytest.mark.parametrize("text", ["lab-notebook.md", "lab-notebook.md#run-0", "lab-notebook.md#3", "#run-1"])
def test_a_target_that_names_no_run_is_a_usage_error(text: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_target(text)
    assert err.value.status == ExitStatus.USAGE
    assert err.value.hint == "name the notebook and the run: devagent reproduce lab-notebook.md#run-3"


class NeverUp:
    """A provisioner `reproduce` must not get to use: the notebook is refused before anything is made."""

    engine = Images(LOCAL)

    def __init__(self, site: Any = None) -> None:
        self.site = site

    def up(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("up was called")


@pytest.mark.parametrize(("up_args", "said"), [
    (("--gpus", "none", "--share-gpus", "no"),
     "the recorded `up` option '--share-gpus' is not one devagent records (--gpus, --memory, --cpus, --shm-size, "
     "--pids, --user)"),
    (("--host", "attacker.example"),
     "the recorded `up` option '--host' is not one devagent records (--gpus, --memory, --cpus, --shm-size, "
     "--pids, --user)"),
    (("--gpus", "0", "--gpus", "all"), "the recorded `up` option '--gpus' is recorded twice"),
    (("--user", "root"), "the recorded `up` option --user 'root' is refused: invalid login user 'root'"),
    (("--memory",), "the recorded `up` option '--memory' has no value"),
])
def test_a_notebooks_up_options_pass_the_command_lines_checks_and_nothing_else(
        workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        up_args: tuple[str, ...], said: str) -> None:
    from devagent.cli import main, site_options

    target = write_run(workspace, facts_for(workspace, up_args=up_args))
    monkeypatch.setattr(site_options, "provisioner", NeverUp)
    assert main(["reproduce", target]) == ExitStatus.USAGE
    notebook = workspace / "lab-notebook.md"
    assert capsys.readouterr().err.endswith(
        f"Error: {notebook}, run 1: {said}\n"
        "  hint: a notebook cannot choose it: fix the run's reproduce block, or pass what you mean to `devagent up` "
        "yourself\n")
    assert sorted(p.name for p in workspace.parent.iterdir()) == ["code"]  # the clone is gone again


class _StopAtUp(DevagentError):
    pass


def test_reproduce_host_reads_a_slurm_run_s_notebook_once(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_job_of_run` reads the notebook (over a login to the login node) to learn the run's job; `prepare` takes
    those facts instead of reading it again over the site's link. Stopped at the environment's `up`."""
    import contextlib
    from types import SimpleNamespace

    from devagent.cli import reproduce, site_options
    from devagent.control.features import rerun
    from devagent.control.sites import slurm_site

    target = write_run(workspace, facts_for(workspace, slurm=("--slurm", "gpu", "--time", "10")))
    reads: list[Path] = []

    class CountingFiles(LocalFiles):
        def read_text(self, path: Any) -> str:
            reads.append(Path(path))
            return super().read_text(path)

    files = CountingFiles()
    opened: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def login(text: str, **_: Any) -> Any:
        yield object(), object()

    @contextlib.contextmanager
    def open_site(**kwargs: Any) -> Any:
        opened.append(kwargs)
        yield SimpleNamespace(files=lambda: files, given="hpc", on=" on hpc",
                              up_flags=("--host", "hpc", "--slurm", "gpu", "--time", "0-00:10:00"))

    def up(spec: Any, launch_command: Any) -> Any:
        raise _StopAtUp("stopped by the test at up")

    monkeypatch.setattr(slurm_site, "login", login)
    monkeypatch.setattr(rerun, "ServerFiles", lambda link: files)
    monkeypatch.setattr(site_options, "open_site", open_site)
    monkeypatch.setattr(site_options, "provisioner", lambda site: SimpleNamespace(engine=Images(LOCAL), up=up))
    with pytest.raises(_StopAtUp):
        reproduce.reproduce.callback(target, None, None, "hpc", 1e-6, False)  # type: ignore[misc]
    [kwargs] = opened
    assert (kwargs["environment"], kwargs["slurm"].request.partition) == ("exp-run1", "gpu")  # a job like the run's
    assert reads.count(workspace / "lab-notebook.md") == 1
    assert not (workspace.parent / "exp-run1").exists()  # the failed up left no workspace behind
