"""The sshd profiles, judged by ssh-audit against a running environment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.docker

SSH_AUDIT = shutil.which("ssh-audit", path=str(Path(sys.executable).parent)) or shutil.which("ssh-audit")


def audit(port: int) -> tuple[int, dict]:  # type: ignore[type-arg]
    assert SSH_AUDIT, "ssh-audit is a test dependency: pip install -e '.[test]'"
    text = subprocess.run([SSH_AUDIT, "--skip-rate-test", "-p", str(port), "127.0.0.1"], capture_output=True,
                          text=True, check=False)
    report = subprocess.run([SSH_AUDIT, "-j", "--skip-rate-test", "-p", str(port), "127.0.0.1"],
                            capture_output=True, text=True, check=False)
    return text.returncode, json.loads(report.stdout)


def levels(report: dict) -> set[str]:  # type: ignore[type-arg]
    found = set()
    for section in ("kex", "key", "enc", "mac"):
        for alg in report.get(section, []):
            found.update(level for level in ("fail", "warn") if alg.get("notes", {}).get(level))
    return found


def port_of(env: Env, name: str) -> int:
    out = json.loads(env.devagent("ls", "--json", check=True).stdout)
    return next(e["port"] for e in out["environments"] if e["name"] == name)


def test_the_strict_profile_has_no_failure_and_no_warning(env: Env, name: str, built_image: str) -> None:
    env.up(name, "--sshd-profile", "strict")
    try:
        code, report = audit(port_of(env, name))
        assert levels(report) == set()
        assert code == 0
        assert [k["algorithm"] for k in report["kex"] if not k["algorithm"].startswith("kex-strict")] == [
            "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"]
        assert [k["algorithm"] for k in report["key"]] == ["ssh-ed25519"]
    finally:
        env.devagent("down", name)


def test_the_compat_profile_has_no_failure_and_lets_paramiko_prove_the_login(
    env: Env, name: str, built_image: str
) -> None:
    result = env.up(name, "--sshd-profile", "compat")
    try:
        assert "proven with OpenSSH" not in result.stderr  # paramiko did the first proof itself
        code, report = audit(port_of(env, name))
        assert levels(report) == {"warn"}  # curve25519 is not post-quantum: a warning, never a failure
        warned = [k["algorithm"] for k in report["kex"] if k["notes"].get("warn")]
        assert warned == ["curve25519-sha256", "curve25519-sha256@libssh.org"]
        assert code == 2  # ssh-audit's exit code for warnings without failures
    finally:
        env.devagent("down", name)
