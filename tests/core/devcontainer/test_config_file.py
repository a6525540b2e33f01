"""core/devcontainer/config_file.py: which file, JSONC, and what devagent makes of each field (the reading itself is
held to the reference CLI by test_devcontainer_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagent.core.devcontainer.config_file import (
    Build,
    Command,
    choose_config,
    map_config,
    parse_jsonc,
    read_configuration,
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
