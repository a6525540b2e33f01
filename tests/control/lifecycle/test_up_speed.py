"""What `up` no longer does on its way to the login (issue 19: `up` at 2.4x a bare `docker run` + login), against
the in-memory engine. tests/integration/test_up.py records the real engine's requests of a real `up`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devagent.control.engine.derived_image import derived_image
from devagent.control.lifecycle.provision import Provisioner
from devagent.control.paths import Paths
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
