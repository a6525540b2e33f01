"""core/devcontainer/config_file.py: which file, JSONC, and what devagent makes of each field (the reading itself is
held to the reference CLI by test_devcontainer_oracle.py)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from devagent.core.devcontainer.config_file import (
    Build,
    Command,
    base_tag,
    build_paths,
    choose_config,
    lifecycle_argv,
    map_config,
    optional_gpus,
    parse_jsonc,
    read_configuration,
    render_lifecycle_entry,
    substitute,
)
from devagent.errors import DevagentError, ExitStatus

CORPUS = Path(__file__).parent / "devcontainer_corpus"
SM = "(docs/explanation/security-model.md)"


def plan_of(text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    config = read_configuration(text, source="d.json", local_workspace="/w/proj",
                                container_workspace="/home/dev/workspace", env=env or {})
    return map_config(config, source="d.json")


def refusal(text: str) -> DevagentError:
    with pytest.raises(DevagentError) as caught:
        plan_of(text)
    assert caught.value.status == ExitStatus.USAGE
    return caught.value


# -- which file ----------------------------------------------------------------------------------------------------

def test_the_specification_order_and_a_choice() -> None:
    both = [".devcontainer.json", ".devcontainer/devcontainer.json", ".devcontainer/cpu/devcontainer.json"]
    assert choose_config(both) == ".devcontainer/devcontainer.json"
    assert choose_config(both, "cpu") == ".devcontainer/cpu/devcontainer.json"
    assert choose_config(both, ".devcontainer.json") == ".devcontainer.json"
    assert choose_config([".devcontainer/cuda/devcontainer.json"]) == ".devcontainer/cuda/devcontainer.json"
    assert choose_config([]) is None


def test_several_named_files_and_no_choice_is_an_error_that_lists_them() -> None:
    with pytest.raises(DevagentError) as caught:
        choose_config([".devcontainer/cuda/devcontainer.json", ".devcontainer/cpu/devcontainer.json"])
    assert caught.value.message == "the workspace has several devcontainer.json files: cpu, cuda"
    assert caught.value.hint == "pick one: devagent up --devcontainer cpu"
    with pytest.raises(DevagentError) as caught:
        choose_config([".devcontainer/cpu/devcontainer.json"], "gpu")
    assert caught.value.message == ("--devcontainer 'gpu': no such devcontainer.json in the workspace "
                                    "(found: cpu)")


# -- JSONC ---------------------------------------------------------------------------------------------------------

def test_jsonc_comments_and_trailing_commas_and_strings_that_look_like_them() -> None:
    text = '\ufeff/* head */ {"a": "http://x//y", "b": "/* no */", // tail\n "c": [1, 2, ], "d": "\\"//",}'
    assert parse_jsonc(text, source="d.json") == {"a": "http://x//y", "b": "/* no */", "c": [1, 2], "d": '"//'}


def test_a_broken_file_is_named_with_its_line() -> None:
    with pytest.raises(DevagentError) as caught:
        parse_jsonc('{\n  // fine\n  "a": 1\n  "b": 2\n}', source=".devcontainer/devcontainer.json")
    assert caught.value.message == (".devcontainer/devcontainer.json: line 4, column 3: "
                                    "Expecting ',' delimiter")
    with pytest.raises(DevagentError) as caught:
        parse_jsonc("[1]", source="d.json")
    assert caught.value.message == "d.json: the file holds a JSON list, not an object"


# -- the mapping ---------------------------------------------------------------------------------------------------

def test_what_the_issue_names_is_used() -> None:
    plan = plan_of("""{
      "build": {"dockerfile": "Dockerfile", "context": "..", "args": {"V": "${localEnv:V:3}"}, "target": "dev"},
      "containerEnv": {"A": "1"}, "remoteEnv": {"P": "${containerEnv:PATH}:/x", "U": null},
      "remoteUser": "alice", "hostRequirements": {"gpu": "optional", "cpus": 4, "memory": "9gb"},
      "runArgs": ["--shm-size=2g", "--memory", "16g"],
      "postCreateCommand": "touch ${containerWorkspaceFolder}/made", "postStartCommand": ["echo", "hi"],
      "postAttachCommand": {"one": "echo 1", "two": ["echo", "2"]},
      "forwardPorts": [8888, "db:5432"], "portsAttributes": {"8888": {"label": "jupyter"}},
      "customizations": {"vscode": {"extensions": ["ms-python.python"], "settings": {"a": 1}},
                         "codespaces": {}},
      "features": {"./tools": {"version": "1"}},
      "name": "x", "workspaceFolder": "/ws", "somethingNew": true
    }""", env={"V": "4"})
    assert plan.build == Build("Dockerfile", "..", (("V", "4"),), "dev")
    assert plan.image is None
    assert dict(plan.options) == {"shm_size": "2g", "memory": "16g", "cpus": "4", "user": "alice"}
    assert plan.gpu_optional
    assert plan.container_env == (("A", "1"),)
    assert plan.remote_env == (("P", "${containerEnv:PATH}:/x"), ("U", None))
    assert plan.commands == (Command("postCreateCommand", None, line="touch /home/dev/workspace/made"),
                             Command("postStartCommand", None, argv=("echo", "hi")),
                             Command("postAttachCommand", "one", line="echo 1"),
                             Command("postAttachCommand", "two", argv=("echo", "2")))
    assert plan.forward_ports == (8888,)
    assert plan.extensions == ("ms-python.python",)
    assert plan.settings == {"a": 1}
    assert plan.local_features == (("./tools", {"version": "1"}),)
    assert plan.used == ("build", "containerEnv", "remoteEnv", "remoteUser", "runArgs", "hostRequirements",
                         "postCreateCommand", "postStartCommand", "postAttachCommand", "forwardPorts",
                         "customizations.vscode.extensions", "customizations.vscode.settings", "features")
    assert plan.ignored == ("customizations.codespaces", "forwardPorts 'db:5432'", "name", "portsAttributes",
                            "somethingNew", "workspaceFolder")


@pytest.mark.parametrize(("gpu", "run_args", "gpus", "optional"), [
    ("true", "[]", "any:1", False), ('{"cores": 1000}', "[]", "any:1", False), ('"optional"', "[]", None, True),
    ("false", "[]", None, False), ("true", '["--gpus", "all"]', "all", False), ("false", '["--gpus=0,1"]', "0,1",
                                                                               False),
])
def test_gpus_from_host_requirements_and_run_args(gpu: str, run_args: str, gpus: str | None,
                                                  optional: bool) -> None:
    plan = plan_of(f'{{"image": "i", "hostRequirements": {{"gpu": {gpu}}}, "runArgs": {run_args}}}')
    assert plan.options.get("gpus") == gpus
    assert plan.gpu_optional is optional


@pytest.mark.parametrize(("text", "message", "hint"), [
    ('{"privileged": true}', "d.json: privileged is refused: a privileged container can reach every device and "
     f"undo every other restriction {SM}", "remove privileged from the file (other tools may keep their own "
     "devcontainer.json)"),
    ('{"runArgs": ["--privileged"]}', "d.json: runArgs '--privileged' is refused: a privileged container can "
     f"reach every device and undo every other restriction {SM}", "remove '--privileged' from runArgs"),
    ('{"capAdd": ["SYS_PTRACE"]}', "d.json: capAdd is refused: devagent drops every capability: an added one "
     f"(NET_RAW, SYS_PTRACE, SYS_ADMIN…) is power over the machine the container must not have {SM}", None),
    ('{"securityOpt": ["seccomp=unconfined"]}', "d.json: securityOpt is refused: devagent's seccomp profile and "
     f"no-new-privileges stay on; unconfined would lift them {SM}", None),
    ('{"mounts": ["source=/,target=/host,type=bind"]}', "d.json: mounts is refused: a mount puts a host folder or "
     f"volume into the container beside the workspace: devagent mounts the workspace only {SM}", None),
    ('{"init": true}', f"d.json: init is refused: devagent starts the container's first process itself {SM}",
     None),
    ('{"runArgs": ["-v", "/:/host"]}', "d.json: runArgs '-v' is refused: a mount puts a host folder or volume "
     f"into the container beside the workspace: devagent mounts the workspace only {SM}", None),
    ('{"runArgs": ["-e", "A=1"]}', "d.json: runArgs '-e' is refused: devagent sets the container's options "
     "itself; only --gpus, --memory, --shm-size, --cpus and --pids-limit have a devagent meaning "
     f"{SM}", "move the variable to containerEnv"),
    ('{"runArgs": ["--network=host"]}', "d.json: runArgs '--network=host' is refused: devagent sets the "
     "container's options itself; only --gpus, --memory, --shm-size, --cpus and --pids-limit have a devagent "
     f"meaning {SM}", "remove '--network=host' from runArgs"),
    ('{"remoteUser": "root"}', "d.json: remoteUser \"root\" is refused: the login user is never root in a "
     f"devagent environment {SM}", "remove remoteUser (devagent's login user is dev) or name an ordinary user"),
    ('{"initializeCommand": "curl x | sh"}', "d.json: initializeCommand is refused: it runs on your machine (or "
     f"the server), outside the container, as you {SM}", None),
    ('{"features": {"ghcr.io/devcontainers/features/rust:1": {}}}', "d.json: feature "
     "'ghcr.io/devcontainers/features/rust:1' is refused: devagent fetches no Feature from a registry (a server "
     "without internet is the normal case, and a Feature's install script runs as root at build) "
     f"{SM}", "vendor it: copy the Feature's folder (devcontainer-feature.json, install.sh) into .devcontainer/ "
     "and name it \"./FOLDER\" in features, or install the tool in the Dockerfile"),
])
def test_what_would_weaken_the_container_is_refused_by_name(text: str, message: str, hint: str | None) -> None:
    error = refusal(text)
    assert error.message == message
    if hint is not None:
        assert error.hint == hint


def test_bad_values_are_named() -> None:
    assert refusal('{"image": "a", "build": {"dockerfile": "D"}}').message == "d.json: both image and build are set"
    assert refusal('{"build": {"context": "."}}').message == "d.json: build has no dockerfile"
    assert refusal('{"runArgs": ["--memory"]}').message == "d.json: runArgs '--memory' has no value"
    assert refusal('{"hostRequirements": {"gpu": "maybe"}}').message == (
        "d.json: hostRequirements.gpu 'maybe' is not true, false, \"optional\" or an object")
    assert refusal('{"postCreateCommand": 3}').message == (
        "d.json: postCreateCommand is not a string, a list or an object")
    assert refusal('{"remoteUser": "Bad User"}').status == ExitStatus.USAGE


def test_every_corpus_file_is_used_or_refused_by_name() -> None:
    """PyTorch's own files: the OCI Feature (rust, for lintrunner) is what stands in the way, and says how."""
    outcomes = {}
    for path in sorted(CORPUS.glob("*.jsonc")):
        try:
            plan_of(path.read_text())
            outcomes[path.stem] = "used"
        except DevagentError as e:
            assert " is refused: " in e.message or "several" in e.message, e.message
            outcomes[path.stem] = e.message.split(" is refused", 1)[0].split(": ", 1)[1]
    assert outcomes["pytorch-cuda"] == "feature 'ghcr.io/devcontainers/features/rust:1'"
    assert outcomes["pytorch-root"] == "used"
    assert outcomes["airflow"] == "dockerComposeFile"
    assert outcomes["grafana"] == "runArgs '--cap-add=SYS_PTRACE'"
    assert sum(v == "used" for v in outcomes.values()) >= 8


