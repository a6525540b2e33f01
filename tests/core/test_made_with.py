"""What an environment was made with, from its labels: the options label, each option that differs, as made."""

from __future__ import annotations

import json

import pytest

from devagent.core.made_with import OPTIONS_LABEL, as_made, differences, option_labels
from devagent.core.spec import AgentOptions, EnvSpec, GpuRequest, Limits

SPEC = EnvSpec("exp", "pytorch:1", "/w")
NO_RECORD = ("options its labels do not record (a team image; limits or notebook options of an environment made by "
             "an older devagent)")


def made(spec: EnvSpec, *, image: str = "devagent/exp:1") -> dict[str, str]:
    """The labels `up` gives the container of SPEC."""
    return {**spec.labels(version="1", image=image), **option_labels(spec)}


def test_the_options_label_records_the_defaults_as_up_takes_them() -> None:
    assert OPTIONS_LABEL == "devagent.options"
    assert option_labels(SPEC) == {"devagent.options": (
        '{"--cpus": "all", "--idle-release": "none", "--memory": "16g", "--notebook": "(default)", '
        '"--pids": "4096", "--poll-saves": "no", "--shm-size": "2g", "--watch": "(default)"}')}


def test_the_options_label_records_each_option_given() -> None:
    spec = EnvSpec("exp", "pytorch:1", "/w", limits=Limits(memory=1536 * 1024**2, cpus=2.5, shm_size=512 * 1024,
                                                            pids=128),
                   agent=AgentOptions(notebook="notes/lab.md", watch=("src/*.py", "train.py"), polling=True),
                   idle_release=5400.0)
    assert json.loads(option_labels(spec)[OPTIONS_LABEL]) == {
        "--cpus": "2.5", "--idle-release": "1h30m", "--memory": "1536m", "--notebook": "notes/lab.md",
        "--pids": "128", "--poll-saves": "yes", "--shm-size": "512k", "--watch": "src/*.py train.py"}


def test_whole_cpus_are_written_without_a_fraction() -> None:
    assert json.loads(option_labels(EnvSpec("e", "b", "/w", limits=Limits(cpus=8.0)))[OPTIONS_LABEL])["--cpus"] == "8"


def test_the_same_spec_differs_in_nothing_its_labels_record() -> None:
    assert differences(SPEC, made(SPEC)) == [NO_RECORD]


def test_every_option_that_differs_is_said_in_the_order_up_takes_them() -> None:
    other = EnvSpec("exp", "pytorch:2", "/w2", user="ana", gpus=GpuRequest("list", ("0", "1")),
                    limits=Limits(memory=8 * 1024**3, cpus=4.0, shm_size=1024**3, pids=2048),
                    sshd_profile="compat", agent=AgentOptions(notebook="n.md", watch=("*.py",), polling=True),
                    idle_release=300.0)
    assert differences(other, made(SPEC)) == [
        "--base-image pytorch:2 (made with pytorch:1)", "--workspace /w2 (made with /w)", "--user ana (made with dev)",
        "--gpus 0,1 (made with none)", "--sshd-profile compat (made with strict)", "--memory 8g (made with 16g)",
        "--cpus 4 (made with all)", "--shm-size 1g (made with 2g)", "--pids 2048 (made with 4096)",
        "--notebook n.md (made with (default))", "--watch *.py (made with (default))",
        "--poll-saves yes (made with no)", "--idle-release 5m (made with none)"]


def test_an_environment_from_a_registry_image_is_not_compared_by_its_base_image() -> None:
    from_registry = EnvSpec("exp", "pytorch:2", "/w", image="registry/team:1")
    assert differences(from_registry, made(SPEC)) == [NO_RECORD]


@pytest.mark.parametrize("recorded", [None, "", "not json", "[1, 2]", '"text"'])
def test_without_a_readable_options_label_only_the_other_labels_are_compared(recorded: str | None) -> None:
    labels = SPEC.labels(version="1", image="i")
    if recorded is not None:
        labels[OPTIONS_LABEL] = recorded
    bigger = EnvSpec("exp", "pytorch:1", "/w", user="ana", limits=Limits(pids=2048))
    assert differences(bigger, labels) == ["--user ana (made with dev)"]
    assert differences(EnvSpec("exp", "pytorch:1", "/w", limits=Limits(pids=2048)), labels) == [NO_RECORD]


def test_an_option_no_label_records_is_not_said() -> None:
    partial = {"devagent.options": json.dumps({"--pids": "4096"}), "devagent.user": "dev"}
    other = EnvSpec("exp", "pytorch:2", "/w2", gpus=GpuRequest("all"), sshd_profile="compat",
                    limits=Limits(pids=100, memory=1024**3))
    assert differences(other, partial) == ["--pids 100 (made with 4096)"]


def test_as_made_takes_the_user_workspace_base_image_and_profile_from_the_labels() -> None:
    labels = made(EnvSpec("exp", "pytorch:1", "/w", user="ana", sshd_profile="compat"))
    asked = EnvSpec("exp", "pytorch:9", "/other", user="dev", sshd_profile="strict", limits=Limits(pids=100))
    assert as_made(asked, labels) == EnvSpec("exp", "pytorch:1", "/w", user="ana", sshd_profile="compat",
                                             limits=Limits(pids=100))


@pytest.mark.parametrize("labels", [{}, {"devagent.user": "", "devagent.workspace": "", "devagent.base-image": "",
                                          "devagent.sshd-profile": ""}])
def test_as_made_keeps_what_the_spec_says_where_a_label_is_missing_or_empty(labels: dict[str, str]) -> None:
    asked = EnvSpec("exp", "pytorch:9", "/other", user="bo", sshd_profile="compat")
    assert as_made(asked, labels) == asked
