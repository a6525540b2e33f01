"""Where everything of an environment lives: one spelling of each path, for the host side, the agent, run
summaries, the lab helper and the doctor's shell probe.

Four places hold devagent's files:

- **the workspace**, your folder, mounted at ``HOME/workspace`` in the container (``down`` keeps it; every
  container that mounts it shares it): the lab notebook, its assets folder beside it, and the workspace state
  folder ``.devagent/`` — the save journal and snapshots the agent keeps, the runs journal and each run's files;
- **the agent's home**, ``HOME/.cache/devagent`` in the container (in the home volume: it survives restarts and
  ``--recreate``; the container's command takes the ready flag away at every start, core/mounts/home.py):
  what the running agent tells commands started over ssh — which notebook it writes (``agent.json``), that
  ``up`` has committed (``ready``), the last GPU check (``gpu-check.json``);
- **/etc/devagent**, what the image build and ``up`` put into the container: the sshd configurations, the host
  key, the public keys of those who may log in (yours and your invited teammates') with who is who, and the
  launch context;
- **/opt/devagent**, devagent itself in the image: its virtual environment and the lab helper's copy.

A path inside the workspace or a home is spelled here once, as relative POSIX text (the doctor's shell probe,
``up``'s ready command and the standard-library-only lab helper use the text as it is); the functions join it to
the folder they are given. Pure: no I/O, no environment read, and no import, so ``devagent.lab`` can use it in
any interpreter at no cost.

>>> from pathlib import Path
>>> runs_journal(Path("/home/dev/workspace"))
PosixPath('/home/dev/workspace/.devagent/runs.jsonl')
>>> ready_flag(Path("/home/dev"))
PosixPath('/home/dev/.cache/devagent/ready')
>>> assets_dir(default_notebook(Path("/home/dev/workspace"))).name == ASSETS
True
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported: devagent.lab imports this module in the user's interpreter
if TYPE_CHECKING:
    from pathlib import Path

# -- the workspace ------------------------------------------------------------------------------------------------

NOTEBOOK_STEM = "lab-notebook"
NOTEBOOK = f"{NOTEBOOK_STEM}.md"  # the lab notebook's default name, at the workspace's root
ASSETS_SUFFIX = ".assets"  # a notebook's figures and patches go beside it: NAME.md → NAME.assets/
ASSETS = f"{NOTEBOOK_STEM}{ASSETS_SUFFIX}"  # the default notebook's assets folder

WORKSPACE_STATE = ".devagent"  # the workspace state folder (not the agent's home: that is in the container)
STATE_GITIGNORE = f"{WORKSPACE_STATE}/.gitignore"  # "*": none of the state folder belongs in the user's repository
SAVES = f"{WORKSPACE_STATE}/saves.jsonl"  # the save journal: one SaveRecord per line
SNAPSHOTS = f"{WORKSPACE_STATE}/snapshots"  # the last content seen of each watched file, by hash of its path
RUNS_JOURNAL = f"{WORKSPACE_STATE}/runs.jsonl"  # run numbers reserved, then each run's RunRecord
RUNS = f"{WORKSPACE_STATE}/runs"  # RUNS/N/: run N's own files
OBSERVED_LAB = f"{WORKSPACE_STATE}/lab"  # the lab helper's lines of runs nobody wrapped: <pid>.jsonl
RUN_LAB_FILE = "lab.jsonl"  # in RUNS/N/: the lab helper's lines (DEVAGENT_LAB_FILE of a wrapped run)
KEPT_SECTION = "section.md"  # in RUNS/N/: the run's section, when the notebook could not be written

# What devagent puts into a workspace of its own accord (an `up` that created the workspace may remove it again
# when nothing else is in it).
WORKSPACE_FILES = frozenset({NOTEBOOK, ASSETS, WORKSPACE_STATE})


def default_notebook(workspace: Path) -> Path:
    return workspace / NOTEBOOK


def assets_dir(notebook: Path) -> Path:
    """The folder beside NOTEBOOK for its figures and patches: ``lab-notebook.md`` → ``lab-notebook.assets/``."""
    return notebook.with_name(notebook.stem + ASSETS_SUFFIX)


def workspace_state(workspace: Path) -> Path:
    return workspace / WORKSPACE_STATE


def state_gitignore(workspace: Path) -> Path:
    return workspace / STATE_GITIGNORE


def saves_journal(workspace: Path) -> Path:
    return workspace / SAVES


def snapshots_dir(workspace: Path) -> Path:
    return workspace / SNAPSHOTS


def runs_journal(workspace: Path) -> Path:
    return workspace / RUNS_JOURNAL


def run_dir(workspace: Path, number: int) -> Path:
    return workspace / RUNS / str(number)


def run_lab_file(workspace: Path, number: int) -> Path:
    return run_dir(workspace, number) / RUN_LAB_FILE


def kept_section(workspace: Path, number: int) -> Path:
    return run_dir(workspace, number) / KEPT_SECTION


def observed_lab_path(pid: int) -> str:
    """Where, relative to the workspace, the lab helper in process PID writes when no `devagent run` named a file.

    >>> observed_lab_path(4242)
    '.devagent/lab/4242.jsonl'
    """
    return f"{OBSERVED_LAB}/{pid}.jsonl"


def observed_lab_file(workspace: Path, pid: int) -> Path:
    return workspace / observed_lab_path(pid)


# -- the login user's home in the container ------------------------------------------------------------------------

HOME_WORKSPACE = "workspace"  # where `up` mounts the workspace, relative to the login user's home
WORKSPACE_ENV = "DEVAGENT_WORKSPACE"  # set in the image to the mounted workspace; wins over HOME_WORKSPACE

AGENT_HOME = ".cache/devagent"  # the agent's home, relative to the login user's home
AGENT_RECORD = f"{AGENT_HOME}/agent.json"  # {"workspace": ..., "notebook": ...} of the running agent
READY_FLAG = f"{AGENT_HOME}/ready"  # made by up's last login through the alias: up has committed
GPU_CHECK = f"{AGENT_HOME}/gpu-check.json"  # the last GPU check, for people and tools to read
GPU_USAGE = f"{AGENT_HOME}/gpu-usage.json"  # the last hour of its GPUs' utilisation (core/gpu/idle_rule.py)
HEARTBEAT = f"{AGENT_HOME}/health"  # the agent's heartbeat, read by Docker's health check (core/health.py)


def login_home(user: str) -> str:
    """The login user's home in the image devagent derives.

    >>> login_home("dev")
    '/home/dev'
    """
    return f"/home/{user}"


def default_workspace(home: Path) -> Path:
    return home / HOME_WORKSPACE


def agent_home(home: Path) -> Path:
    return home / AGENT_HOME


def agent_record(home: Path) -> Path:
    return home / AGENT_RECORD


def ready_flag(home: Path) -> Path:
    return home / READY_FLAG


def gpu_check_file(home: Path) -> Path:
    return home / GPU_CHECK


def gpu_usage_file(home: Path) -> Path:
    return home / GPU_USAGE


# -- /etc/devagent: what the image build and `up` put into the container --------------------------------------------

SSHD = "/usr/sbin/sshd"  # the image's sshd, which the agent runs (or the container's shell starts first)
SSHD_PID_ENV = "DEVAGENT_SSHD_PID"  # the pid of an sshd the container's shell started, for the agent
CONFIG_DIR = "/etc/devagent"
HOST_KEY = "ssh_host_ed25519_key"  # names inside CONFIG_DIR
AUTHORIZED_KEYS = "authorized_keys"
LAUNCH_CONTEXT = "launch.json"
# a devcontainer.json's containerEnv/remoteEnv, for the agent's sshd (core/ssh/sshd.py)
SESSION_ENV = "session-env.json"
SESSION_ENV_PATH = f"{CONFIG_DIR}/{SESSION_ENV}"
PEOPLE = "people.json"  # who may log in: the owner and invited teammates, by key fingerprint (core/people.py)
HOST_KEY_PATH = f"{CONFIG_DIR}/{HOST_KEY}"
AUTHORIZED_KEYS_PATH = f"{CONFIG_DIR}/{AUTHORIZED_KEYS}"
LAUNCH_CONTEXT_PATH = f"{CONFIG_DIR}/{LAUNCH_CONTEXT}"  # how the environment was made: the notebook header
PEOPLE_PATH = f"{CONFIG_DIR}/{PEOPLE}"


def sshd_config_path(profile: str) -> str:
    """The sshd configuration of PROFILE, rendered at image build.

    >>> sshd_config_path("strict")
    '/etc/devagent/sshd_config.strict'
    """
    return f"{CONFIG_DIR}/sshd_config.{profile}"


# -- /opt/devagent: devagent in the image ---------------------------------------------------------------------------

AGENT_VENV = "/opt/devagent/venv"  # devagent and its container-side dependencies
LAB_HELPER_DIR = "/opt/devagent/lab"  # devagent/lab.py and what it imports, for the user's own interpreters