def test_environment_variables_that_sshd_or_a_shell_would_misread_are_refused_without_their_value() -> None:
    error = refusal('{"containerEnv": {"TOKEN": "s3cret\\nEVIL=1"}}')
    assert (error.message, error.hint, error.status) == (
        "d.json: containerEnv: the value of TOKEN holds a line break or control character",
        "fix containerEnv in the file", ExitStatus.USAGE)
    assert "s3cret" not in str(error)
    assert refusal('{"remoteEnv": {"A B": "1"}}').message == (
        "d.json: remoteEnv: A B is not a variable name (letters, digits, _; not starting with a digit)")
    assert refusal('{"remoteEnv": {"X": "\\u0000"}}').message == (
        "d.json: remoteEnv: the value of X holds a line break or control character")


def test_a_null_in_container_env_is_refused_not_set_to_the_word_none() -> None:
    error = refusal('{"image": "i", "containerEnv": {"A": "1", "HF_TOKEN": null}, "remoteEnv": {"B": null}}')
    assert (error.message, error.hint) == (
        "d.json: containerEnv: the value of HF_TOKEN is null, not a string",
        'give HF_TOKEN a string value in containerEnv ("" for empty) or remove it; remoteEnv\'s null unsets a '
        "variable in the ssh sessions")
    plan = plan_of('{"image": "i", "containerEnv": {"A": ""}, "remoteEnv": {"B": null}}')
    assert (plan.container_env, plan.remote_env) == ((("A", ""),), (("B", None),))


