"""A repository's ``devcontainer.json``, read as the Dev Containers specification reads it, and what devagent
makes of each field.

Pure: the file's text, the folders and the caller's environment come in as arguments; nothing here reads a
file or ``os.environ``. Three steps, each usable alone:

- ``choose_config``: which file, among those the specification looks for (the caller lists what exists);
- ``read_configuration``: the file parsed as JSONC (comments, trailing commas), its legacy top-level
  ``extensions``/``settings`` moved under ``customizations.vscode`` and its variables substituted, exactly as
  the reference ``devcontainer read-configuration`` does (tests/core/devcontainer/test_config_file_oracle.py holds the
  two together over a corpus of real files);
- ``map_config``: the devagent meaning of each field. What would weaken the container (``privileged``,
  ``capAdd``, ``securityOpt``, ``mounts``, ``runArgs`` other than the limits, Features from a registry…) is
  refused by name with the security model's reason, never dropped silently; what has no devagent meaning is
  listed as ignored, so `up` can say what was used and what was not.

>>> config = read_configuration('{"image": "img:1", // base\\n "containerEnv": {"W": "${localEnv:W:x}"},}',
...                             source="d.json", local_workspace="/w", container_workspace="/c", env={})
>>> config["containerEnv"]
{'W': 'x'}
>>> plan = map_config(config, source="d.json")
>>> plan.image, plan.container_env, plan.used
('img:1', (('W', 'x'),), ('image', 'containerEnv'))
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from devagent.core import spec as s
from devagent.core.markdown import code_span, escape_heading, fence, split_lines
from devagent.core.notebook import entry, heading
from devagent.core.ssh.sshd import check_env
from devagent.errors import DevagentError, ExitStatus

# Where the specification looks, in its order; a folder one level below .devcontainer/ holds one more each.
CANDIDATES = (".devcontainer/devcontainer.json", ".devcontainer.json")
_SUBFOLDER = re.compile(r"\.devcontainer/([^/]+)/devcontainer\.json")
_VARIABLE = re.compile(r"\$\{(.*?)\}")  # the reference's own pattern: the shortest ${...}
LIFECYCLE = ("onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand",
             "postAttachCommand")
SECURITY_MODEL = "docs/explanation/security-model.md"


def _usage(message: str, hint: str) -> DevagentError:
    return DevagentError(message, hint=hint, status=ExitStatus.USAGE)


# -- which file ----------------------------------------------------------------------------------------------------

def choose_config(present: Sequence[str], choice: str | None = None) -> str | None:
    """The devcontainer.json to use, as a path relative to the workspace, among PRESENT (the relative paths that
    exist: CANDIDATES and ``.devcontainer/NAME/devcontainer.json``); None when there is none.

    CHOICE (``--devcontainer``) is a NAME of a folder under .devcontainer/ or one of the paths itself. Without
    one: .devcontainer/devcontainer.json, then .devcontainer.json, then the only NAME; several NAMEs and no
    choice is an error that lists them.

    >>> choose_config([".devcontainer/cpu/devcontainer.json", ".devcontainer/cuda/devcontainer.json"], "cuda")
    '.devcontainer/cuda/devcontainer.json'
    >>> choose_config([".devcontainer.json"]), choose_config([])
    ('.devcontainer.json', None)
    """
    named = {m.group(1): path for path in present if (m := _SUBFOLDER.fullmatch(path))}
    if choice is not None:
        if choice in named:
            return named[choice]
        if choice in present:
            return choice
        offered = ", ".join([*named, *(c for c in CANDIDATES if c in present)]) or "none"
        raise _usage(f"--devcontainer {choice!r}: no such devcontainer.json in the workspace (found: {offered})",
                     "name a folder under .devcontainer/ (cpu for .devcontainer/cpu/devcontainer.json) or a path")
    for candidate in CANDIDATES:
        if candidate in present:
            return candidate
    if len(named) > 1:
        raise _usage(f"the workspace has several devcontainer.json files: {', '.join(sorted(named))}",
                     f"pick one: devagent up --devcontainer {sorted(named)[0]}")
    return next(iter(named.values()), None)


# -- JSONC ---------------------------------------------------------------------------------------------------------

def strip_jsonc(text: str) -> str:
    """TEXT with its comments blanked and the commas before a closing bracket dropped, strings untouched; line
    and column numbers are kept (a comment becomes spaces, newlines stay), so json's errors point at the file.

    >>> strip_jsonc('{"a": "//x", // c\\n "b": [1,],}')
    '{"a": "//x",     \\n "b": [1 ] }'
    """
    out: list[str] = []
    i, n = 0, len(text)
    last_comma = -1  # index in OUT of a comma only blanks and comments have followed
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i, last_comma = j + 1, -1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        else:
            if c in "]}" and last_comma >= 0:
                out[last_comma] = " "
            if c == ",":
                last_comma = len(out)
            elif not c.isspace():
                last_comma = -1
            out.append(c)
            i += 1
    return "".join(out)


def parse_jsonc(text: str, *, source: str) -> dict[str, object]:
    """The object TEXT (JSON with comments and trailing commas) holds; SOURCE names the file in errors."""
    try:
        value = json.loads(strip_jsonc(text.lstrip("\ufeff")))
    except json.JSONDecodeError as e:
        raise _usage(f"{source}: line {e.lineno}, column {e.colno}: {e.msg}",
                     "fix the file: devcontainer.json is JSON with comments") from None
    if not isinstance(value, dict):
        raise _usage(f"{source}: the file holds a JSON {type(value).__name__}, not an object",
                     "a devcontainer.json is one object: { \"image\": ... }")
    return value


# -- variables -----------------------------------------------------------------------------------------------------

def substitute(value: object, *, local_workspace: str, container_workspace: str, env: Mapping[str, str]) -> object:
    """VALUE with the specification's variables replaced in every string (keys stay as they are), as the
    reference does before the container exists: ``${localWorkspaceFolder}``, ``${localWorkspaceFolderBasename}``,
    ``${containerWorkspaceFolder}``, ``${containerWorkspaceFolderBasename}``, ``${localEnv:VAR}`` (``${env:VAR}``),
    ``${localEnv:VAR:default}`` (an unset VAR without a default is empty). Others (``${containerEnv:VAR}``,
    ``${devcontainerId}``) are left for later, unchanged.

    >>> substitute(["${localEnv:HOME}", "${localEnv:NO:d}", "${containerWorkspaceFolderBasename}", "${x}"],
    ...            local_workspace="/w", container_workspace="/c/ws", env={"HOME": "/h"})
    ['/h', 'd', 'ws', '${x}']
    """
    def one(match: re.Match[str]) -> str:
        name, *args = match.group(1).split(":")
        if name in ("env", "localEnv"):
            if not args:
                return match.group(0)
            found = env.get(args[0])
            return found if found is not None else (args[1] if len(args) > 1 else "")
        folders = {"localWorkspaceFolder": local_workspace, "containerWorkspaceFolder": container_workspace}
        if name in folders:
            return folders[name]
        if name.endswith("Basename") and name[:-len("Basename")] in folders:
            return folders[name[:-len("Basename")]].rstrip("/").rsplit("/", 1)[-1]
        return match.group(0)

    if isinstance(value, str):
        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [substitute(v, local_workspace=local_workspace, container_workspace=container_workspace, env=env)
                for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, local_workspace=local_workspace, container_workspace=container_workspace,
                              env=env) for k, v in value.items()}
    return value


def read_configuration(text: str, *, source: str, local_workspace: str, container_workspace: str,
                       env: Mapping[str, str]) -> dict[str, object]:
    """The configuration TEXT describes, as ``devcontainer read-configuration`` gives it: parsed, the legacy
    top-level ``extensions`` and ``settings`` moved to ``customizations.vscode``, variables substituted.
    CONTAINER_WORKSPACE is where the workspace is inside the container (devagent's own place for it)."""
    config = parse_jsonc(text, source=source)
    legacy = {key: config.pop(key) for key in ("extensions", "settings") if key in config}
    if legacy:
        customizations = config.setdefault("customizations", {})
        if isinstance(customizations, dict):
            vscode = customizations.setdefault("vscode", {})
            if isinstance(vscode, dict):
                for key, value in legacy.items():
                    vscode.setdefault(key, value)
    substituted = substitute(config, local_workspace=local_workspace, container_workspace=container_workspace,
                             env=env)
    assert isinstance(substituted, dict)
    return substituted


# -- what devagent makes of it -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """``build`` (or the legacy top-level ``dockerFile``/``context``): paths relative to the file's folder."""

    dockerfile: str
    context: str = "."
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None


@dataclass(frozen=True)
class Command:
    """One lifecycle command: a shell line (``line``) or an argument vector; LABEL names it in an object."""

    hook: str  # onCreateCommand, postCreateCommand, ...
    label: str | None
    line: str | None = None  # a shell line (run by sh -c)
    argv: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Plan:
    """What `up` takes from a devcontainer.json. ``options`` are `up`'s options in the command line's form (the
    layer under devagent.toml: core/up_request.py); the rest has no option of its own."""

    options: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    build: Build | None = None
    gpu_optional: bool = False  # hostRequirements.gpu "optional": the GPUs the engine has, none when it has none
    container_env: tuple[tuple[str, str], ...] = ()
    remote_env: tuple[tuple[str, str | None], ...] = ()
    commands: tuple[Command, ...] = ()
    forward_ports: tuple[int, ...] = ()
    extensions: tuple[str, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)
    local_features: tuple[tuple[str, Mapping[str, object]], ...] = ()
    used: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


# Fields that say nothing devagent does differently: listed at `up` as not used, never an error.
_IGNORED = frozenset({
    "name", "$schema", "workspaceFolder", "workspaceMount", "overrideCommand", "shutdownAction", "waitFor",
    "userEnvProbe", "updateRemoteUserUID", "otherPortsAttributes", "portsAttributes", "runServices",
    "hostRequirements.storage", "customizations.codespaces", "customizations.jetbrains",
})
# Fields that would give the container more than devagent's security model lets it have: the reason, the fix.
_WEAKENING = {
    "privileged": "a privileged container can reach every device and undo every other restriction",
    "capAdd": "devagent drops every capability: an added one (NET_RAW, SYS_PTRACE, SYS_ADMIN…) is power over "
              "the machine the container must not have",
    "securityOpt": "devagent's seccomp profile and no-new-privileges stay on; unconfined would lift them",
    "mounts": "a mount puts a host folder or volume into the container beside the workspace: devagent mounts "
              "the workspace only",
    "init": "devagent starts the container's first process itself",
    "dockerComposeFile": "devagent makes one container from an image or a Dockerfile, not a Compose project",
    "initializeCommand": "it runs on your machine (or the server), outside the container, as you",
    "appPort": "devagent publishes no port on the machine's interfaces: forwardPorts gives `devagent forward`",
}
# runArgs that set one of devagent's own limits: the flag, its option name in `up`.
_LIMIT_FLAGS = {"--gpus": "gpus", "--memory": "memory", "-m": "memory", "--shm-size": "shm_size",
                "--cpus": "cpus", "--pids-limit": "pids"}


# runArgs that say what a field says: refused with that field's reason.
_RUN_ARG_FIELDS = {"--privileged": "privileged", "--cap-add": "capAdd", "--security-opt": "securityOpt",
                   "--init": "init", "-v": "mounts", "--volume": "mounts", "--mount": "mounts",
                   "-p": "appPort", "--publish": "appPort"}


def _refuse(source: str, what: str, reason: str, fix: str | None = None) -> DevagentError:
    """WHAT (a field's name, or a value named by its field) refused; without FIX, the fix is to remove the field."""
    return _usage(f"{source}: {what} is refused: {reason} ({SECURITY_MODEL})",
                  fix or f"remove {what} from the file (other tools may keep their own devcontainer.json)")


def _strings(value: object, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _usage(f"{source}: {where} is not a list of strings", f"fix {where} in the file")
    return tuple(value)


def _mapping(value: object, where: str, source: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _usage(f"{source}: {where} is not an object", f"fix {where} in the file")
    return value


def _run_args(items: tuple[str, ...], source: str) -> dict[str, str]:
    """The limits runArgs sets, in `up`'s option form; any other item is refused by name."""
    options: dict[str, str] = {}
    i = 0
    while i < len(items):
        flag, _, inline = items[i].partition("=")
        if flag not in _LIMIT_FLAGS:
            reason = _WEAKENING.get(_RUN_ARG_FIELDS.get(flag, ""),
                                    "devagent sets the container's options itself; only --gpus, --memory, "
                                    "--shm-size, --cpus and --pids-limit have a devagent meaning")
            fix = ("move the variable to containerEnv" if flag in ("-e", "--env")
                   else f"remove {items[i]!r} from runArgs")
            raise _refuse(source, f"runArgs {items[i]!r}", reason, fix)
        if not inline and "=" not in items[i]:
            if i + 1 >= len(items):
                raise _usage(f"{source}: runArgs {flag!r} has no value", f"give {flag} a value in runArgs")
            i += 1
            inline = items[i]
        options[_LIMIT_FLAGS[flag]] = inline
        i += 1
    return options


def _gpu(value: object, source: str) -> tuple[str | None, bool]:
    """hostRequirements.gpu: the --gpus value and whether GPUs are optional."""
    if value is True or isinstance(value, dict):
        return "any:1", False  # at least one GPU; a count of cores or an amount of memory has no meaning here
    if value is False or value is None:
        return None, False
    if value == "optional":
        return None, True
    raise _usage(f"{source}: hostRequirements.gpu {value!r} is not true, false, \"optional\" or an object",
                 "fix hostRequirements.gpu in the file")


def _size(value: object, where: str, source: str) -> str:
    """A specification size ("8gb", "512mb") in `up`'s form ("8g")."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", text)
    if not match:
        raise _usage(f"{source}: {where} {value!r} is not a size", f"write {where} as \"8gb\"")
    number, unit = match.groups()
    return f"{float(number) * 1024:g}g" if unit == "t" else f"{number}{unit}"


def _commands(hook: str, value: object, source: str) -> tuple[Command, ...]:
    """A lifecycle command in its three forms: a string (a shell line), a list (an argument vector), an object
    of named commands (each a string or a list; the specification runs them in parallel, devagent in order)."""
    if isinstance(value, str):
        return (Command(hook, None, line=value),) if value.strip() else ()
    if isinstance(value, list):
        return (Command(hook, None, argv=_strings(value, hook, source)),) if value else ()
    if isinstance(value, dict):
        return tuple(Command(hook, label, line=c.line, argv=c.argv) for label, item in value.items()
                     for c in _commands(hook, item, source))
    raise _usage(f"{source}: {hook} is not a string, a list or an object", f"fix {hook} in the file")


def _features(value: object, source: str) -> tuple[tuple[str, Mapping[str, object]], ...]:
    """The Features given as a local folder; one from a registry is refused with how to vendor it."""
    local = []
    for ref, options in _mapping(value, "features", source).items():
        if not (ref.startswith("./") or ref.startswith("../")):
            raise _refuse(source, f"feature {ref!r}",
                          "devagent fetches no Feature from a registry (a server without internet is the "
                          "normal case, and a Feature's install script runs as root at build)",
                          "vendor it: copy the Feature's folder (devcontainer-feature.json, install.sh) into "
                          ".devcontainer/ and name it \"./FOLDER\" in features, or install the tool in the "
                          "Dockerfile")
        local.append((ref, options if isinstance(options, dict) else {"version": options}))
    return tuple(local)


def _user(config: Mapping[str, object], source: str) -> str | None:
    """remoteUser (else containerUser) as the login user; root is refused."""
    names = {key: config[key] for key in ("remoteUser", "containerUser") if key in config}
    for key, name in names.items():
        if name in {"root", "0"}:
            raise _refuse(source, f"{key} \"root\"", "the login user is never root in a devagent environment",
                          f"remove {key} (devagent's login user is dev) or name an ordinary user")
        if not isinstance(name, str):
            raise _usage(f"{source}: {key} is not a string", f"fix {key} in the file")
    user = names.get("remoteUser", names.get("containerUser"))
    return s.validate_user(str(user)) if user is not None else None


def _image_build(config: Mapping[str, object], source: str) -> dict[str, object]:
    """``image``, or ``build`` (or the legacy top-level ``dockerFile``/``context``)."""
    plan: dict[str, object] = {}
    if "image" in config:
        plan["image"] = str(config["image"])
    # The specification's keys only, as the reference CLI reads them: a top-level lowercase "dockerfile" is no
    # key of it (the reference builds nothing from it), so it is listed as ignored like any other unknown field.
    if config.get("build") is None and "dockerFile" not in config:
        return plan
    spec = _mapping(config.get("build") or {}, "build", source)
    dockerfile = spec.get("dockerfile") or config.get("dockerFile")
    if not isinstance(dockerfile, str):
        raise _usage(f"{source}: build has no dockerfile",
                     "name the Dockerfile: \"build\": {\"dockerfile\": \"Dockerfile\"}")
    if "image" in plan:
        raise _usage(f"{source}: both image and build are set", "keep one of them")
    args = _mapping(spec.get("args", {}), "build.args", source)
    target = spec.get("target")
    plan["build"] = Build(dockerfile=dockerfile, context=str(spec.get("context") or config.get("context") or "."),
                          args=tuple((k, str(v)) for k, v in args.items()), target=str(target) if target else None)
    return plan


def _limits(config: Mapping[str, object], source: str) -> tuple[dict[str, str], bool]:
    """runArgs' limits and hostRequirements as `up`'s options (runArgs first: it is the more precise), and
    whether GPUs are optional."""
    options = _run_args(_strings(config["runArgs"], "runArgs", source), source) if "runArgs" in config else {}
    requirements = _mapping(config.get("hostRequirements", {}), "hostRequirements", source)
    gpus, optional = _gpu(requirements.get("gpu"), source)
    if gpus is not None:
        options.setdefault("gpus", gpus)
    if "cpus" in requirements:
        options.setdefault("cpus", str(requirements["cpus"]))
    if "memory" in requirements:
        options.setdefault("memory", _size(requirements["memory"], "hostRequirements.memory", source))
    return options, optional


def _editor(config: Mapping[str, object], source: str) -> tuple[dict[str, object], list[str]]:
    """customizations.vscode's extensions and settings, and the other tools' customizations (ignored)."""
    customizations = _mapping(config.get("customizations", {}), "customizations", source)
    vscode = _mapping(customizations.get("vscode", {}), "customizations.vscode", source)
    plan: dict[str, object] = {}
    if "extensions" in vscode:
        plan["extensions"] = _strings(vscode["extensions"], "customizations.vscode.extensions", source)
    if "settings" in vscode:
        plan["settings"] = _mapping(vscode["settings"], "customizations.vscode.settings", source)
    return plan, [f"customizations.{tool}" for tool in customizations if tool != "vscode"]


def _ports(value: object, source: str) -> tuple[tuple[int, ...], list[str]]:
    """forwardPorts' port numbers; a "service:port" item (Compose) means nothing here."""
    if not isinstance(value, list):
        raise _usage(f"{source}: forwardPorts is not a list", "fix forwardPorts in the file")
    ports: list[int] = []
    others: list[str] = []
    # Sorted by type, not by equality: true == 1 and 1.0 == 1, which "not in ports" dropped beside a 1.
    for p in value:
        if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536:
            ports.append(p)
        else:
            others.append(f"forwardPorts {p!r}")
    return tuple(ports), others


_USED = ("image", "build", "dockerFile", "context", "containerEnv", "remoteEnv", "remoteUser", "containerUser",
         "runArgs", "hostRequirements", *LIFECYCLE, "forwardPorts", "customizations.vscode.extensions",
         "customizations.vscode.settings", "features")


def map_config(config: Mapping[str, object], *, source: str) -> Plan:
    """What devagent makes of CONFIG (``read_configuration``'s result); SOURCE names the file in messages.

    A field that would weaken the container is refused by name (DevagentError, USAGE), a field with no devagent
    meaning is listed in ``ignored``, every other one in ``used``."""
    for key, reason in _WEAKENING.items():
        if config.get(key) not in (None, False, [], {}, ""):
            raise _refuse(source, key, reason)
    plan = _image_build(config, source)
    for key, name in (("containerEnv", "container_env"), ("remoteEnv", "remote_env")):
        if key in config:
            values = _mapping(config[key], key, source)
            # Only remoteEnv gives null a meaning (unset); the schema wants a string in containerEnv, and str()
            # would set the word "None" (the reference CLI sets "null": JavaScript's text for it, not a meaning).
            unset = next((k for k, v in values.items() if v is None and key == "containerEnv"), None)
            if unset is not None:
                raise _usage(f"{source}: containerEnv: the value of {unset} is null, not a string",
                             f"give {unset} a string value in containerEnv (\"\" for empty) or remove it; "
                             "remoteEnv's null unsets a variable in the ssh sessions")
            pairs = tuple((k, None if v is None else str(v)) for k, v in values.items())
            plan[name] = pairs
            for k, v in pairs:
                problem = check_env(key, k, v)
                if problem is not None:
                    raise _usage(f"{source}: {problem}", f"fix {key} in the file")
    options, plan["gpu_optional"] = _limits(config, source)
    user = _user(config, source)
    if user is not None:
        options["user"] = user
    plan["commands"] = tuple(c for hook in LIFECYCLE if hook in config for c in _commands(hook, config[hook], source))
    ignored = [key for key in config if key in _IGNORED]
    if "forwardPorts" in config:
        plan["forward_ports"], not_ports = _ports(config["forwardPorts"], source)
        ignored.extend(not_ports)
    editor, other_tools = _editor(config, source)
    plan.update(editor)
    ignored.extend(other_tools)
    if "features" in config:
        plan["local_features"] = _features(config["features"], source)
    requirements = config.get("hostRequirements")  # an object or absent: _limits refused anything else
    if isinstance(requirements, dict) and "storage" in requirements:
        ignored.append("hostRequirements.storage")
    # _editor checked customizations.vscode; EDITOR holds its extensions and settings when the file has them.
    present = {*config, *(f"customizations.vscode.{k}" for k in editor)}
    used = tuple(key for key in _USED if key in present)
    known = {*_IGNORED, *_WEAKENING, *_USED, "customizations"}
    ignored.extend(key for key in config if key not in known)
    return Plan(options=options, used=used, ignored=tuple(sorted(set(ignored))), **plan)  # type: ignore[arg-type]


# -- lifecycle commands --------------------------------------------------------------------------------------------

# When each runs: the first three once, when `up` creates (or replaces) the container, postStartCommand then too
# (devagent starts a container as it creates it), postAttachCommand on every `up`.
ON_CREATE = ("onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand")
LIFECYCLE_LOGS = ".devagent/lifecycle"  # in the workspace: one log per hook, appended to


def lifecycle_argv(command: Command, workspace: str) -> list[str]:
    """The in-container command (`devagent lifecycle`) that runs COMMAND in WORKSPACE as the login user, logs its
    output and writes its notebook entry.

    >>> lifecycle_argv(Command("postCreateCommand", "build", line="make"), "/ws")[3:]
    ['/ws', '--hook', 'postCreateCommand', '--label', 'build', '--', 'sh', '-c', 'make']
    """
    argv = ["devagent", "lifecycle", "--workspace", workspace, "--hook", command.hook]
    if command.label is not None:
        argv += ["--label", command.label]
    return [*argv, "--", *(["sh", "-c", command.line] if command.line is not None else command.argv or ())]


def render_lifecycle_entry(hook: str, label: str | None, argv: Sequence[str], code: int, log: str,
                           tail: str, when: datetime) -> str:
    """The notebook entry of one lifecycle command: what ran, how it ended, where its output is.

    >>> print(render_lifecycle_entry("postCreateCommand", None, ["sh", "-c", "make"], 0,
    ...                              ".devagent/lifecycle/postCreateCommand.log", "ok\\n",
    ...                              datetime(2026, 12, 7, 17, 0)), end="")
    <BLANKLINE>
    ## 2026-12-07 17:00 · devcontainer · postCreateCommand · ✅ exit 0
    `sh -c make` · output: `.devagent/lifecycle/postCreateCommand.log`
    """
    shown = shlex.join(argv)
    body = f"{code_span(shown)} · output: {code_span(log)}"
    if code != 0 and tail.strip():
        body += "\n\n" + fence(split_lines(tail)[-20:])
    mark = "✅ exit 0" if code == 0 else f"❌ exit {code}"
    return entry(heading(when, "devcontainer", escape_heading(hook if label is None else f"{hook} {label}"), mark),
                 body)


# -- the base image a build makes ----------------------------------------------------------------------------------

BASE_REPOSITORY = "devagent/devcontainer-base"


def build_paths(config_path: str, build: Build) -> tuple[str, str]:
    """(context, Dockerfile), both relative to the workspace, of BUILD in the devcontainer.json at CONFIG_PATH
    (relative to the workspace): the specification takes both relative to the file's folder. A path that leaves
    the workspace is refused: a cloned repository does not choose what on this machine is sent to an engine.

    >>> build_paths(".devcontainer/cpu/devcontainer.json", Build("../Dockerfile", "../.."))
    ('.', '.devcontainer/Dockerfile')
    """
    folder = posixpath.dirname(config_path)
    paths = []
    for what, value in (("build.context", build.context), ("build.dockerfile", build.dockerfile)):
        joined = posixpath.normpath(posixpath.join(folder, value))
        if value.startswith("/") or joined == ".." or joined.startswith("../"):
            raise _usage(f"{config_path}: {what} {value!r} is outside the workspace",
                         f"keep {what} inside the repository")
        paths.append(joined)
    if paths[1] == ".":
        raise _usage(f"{config_path}: build.dockerfile {build.dockerfile!r} is not a file", "name the Dockerfile")
    return paths[0], paths[1]


def base_tag(config_sha256: str, dockerfile: bytes, build: Build) -> str:
    """The tag of the base image BUILD makes: a hash of the devcontainer.json, the Dockerfile, the args and the
    target, so an unchanged file and Dockerfile reuse it (the rest of the context is not hashed: a change there
    is picked up by `up --recreate` after `docker image rm`).

    >>> base_tag("ab", b"FROM x", Build("Dockerfile")).startswith(BASE_REPOSITORY + ":")
    True
    """
    digest = hashlib.sha256()
    for part in (config_sha256.encode(), dockerfile, json.dumps([build.context, build.args, build.target]).encode()):
        digest.update(hashlib.sha256(part).digest())
    return f"{BASE_REPOSITORY}:{digest.hexdigest()[:16]}"


def optional_gpus(free: int) -> str:
    """``hostRequirements.gpu: "optional"`` as `up`'s --gpus, given how many of the engine's GPUs are FREE (no
    environment, container or process holds them, from the ledger): one when there is one, none otherwise.

    >>> optional_gpus(3), optional_gpus(0)
    ('any:1', 'none')
    """
    return "any:1" if free > 0 else "none"
