"""`devagent jupyter` and `devagent tensorboard`, end to end with the real packages: Jupyter Server and TensorBoard,
installed with no package index (wheels from `make notebook-wheels`) into the workspace's venv of a real
environment, started inside on its 127.0.0.1 over the alias, reached from here through the forward; a stop signal
stops the server inside and leaves no ssh process here. All traffic stays on loopback.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import RUN_PREFIX, Env, _unavailable, wait_for
from tests.integration.forwarding import Forward, is_running

pytestmark = pytest.mark.docker

WHEELS = Path(__file__).resolve().parents[2] / "build" / "notebook-wheels"


@dataclass
class Environment:
    env: Env
    name: str


@pytest.fixture(scope="module")
def environment(docker_client: object, built_image: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """One environment whose workspace venv has Jupyter Server and TensorBoard, installed offline."""
    if not (WHEELS / ".complete").exists():
        _unavailable(f"no wheels in {WHEELS}: run `make notebook-wheels`")
    root = tmp_path_factory.mktemp("notebooks") / "user"
    (root / ".ssh").mkdir(parents=True, mode=0o700)
    env, name = Env(root), f"{RUN_PREFIX}nb{secrets.token_hex(2)}"
    env.up(name)
    try:
        shutil.copytree(WHEELS, env.workspace(name) / "wheels")
        installed = env.ssh(name, "python3 -m venv ~/workspace/.venv && ~/workspace/.venv/bin/pip install -q "
                            "--no-index --find-links ~/workspace/wheels jupyter_server tensorboard", timeout=900)
        assert installed.returncode == 0, installed.output
        yield Environment(env, name)
    finally:
        env.devagent("down", name)


def running_inside(environment: Environment, program: str) -> list[str]:
    """Command lines of the processes inside running PROGRAM (a file in the workspace venv)."""
    ps = environment.env.ssh(environment.name, "ps -eo args=")
    assert ps.returncode == 0, ps.output
    return [line for line in ps.stdout.splitlines() if f"/.venv/bin/{program}" in line]


def fetch(url: str, *, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a 127.0.0.1 URL from devagent
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def start(environment: Environment, kind: str, *args: str) -> Forward:
    return Forward(environment.env, environment.name, *args, command=kind)


def test_jupyter_runs_inside_with_a_token_no_command_line_shows_and_ctrl_c_stops_it(
        environment: Environment) -> None:
    jupyter = start(environment, "jupyter", "--port", "0")
    try:
        url = jupyter.url(timeout=240)
        base, _, token = url.partition("/?token=")
        assert base.startswith("http://127.0.0.1:") and len(token) >= 40
        assert jupyter.stdout[0].startswith(f"✔ Jupyter in {environment.name} on its 127.0.0.1:8888, forwarded to "
                                            f"{base.removeprefix('http://')} on this machine")

        status, body = fetch(f"{base}/api/status", token=token)
        assert status == 200, body
        assert "started" in json.loads(body)
        assert fetch(f"{base}/api/status")[0] == 403  # without the token
        assert fetch(f"{base}/api/status", token="wrong" + token)[0] == 403

        # The token is on no command line: not inside, not here.
        (command_line,) = running_inside(environment, "jupyter-server")
        assert "127.0.0.1" in command_line and token not in command_line
        assert all(token not in line for line in environment.env.ssh(environment.name, "ps -eo args=").stdout)
        children = jupyter.children()
        assert len(children) == 2
        for pid in children:
            assert token not in Path(f"/proc/{pid}/cmdline").read_text()

        code, err = jupyter.stop(signal.SIGINT, timeout=60)
        assert code == 130, err
        assert err.endswith("Jupyter stopped, forward closed\n"), err
        assert not any(is_running(pid) for pid in children)
        assert running_inside(environment, "jupyter-server") == []
    finally:
        jupyter.kill()


def test_tensorboard_serves_the_logdir_inside_on_127_0_0_1_and_sigterm_stops_it(environment: Environment) -> None:
    (environment.env.workspace(environment.name) / "runs" / "exp1").mkdir(parents=True, exist_ok=True)
    tensorboard = start(environment, "tensorboard", "--logdir", "runs", "--port", "0")
    try:
        url = tensorboard.url(timeout=240)
        assert tensorboard.stdout[1] == ("  TensorBoard has no login: anyone who can reach this machine's 127.0.0.1 "
                                         "can read it while it runs\n")
        status, body = fetch(f"{url}data/logdir")
        assert status == 200, body
        assert json.loads(body)["logdir"] == "/home/dev/workspace/runs"
        (command_line,) = running_inside(environment, "tensorboard")
        assert "--host 127.0.0.1" in command_line
        children = tensorboard.children()

        code, err = tensorboard.stop(signal.SIGTERM, timeout=60)
        assert code == 143, err
        assert not any(is_running(pid) for pid in children)
        wait_for(lambda: running_inside(environment, "tensorboard") == [], message="TensorBoard to stop inside")
    finally:
        tensorboard.kill()


def test_a_server_that_dies_inside_ends_the_command_with_exit_7_and_no_ssh_left(environment: Environment) -> None:
    tensorboard = start(environment, "tensorboard", "--port", "0")
    try:
        tensorboard.url(timeout=240)
        children = tensorboard.children()
        ps = environment.env.ssh(environment.name, "ps -eo pid=,args=")
        (pid,) = [line.split()[0] for line in ps.stdout.splitlines() if "/.venv/bin/tensorboard" in line]
        assert environment.env.ssh(environment.name, f"kill -9 {pid}").returncode == 0
        assert tensorboard.process.wait(timeout=60) == 7
        tensorboard.stop(signal.SIGTERM)  # joins its output readers; the process has ended already
        assert "".join(tensorboard.stderr).endswith(
            f"Error: environment {environment.name!r}: tensorboard exited with -9\n"
            "  hint: its output above says why\n")
        assert not any(is_running(pid) for pid in children)
    finally:
        tensorboard.kill()


def test_a_missing_logdir_is_refused_before_anything_runs(environment: Environment) -> None:
    result = environment.env.devagent("tensorboard", environment.name, "--logdir", "no-such-dir", timeout=120)
    assert result.returncode == 2, result.output
    assert result.stderr.endswith(
        f"Error: environment {environment.name!r}: no folder /home/dev/workspace/no-such-dir in the environment\n"
        "  hint: pass --logdir the folder your SummaryWriter writes to, relative to the workspace\n")
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["jupyter", "tensorboard"])
def test_an_environment_without_the_server_gets_how_to_install_it(env: Env, name: str, built_image: str,
                                                                    kind: str) -> None:
    env.up(name)
    try:
        result = env.devagent(kind, name, "--port", "0", timeout=120)
    finally:
        env.devagent("down", name)
    program, package = {"jupyter": ("jupyter-lab or jupyter-notebook or jupyter-server", "jupyterlab"),
                        "tensorboard": ("tensorboard", "tensorboard")}[kind]
    assert result.returncode == 2, result.output
    assert result.stderr.endswith(
        f"Error: environment {name!r}: {'Jupyter' if kind == 'jupyter' else 'TensorBoard'} is not installed in this "
        f"environment (no {program})\n"
        "  hint: install it into the workspace's venv: python3 -m venv --system-site-packages ~/workspace/.venv && "
        f"~/workspace/.venv/bin/pip install {package} (or use a base image that has it: "
        "docs/how-to/use-your-own-base-image.md)\n")
    assert result.stdout == ""