# -- exact refusals, table-driven ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message", "hint"), [
    ('{"customizations": []}', "d.json: customizations is not an object", "fix customizations in the file"),
    ('{"customizations": {"vscode": 1}}', "d.json: customizations.vscode is not an object",
     "fix customizations.vscode in the file"),
    ('{"customizations": {"vscode": {"extensions": "x"}}}',
     "d.json: customizations.vscode.extensions is not a list of strings",
     "fix customizations.vscode.extensions in the file"),
    ('{"customizations": {"vscode": {"settings": []}}}', "d.json: customizations.vscode.settings is not an object",
     "fix customizations.vscode.settings in the file"),
    ('{"features": []}', "d.json: features is not an object", "fix features in the file"),
    ('{"hostRequirements": []}', "d.json: hostRequirements is not an object", "fix hostRequirements in the file"),
    ('{"runArgs": "--cpus=2"}', "d.json: runArgs is not a list of strings", "fix runArgs in the file"),
    ('{"runArgs": [2]}', "d.json: runArgs is not a list of strings", "fix runArgs in the file"),
    ('{"build": 3}', "d.json: build is not an object", "fix build in the file"),
    ('{"build": {"dockerfile": "D", "args": []}}', "d.json: build.args is not an object",
     "fix build.args in the file"),
    ('{"image": "i", "dockerFile": "D"}', "d.json: both image and build are set", "keep one of them"),
    ('{"build": {"context": "."}}', "d.json: build has no dockerfile",
     'name the Dockerfile: "build": {"dockerfile": "Dockerfile"}'),
    ('{"containerEnv": []}', "d.json: containerEnv is not an object", "fix containerEnv in the file"),
    ('{"remoteEnv": "A=1"}', "d.json: remoteEnv is not an object", "fix remoteEnv in the file"),
    ('{"forwardPorts": 8080}', "d.json: forwardPorts is not a list", "fix forwardPorts in the file"),
    ('{"hostRequirements": {"memory": "lots"}}', "d.json: hostRequirements.memory 'lots' is not a size",
     'write hostRequirements.memory as "8gb"'),
    ('{"hostRequirements": {"gpu": "maybe"}}',
     "d.json: hostRequirements.gpu 'maybe' is not true, false, \"optional\" or an object",
     "fix hostRequirements.gpu in the file"),
    ('{"postCreateCommand": 3}', "d.json: postCreateCommand is not a string, a list or an object",
     "fix postCreateCommand in the file"),
    ('{"postCreateCommand": ["make", 1]}', "d.json: postCreateCommand is not a list of strings",
     "fix postCreateCommand in the file"),
    ('{"postAttachCommand": {"x": ["a", 1]}}', "d.json: postAttachCommand is not a list of strings",
     "fix postAttachCommand in the file"),
    ('{"postAttachCommand": {"x": 3}}', "d.json: postAttachCommand is not a string, a list or an object",
     "fix postAttachCommand in the file"),
    ('{"remoteUser": 3}', "d.json: remoteUser is not a string", "fix remoteUser in the file"),
    ('{"containerUser": "0"}', "d.json: containerUser \"root\" is refused: the login user is never root in a "
     f"devagent environment {SM}", "remove containerUser (devagent's login user is dev) or name an ordinary user"),
    ('{"runArgs": ["--memory"]}', "d.json: runArgs '--memory' has no value", "give --memory a value in runArgs"),
    ('{"runArgs": ["--env=A=1"]}', "d.json: runArgs '--env=A=1' is refused: devagent sets the container's options "
     "itself; only --gpus, --memory, --shm-size, --cpus and --pids-limit have a devagent meaning "
     f"{SM}", "move the variable to containerEnv"),
    ('{"runArgs": ["--cap-add", "SYS_ADMIN"]}', "d.json: runArgs '--cap-add' is refused: devagent drops every "
     "capability: an added one (NET_RAW, SYS_PTRACE, SYS_ADMIN…) is power over the machine the container must not "
     f"have {SM}", "remove '--cap-add' from runArgs"),
    ('{"runArgs": ["-p", "8080:80"]}', "d.json: runArgs '-p' is refused: devagent publishes no port on the "
     f"machine's interfaces: forwardPorts gives `devagent forward` {SM}", "remove '-p' from runArgs"),
    ('{"dockerComposeFile": "c.yml"}', "d.json: dockerComposeFile is refused: devagent makes one container from an "
     f"image or a Dockerfile, not a Compose project {SM}", "remove dockerComposeFile from the file (other tools may "
     "keep their own devcontainer.json)"),
    ('{"image": "i",}}', "d.json: line 1, column 16: Extra data",
     "fix the file: devcontainer.json is JSON with comments"),
    ('"img"', "d.json: the file holds a JSON str, not an object",
     'a devcontainer.json is one object: { "image": ... }'),
])
def test_each_refusal_names_the_field_and_the_fix(text: str, message: str, hint: str) -> None:
    error = refusal(text)
    assert (error.message, error.hint) == (message, hint)


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": "x', "d.json: line 1, column 7: Unterminated string starting at"),
    ("}", "d.json: line 1, column 1: Expecting value"),
    ("X{}", "d.json: line 1, column 1: Expecting value"),
])
def test_jsonc_that_is_no_json_is_refused_where_it_breaks(text: str, message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_jsonc(text, source="d.json")
    assert caught.value.message == message


# -- what each field becomes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("memory", "size"), [
    ("8gb", "8g"), ("512MB", "512m"), (" 4 GB ", "4g"), ("1024", "1024"), ("1.5tb", "1536g"), ("2t", "2048g"),
    ("0.5tb", "512g"), ("3kb", "3k"),
])
def test_host_memory_in_ups_form(memory: str, size: str) -> None:
    plan = plan_of(f'{{"image": "i", "hostRequirements": {{"memory": "{memory}", "cpus": 2}}}}')
    assert dict(plan.options) == {"memory": size, "cpus": "2"}


