"""Inviting a teammate, end to end: the real Docker Engine, the real sshd in the container, the real ssh client.

Alice is a key made in the test; her side is a fresh folder holding only what `share --export` printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from devagent.core.people import check_public_key
from tests.integration.conftest import NEWER_OPENSSH_BASE_IMAGE, Env, Result, wait_for

pytestmark = pytest.mark.docker


class Alice:
    """A teammate on her own machine: her key, and a config and known_hosts made only of the exported text."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700)
        self.key = root / "alice"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(self.key)],
                       check=True)
        self.config = root / "config"
        self.known_hosts = root / "known_hosts"

    @property
    def public(self) -> Path:
        return self.root / "alice.pub"

    def take(self, exported: str) -> None:
        """Split what `share --export` printed into her ssh config and her known_hosts, as she would paste it."""
        block, _, pin = exported.partition("# and append this line to ~/.ssh/known_hosts")
        self.config.write_text(block)
        self.known_hosts.write_text(pin.split("\n", 1)[1])

    def argv(self, name: str, *command: str) -> list[str]:
        # OpenSSH finds ~ through the password database, not $HOME: her files are named on the command line.
        return ["ssh", "-F", str(self.config), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-i", str(self.key), name, *command]

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.root)}  # a fresh HOME: nothing of the owner's is in reach

    def ssh(self, name: str, *command: str, timeout: float = 60) -> Result:
        proc = subprocess.run(self.argv(name, *command), capture_output=True, text=True, timeout=timeout, check=False,
                              env=self.environ)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def alice(tmp_path: Path) -> Alice:
    return Alice(tmp_path / "alice-laptop")


def started_by(notebook: str) -> list[str]:
    """The "started by" cell of every run section, in order."""
    return re.findall(r"^\| started by \| (.+?) \|$", notebook, re.MULTILINE)


def test_an_invited_teammate_logs_in_with_her_own_key_and_her_exported_entry(env: Env, name: str,
                                                                            alice: Alice) -> None:
    env.up(name)
    exported = env.devagent("share", name, "--export", "alice")
    assert exported.returncode == 11, exported.output  # not invited yet
    assert "Error: alice is not invited to" in exported.stderr

    shared = env.devagent("share", name, "--key", str(alice.public), check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(alice.public)], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    assert shared.stdout.startswith(f"✔ alice may log in to {name} (ED25519 {fingerprint})\n")

    alice.take(env.devagent("share", name, "--export", "alice", check=True).stdout)
    assert "StrictHostKeyChecking yes" in alice.config.read_text()
    assert alice.known_hosts.read_text().startswith(f"{name} ssh-ed25519 ")
    login = alice.ssh(name, "id", "-un")
    assert (login.returncode, login.stdout) == (0, "dev\n"), login.output

    # The pin is what lets her in: with another key pinned under the alias, strict checking refuses the host.
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU"
    alice.known_hosts.write_text(f"{name} {other}\n")
    refused = alice.ssh(name, "true")
    assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr, refused.output

    listing = json.loads(env.devagent("ls", "--json", check=True).stdout)
    assert [row["invited"] for row in listing["environments"] if row["name"] == name] == [["alice"]]


