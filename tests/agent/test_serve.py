"""`devagent serve` (inside the environment) on its own: the program it finds, the protocol on stdout, and the server
stopped when stdin closes. The "server" here is a stand-in script in the workspace's venv that listens on
127.0.0.1; tests/integration/test_notebook_servers.py runs the real Jupyter Server and TensorBoard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devagent.agent.serve import KINDS, find_program, search_path
from tests.signals import starting_with

# Listens where it is told (--port N, or --port=N), records its argv and JUPYTER_TOKEN, serves until stopped.
STAND_IN = textwrap.dedent("""\
    #!{python}
    import http.server, json, os, signal, sys
    args = sys.argv[1:]
    port = int(next(a.split("=", 1)[1] for a in args if a.startswith("--port=")) if any(
        a.startswith("--port=") for a in args) else args[args.index("--port") + 1])
    with open(os.environ["RECORD"], "w") as f:
        json.dump({{"argv": args, "token": os.environ.get("JUPYTER_TOKEN"), "pid": os.getpid(),
                   "cwd": os.getcwd(), "ignored": [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
                                                   if signal.getsignal(s) == signal.SIG_IGN]}}, f)
    if os.environ.get("EXIT_AT_ONCE"):
        sys.exit(3)
    http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler).serve_forever()
""")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    (folder / ".venv" / "bin").mkdir(parents=True)
    return folder


def install_stand_in(workspace: Path, program: str) -> None:
    path = workspace / ".venv" / "bin" / program
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)


def serve(workspace: Path, tmp_path: Path, kind: str, *args: str, ignored: tuple[int, ...] = (),
          **env: str) -> subprocess.Popen[str]:
    """`devagent serve KIND ARGS…`, started with the stop signals' default actions except IGNORED."""
    environ = {**os.environ, "RECORD": str(tmp_path / "record.json"), "DEVAGENT_WORKSPACE": str(workspace),
               "PATH": "/usr/bin:/bin", **env}
    return subprocess.Popen([*starting_with(ignored=ignored), sys.executable, "-m", "devagent", "serve", kind,
                             *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)


def test_the_workspace_venv_comes_first_then_path_then_user_scripts(tmp_path: Path) -> None:
    ws, home = tmp_path / "ws", tmp_path / "home"
    for folder in (ws / ".venv" / "bin", tmp_path / "opt", home / ".local" / "bin"):
        folder.mkdir(parents=True)
    (home / ".local" / "bin" / "jupyter-lab").write_text("#!/bin/sh\n")
    (tmp_path / "opt" / "jupyter-server").write_text("#!/bin/sh\n")
    (ws / ".venv" / "bin" / "jupyter-notebook").write_text("#!/bin/sh\n")
    for path in ws.rglob("jupyter-*"), (tmp_path / "opt").glob("*"), (home / ".local" / "bin").glob("*"):
        for p in path:
            p.chmod(0o755)
    search = search_path(ws, home, str(tmp_path / "opt"))
    # JupyterLab is preferred wherever it is; the order of folders decides between copies of one program.
    assert find_program(KINDS["jupyter"], search) == str(home / ".local" / "bin" / "jupyter-lab")
    (home / ".local" / "bin" / "jupyter-lab").unlink()
    assert find_program(KINDS["jupyter"], search) == str(ws / ".venv" / "bin" / "jupyter-notebook")


def test_jupyter_gets_the_token_from_stdin_in_its_environment_and_stops_when_stdin_closes(
        workspace: Path, tmp_path: Path) -> None:
    install_stand_in(workspace, "jupyter-lab")
    proc = serve(workspace, tmp_path, "jupyter", "--port", "8899")  # or any free port when 8899 is taken
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("tok-123\n")
    proc.stdin.flush()
    ready = json.loads(proc.stdout.readline())
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["argv"] == ["--no-browser", "--ip=127.0.0.1", f"--port={ready['ready']}", "--port-retries=0"]
    assert record["token"] == "tok-123"  # noqa: S105 - the test's own value
    assert record["cwd"] == str(workspace)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)


def test_a_missing_program_is_a_usage_error_on_the_protocol(workspace: Path, tmp_path: Path) -> None:
    proc = serve(workspace, tmp_path, "tensorboard")
    out, _ = proc.communicate("\n", timeout=30)
    assert proc.returncode == 2
    message = json.loads(out)
    assert message["status"] == 2
    assert message["error"] == "TensorBoard is not installed in this environment (no tensorboard)"


def test_a_server_that_exits_before_it_listens_is_reported_with_its_status(workspace: Path, tmp_path: Path) -> None:
    install_stand_in(workspace, "tensorboard")
    proc = serve(workspace, tmp_path, "tensorboard", "--port", "8898", EXIT_AT_ONCE="1")
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()  # and kept open: the host is still there
    message = json.loads(proc.stdout.readline())
    assert proc.wait(timeout=30) == 7
    assert message["status"] == 7
    assert message["error"].startswith("tensorboard exited with 3 before it listened on 127.0.0.1:")


def test_the_server_starts_with_the_stop_signals_default_and_a_sigterm_stops_both(workspace: Path,
                                                                                  tmp_path: Path) -> None:
    """serve inherited SIGINT, SIGTERM and SIGHUP ignored (sshd's session may hand them down so): the server it
    starts must not inherit that (its handlers are set before the server starts), and SIGTERM stops both."""
    install_stand_in(workspace, "jupyter-lab")
    proc = serve(workspace, tmp_path, "jupyter", "--port", "8897",
                 ignored=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("tok\n")
    proc.stdin.flush()
    assert "ready" in json.loads(proc.stdout.readline())
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["ignored"] == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)