def test_forward_ports_take_tcp_port_numbers_and_list_the_rest_as_ignored() -> None:
    plan = plan_of('{"image": "i", "forwardPorts": [0, 2, 65535, 65536, "3000", 22.5, -1]}')
    assert plan.forward_ports == (2, 65535)
    assert plan.ignored == ("forwardPorts '3000'", "forwardPorts -1", "forwardPorts 0", "forwardPorts 22.5",
                            "forwardPorts 65536")
    assert plan_of('{"image": "i", "forwardPorts": [1]}').forward_ports == (1,)


def test_forward_ports_list_a_boolean_or_a_float_beside_its_equal_port_as_ignored() -> None:
    plan = plan_of('{"image": "i", "forwardPorts": [1, true, 0, false, 1.0]}')
    assert plan.forward_ports == (1,)
    assert plan.ignored == ("forwardPorts 0", "forwardPorts 1.0", "forwardPorts False", "forwardPorts True")


def test_empty_commands_run_nothing_and_hooks_keep_the_specifications_order() -> None:
    plan = plan_of('{"image": "i", "postCreateCommand": "  ", "postStartCommand": [], "postAttachCommand": {},'
                   ' "updateContentCommand": "b", "onCreateCommand": ["a"]}')
    assert plan.commands == (Command("onCreateCommand", None, argv=("a",)),
                             Command("updateContentCommand", None, line="b"))