def test_invitations_survive_recreate_and_unshare_ends_her_sessions(env: Env, name: str, alice: Alice) -> None:
    env.up(name)
    env.devagent("share", name, "--key", str(alice.public), "--as", "alice", check=True)
    env.up(name, "--recreate")
    alice.take(env.devagent("share", name, "--export", "alice", check=True).stdout)
    assert alice.ssh(name, "true").returncode == 0

    session = subprocess.Popen(alice.argv(name, "sleep", "301"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=alice.environ)
    try:
        wait_for(lambda: "sleep 301" in env.ssh(name, "ps", "-eo", "args").stdout, message="her session")
        owner_session = subprocess.Popen(["ssh", "-F", str(env.ssh_config), "-o", "BatchMode=yes", name,
                                          "sleep", "300"], env=env.environ)
        try:
            unshared = env.devagent("unshare", name, "alice", check=True)
            assert unshared.stdout == (f"✔ alice may no longer log in to {name}\n"
                                       "✔ ended 1 ssh session that logged in with alice's key\n")
            assert session.wait(timeout=30) != 0  # her connection was closed under her
            assert owner_session.poll() is None  # the owner's session goes on
        finally:
            owner_session.kill()
            owner_session.wait()
    finally:
        session.kill()
        session.wait()
    wait_for(lambda: "sleep 301" not in env.ssh(name, "ps", "-eo", "args").stdout, message="her process gone")
    again = alice.ssh(name, "true")
    assert again.returncode == 255 and "Permission denied (publickey)" in again.stderr, again.output
    assert env.ssh(name, "true").returncode == 0  # the owner is never locked out
    listing = json.loads(env.devagent("ls", "--json", check=True).stdout)
    assert [row["invited"] for row in listing["environments"] if row["name"] == name] == [[]]


def test_the_notebook_records_who_started_each_run_by_the_key_of_their_login(env: Env, name: str,
                                                                            alice: Alice) -> None:
    env.up(name)
    env.devagent("share", name, "--key", str(alice.public), check=True)
    alice.take(env.devagent("share", name, "--export", "alice", check=True).stdout)
    owner_key = (env.home / "id_ed25519.pub").read_text().split()
    run = "cd ~/workspace && devagent run -- python3 -c 'print(1)'"
    assert env.ssh(name, run).returncode == 0
    assert alice.ssh(name, run).returncode == 0
    # Alice claims the owner's login: a file in sshd's format naming the owner's key, named by SSH_USER_AUTH.
    forged = f"/tmp/sshauth.forged{name[-4:]}"
    assert alice.ssh(name, f"printf 'publickey {owner_key[0]} {owner_key[1]}\\n' > {forged}").returncode == 0
    # A file made within a clock tick of another login makes that login's key untellable ("unknown", never the
    # owner): here the forgery is older than that, so each run below must still be told as Alice's.
    time.sleep(0.5)
    assert alice.ssh(name, f"export SSH_USER_AUTH={forged}; {run}").returncode == 0
    assert alice.ssh(name, f"SSH_USER_AUTH={forged} exec devagent run -- python3 -c 'print(1)'").returncode == 0
    # A run nobody wrapped, which the agent observes: the session that started it is read as the run is found.
    (env.workspace(name) / "observed.py").write_text("import time\ntime.sleep(3)\n")
    assert alice.ssh(name, "cd ~/workspace && python3 observed.py").returncode == 0
    notebook = env.workspace(name) / "lab-notebook.md"
    wait_for(lambda: "(observed) · observed.py" in notebook.read_text(), message="the observed run's section")
    owner = json.loads(env.ssh(name, "cat", "/etc/devagent/people.json").stdout)["people"][0]["name"]
    assert started_by(notebook.read_text()) == [f"{owner} (owner)", "alice", "alice", "alice", "alice"]
    assert f"| people | {owner} (owner) |" in notebook.read_text()  # the header: who could log in at creation
    assert re.search(r"^## .* · people · alice invited \(ED25519 SHA256:.*\)$", notebook.read_text(), re.MULTILINE)
    assert f"| alice | ED25519 `{check_public_key(alice.public.read_text()).fingerprint}` |" in notebook.read_text()


def test_teammates_with_ecdsa_and_rsa_keys_log_in_too(env: Env, name: str, tmp_path: Path) -> None:
    env.up(name)
    for person, kind in (("bob", ["-t", "ecdsa", "-b", "384"]), ("carol", ["-t", "rsa", "-b", "3072"])):
        teammate = Alice(tmp_path / person)
        key = tmp_path / person / person
        subprocess.run(["ssh-keygen", "-q", *kind, "-N", "", "-f", str(key)], check=True)
        teammate.key = key
        env.devagent("share", name, "--key", f"{key}.pub", check=True)
        teammate.take(env.devagent("share", name, "--export", person, check=True).stdout)
        login = teammate.ssh(name, "id", "-un")
        assert (login.returncode, login.stdout) == (0, "dev\n"), (person, login.output)


HOSTILE_KEYS = {
    "options": ('command="/bin/sh" {key}', "has options before the key (command=...)"),
    "from": ('from="10.0.0.1" {key}', "has options before the key (from=...)"),
    "two lines": ("{key}\n{key}", "holds 2 lines: exactly one public key line is expected"),
    "garbage": ("ssh-ed25519 AAAA!!notbase64", "is not a valid ED25519 public key"),
    "carriage return": ("{key}\rssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU",
                        "holds a control character"),
}


def test_hostile_keys_are_refused_with_the_reason_and_nothing_changes(env: Env, name: str, alice: Alice,
                                                                     tmp_path: Path) -> None:
    env.up(name)
    key = alice.public.read_text().strip()
    before = env.ssh(name, "cat", "/etc/devagent/authorized_keys").stdout
    cases = {label: (text.format(key=key), reason) for label, (text, reason) in HOSTILE_KEYS.items()}
    weak = tmp_path / "weak"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", str(weak)], check=True)
    cases["1024-bit rsa"] = (Path(f"{weak}.pub").read_text(), "is an RSA key of 1024 bits; at least 3072 are required")
    cases["private key"] = (alice.key.read_text(), "is a private key: never copy a private key")
    for label, (text, reason) in cases.items():
        path = tmp_path / f"{label.replace(' ', '-')}.pub"
        path.write_text(text)
        result = env.devagent("share", name, "--key", str(path), "--as", "mallory")
        assert result.returncode == 2, (label, result.output)
        assert result.stderr.startswith(f"Error: {path} {reason}"), (label, result.stderr)
        assert "hint: " in result.stderr
    assert env.ssh(name, "cat", "/etc/devagent/authorized_keys").stdout == before
    assert not (env.home / "invitations").exists()


def test_on_openssh_10_a_run_is_recorded_by_its_login_and_unshare_ends_her_session(
        env: Env, name: str, alice: Alice, newer_openssh_image: str) -> None:
    # OpenSSH 9.8 split sshd into sshd and sshd-session (10.0 adds sshd-auth): the session is found all the same.
    env.up(name, base_image=NEWER_OPENSSH_BASE_IMAGE)
    env.devagent("share", name, "--key", str(alice.public), check=True)
    alice.take(env.devagent("share", name, "--export", "alice", check=True).stdout)
    assert alice.ssh(name, "cd ~/workspace && devagent run -- python3 -c 'print(1)'").returncode == 0
    assert started_by((env.workspace(name) / "lab-notebook.md").read_text()) == ["alice"]
    session = subprocess.Popen(alice.argv(name, "sleep", "301"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=alice.environ)
    try:
        wait_for(lambda: "sleep 301" in env.ssh(name, "ps", "-eo", "args").stdout, message="her session")
        unshared = env.devagent("unshare", name, "alice", check=True).stdout
        assert unshared.endswith("✔ ended 1 ssh session that logged in with alice's key\n")
        assert session.wait(timeout=30) != 0
    finally:
        session.kill()
        session.wait()


def test_a_stale_name_never_reaches_the_new_owners_environment(env: Env, name: str, alice: Alice, tmp_path: Path,
                                                               docker_client) -> None:  # type: ignore[no-untyped-def]
    """ENV made NAME; it went (a clean-up on the server) and BOB made his own NAME. ENV's record is stale: its down,
    share and unshare refuse Bob's environment, and its down forgets only its own alias and keys."""
    env.up(name)
    docker_client.containers.get(name).remove(force=True)
    bob = Env(tmp_path / "bob")
    (bob.root / ".ssh").mkdir(parents=True, mode=0o700)
    bob.up(name)
    bobs_key = check_public_key((bob.home / "id_ed25519.pub").read_text()).fingerprint
    refusal = f"Error: environment '{name}' belongs to root (key {bobs_key}), not to you: `devagent "
    hint = "  hint: ask its owner; if it is yours, made with another DEVAGENT_HOME or --identity, run `devagent "

    shared = env.devagent("share", name, "--key", str(alice.public), "--as", "carol")
    assert (shared.returncode, shared.stderr) == (12, f"{refusal}share` leaves it alone\n{hint}share` from there\n")
    unshared = env.devagent("unshare", name, "carol")
    assert unshared.returncode == 12 and unshared.stderr.startswith(f"{refusal}unshare` leaves it alone\n")
    down = env.devagent("down", name)
    assert down.returncode == 12, down.output
    assert down.stderr == (f"{refusal}down {name}` leaves it alone\n"
                           f"  | removed your ssh alias {name} and its pinned host key\n"
                           "  | removed your host key\n"
                           f"{hint}down {name}` from there\n")
    assert name not in (env.home / "ssh_config").read_text() if (env.home / "ssh_config").exists() else True
    assert not (env.home / "hostkeys" / f"{name}_ed25519").exists()

    assert bob.ssh(name, "true").returncode == 0  # his container, alias and key are untouched
    keys = bob.ssh(name, "cat", "/etc/devagent/authorized_keys").stdout
    assert "carol" not in keys and keys.count("\n") == 1
    assert bob.devagent("down", name, check=True).stdout.startswith(f"✔ removed container {name}\n")
