"""What `devagent up` is asked for: the workspace's devagent.toml and the options typed, merged into one EnvSpec.

Pure: the file's text, the options given, the uid, the client's sshd profile and the command line come in as
arguments; nothing here reads a file, the environment or ``sys.argv``. The order of precedence is the one a user
expects: an option typed on the command line, then the file's setting, then devagent's default. Every rejection is
a DevagentError(status=USAGE); a bad value in the file names the file and the line.

>>> request = up_request(name=None, given={"memory": "64g"}, config_text='name = "exp"\\nmemory = "32g"\\n',
...                      config_path="/w/devagent.toml", workspace="/w", uid=1000, client_profile="strict",
...                      argv=["up", "--memory", "64g"])
>>> request.spec.name, request.spec.limits.memory == 64 * 1024**3, request.launch_command
('exp', True, 'devagent up --memory 64g  # with devagent.toml')
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from devagent.core import spec as s
from devagent.core.config import CONFIG_FILE, UpConfig, merge, parse_config
from devagent.core.devcontainer.config_file import LIFECYCLE, Build, Command, Plan
from devagent.core.dockerfile import parse_image_ref
from devagent.core.globs import check_globs
from devagent.core.gpu.idle_rule import MIN_IDLE_RELEASE, parse_duration
from devagent.core.slurm.request import SlurmRequest, slurm_cpus, slurm_memory, slurm_request
from devagent.core.ssh.destination import parse_server
from devagent.errors import DevagentError, ExitStatus

_LIMITS = s.Limits()
SERVER_WORKSPACES = "devagent"  # a workspace on a server not named otherwise is ~/devagent/NAME there

# The value of each option that neither the command line nor the file sets, in the command line's form. The CLI's
# option defaults show the same values in --help (tests/core/test_up_request.py holds the two together).
DEFAULTS: Mapping[str, str] = {
    "user": "dev",
    "gpus": "none",
    "memory": s.format_size(_LIMITS.memory),
    "shm_size": s.format_size(_LIMITS.shm_size),
    "pids": str(_LIMITS.pids),
}


@dataclass(frozen=True)
class UpRequest:
    """The environment `up` makes, the launch line its notebook records, and whether to place the VS Code files."""

    spec: s.EnvSpec
    launch_command: str
    vscode: bool
    host: str | None = None  # the server (as the user named it); None: this machine's engine
    host_from_file: bool = False  # only devagent.toml names the server: the user must agree to it (cli/site_options.py)
    devcontainer: tuple[str, ...] = ()  # what `up` says of the devcontainer.json: what was used, what was not
    commands: tuple[Command, ...] = ()  # its lifecycle commands, run in the environment as the login user
    extensions: tuple[str, ...] = ()  # its customizations.vscode: into the workspace's .vscode/
    settings: Mapping[str, object] = field(default_factory=dict)
    build: Build | None = None  # its Dockerfile build: the base image, built on the environment's engine
    devcontainer_file: DevcontainerLayer | None = None
    gpu_optional: bool = False  # hostRequirements.gpu "optional" and nothing else set --gpus: one if one is free
    keep_going: bool = False  # --keep-going: a failing lifecycle command is reported, up goes on
    slurm: SlurmUp | None = None  # --slurm (or devagent.toml's [slurm]): the environment lives in a Slurm job


@dataclass(frozen=True)
class SlurmUp:
    """The Slurm job `up` asks the cluster (the host, its login node) for, and how long it waits for it."""

    request: SlurmRequest
    wait_timeout_s: float | None = None  # None: wait until the job starts (Ctrl-C cancels it)
    wait: bool = True  # --no-wait: submit and return; a later `up` picks the job up


@dataclass(frozen=True)
class DevcontainerLayer:
    """The workspace's devcontainer.json as `up` lays it under devagent.toml: its path (relative to the
    workspace), the SHA-256 of its content, and what it maps to (core/devcontainer/config_file.py)."""

    path: str
    sha256: str
    plan: Plan
    workspace: str = ""  # the local folder the file is in (the build's context is read from it)


# The base image while a devcontainer.json's build is still to be made (the CLI builds it, then puts its tag here).
BUILD_PLACEHOLDER = "devagent/devcontainer-base:to-build"
GPU_OPTIONAL_LINE = '  hostRequirements.gpu "optional": '
SLURM_GPU_OPTIONAL = GPU_OPTIONAL_LINE + "not used (in a Slurm job the job's GPUs are the environment's: --gpus N)"

# What a devcontainer.json may say that devagent reads but does not apply yet: named at `up`, never dropped silently.
NOT_APPLIED_YET: tuple[str, ...] = ()


def up_request(*, name: str | None, given: Mapping[str, object], config_text: str | None, config_path: str,
               workspace: str, uid: int, client_profile: str, argv: Sequence[str],
               env_host: str | None = None, server_workspace: str | None = None, local: bool = False,
               idle_minimum: float = MIN_IDLE_RELEASE,
               devcontainer: DevcontainerLayer | None = None) -> UpRequest:
    """Merge the options GIVEN on the command line (keyed by UpConfig's field names; only those the user typed)
    over CONFIG_TEXT (the text of the workspace's devagent.toml, ``None`` when there is none; CONFIG_PATH names it
    in messages) and the defaults.

    WORKSPACE is the absolute host folder; UID the caller's uid (root's 0 becomes 1000: the login user is never
    root); CLIENT_PROFILE the sshd profile the local OpenSSH client can speak, used when neither sets one; ARGV
    the arguments devagent was started with, after the program name, for the notebook's launch line.

    The server: ``given["host"]`` (--host), else ENV_HOST (DEVAGENT_HOST), else the file's ``host``; none of them,
    or LOCAL (--local) whatever they say: this machine's engine. With a server, the workspace is SERVER_WORKSPACE
    (--workspace as typed: a folder on the server, absolute or relative to the server user's home) or
    ``~/devagent/NAME``, resolved on the server later. IDLE_MINIMUM: the shortest idle limit taken.

    DEVCONTAINER, the workspace's devcontainer.json, lies under the file: flags > devagent.toml >
    devcontainer.json > defaults; ``devcontainer`` in the result says what of it was used and what was not.
    """
    config = parse_config(config_text, source=config_path) if config_text is not None else UpConfig()
    merged = merge(config, {**given, "name": name})
    said = _lay_devcontainer(devcontainer, merged, given) if devcontainer is not None else ()

    def pick(key: str) -> object:
        value = merged.get(key)
        return value if value is not None else DEFAULTS.get(key)

    if merged["name"] is None:
        raise DevagentError("no environment name", status=ExitStatus.USAGE,
                            hint=f"give one (devagent up NAME) or set name = \"...\" in {config_path}")
    # A team image and a base image exclude each other; one typed on the command line beats the file's other one.
    typed_image, typed_base = given.get("image") is not None, given.get("base_image") is not None
    if typed_image != typed_base:
        merged["base_image" if typed_image else "image"] = None
    image = merged.get("image")
    if image is not None and merged.get("base_image") is not None:
        where = "on the command line" if typed_image else f"in {config_path}"
        raise DevagentError(f"both an image and a base image are set {where}: a team image is started as it is, "
                            "not derived from a base", status=ExitStatus.USAGE,
                            hint="keep one: --image (image =) for a pushed devagent image, --base-image "
                            "(base_image =) to build from a base")
    host = None if local else _host(given.get("host"), env_host, config.host)
    typed_host = any(isinstance(v, str) and v for v in (given.get("host"), env_host))
    if host is not None:
        workspace = _server_workspace(server_workspace, str(merged["name"]))
    slurm = _slurm(given, config, host=host, config_path=config_path)
    if slurm is not None:
        merged["gpus"] = None  # a count for Slurm, not GPUs of an engine: the job's own GPUs, once it runs
        # Nor does a devcontainer.json's optional GPU take one of the node's engine beside the job's.
        said = tuple(SLURM_GPU_OPTIONAL if line.startswith(GPU_OPTIONAL_LINE) else line for line in said)
    cpus = pick("cpus")
    notebook = pick("notebook")
    watch = pick("watch")
    env = s.EnvSpec(
        name=s.validate_new_name(str(merged["name"])),
        base_image=str(pick("base_image") or s.DEFAULT_BASE_IMAGE),
        workspace=workspace,
        user=s.validate_user(str(pick("user"))),
        uid=uid or 1000,
        gpus=s.parse_gpus(str(pick("gpus"))),
        limits=s.Limits(memory=s.parse_size(str(pick("memory")), option="--memory", minimum=s.MIN_MEMORY),
                        cpus=s.parse_cpus(str(cpus)) if cpus else None,
                        shm_size=s.parse_size(str(pick("shm_size")), option="--shm-size",
                                              minimum=s.MIN_SHM_SIZE),
                        pids=s.parse_pids(str(pick("pids")))),
        sshd_profile=str(pick("sshd_profile") or client_profile),
        share_gpus=bool(merged.get("share_gpus")),
        agent=s.AgentOptions(notebook=s.validate_notebook_path(str(notebook)) if notebook is not None else None,
                             watch=_watch(watch, typed=bool(given.get("watch"))),
                             polling=bool(pick("poll_saves"))),
        image=str(parse_image_ref(str(image))) if image is not None else None,
        idle_release=_idle_release(merged.get("idle_release"), typed=given.get("idle_release") is not None,
                                   config_path=config_path, minimum=idle_minimum),
        container_env=devcontainer.plan.container_env if devcontainer is not None else (),
        remote_env=devcontainer.plan.remote_env if devcontainer is not None else (),
        forward_ports=devcontainer.plan.forward_ports if devcontainer is not None else (),
    )
    if slurm is not None:
        # The job holds what the container may use: its memory limit (typed, the file's or the default) as --mem,
        # its CPU limit, when one is set, as --cpus-per-task (none: the partition's default). The container keeps
        # its own limits as on any engine: Slurm's cgroup does not reach a container the node's engine starts.
        cpus_limit = env.limits.cpus
        slurm = replace(slurm, request=replace(
            slurm.request, memory=slurm_memory(env.limits.memory),
            cpus=slurm_cpus(cpus_limit) if cpus_limit is not None else None))
    launched = launch_command(env.name, argv, with_config=config_text is not None)
    if devcontainer is not None:  # the notebook's header records the file the environment came from
        launched += f"  # with {devcontainer.path} (sha256 {devcontainer.sha256[:16]})"
    return UpRequest(spec=env, launch_command=launched, vscode=bool(pick("vscode")), host=host,
                     host_from_file=host is not None and not typed_host, devcontainer=said,
                     commands=devcontainer.plan.commands if devcontainer is not None else (),
                     extensions=devcontainer.plan.extensions if devcontainer is not None else (),
                     settings=devcontainer.plan.settings if devcontainer is not None else {},
                     build=devcontainer.plan.build if env.base_image == BUILD_PLACEHOLDER and devcontainer else None,
                     devcontainer_file=devcontainer,
                     gpu_optional=devcontainer is not None and devcontainer.plan.gpu_optional
                     and merged.get("gpus") is None and slurm is None,
                     keep_going=bool(given.get("keep_going")), slurm=slurm)


def _slurm(given: Mapping[str, object], config: UpConfig, *, host: str | None, config_path: str) -> SlurmUp | None:
    """The Slurm job asked for: --slurm PARTITION and its options over devagent.toml's [slurm] table; None when
    neither names a partition. Every value is checked here, before anything runs."""
    file = config.slurm
    typed = given.get("slurm")
    partition = typed if isinstance(typed, str) and typed else file.partition if file is not None else None
    slurm_options = ("time", "account", "qos", "constraint", "wait_timeout", "no_wait")
    if partition is None:
        stray = [key for key in slurm_options if given.get(key)]
        if stray:
            option = "--" + stray[0].replace("_", "-")
            raise DevagentError(f"{option} is an option of a Slurm job: it needs --slurm PARTITION",
                                status=ExitStatus.USAGE, hint=f"add --slurm PARTITION (and --host LOGIN), or drop "
                                f"{option}")
        return None
    if host is None:
        raise DevagentError(f"--slurm {partition} needs the cluster's login node", status=ExitStatus.USAGE,
                            hint="name it with --host LOGIN (as you reach it with ssh), DEVAGENT_HOST, or "
                            f"host = \"...\" in {config_path}")

    def value(key: str) -> object:
        typed_value = given.get(key)
        if typed_value is not None and typed_value is not False:
            return typed_value
        return getattr(file, key, None) if file is not None else None

    gpus: object = 0
    if given.get("gpus") is not None:
        text = str(given["gpus"]).strip()
        if text != "none" and not (text.isascii() and text.isdigit()):
            raise DevagentError(f"--gpus {text} with --slurm: Slurm picks which GPUs, so give how many",
                                status=ExitStatus.USAGE, hint="e.g. --gpus 2 (0 or none: a job without GPUs)")
        gpus = 0 if text == "none" else text
    elif file is not None and file.gpus is not None:
        gpus = file.gpus
    time = value("time")
    if time is None:
        raise DevagentError(f"--slurm {partition} needs the job's time limit: the environment lives as long as "
                            "the job", status=ExitStatus.USAGE,
                            hint=f"e.g. --time 8:00:00 (or time = \"8:00:00\" in {config_path}'s [slurm] table)")
    request = slurm_request(partition=str(partition), gpus=gpus if isinstance(gpus, int) else str(gpus),
                            time=str(time), account=_opt(value("account")), qos=_opt(value("qos")),
                            constraint=_opt(value("constraint")))
    timeout = value("wait_timeout")
    wait_timeout_s = parse_duration(str(timeout), option="--wait-timeout", minimum=1.0) if timeout else None
    return SlurmUp(request=request, wait_timeout_s=wait_timeout_s, wait=not given.get("no_wait"))


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _lay_devcontainer(layer: DevcontainerLayer, merged: dict[str, object],
                      given: Mapping[str, object]) -> tuple[str, ...]:
    """Fill what neither the command line nor devagent.toml set in MERGED from LAYER's plan; the lines that say
    what of the file was used, what was set elsewhere, what is not applied yet and what has no meaning here.

    >>> from devagent.core.devcontainer.config_file import LIFECYCLE, Build, Command, Plan
    >>> merged = {"memory": "64g", "gpus": None, "image": None, "base_image": None}
    >>> layer = DevcontainerLayer(".devcontainer/devcontainer.json", "ab" * 32,
    ...                           Plan(options={"memory": "9g", "gpus": "all"}, image="img", used=("image",)))
    >>> for line in _lay_devcontainer(layer, merged, {"memory": "64g"}): print(line)
    devcontainer .devcontainer/devcontainer.json (sha256 abababababababab): used gpus all, base image img
      not used: memory 9g (--memory is typed)
    >>> merged["gpus"], merged["base_image"]
    ('all', 'img')
    """
    plan = layer.plan
    offered = dict(plan.options)
    if plan.image is not None and merged.get("image") is None:
        offered["base_image"] = plan.image
    if plan.build is not None and merged.get("image") is None:
        offered["base_image"] = BUILD_PLACEHOLDER
    taken, elsewhere = [], []
    for key, value in offered.items():
        shown = f"{key.replace('_', ' ')} {value}" if value != BUILD_PLACEHOLDER else "build (the base image)"
        if merged.get(key) is None:
            merged[key] = value
            taken.append(shown)
        else:
            by = f"--{key.replace('_', '-')} is typed" if given.get(key) is not None else f"{CONFIG_FILE} sets it"
            elsewhere.append(f"{shown} ({by})")
    fields = [f for f in plan.used if f not in NOT_APPLIED_YET and f not in LIFECYCLE
              and f not in ("image", "build", "dockerFile", "context", "runArgs", "hostRequirements", "remoteUser",
                            "containerUser")
              and not f.startswith("customizations.vscode.")]
    lines = [f"devcontainer {layer.path} (sha256 {layer.sha256[:16]}): used " + (", ".join([*fields, *taken])
                                                                                  or "nothing")]
    if elsewhere:
        lines.append("  not used: " + ", ".join(elsewhere))
    later = [f for f in plan.used if f in NOT_APPLIED_YET]
    if later:
        lines.append("  read, not applied yet: " + ", ".join(later))
    hooks = [f for f in plan.used if f in LIFECYCLE]
    if hooks:
        lines.append("  run in the environment as the login user: " + ", ".join(hooks))
    if plan.forward_ports:
        lines.append("  forwardPorts " + ", ".join(map(str, plan.forward_ports))
                     + ": `devagent forward NAME` with no port forwards them")
    editor = [f.rsplit(".", 1)[-1] for f in plan.used if f.startswith("customizations.vscode.")]
    if editor:
        lines.append("  VS Code " + " and ".join(editor) + ": into the workspace's .vscode/")
    if plan.gpu_optional:
        lines.append(GPU_OPTIONAL_LINE
                     + ("one GPU if the engine has a free one, else none" if merged.get("gpus") is None
                        else "not used (--gpus or devagent.toml sets the GPUs)"))
    if plan.ignored:
        lines.append("  ignored (no devagent meaning): " + ", ".join(plan.ignored))
    return tuple(lines)


def _idle_release(value: object, *, typed: bool, config_path: str, minimum: float) -> float | None:
    if value is None:
        return None
    return parse_duration(str(value), option="--idle-release" if typed else f"idle_release in {config_path}",
                          minimum=minimum)


def _host(typed: object, env_host: str | None, in_file: str | None) -> str | None:
    """--host, else DEVAGENT_HOST, else the file's host: the person's choice for this shell wins over the team's
    file, as the command line does. An empty value counts as unset."""
    for value in (typed, env_host):
        if isinstance(value, str) and value:
            return parse_server(value).text
    return in_file or None


def _server_workspace(typed: str | None, name: str) -> str:
    """The workspace on the server as typed (checked for what no path may hold), or ~/devagent/NAME."""
    if typed is None:
        return f"~/{SERVER_WORKSPACES}/{s.validate_new_name(name)}"
    if not typed.strip() or any(ord(c) < 32 or ord(c) == 127 for c in typed):
        raise DevagentError(f"workspace {typed!r} is not a usable path on the server", status=ExitStatus.USAGE,
                            hint="pass --workspace a folder on the server: absolute, or relative to your home there")
    return typed


def _watch(globs: object, *, typed: bool) -> tuple[str, ...]:
    """The watch globs; those typed as --watch are checked here (devagent.toml's were checked as it was read)."""
    checked = tuple(str(glob) for glob in globs) if isinstance(globs, (tuple, list)) else ()
    return check_globs(checked) if typed else checked


def launch_command(name: str, argv: Sequence[str], *, with_config: bool) -> str:
    """The notebook's "launched" line: the `up` command as typed, or one that makes the same environment.

    >>> launch_command("exp", ["up", "exp", "--memory", "32 g"], with_config=False)
    "devagent up exp --memory '32 g'"
    >>> launch_command("exp", [], with_config=True)
    'devagent up exp  # with devagent.toml'
    """
    text = shlex.join(["devagent", *argv]) if list(argv[:1]) == ["up"] else f"devagent up {name}"
    return f"{text}  # with {CONFIG_FILE}" if with_config else text