def test_a_feature_in_a_sibling_folder_and_a_version_given_alone() -> None:
    plan = plan_of('{"image": "i", "features": {"../shared/f": "1.2", "./g": {"x": 1}}}')
    assert plan.local_features == (("../shared/f", {"version": "1.2"}), ("./g", {"x": 1}))


@pytest.mark.parametrize(("users", "user"), [
    ('"containerUser": "alice"', "alice"), ('"remoteUser": "bob", "containerUser": "alice"', "bob"),
    ('"remoteUser": "bob"', "bob"),
])
def test_the_login_user_is_remote_user_else_container_user(users: str, user: str) -> None:
    assert plan_of(f'{{"image": "i", {users}}}').options == {"user": user}


@pytest.mark.parametrize(("text", "build"), [
    ('{"dockerFile": "Dockerfile", "context": ".."}', Build("Dockerfile", "..")),
    ('{"build": {"dockerfile": "D", "args": {"N": 1}}}', Build("D", ".", (("N", "1"),))),
    ('{"build": {"dockerfile": "D", "context": ""}, "context": "x"}', Build("D", "x")),
])
def test_a_build_from_build_or_the_legacy_fields(text: str, build: Build) -> None:
    plan = plan_of(text)
    assert (plan.build, plan.image, plan.ignored) == (build, None, ())


