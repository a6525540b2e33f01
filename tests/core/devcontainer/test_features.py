"""A devcontainer.json's local Features: where their folder may be, and what their install script gets."""

from __future__ import annotations

import re

import pytest

from devagent.core.devcontainer.features import (
    feature_env,
    feature_folder,
    features_dockerfile,
    features_tag,
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


def test_options_are_the_declared_defaults_under_what_the_file_gives() -> None:
    declared = {"version": {"type": "string", "default": "1.2"}, "tools": {"type": "boolean", "default": False},
                "proxy": {"type": "string"}, "odd": "no spec", "2nd-try": {"default": 3}}
    assert feature_env(declared, {"tools": True, "extra": "x"}, source="./f") == (
        ("VERSION", "1.2"), ("TOOLS", "true"), ("_ND_TRY", "3"), ("EXTRA", "x"))
    assert feature_env({"proxy": {"type": "string"}}, {}, source="./f") == ()


def test_a_bad_option_names_the_feature_and_the_fix() -> None:
    with pytest.raises(DevagentError) as caught:
        feature_env({"v": {"default": "a\x1bb"}}, {}, source="./tools")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "features ./tools: the value of V holds a line break or control character",
        "fix the Feature's options in the file", ExitStatus.USAGE)


def test_the_dockerfile_runs_each_feature_in_order_as_root() -> None:
    text = features_dockerfile("b:2", [("tools/a", (("A", "1"), ("B", "x y"))), ("b", ())])
    assert text == (
        "FROM b:2\n"
        "USER root\n"
        "COPY tools/a/ /tmp/devagent-features/0/\n"
        "RUN cd /tmp/devagent-features/0 && chmod +x install.sh && env A=1 'B=x y' ./install.sh"
        " && rm -rf /tmp/devagent-features/0\n"
        "COPY b/ /tmp/devagent-features/1/\n"
        "RUN cd /tmp/devagent-features/1 && chmod +x install.sh && env  ./install.sh"
        " && rm -rf /tmp/devagent-features/1\n")
    assert features_dockerfile("b:2", []) == "FROM b:2\nUSER root\n"


@pytest.mark.parametrize("key", ["privileged", "capAdd", "securityOpt", "mounts", "init", "entrypoint"])
def test_each_weakening_field_is_refused_with_its_fix(key: str) -> None:
    with pytest.raises(DevagentError) as caught:
        read_feature(f'{{"{key}": ["x"]}}'.encode(), source="f/devcontainer-feature.json")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        f"f/devcontainer-feature.json: {key} is refused: devagent sets the container's options itself "
        "(docs/explanation/security-model.md)",
        f"remove {key} from the Feature, or install the tool in a Dockerfile", ExitStatus.USAGE)


def test_empty_weakening_fields_and_no_options_are_fine() -> None:
    empty = b'{"privileged": false, "capAdd": [], "securityOpt": null, "mounts": {}, "init": "", "entrypoint": ""}'
    assert read_feature(empty, source="f") == {}
    assert read_feature(b'{"id": "x", // JSONC\n "options": {"v": {"default": 1},},}', source="f") == {
        "v": {"default": 1}}


def test_the_metadata_is_read_as_utf8_with_bad_bytes_replaced() -> None:
    text = '{"options": {"greeting": {"default": "h\u00e9 \xff"}}}'.encode("utf-8").replace(b"\xc3\xbf", b"\xff")
    assert read_feature(text, source="f") == {"greeting": {"default": "h\u00e9 \ufffd"}}


def test_bad_metadata_names_its_file() -> None:
    with pytest.raises(DevagentError) as caught:
        read_feature(b'{"options": [1]}', source="f/devcontainer-feature.json")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "f/devcontainer-feature.json: options is not an object", "fix the Feature's devcontainer-feature.json",
        ExitStatus.USAGE)
    with pytest.raises(DevagentError) as caught:
        read_feature(b'{"options": }', source="f/devcontainer-feature.json")
    assert caught.value.message == "f/devcontainer-feature.json: line 1, column 13: Expecting value"


def test_the_tag_changes_with_each_part_and_only_with_them() -> None:
    tag = features_tag("img:1", "sha256:ab", [b"tools", b"A=1"])
    assert re.fullmatch(r"devagent/devcontainer-base:features-[0-9a-f]{16}", tag)
    assert features_tag("img:1", "sha256:ab", [b"tools", b"A=1"]) == tag
    others = {features_tag("img:2", "sha256:ab", [b"tools", b"A=1"]),
              features_tag("img:1", "sha256:ac", [b"tools", b"A=1"]),
              features_tag("img:1", "sha256:ab", [b"tool", b"sA=1"]),  # the same bytes, split elsewhere
              features_tag("img:1", "sha256:ab", [b"tools"]),
              features_tag("img:1", "sha256:ab", [b"tools", b"A=1", b""])}
    assert len(others) == 5 and tag not in others
