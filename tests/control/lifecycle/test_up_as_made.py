"""`up NAME` on an environment that exists with other options: with no option typed it starts the environment as
it was made (what `share --export`'s hint "start it: devagent up NAME" relies on); with options that differ it
names each one. Against the in-memory engine; the start itself is stood in for (`_reuse`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from devagent.cli import main
from devagent.control.features import teammates
from devagent.control.lifecycle.provision import Provisioner, UpResult, spec_hash
from devagent.control.paths import Paths
from devagent.control.ssh import keys
from devagent.core import made_with
from devagent.core.spec import EnvSpec, Limits
from devagent.errors import DevagentError, ExitStatus
from tests.control.fakes import FakeEngine

BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ3bW1wd6MXH1rXkAplDG1Q3Jy4Q0zOtmrDBD5WxQUv"


class Starts(Provisioner):
    """Records the spec `up` would start the existing container with, instead of starting it."""

    engine: FakeEngine  # the fixture's: tests read what it holds
    started: list[EnvSpec]

    def _reuse(self, spec: EnvSpec, existing: Any, identity: Path) -> UpResult:
        self.started.append(spec)
        return UpResult(name=spec.name, image="img", image_built=False, port=24000, user=spec.user, uid=1000,
                        created=False, recreated=False, workspace=spec.workspace)


def made(engine: FakeEngine, paths: Paths, workspace: Path, *, owner: str | None = None) -> EnvSpec:
    """A stopped environment `exp` made with --pids 2048 --sshd-profile compat --user ana in WORKSPACE."""
    public = keys.ensure_keypair(paths.identity, comment="ana@laptop")
    spec = EnvSpec("exp", "base:1", str(workspace), user="ana", limits=Limits(cpus=8.0, pids=2048),
                   sshd_profile="compat")
    engine.add("exp", status="exited", fixed_port=24000, labels={
        **spec.labels(version="0.1.0", image="devagent/env:1"), **made_with.option_labels(spec),
        "devagent.spec-hash": spec_hash(spec, public), **teammates.owner_labels(owner or public)})
    return spec


@pytest.fixture
def provisioner(monkeypatch: pytest.MonkeyPatch) -> Starts:
    engine = FakeEngine()
    engine.cpus = 8
    provisioner = Starts(engine=engine, paths=Paths.from_environ())
    provisioner.started = []
    monkeypatch.setattr("devagent.cli.site_options.provisioner", lambda _site: provisioner)
    return provisioner


def test_up_name_alone_starts_it_as_it_was_made_from_any_folder(
        provisioner: Starts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = made(provisioner.engine, provisioner.paths, tmp_path / "code")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["up", "exp"]) == 0
    [started] = provisioner.started
    assert (started.user, started.workspace, started.sshd_profile) == ("ana", spec.workspace, "compat")


def test_up_with_an_option_that_differs_names_it(provisioner: Starts, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = made(provisioner.engine, provisioner.paths, tmp_path / "code")
    rc = main(["up", "exp", "--workspace", spec.workspace, "--user", "ana", "--sshd-profile", "compat",
               "--pids", "4096"])
    assert rc == ExitStatus.CONFLICT
    assert capsys.readouterr().err == (
        "Error: environment 'exp' exists with other options: --base-image "
        "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime (made with base:1); --pids 4096 (made with 2048)\n"
        "  hint: `devagent up exp` with no options starts it as it was made; `devagent up exp --recreate ...` "
        "replaces it with these (alias, host key and workspace files are kept)\n")
    assert provisioner.started == []


def test_someone_elses_environment_is_not_started_by_up_name(provisioner: Starts, tmp_path: Path) -> None:
    spec = made(provisioner.engine, provisioner.paths, tmp_path / "code", owner=BOB)
    with pytest.raises(DevagentError) as err:
        provisioner.up(dataclasses.replace(spec, user="dev"), as_made=True)
    # control/features/teammates.py
    assert err.value.message.startswith("environment 'exp' belongs to root (key SHA256:")
    assert err.value.status == ExitStatus.CONFLICT and provisioner.started == []