def test_a_top_level_lowercase_dockerfile_is_no_key_of_the_specification_and_is_listed_as_ignored() -> None:
    plan = plan_of('{"image": "i", "dockerfile": "D"}')
    assert (plan.image, plan.build, plan.used, plan.ignored) == ("i", None, ("image",), ("dockerfile",))
    assert plan_of('{"dockerfile": "D"}').build is None
    assert refusal('{"build": {"context": "."}, "dockerfile": "D"}').message == "d.json: build has no dockerfile"
    assert plan_of('{"dockerFile": "D", "dockerfile": "E"}').build == Build("D")


def test_an_image_with_a_null_build_is_an_image() -> None:
    plan = plan_of('{"image": "i", "build": null}')
    assert (plan.image, plan.build) == ("i", None)


def test_what_is_used_and_ignored_beside_the_image() -> None:
    plan = plan_of('{"image": "i", "hostRequirements": {"storage": "32gb"}, "containerEnv": {"N": 3},'
                   ' "remoteEnv": {"A": null}, "customizations": {"jetbrains": {}, "vscode": {"extensions": []}}}')
    assert plan.used == ("image", "containerEnv", "remoteEnv", "hostRequirements", "customizations.vscode.extensions")
    assert plan.ignored == ("customizations.jetbrains", "hostRequirements.storage")
    assert (plan.container_env, plan.remote_env, plan.extensions) == ((("N", "3"),), (("A", None),), ())


def test_an_empty_inline_run_arg_value_does_not_take_the_next_item() -> None:
    assert plan_of('{"image": "i", "runArgs": ["--shm-size=", "--cpus", "2", "-m=1g"]}').options == {
        "shm_size": "", "cpus": "2", "memory": "1g"}


# -- variables -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "result"), [
    ("${localEnv}", "${localEnv}"), ("${env}", "${env}"), ("${xBasename}", "${xBasename}"),
    ("${localWorkspaceFolderBasename}", "LaTeX"), ("${localWorkspaceFolder}", "/home/ada/LaTeX/"),
    ("${containerWorkspaceFolderBasename}", "ws"),
])
def test_variables_the_reference_knows_and_those_it_leaves(value: str, result: str) -> None:
    assert substitute(value, local_workspace="/home/ada/LaTeX/", container_workspace="ws", env={}) == result


def test_variables_are_substituted_in_lists_and_objects_of_every_depth() -> None:
    value = {"a": ["${localWorkspaceFolder}", {"b": "${containerWorkspaceFolder}"}], "c": 3, "d": None}
    assert substitute(value, local_workspace="/w", container_workspace="/c", env={}) == {
        "a": ["/w", {"b": "/c"}], "c": 3, "d": None}


def test_read_configuration_names_the_file_in_its_errors() -> None:
    with pytest.raises(DevagentError) as caught:
        read_configuration("{", source="x/d.json", local_workspace="/w", container_workspace="/c", env={})
    assert caught.value.message.startswith("x/d.json: line 1, column 2: ")


# -- which file, lifecycle commands, the base image ---------------------------------------------------------------

def test_an_unknown_choice_lists_every_file_found() -> None:
    present = [".devcontainer/a/devcontainer.json", ".devcontainer/b/devcontainer.json", ".devcontainer.json"]
    with pytest.raises(DevagentError) as caught:
        choose_config(present, "c")
    assert (caught.value.message, caught.value.hint) == (
        "--devcontainer 'c': no such devcontainer.json in the workspace (found: a, b, .devcontainer.json)",
        "name a folder under .devcontainer/ (cpu for .devcontainer/cpu/devcontainer.json) or a path")
    with pytest.raises(DevagentError) as caught:
        choose_config([], "c")
    assert caught.value.message == "--devcontainer 'c': no such devcontainer.json in the workspace (found: none)"


def test_the_lifecycle_argv_of_a_shell_line_and_of_an_argument_vector() -> None:
    assert lifecycle_argv(Command("postStartCommand", None, argv=("echo", "hi")), "/ws") == [
        "devagent", "lifecycle", "--workspace", "/ws", "--hook", "postStartCommand", "--", "echo", "hi"]
    assert lifecycle_argv(Command("onCreateCommand", None, line="make"), "/ws") == [
        "devagent", "lifecycle", "--workspace", "/ws", "--hook", "onCreateCommand", "--", "sh", "-c", "make"]


