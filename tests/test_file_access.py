"""A lint rule: files a user, a workspace or a notebook controls are opened only through devagent/nofollow.

`open(`, `os.open(`, `Path.open(`, `read_text`, `read_bytes`, `write_text` and `write_bytes` act on a path by
name, following links and waiting on FIFOs. In devagent/ they may appear only in devagent/nofollow/ and in the
places listed below, each of which touches only devagent's own files, the kernel's (/proc, cgroups), or a file
the user named for themselves, with the reason it is safe. A new call elsewhere fails this test: route it through
devagent/nofollow (``open_below``, ``open_beneath``, ``open_regular``, ``Folder``), or, if the path is devagent's
own, add it here with its reason.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "devagent"
PRIMITIVE = "devagent/nofollow/"
CALLS = {"read_text", "read_bytes", "write_text", "write_bytes"}  # and open(, os.open(, Path.open(
NOT_PATHS = {"cls", "tarfile"}  # receivers of .open( that are no path: a class's constructor, archives in memory

# Whole modules that touch only devagent's own files (or the kernel's).
MODULES = {
    "devagent/control/sites/consent.py": "the servers the user agreed to, in devagent's home",
    "devagent/control/atomic.py": "atomic_write and FileLock: devagent's home and the ssh config it manages",
    "devagent/control/engine/gpu_leases.py": "the GPU ledger's cache in devagent's home",
    "devagent/control/engine/derived_image.py": "the Dockerfile in a build context devagent made in a temporary folder",
    "devagent/control/ssh/keys.py": "devagent's keys in its home (DEVAGENT_HOME, 0700)",
    "devagent/control/ssh/known_hosts.py": "devagent's known_hosts in its home",
    "devagent/control/ssh/managed_config.py": "devagent's managed ssh config in its home",
    "devagent/control/sites/records.py": "environment records in devagent's home",
    "devagent/control/link/link.py": "the link holder's own run folder and log",
    "devagent/control/link/stale_links.py": "the owner file in each of the user's own link folders, and /proc",
    "devagent/control/features/teammates.py": "invitations in devagent's home",
    "devagent/control/ssh/user_config.py": "the user's own ssh config and the files it Includes, in their home",
    "devagent/control/engine/wheels.py": "devagent's own installed package, repacked into a wheel",
    "devagent/control/features/doctor_report.py":
        "doctor reads the user's own ssh config and VS Code settings, read-only",
    "devagent/lab.py": "runs in the user's interpreter (imports only core/layout); its one open is "
                       "O_NOFOLLOW | O_APPEND of the run's own lab.jsonl",
    "devagent/runs/observer.py": "/proc files of processes",
    "devagent/runs/oom.py": "/proc and cgroup files",
    "devagent/runs/cpu_share.py": "the cgroup's cpu.max",
    "devagent/runs/proctree.py": "/proc files of processes",
    "devagent/runs/rank_logs.py": "torchrun's rank files in a folder devagent made itself (mkdtemp, 0700), "
                                  "opened O_NOFOLLOW",
    "devagent/inside/locations.py": "the agent's record, GPU check and launch context in devagent's folders "
                                    "in the container, written by devagent",
    "devagent/inside/gpu_inventory.py": "/proc files of processes",
    "devagent/agent/heartbeat.py": "the heartbeat file devagent writes, and /proc/net",
    "devagent/agent/idle.py": "the GPU usage record in the agent's home, written by the agent, and "
                              "/proc/PID/cmdline",
}
# Single functions in modules that otherwise go through devagent/nofollow.
FUNCTIONS = {
    "devagent/cli/environments.py:init": "open(path, 'x'): O_CREAT | O_EXCL, which never follows a link",
    "devagent/cli/environments.py:up": "devagent.toml, read only when is_file() says a regular file; to move to "
                                       "nofollow with row 9's change to this function (another helper's)",
    "devagent/cli/in_environment.py:people_entry": "/etc/devagent/people.json, which devagent puts into the container",
    "devagent/cli/reproduce.py:_reproduction_up": "Files.read_text: LocalFiles reads through nofollow",
    "devagent/cli/site_options.py:gpu_inventory": "the stand-in inventory file a test names in the environment",
    "devagent/agent/agent.py:_start_heartbeat": "the sshd config devagent wrote into the image",
    "devagent/agent/agent.py:_session_env_option": "the sshd config devagent wrote into the image and the "
    "session environment `up` put into /etc/devagent (root's, read-only to the login user)",
    "devagent/control/lifecycle/provision.py:make": "the environment's host key in devagent's home",
    "devagent/control/features/rerun.py:load_facts": "Files.read_text: LocalFiles reads through nofollow",
    "devagent/control/features/rerun.py:git": "a throw-away git config in a temporary folder devagent made",
    "devagent/control/lifecycle/vscode_files.py:place_vscode_files": "devagent's own snippets, from its package",
    "devagent/runs/finish.py:_launch_context": "the launch context devagent put into the container",
    "devagent/runs/finish.py:_plot": "the SVG devagent drew into its own temporary folder",
    "devagent/inside/sessions.py:_proc": "/proc files of processes",
    "devagent/inside/sessions.py:_is_sshd": "/proc files of processes",
    "devagent/inside/sessions.py:started_by": "/etc/devagent/people.json, which devagent puts into the container",
}


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name) and func.id == "open":
        return "open"
    if isinstance(func, ast.Attribute):
        receiver = func.value.id if isinstance(func.value, ast.Name) else ""
        if func.attr == "open":
            if receiver == "os":
                return "os.open"
            # Path.open; not a class's own constructor (Folder.open, cls.open) or tarfile.open of bytes in memory
            if receiver[:1].isupper() or receiver in NOT_PATHS:
                return None
            return "Path.open"
        if func.attr in CALLS:
            return func.attr
    return None


def file_access(source: str) -> list[tuple[int, str, str]]:
    """(line, call, enclosing function) of every call in SOURCE that opens or reads or writes a path by name.

    >>> file_access("def f(p):\\n    return p.read_text()\\nopen('x')\\n")
    [(2, 'read_text', 'f'), (3, 'open', '<module>')]
    """
    found: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call) and (name := _call_name(child)) is not None:
                found.append((child.lineno, name, function))
            visit(child, inner)

    visit(ast.parse(source), "<module>")
    return sorted(found)


def violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if rel.startswith(PRIMITIVE) or rel in MODULES:
            continue
        for line, call, function in file_access(path.read_text(encoding="utf-8")):
            if f"{rel}:{function}" not in FUNCTIONS:
                bad.append(f"{rel}:{line}: {call}( in {function}")
    return bad


def test_files_are_opened_only_through_the_no_follow_primitive_or_where_listed() -> None:
    assert violations() == [], ("open these through devagent/nofollow, or list them in tests/test_file_access.py "
                                "with the reason they touch only devagent's own files")


def test_every_listed_place_still_exists_and_still_needs_its_entry() -> None:
    stale = [entry for entry in MODULES if not (ROOT / entry).is_file()]
    for entry in FUNCTIONS:
        rel, function = entry.split(":")
        calls = file_access((ROOT / rel).read_text(encoding="utf-8")) if (ROOT / rel).is_file() else []
        if not any(name == function for _, _, name in calls):
            stale.append(entry)
    assert stale == []


def test_the_rule_fails_on_a_planted_call(tmp_path: Path) -> None:
    package = tmp_path / "devagent"
    (package / "control").mkdir(parents=True)
    (package / "nofollow").mkdir()
    (package / "nofollow" / "walk.py").write_text("import os\nfd = os.open('x', 0)\n")
    (package / "control" / "notebook.py").write_text("def read(ws):\n    return (ws / 'lab-notebook.md').read_text()\n")
    assert violations(package) == ["devagent/control/notebook.py:2: read_text( in read"]


def test_the_primitive_imports_the_standard_library_and_devagent_errors_only() -> None:
    for path in sorted((PACKAGE / "nofollow").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                allowed = (top in sys.stdlib_module_names or name == "__future__"
                           or name.startswith(("devagent.errors", "devagent.nofollow")))
                if not allowed:
                    pytest.fail(f"{path.relative_to(ROOT)} imports {name}")
