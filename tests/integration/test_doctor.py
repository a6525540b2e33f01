"""`devagent doctor` against a real environment: the real engine, the real OpenSSH client through the alias.

A fresh environment passes every item; then each test breaks one thing from the host side and sees the item that
names it fail, with its fix, and exit 14 — and, once mended, pass again.
"""

from __future__ import annotations

import json
import re

import pytest

from devagent.core.doctor_rules import CONTAINER_SIDE
from tests.integration.conftest import Env, Result

pytestmark = pytest.mark.docker

DOCTOR_FAILED = 14


@pytest.fixture(autouse=True)
def no_vscode_settings_of_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The doctor looks for VS Code's settings under $XDG_CONFIG_HOME, else $HOME/.config (the test's HOME).
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


@pytest.fixture
def up(env: Env, name: str, built_image: str):  # type: ignore[no-untyped-def]
    env.up(name)
    yield
    env.devagent("down", name)


def items(result: Result) -> dict[str, str]:
    """{check name: its line} of a text report (the fix lines are folded into their item's line)."""
    found: dict[str, str] = {}
    last = ""
    for line in result.stdout.splitlines():
        m = re.match(r"^[✔✘–!] (.+?) — ", line)
        if m:
            last = m.group(1)
            found[last] = line
        elif line.startswith("  fix: "):
            found[last] += "\n" + line
    return found


def test_a_fresh_environment_passes_every_check_in_text_and_json(env: Env, name: str, up) -> None:
    result = env.devagent("doctor", name)
    assert result.returncode == 0, result.output
    report = items(result)
    expected = ["Docker Engine", "OpenSSH client", "Include line", "file permissions",
                "VS Code remote.SSH.configFile", "container running", "container health", "sshd profile",
                f"ssh -G {name}", *CONTAINER_SIDE, "home volume"]
    assert list(report) == expected, result.stdout
    assert re.fullmatch(rf"✔ home volume — devagent-home-{name}, \d+\.\d KiB; kept by --recreate, removed by down",
                        report["home volume"]), report["home volume"]
    skipped = {n: line for n, line in report.items() if line.startswith("– ")}
    assert "skipped: no VS Code settings.json under" in skipped["VS Code remote.SSH.configFile"]
    # Docker's first health check runs 30 s after the start: a doctor right after `up` usually comes before it.
    assert report["container health"] in (
        "✔ container health — healthy: sshd listens and the agent reports",
        "– container health — skipped: Docker has not checked it yet (the first check runs 30 s after the start)")
    assert set(skipped) <= {"VS Code remote.SSH.configFile", "container health"}
    # The offline base image built before curl was added has no download tool: a warning (scripts/build-base-image.sh)
    warned = {n for n, line in report.items() if line.startswith("! ")}
    assert warned <= {"download tool"}, result.stdout
    assert all(line.startswith("✔ ") for n, line in report.items() if n not in {*skipped, *warned}), result.stdout
    assert report["login through the alias"] == f"✔ login through the alias — ssh {name} logs in as dev (uid 1000)"
    assert re.search(r"^✔ TCP forwarding — a local forward reached the container's sshd \(SSH-2\.0-OpenSSH_",
                     report["TCP forwarding"])
    assert re.search(r"^✔ agent — running \(pid \d+\), state in ~/.cache/devagent/agent.json$", report["agent"])
    assert report["notebook writable"] == "✔ notebook writable — /home/dev/workspace/lab-notebook.md"
    skips = sum(line.startswith("– ") for line in report.values())
    assert result.stdout.splitlines()[-1] == f"all {len(expected) - skips - len(warned)} checks passed, {skips} " \
        "skipped" + (", 1 warning" if warned else "")

    as_json = env.devagent("doctor", name, "--json")
    assert as_json.returncode == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["version"] == 1 and doc["ok"] is True
    assert [c["name"] for c in doc["checks"]] == expected
    assert all(set(c) == {"name", "ok", "detail", "fix", *(["warning"] if c["name"] in warned else [])}
               and c["ok"] is not False for c in doc["checks"])


def test_doctor_without_a_name_checks_the_client_side_only_and_passes(env: Env, name: str, up) -> None:
    result = env.devagent("doctor")
    assert result.returncode == 0, result.output
    assert list(items(result)) == ["Docker Engine", "OpenSSH client", "Include line", "file permissions",
                                   "VS Code remote.SSH.configFile"]
    assert items(result)["Docker Engine"].startswith("✔ Docker Engine — answers; ")


def test_a_private_key_others_can_read_fails_the_permissions_check_until_chmod_600(env: Env, name: str,
                                                                                  up) -> None:
    key = env.home / "id_ed25519"
    key.chmod(0o644)
    try:
        result = env.devagent("doctor", name)
    finally:
        key.chmod(0o600)
    assert result.returncode == DOCTOR_FAILED, result.output
    report = items(result)
    assert report["file permissions"] == (
        f"✘ file permissions — {key} is 0644: others can read your private key (ssh refuses it: UNPROTECTED "
        f"PRIVATE KEY FILE)\n  fix: chmod 600 {key}")
    # The real client refuses the key, so the login fails too, and what needs it is skipped.
    assert report["login through the alias"].startswith("✘ login through the alias — ssh ")
    assert report["bash"] == "– bash — skipped: the login through the alias failed"
    assert env.devagent("doctor", name).returncode == 0


def test_a_host_block_above_the_include_line_fails_ssh_g_naming_the_line(env: Env, name: str, up) -> None:
    original = env.ssh_config.read_text()
    env.ssh_config.write_text(f"Host {name}\n  Port 1\n" + original)
    try:
        result = env.devagent("doctor", name)
    finally:
        env.ssh_config.write_text(original)
    assert result.returncode == DOCTOR_FAILED, result.output
    report = items(result)
    line, fix = report[f"ssh -G {name}"].split("\n")
    assert re.fullmatch(rf"✘ ssh -G {re.escape(name)} — your ssh config overrides devagent's Port for "
                        rf"{re.escape(name)}: 1 wins over \d+, set by {re.escape(str(env.ssh_config))}:2:   Port 1",
                        line), line
    assert fix.startswith("  fix: move devagent's line `Include ")
    assert report["Include line"].startswith(
        f"✘ Include line — {env.ssh_config}:3 includes devagent's config, but line 1 `Host {name}` comes first")
    assert env.devagent("doctor", name).returncode == 0


def test_a_stopped_container_fails_with_up_as_the_fix_and_up_mends_it(env: Env, name: str, up,
                                                                     docker_client) -> None:
    docker_client.containers.get(name).stop(timeout=5)
    result = env.devagent("doctor", name)
    assert result.returncode == DOCTOR_FAILED, result.output
    report = items(result)
    assert re.fullmatch(rf"✘ container running — {re.escape(name)} is exited \(exit code \d+\)\n"
                        rf"  fix: `devagent up {re.escape(name)}` starts it again \(`docker logs {re.escape(name)}` "
                        r"shows why it stopped\)", report["container running"]), report["container running"]
    for item in CONTAINER_SIDE:
        assert report[item] == f"– {item} — skipped: the container is not running"
    doc = json.loads(env.devagent("doctor", name, "--json").stdout)
    assert doc["ok"] is False
    assert [c["name"] for c in doc["checks"] if c["ok"] is False] == ["container running"]

    env.up(name)  # the fix it printed
    assert env.devagent("doctor", name).returncode == 0