def test_a_failed_commands_entry_shows_the_last_lines_of_its_output() -> None:
    when = datetime(2026, 12, 7, 17, 0)
    tail = "".join(f"l{i}\n" for i in range(25))
    assert render_lifecycle_entry("postAttachCommand", "one", ["make", "test"], 2, "p.log", tail, when) == (
        "\n## 2026-12-07 17:00 · devcontainer · postAttachCommand one · ❌ exit 2\n"
        "`make test` · output: `p.log`\n\n```text\n" + "".join(f"l{i}\n" for i in range(6, 25)) + "\n```\n")
    assert render_lifecycle_entry("postAttachCommand", None, ["make"], 2, "p.log", "  \n", when) == (
        "\n## 2026-12-07 17:00 · devcontainer · postAttachCommand · ❌ exit 2\n`make` · output: `p.log`\n")


@pytest.mark.parametrize(("build", "message", "hint"), [
    (Build("Dockerfile", "/srv"), "c/devcontainer.json: build.context '/srv' is outside the workspace",
     "keep build.context inside the repository"),
    (Build("Dockerfile", "../.."), "c/devcontainer.json: build.context '../..' is outside the workspace",
     "keep build.context inside the repository"),
    (Build("../../D"), "c/devcontainer.json: build.dockerfile '../../D' is outside the workspace",
     "keep build.dockerfile inside the repository"),
    (Build("/D"), "c/devcontainer.json: build.dockerfile '/D' is outside the workspace",
     "keep build.dockerfile inside the repository"),
    (Build("../"), "c/devcontainer.json: build.dockerfile '../' is not a file", "name the Dockerfile"),
])
def test_build_paths_stay_in_the_workspace(build: Build, message: str, hint: str) -> None:
    with pytest.raises(DevagentError) as caught:
        build_paths("c/devcontainer.json", build)
    assert (caught.value.message, caught.value.hint, caught.value.status) == (message, hint, ExitStatus.USAGE)
    assert build_paths("c/devcontainer.json", Build("D", "..")) == (".", "c/D")


def test_the_base_tag_changes_with_the_context_args_and_target() -> None:
    tag = base_tag("ab", b"FROM x", Build("D"))
    assert re.fullmatch(r"devagent/devcontainer-base:[0-9a-f]{16}", tag)
    others = {base_tag("ab", b"FROM x", Build("D", "..")), base_tag("ab", b"FROM x", Build("D", args=(("A", "1"),))),
              base_tag("ab", b"FROM x", Build("D", target="dev")), base_tag("ac", b"FROM x", Build("D")),
              base_tag("ab", b"FROM y", Build("D"))}
    assert len(others) == 5 and tag not in others
    assert base_tag("ab", b"FROM x", Build("Other")) == tag  # the Dockerfile's bytes count, not its name


def test_an_optional_gpu_is_taken_when_one_is_free() -> None:
    assert (optional_gpus(1), optional_gpus(0)) == ("any:1", "none")


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": 1} // a comment on the last line, no newline', {"a": 1}),
    ('{"a": "*/", /* c */ "b": 1}', {"a": "*/", "b": 1}),
    ('{/**/"a": 1}', {"a": 1}),
    ('{"a": 1} /* a comment never closed', {"a": 1}),
    ('{"a": [1 /* c */]}', {"a": [1]}),
])
def test_comments_at_their_edges(text: str, value: dict[str, object]) -> None:
    assert parse_jsonc(text, source="d.json") == value


@pytest.mark.parametrize(("text", "message"), [
    (",]", "d.json: line 1, column 2: Expecting value"),  # the comma before ] is blanked, even the first character
    ("[1,X]", "d.json: line 1, column 4: Expecting value"),  # a comma before anything else stays
    ('{/*\n*/ "a": }', "d.json: line 2, column 9: Expecting value"),  # a block comment keeps its line breaks
])
def test_errors_point_at_the_files_own_lines_and_columns(text: str, message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        parse_jsonc(text, source="d.json")
    assert caught.value.message == message


def test_weakening_fields_left_empty_are_no_refusal() -> None:
    plan = plan_of('{"image": "i", "init": "", "privileged": false, "capAdd": [], "mounts": null, "securityOpt": {}}')
    assert plan.image == "i"
