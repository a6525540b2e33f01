"""The home volume and the read-only root's mount plan (devagent/core/mounts/home.py): pure, no engine."""

from __future__ import annotations

import os
import subprocess

import pytest

from devagent.core import layout
from devagent.core.mounts import home
from devagent.core.spec import NAME_RE


def test_the_plan_mounts_the_named_home_and_anonymous_temp_and_config_volumes_and_a_small_run_lock() -> None:
    plan = home.mount_plan("exp", home="/home/dev", up_id="u1")
    assert [(m.target, m.volume, m.tmpfs_bytes) for m in plan] == [
        ("/home/dev", "devagent-home-exp", 0), ("/tmp", None, 0), ("/var/tmp", None, 0),
        (layout.CONFIG_DIR, None, 0), ("/run/lock", None, 1 << 20)]
    assert plan[0].labels == {"devagent.managed": "true", "devagent.name": "exp", "devagent.home": "true",
                              "devagent.home-up-id": "u1"}
    assert all(not m.labels for m in plan[1:])  # only the home outlives the container


def test_only_a_home_devagent_made_for_that_name_is_ours() -> None:
    labels = home.home_labels("exp", up_id="u1")
    assert home.is_ours(labels, "exp")
    assert not home.is_ours(labels, "other")
    assert not home.is_ours({"devagent.name": "exp"}, "exp")  # a volume someone else named so
    assert not home.is_ours(None, "exp")


@pytest.mark.parametrize("name", ["a", "pytorch-dev", "x.y_z-1"])
def test_every_valid_environment_name_gives_a_valid_volume_name(name: str) -> None:
    assert NAME_RE.fullmatch(name)
    volume = home.home_volume(name)
    assert volume.startswith("devagent-home-") and all(c.isalnum() or c in "_.-" for c in volume)


@pytest.mark.parametrize(("size", "text"), [(None, "size unknown"), (-1, "size unknown"), (0, "0 B"),
                                            (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 1024 ** 2, "5.0 MiB"),
                                            (2048 * 1024 ** 4, "2048.0 TiB")])
def test_sizes_are_shown_in_the_largest_unit(size: int | None, text: str) -> None:
    assert home.describe_size(size) == text


@pytest.mark.parametrize(("output", "size"), [
    ("1204\t/home/dev\n", 1204 * 1024), ("0\t/home/dev\n", 0), ("7\t/home/my dev\n", 7 * 1024),
    ("", None), (" \n", None), ("du: cannot read directory '/home/dev/x'\n", None), ("-1\t/home/dev", None)])
def test_du_gives_kib_then_the_path_and_anything_else_is_no_size(output: str, size: int | None) -> None:
    assert home.du_bytes(output) == size


def test_the_container_command_is_sh_running_the_check_then_the_agent_under_a_name_of_its_own() -> None:
    # The name is sh's $0: what ps shows and what sh's own errors begin with.
    assert home.container_command(["devagent", "agent", "--x"]) == [
        "sh", "-c", home.HOME_CHECK, "devagent-home-check", "devagent", "agent", "--x"]


def _check(tmp_path, *, owner_ok: bool) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """The container command's home check, run by this machine's sh with HOME=TMP_PATH/h."""
    h = tmp_path / "h"
    (h / layout.AGENT_HOME).mkdir(parents=True)
    (h / layout.READY_FLAG).touch()
    if not owner_ok and os.geteuid() == 0:
        os.chown(h, 4242, 4242)  # another uid's home
    elif not owner_ok:
        h.chmod(0o555)  # not writable: as a home of another uid is for the login user
    argv = home.container_command(["sh", "-c", "echo started; ls -a \"$HOME/.cache/devagent\""])
    return subprocess.run(argv, env={"HOME": str(h), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          check=False)


def test_the_container_command_clears_an_old_ready_flag_then_starts_the_agent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _check(tmp_path, owner_ok=True)
    assert (done.returncode, done.stdout.split()) == (0, ["started", ".", ".."]), done.stderr


def test_a_home_the_login_user_cannot_write_exits_78_and_says_whose_it_is(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _check(tmp_path, owner_ok=False)
    assert done.returncode == home.HOME_NOT_YOURS_EXIT
    assert done.stderr.startswith(f"devagent: the home {tmp_path / 'h'} belongs to uid "), done.stderr
    assert "started" not in done.stdout  # the agent never starts


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user the shell would start this machine's sshd")
def test_with_sshd_first_the_check_and_the_agent_s_arguments_stay_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = tmp_path / "h"
    (h / layout.AGENT_HOME).mkdir(parents=True)
    (h / layout.READY_FLAG).touch()
    argv = home.container_command(["sh", "-c", 'echo "$0 $1 ${DEVAGENT_SSHD_PID-none}"', "agent", "--x"],
                                  sshd_first="/etc/devagent/sshd_config.strict")
    assert argv[:4] == ["sh", "-c", home.SSHD_FIRST, "devagent-home-check"]
    done = subprocess.run(argv, env={"HOME": str(h), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    # The configuration is the shell's alone (shifted away); root, which owns /, starts no sshd in the shell (the
    # agent refuses root): the agent gets no pid to adopt. The start itself is tested in a container
    # (tests/integration/test_up.py), where the login user is not root.
    assert done.stdout.split() == ["agent", "--x", "none"]
    assert not (h / layout.READY_FLAG).exists()


def test_sshd_first_keeps_the_home_check_and_leaves_a_session_environment_to_the_agent() -> None:
    assert home.SSHD_FIRST.startswith(home.HOME_CHECK.removesuffix('exec "$@"'))
    assert f"[ ! -O / ] && [ ! -e {layout.SESSION_ENV_PATH} ]; then {layout.SSHD} -D -e -f \"$1\" &" \
        in home.SSHD_FIRST
