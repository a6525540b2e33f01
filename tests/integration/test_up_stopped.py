"""`up` stopped at each of its steps — by Ctrl-C (SIGINT), SIGTERM, a closed terminal (SIGHUP) or SIGKILL — and
what the next `up` and `down` make of it.

SIGINT, SIGTERM and SIGHUP roll everything back at once and exit 128+N. After SIGKILL nothing of devagent runs:
what it left is either complete (a container is only ever named NAME once its keys are in and its login was
proven) or a NAME-new-… container, which the next `up` removes and `down NAME` finds. Either way `up` then
succeeds and `down` leaves nothing: no container, no ssh entry, no pinned key, no host key, no lock.

`up` is paused at a step by tests/integration/paused_devagent.py, a harness around the CLI (devagent has no such
switch): it pauses where Provisioner.on_step names the step, and the test sends the signal there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devagent.control.lifecycle.interrupts import describe
from tests.integration.conftest import BASE_IMAGE, Env, Result, assert_nothing_left, container_names, wait_for

pytestmark = pytest.mark.docker

HARNESS = Path(__file__).with_name("paused_devagent.py")
REPO = Path(__file__).resolve().parents[2]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]
RECREATE = ("--recreate", "--cpus", "1")  # other options than the first up's: a new container


class PausedUp:
    """`devagent up NAME …` running, paused at STEP."""

    def __init__(self, env: Env, name: str, step: str, *extra: str, marker: Path) -> None:
        self.marker = marker
        environ = {**env.environ, "PYTHONPATH": str(REPO), "DEVAGENT_TEST_PAUSE_AT": step,
                   "DEVAGENT_TEST_PAUSED_FILE": str(marker)}
        self.proc = subprocess.Popen(
            [sys.executable, str(HARNESS), "up", name, "--base-image", BASE_IMAGE, "--workspace",
             str(env.workspace(name)), "--memory", "2g", *extra],
            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: marker.exists() or self.proc.poll() is not None, timeout=120, interval=0.02,
                     message=f"up to reach the step {step!r}")
        except BaseException:
            self.proc.kill()
            raise
        if not marker.exists():
            out, err = self.proc.communicate()
            raise AssertionError(f"up ended ({self.proc.returncode}) before the step {step!r}:\n{out}{err}")

    def stop(self, sig: int, *, resume: bool = False) -> Result:
        """Send SIG; RESUME: then let the paused step go on (a step that holds signals until it is done)."""
        self.proc.send_signal(sig)
        if resume:
            self.marker.unlink()
        try:
            out, err = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return Result(self.proc.returncode, out, err)


def container_id(docker_client, name: str) -> str:  # type: ignore[no-untyped-def]
    return str(docker_client.containers.get(name).id)


def assert_stopped_and_rolled_back(result: Result, sig: int, docker_client, name: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 128 + sig, result.output
    assert f"Error: {describe(sig)}; everything `up` had made is removed again" in result.stderr
    assert [n for n in container_names(docker_client, name) if n != name] == [], result.stderr


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("step", ["workspace", "created", "started", "alias", "renamed"])
def test_up_stopped_at_a_step_leaves_nothing_that_the_next_up_and_down_do_not_clear(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path, step: str, sig: int
) -> None:
    result = PausedUp(env, name, step, marker=tmp_path / "paused").stop(sig)
    if sig == signal.SIGKILL:
        assert result.returncode == -signal.SIGKILL
        # What SIGKILL left: a half-made container only ever under a temporary name.
        names = container_names(docker_client, name)
        if step == "workspace":
            assert names == []
        elif step == "renamed":
            assert names == [name]
        else:
            assert len(names) == 1 and names[0].startswith(f"{name}-new-"), names
    else:
        assert_stopped_and_rolled_back(result, sig, docker_client, name)
        assert_nothing_left(env, name, docker_client)
        return  # the lock included: the next up is a first up, as any other test's

    up = env.up(name)
    assert container_names(docker_client, name) == [name]
    if step in ("created", "started", "alias"):
        assert f"removing container {name}-new-" in up.stderr
        assert "left behind by an interrupted up" in up.stderr
    # Killed once complete, the container is used as it is (its keys are in): verified, not made again.
    assert f"container {name} {'verified' if step == 'renamed' else 'created'}" in up.stdout
    assert env.ssh(name, "hostname").stdout.strip() == name
    env.devagent("down", name, check=True)
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("step", ["created", "alias", "proven"])
def test_recreate_stopped_at_a_step_keeps_the_old_environment_or_leaves_what_the_next_up_and_down_clear(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path, step: str, sig: int
) -> None:
    env.up(name)
    old = container_id(docker_client, name)
    result = PausedUp(env, name, step, *RECREATE, marker=tmp_path / "paused").stop(sig)
    if sig == signal.SIGKILL:
        assert result.returncode == -signal.SIGKILL
        assert len(container_names(docker_client, name)) == 2  # the old one and NAME-new-…
        # The same command again: it removes what the killed one left and replaces the old container.
        again = env.up(name, *RECREATE)
        assert f"removing container {name}-new-" in again.stderr
        assert f"container {name} replaced" in again.stdout
        assert container_id(docker_client, name) != old
    else:
        assert_stopped_and_rolled_back(result, sig, docker_client, name)
        # The old environment as it was: its container, its alias (the old port again), its login.
        assert container_names(docker_client, name) == [name]
        assert container_id(docker_client, name) == old
    assert env.ssh(name, "true").returncode == 0
    env.devagent("down", name, check=True)
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_while_recreate_swaps_the_containers_waits_for_the_swap_and_keeps_the_new_environment(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path, sig: int
) -> None:
    # Between removing the old container and renaming the new one, undoing would leave neither.
    env.up(name)
    old = container_id(docker_client, name)
    result = PausedUp(env, name, "replacing", *RECREATE, marker=tmp_path / "paused").stop(sig, resume=True)
    assert result.returncode == 128 + sig, result.output
    assert (f"Error: {describe(sig)} during the last step of `up`, which then completed: the environment is made "
            "and kept") in result.stderr
    assert container_names(docker_client, name) == [name]
    assert container_id(docker_client, name) != old
    assert env.ssh(name, "true").returncode == 0
    env.devagent("down", name, check=True)
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


@pytest.mark.parametrize(("step", "extra"), [("created", ()), ("alias", ()), ("replacing", RECREATE)],
                         ids=["fresh-created", "fresh-alias", "recreate-replacing"])
def test_down_after_a_killed_up_removes_every_container_it_left(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path, step: str, extra: tuple[str, ...]
) -> None:
    if extra:
        env.up(name)
    PausedUp(env, name, step, *extra, marker=tmp_path / "paused").stop(signal.SIGKILL)
    [leftover] = [n for n in container_names(docker_client, name) if n != name]
    assert name not in env.devagent("ls", check=True).stdout  # a leftover is not an environment
    down = env.devagent("down", name, check=True)
    assert f"✔ removed container {leftover}, left behind by an interrupted up" in down.stdout
    assert_nothing_left(env, name, docker_client, workspace_kept=True)


def test_up_leaves_another_devagents_half_made_container_alone_and_only_its_owners_down_removes_it(
    env: Env, name: str, built_image: str, docker_client, tmp_path: Path
) -> None:
    # Another DEVAGENT_HOME's up may be running now (its lock is not ours), and its container is made with its
    # key: neither our up nor our down takes it; `down NAME` with that key does.
    other = Env(tmp_path / "other")
    (other.root / ".ssh").mkdir(parents=True, mode=0o700)
    PausedUp(other, name, "created", marker=tmp_path / "paused").stop(signal.SIGKILL)
    [leftover] = container_names(docker_client, name)
    up = env.up(name)
    assert "left behind" not in up.stderr
    assert container_names(docker_client, name) == sorted([name, leftover])
    down = env.devagent("down", name, check=True)
    assert "left behind" not in down.stdout
    assert container_names(docker_client, name) == [leftover]
    theirs = other.devagent("down", name, check=True)
    assert f"✔ removed container {leftover}, left behind by an interrupted up" in theirs.stdout
    assert_nothing_left(env, name, docker_client, workspace_kept=True)
