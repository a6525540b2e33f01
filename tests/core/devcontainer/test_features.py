"""A devcontainer.json's local Features: where their folder may be, and what their install script gets."""

from __future__ import annotations

import pytest

from devagent.core.devcontainer.features import (
    feature_env,
    feature_folder,
    features_dockerfile,
    read_feature,
)
from devagent.errors import DevagentError, ExitStatus


@pytest.mark.parametrize("ref", ["./../x", "../x", "./", "/etc", "x"])
def test_a_feature_outside_the_files_folder_is_refused(ref: str) -> None:
    with pytest.raises(DevagentError) as caught:
        feature_folder(".devcontainer/devcontainer.json", ref)
    assert (caught.value.message, caught.value.status) == (
        f".devcontainer/devcontainer.json: feature {ref!r} is not a folder inside .devcontainer/", ExitStatus.USAGE)


def test_an_option_with_a_line_break_is_refused_and_values_are_quoted_for_the_shell() -> None:
    with pytest.raises(DevagentError) as caught:
        feature_env({}, {"v": "1\nrm -rf /"}, source="./f")
    assert caught.value.message == "features ./f: the value of V holds a line break or control character"
    env = feature_env({}, {"v": "$(id); 'x'"}, source="./f")
    assert "env 'V=$(id); '\"'\"'x'\"'\"'' ./install.sh" in features_dockerfile("b", [("f", env)])


def test_a_feature_that_asks_for_privileges_is_refused_by_name() -> None:
    with pytest.raises(DevagentError) as caught:
        read_feature(b'{"id": "x", "capAdd": ["SYS_PTRACE"]}', source="f/devcontainer-feature.json")
    assert caught.value.message == ("f/devcontainer-feature.json: capAdd is refused: devagent sets the container's "
                                    "options itself (docs/explanation/security-model.md)")
    assert read_feature(b'{"id": "x", "privileged": false, "options": {}}', source="f") == {}


@pytest.mark.parametrize(("config", "ref", "folder"), [
    (".devcontainer/devcontainer.json", "./tools/hello", ".devcontainer/tools/hello"),
    (".devcontainer/cpu/devcontainer.json", "./a/./b/../c", ".devcontainer/cpu/a/c"),
    (".devcontainer.json", "./tools", "tools"),
])
def test_a_local_feature_is_a_folder_below_the_files_own(config: str, ref: str, folder: str) -> None:
    assert feature_folder(config, ref) == folder


@pytest.mark.parametrize("ref", ["./", "./.", "./../x", "./a/../..", "tools", "/tools"])
def test_beside_a_devcontainer_json_at_the_top_the_workspace_is_the_limit(ref: str) -> None:
    """A .devcontainer.json at the workspace's top: its folder is the workspace; the Feature is a folder in it
    (neither the workspace itself nor anything above it)."""
    with pytest.raises(DevagentError) as caught:
        feature_folder(".devcontainer.json", ref)
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        f".devcontainer.json: feature {ref!r} is not a folder inside ./",
        "keep a local Feature in the devcontainer.json's folder and name it \"./FOLDER\"", ExitStatus.USAGE)
