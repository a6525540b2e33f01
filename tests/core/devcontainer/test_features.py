"""A devcontainer.json's local Features: where their folder may be, and what their install script gets."""

from __future__ import annotations

import pytest

from devagent.core.devcontainer.features import feature_env, feature_folder, features_dockerfile
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
    from devagent.core.devcontainer.features import read_feature

    with pytest.raises(DevagentError) as caught:
        read_feature(b'{"id": "x", "capAdd": ["SYS_PTRACE"]}', source="f/devcontainer-feature.json")
    assert caught.value.message == ("f/devcontainer-feature.json: capAdd is refused: devagent sets the container's "
                                    "options itself (docs/explanation/security-model.md)")
    assert read_feature(b'{"id": "x", "privileged": false, "options": {}}', source="f") == {}
