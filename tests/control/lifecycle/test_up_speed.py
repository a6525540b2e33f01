"""What `up` no longer does on its way to the login (issue 19: `up` at 2.4x a bare `docker run` + login), against
the in-memory engine. tests/integration/test_up.py records the real engine's requests of a real `up`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devagent.control.engine.derived_image import derived_image
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.lifecycle.transaction import Transaction
from devagent.control.paths import Paths
from devagent.control.ssh.openssh import GATED_BY_STDIN, client_version, client_version_soon, login_through_alias
from devagent.core import layout
from devagent.core.dockerfile import LOGIN_UID_LABEL
from devagent.core.spec import EnvSpec
from devagent.errors import DevagentError
from tests.control.fakes import FakeEngine

STOPPED = "stopped by the test once the container has started"


class StopsOnceStarted(Provisioner):
    """`up` as it is, ended by the test once its container started; notes the owner of the host key it put in."""

    key_owner: int | None = None

    def on_step(self, step: str) -> None:
        if step == "started":
            [container] = self.engine.containers.values()  # type: ignore[attr-defined]
            self.key_owner = container.files[f"{layout.CONFIG_DIR}/{layout.HOST_KEY}"].uid
            raise DevagentError(STOPPED)


def test_a_built_image_records_its_login_user_s_uid_as_the_build_left_it() -> None:
    engine = FakeEngine(all_images=False, uid=1234)  # the base image had the user, with another uid
    engine.images["base:1"] = "sha256:base"
    made = derived_image(engine, base_image="base:1", user="dev", uid=1000, report=lambda _: None)  # type: ignore[arg-type]
    assert made.built and made.login_uid == 1234
    assert engine.called("image_user_uid") == [(made.tag, "dev")]
    assert engine.labels_of[made.tag][LOGIN_UID_LABEL] == "1234"
    again = derived_image(engine, base_image="base:1", user="dev", uid=1000, report=lambda _: None)  # type: ignore[arg-type]
    assert (again.built, again.login_uid) == (False, 1234)
    assert len(engine.called("image_user_uid")) == 1  # read once, when it was built


def test_up_takes_the_uid_from_the_image_s_label_not_from_the_container(tmp_path: Path) -> None:
    engine = FakeEngine(all_images=False, uid=1234)
    engine.images["base:1"] = "sha256:base"
    spec = EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path / "code"))
    provisioner = StopsOnceStarted(engine=engine, paths=Paths.from_environ())  # type: ignore[arg-type]
    with pytest.raises(DevagentError, match=STOPPED):
        provisioner.up(spec)
    assert engine.called("user_uid") == []  # no archive request for /etc/passwd
    assert provisioner.key_owner == 1234


def test_an_image_built_before_the_label_is_asked_as_before(tmp_path: Path) -> None:
    engine = FakeEngine(uid=1234)  # every image there, with no labels: built by an older devagent
    spec = EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path / "code"))
    provisioner = StopsOnceStarted(engine=engine, paths=Paths.from_environ())  # type: ignore[arg-type]
    with pytest.raises(DevagentError, match=STOPPED):
        provisioner.up(spec)
    assert len(engine.called("user_uid")) == 1
    assert provisioner.key_owner == 1234


def test_importing_the_ssh_children_module_starts_no_process() -> None:
    # ctypes.util.find_library("c") runs `ldconfig -p`: 5-10 ms on every --host command's way to its login.
    code = ("import subprocess; started = []; init = subprocess.Popen.__init__\n"
            "def record(self, args, *a, **k):\n    started.append(args)\n    init(self, args, *a, **k)\n"
            "subprocess.Popen.__init__ = record\nimport devagent.control.ssh.children as c\n"
            "print(started, c._libc is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"


def test_the_alias_is_written_while_the_engine_starts_the_container(tmp_path: Path) -> None:
    paths = Paths.from_environ()
    written_meanwhile: list[bool] = []

    def on_start(_container: object) -> None:  # the engine's start, in progress: the alias appears meanwhile
        deadline = time.monotonic() + 30
        while "Host exp\n" not in (paths.managed_ssh_config.read_text()
                                   if paths.managed_ssh_config.exists() else ""):
            if time.monotonic() > deadline:
                written_meanwhile.append(False)
                return
            time.sleep(0.01)
        written_meanwhile.append(True)

    engine = FakeEngine(on_start=on_start)
    spec = EnvSpec(name="exp", base_image="base:1", workspace=str(tmp_path / "code"))
    with pytest.raises(DevagentError, match=STOPPED):
        StopsOnceStarted(engine=engine, paths=paths).up(spec)  # type: ignore[arg-type]
    assert written_meanwhile == [True]
    # Undone with the rest: the stop came after the container started, and the alias was in by then.
    assert not paths.managed_ssh_config.exists() and not paths.known_hosts.exists()
    assert not paths.user_ssh_config.exists()  # as before up: the file install made is not left empty


def test_a_step_alongside_ends_before_the_main_step_s_error_is_raised_and_its_own_error_comes_after() -> None:
    tx = Transaction(lambda _: None)
    done: list[str] = []

    def slow_work() -> None:
        time.sleep(0.3)
        done.append("work")

    def failing_main() -> None:
        raise DevagentError("main failed")

    with pytest.raises(DevagentError, match="main failed"):
        tx.alongside(slow_work, failing_main)
    assert done == ["work"]  # ended before the error reached the rollback

    def failing_work() -> None:
        raise DevagentError("work failed")

    with pytest.raises(DevagentError, match="work failed"):
        tx.alongside(failing_work, lambda: done.append("main"))
    assert done == ["work", "main"]
    assert tx.alongside(lambda: None, lambda: 42) == 42


# The last word is the remote command: run here, stdin and all.
FAKE_SSH = '#!/bin/sh\nfor w; do c=$w; done\nexec sh -c "$c"\n'


def test_the_alias_login_runs_its_command_only_once_its_gate_succeeded(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(0o755)
    flag = tmp_path / "ready"
    command = (f"{GATED_BY_STDIN}touch {flag} && echo 1000",)

    def failing_gate() -> None:
        raise DevagentError("the name was taken meanwhile")

    with pytest.raises(DevagentError, match="the name was taken meanwhile"):
        login_through_alias(tmp_path / "cfg", "exp", remote_command=command, ssh=str(ssh), gate=failing_gate)
    assert not flag.exists()  # the gate failed: the command stopped at its first step
    seen: list[bool] = []
    uid = login_through_alias(tmp_path / "cfg", "exp", remote_command=command, ssh=str(ssh),
                              gate=lambda: seen.append(flag.exists()))
    assert (uid, seen, flag.exists()) == (1000, [False], True)  # not before the gate returned


def test_the_client_s_version_is_asked_at_once_and_read_when_needed(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    asked = tmp_path / "asked"
    ssh.write_text(f"#!/bin/sh\ntouch {asked}\necho 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15' >&2\n")
    ssh.chmod(0o755)
    version = client_version_soon(str(ssh))
    deadline = time.monotonic() + 30
    while not asked.exists():  # `ssh -V` runs before anyone asks for its answer (up's imports run meanwhile)
        assert time.monotonic() < deadline, "ssh -V was not started"
        time.sleep(0.01)
    assert version() == version() == (9, 2) == client_version(str(ssh))
    assert client_version_soon(str(tmp_path / "none"))() is None  # no client: no process


def test_the_client_s_version_process_is_reaped_when_nobody_asks_for_it(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    pid_file = tmp_path / "pid"
    ssh.write_text(f"#!/bin/sh\necho $$ > {pid_file}.part && mv {pid_file}.part {pid_file}\n"
                   "echo 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15' >&2\n")
    ssh.chmod(0o755)
    version = client_version_soon(str(ssh))  # kept: `up` holds it too, and may end without asking (an error)
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "ssh -V was not started"
        time.sleep(0.01)
    proc = Path("/proc", pid_file.read_text().strip())
    while proc.exists():  # a zombie keeps its /proc entry (state Z) until its parent waits for it
        assert time.monotonic() < deadline, f"ssh -V is not reaped: {(proc / 'stat').read_text()}"
        time.sleep(0.05)
    assert version() == (9, 2)  # the answer is still there for a later ask
