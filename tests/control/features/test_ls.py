"""`ls` and `doctor` on a shared engine: the caller's own environments by default, everyone's with `ls --all`; a
stopped environment shows as stopped, with no health."""

from __future__ import annotations

import json

import pytest

from devagent.cli import main
from devagent.control.features import doctor_report as hd
from devagent.control.features.teammates import OWNER_KEY_LABEL, OWNER_NAME_LABEL
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
from devagent.control.ssh import keys
from tests.control.fakes import FakeEngine

BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ3bW1wd6MXH1rXkAplDG1Q3Jy4Q0zOtmrDBD5WxQUv"
HEADER = "NAME                 STATE      HEALTH       PORT  USER     GPUS     INVITED      "


def labels(name: str, owner: tuple[str, str] | None) -> dict[str, str]:
    made = {"devagent.managed": "true", "devagent.name": name, "devagent.user": "dev", "devagent.gpus": "none",
            "devagent.workspace": f"/w/{name}"}
    if owner is not None:
        made |= {OWNER_NAME_LABEL: owner[0], OWNER_KEY_LABEL: owner[1]}
    return made


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    paths = Paths.from_environ()
    mine = " ".join(keys.ensure_keypair(paths.identity, comment="ana@laptop").split()[:2])
    engine = FakeEngine()
    engine.add("ana-exp", labels=labels("ana-exp", ("ana", mine)), host_port=40001).health = "healthy"
    engine.add("ana-old", labels=labels("ana-old", ("ana", mine)), status="exited").health = "unhealthy"
    engine.add("bob-exp", labels=labels("bob-exp", ("bob", BOB)), host_port=40003).health = "healthy"
    engine.add("legacy", labels=labels("legacy", None), host_port=40004)  # no owner recorded: shown
    monkeypatch.setattr("devagent.cli.site_options.provisioner", lambda _site: Provisioner(engine=engine, paths=paths))
    return engine


def test_ls_shows_the_callers_environments_and_says_how_many_it_left_out(
        engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls"]) == 0
    assert capsys.readouterr().out == (
        f"{HEADER}WORKSPACE\n"
        "ana-exp              running    healthy     40001  dev      none     -            /w/ana-exp\n"
        "ana-old              stopped    -               -  dev      none     -            /w/ana-old\n"
        "legacy               running    -           40004  dev      none     -            /w/legacy\n"
        "(1 environment of other people: devagent ls --all)\n")


def test_ls_all_shows_everyones_with_the_owner(engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{HEADER}OWNER        WORKSPACE",
        "ana-exp              running    healthy     40001  dev      none     -            ana          /w/ana-exp",
        "ana-old              stopped    -               -  dev      none     -            ana          /w/ana-old",
        "bob-exp              running    healthy     40003  dev      none     -            bob          /w/bob-exp",
        "legacy               running    -           40004  dev      none     -            -            /w/legacy"]


def test_ls_json_adds_owner_and_mine_and_lists_the_same_environments(
        engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["environments"]
    assert [(r["name"], r["owner"], r["mine"], r["state"]) for r in rows] == [
        ("ana-exp", "ana", True, "running"), ("ana-old", "ana", True, "exited"), ("legacy", None, None, "running")]
    assert main(["ls", "--json", "--all"]) == 0
    rows = json.loads(capsys.readouterr().out)["environments"]
    assert [(r["name"], r["mine"]) for r in rows] == [("ana-exp", True), ("ana-old", True), ("bob-exp", False),
                                                      ("legacy", None)]


def test_before_any_key_nothing_with_an_owner_is_yours(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    engine = FakeEngine()
    engine.add("bob-exp", labels=labels("bob-exp", ("bob", BOB)), host_port=40003)
    monkeypatch.setattr("devagent.cli.site_options.provisioner",
                        lambda _site: Provisioner(engine=engine, paths=Paths.from_environ()))
    assert main(["ls"]) == 0
    assert capsys.readouterr().out == ("no environments; create one with: devagent up NAME "
                                       "(1 environment of other people: devagent ls --all)\n")


def test_doctor_counts_the_callers_environments_apart_from_others(engine: FakeEngine) -> None:
    checks = hd.run_checks(Paths.from_environ(), name=None, environ={}, engine_factory=lambda: engine)
    assert (checks[0].name, checks[0].ok, checks[0].detail) == (
        "Docker Engine", True, "answers; 3 devagent environments of yours, 1 of other people")


def test_ls_all_shows_the_labels_of_others_escaped_one_row_each(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Anyone on the engine can label a container: an owner that writes the clipboard (OSC 52), a workspace whose
    # line break forges a row of its own, a user with a tab and an 8-bit CSI.
    engine = FakeEngine()
    hostile = labels("bob-exp", ("bob\x1b]52;c;ZXZpbA==\x07", BOB)) | {
        "devagent.user": "dev\t\x9b2J", "devagent.gpus": "0\r",
        "devagent.workspace": "/w/b\nana-exp              running    healthy     40001  dev"}
    engine.add("bob-exp", labels=hostile, host_port=40003).health = "healthy"
    monkeypatch.setattr("devagent.cli.site_options.provisioner",
                        lambda _site: Provisioner(engine=engine, paths=Paths.from_environ()))
    assert main(["ls", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{HEADER}OWNER        WORKSPACE",
        "bob-exp              running    healthy     40003  dev␉\\x9b2J 0␍       -            bob␛]52;c;ZXZpbA==␇ "
        "/w/b␊ana-exp              running    healthy     40001  dev"]
    assert main(["ls", "--all", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\\u001b]52" in out  # JSON escapes them itself
    (row,) = json.loads(out)["environments"]
    assert (row["owner"], row["user"], row["gpus"], row["workspace"]) == (
        "bob\x1b]52;c;ZXZpbA==\x07", hostile["devagent.user"], "0\r", hostile["devagent.workspace"])
