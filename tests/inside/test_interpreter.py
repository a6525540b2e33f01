"""Which interpreter is the user's: the one the GPU check probes torch in and run summaries plot with."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from devagent.inside.interpreter import find_user_python


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


class TestFindUserPython:
    def make_bin(self, root: Path, *names: str) -> Path:
        root.mkdir(parents=True)
        for name in names:
            write_script(root / name, "exit 0\n")
        return root

    def test_devagent_python_wins(self, tmp_path: Path) -> None:
        usr = self.make_bin(tmp_path / "usr", "python3")
        assert find_user_python(environ={"DEVAGENT_PYTHON": "/opt/conda/bin/python", "PATH": str(usr)},
                                own_prefix=str(tmp_path / "agent")) == "/opt/conda/bin/python"

    def test_the_agent_s_own_venv_is_skipped_on_path(self, tmp_path: Path) -> None:
        own = self.make_bin(tmp_path / "agent" / "bin", "python3", "python")
        usr = self.make_bin(tmp_path / "usr", "python3")
        assert find_user_python(environ={"PATH": f"{own}{os.pathsep}{usr}"},
                                own_prefix=str(tmp_path / "agent")) == str(usr / "python3")

    def test_python3_anywhere_on_path_comes_before_python(self, tmp_path: Path) -> None:
        first = self.make_bin(tmp_path / "first", "python")
        second = self.make_bin(tmp_path / "second", "python3")
        assert find_user_python(environ={"PATH": f"{first}{os.pathsep}{second}"},
                                own_prefix=str(tmp_path / "agent")) == str(second / "python3")

    def test_the_agent_s_own_interpreter_is_the_last_resort(self, tmp_path: Path) -> None:
        own = self.make_bin(tmp_path / "agent" / "bin", "python3")
        assert find_user_python(environ={"PATH": str(own)}, own_prefix=str(tmp_path / "agent"),
                                own_executable=str(own / "python3")) == str(own / "python3")

    def test_a_file_that_is_not_executable_is_not_an_interpreter(self, tmp_path: Path) -> None:
        usr = self.make_bin(tmp_path / "usr")
        (usr / "python3").write_text("")
        later = self.make_bin(tmp_path / "later", "python3")
        assert find_user_python(environ={"PATH": f"{usr}{os.pathsep}{later}"},
                                own_prefix=str(tmp_path / "agent")) == str(later / "python3")
