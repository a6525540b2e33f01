"""Whose ssh session a process runs in, read from a made-up /proc and sshd's auth files — never from the
process's environment."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from devagent.core.people import Person, fingerprint, render_people
from devagent.inside import sessions

ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU"
OWNER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPKCk0UOPzkGVX5ZHLwgwCkKCAQztxFEgaYjmuNupC/C"
HZ = os.sysconf("SC_CLK_TCK")


class FakeProc:
    """A /proc with the processes of an environment: docker-init 1, the agent 6, sshd's listener 9, one
    connection (monitor 26, session 28) and what runs in it."""

    def __init__(self, root: Path) -> None:
        self.root = root / "proc"
        self.tmp = root / "tmp"
        self.root.mkdir()
        self.tmp.mkdir()
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        self.add(1, 0, "/usr/sbin/docker-init", now - 100)
        self.add(6, 1, "/usr/bin/python3.11", now - 100)
        self.add(9, 6, "/usr/sbin/sshd", now - 99)

    def add(self, pid: int, ppid: int, exe: str, start: float) -> None:
        folder = self.root / str(pid)
        folder.mkdir()
        fields = ["S", str(ppid), *["0"] * 17, str(int(start * HZ))]
        (folder / "stat").write_text(f"{pid} ({Path(exe).name}) {' '.join(fields)}\n")
        (folder / "exe").symlink_to(exe)
        (folder / "environ").write_bytes(b"SSH_USER_AUTH=" + str(self.tmp / "sshauth.claimed").encode() + b"\0")

    def connection(self, *, connected: float, forked: float) -> None:
        """A login: its sshd pair started CONNECTED seconds from now, its shell forked FORKED seconds from now."""
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        self.add(26, 9, "/usr/sbin/sshd", now + connected)
        self.add(28, 26, "/usr/sbin/sshd", now + connected)
        self.add(29, 28, "/usr/bin/bash", now + forked)
        self.add(40, 29, "/opt/devagent/venv/bin/python3", now + forked + 0.1)

    def auth_file(self, suffix: str, key: str) -> None:
        (self.tmp / f"sshauth.{suffix}").write_text(f"publickey {key}\n")


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path)


def test_the_key_is_the_one_sshd_wrote_between_the_connection_and_the_fork_of_the_session(proc: FakeProc) -> None:
    proc.connection(connected=-1.0, forked=0.5)
    proc.auth_file("aaaaaaaaaaaaaaa", ALICE)
    session = sessions.session_of(40, proc=proc.root, tmp=proc.tmp)
    assert session == sessions.Session(sshd=28, first=29, key=ALICE, candidates=frozenset({ALICE}))


def test_a_file_written_after_the_session_began_does_not_count(proc: FakeProc) -> None:
    proc.connection(connected=-2.0, forked=-1.0)
    proc.auth_file("claimed", OWNER)  # what `printf … > /tmp/sshauth.x; SSH_USER_AUTH=… devagent run` makes
    assert sessions.key_of(40, proc=proc.root, tmp=proc.tmp) is None


def test_two_logins_with_different_keys_in_the_same_moment_are_not_guessed(proc: FakeProc) -> None:
    proc.connection(connected=-1.0, forked=0.5)
    proc.auth_file("aaaaaaaaaaaaaaa", ALICE)
    proc.auth_file("claimed", OWNER)  # named by the session's SSH_USER_AUTH, which is not what decides
    assert sessions.key_of(40, proc=proc.root, tmp=proc.tmp) is None


def test_a_link_or_another_users_file_is_not_read(proc: FakeProc, tmp_path: Path) -> None:
    proc.connection(connected=-1.0, forked=0.5)
    (tmp_path / "elsewhere").write_text(f"publickey {OWNER}\n")
    (proc.tmp / "sshauth.linked").symlink_to(tmp_path / "elsewhere")
    assert sessions.key_of(40, proc=proc.root, tmp=proc.tmp) is None


def test_a_process_with_no_sshd_above_it_has_no_session(proc: FakeProc) -> None:
    proc.add(50, 1, "/usr/bin/bash", time.clock_gettime(time.CLOCK_BOOTTIME))  # a `docker exec`
    assert sessions.session_of(50, proc=proc.root, tmp=proc.tmp) is None


def test_started_by_names_the_person_of_the_key(proc: FakeProc, tmp_path: Path) -> None:
    people = tmp_path / "people.json"
    people.write_text(render_people([Person("me", OWNER, owner=True), Person("alice", ALICE)]))
    proc.connection(connected=-1.0, forked=0.5)
    proc.add(50, 1, "/usr/bin/bash", 0)
    proc.auth_file("aaaaaaaaaaaaaaa", ALICE)

    def by(pid: int, file: Path = people) -> str | None:
        return sessions.started_by(pid, people_file=file, proc=proc.root, tmp=proc.tmp)

    assert by(40) == "alice"
    assert by(50) == "unknown (not started from an ssh login)"
    assert by(40, tmp_path / "missing.json") is None  # not an environment: nothing is said
    people.write_text(render_people([Person("me", OWNER, owner=True)]))
    assert by(40) == f"a key no longer invited ({fingerprint(ALICE.split()[1])})"
    (proc.tmp / "sshauth.bbbbbbbbbbbbbbb").write_text(f"publickey {OWNER}\n")  # a second login, same moment
    assert by(40) == "unknown (the ssh login's key could not be told)"


def test_ending_a_persons_sessions_signals_her_connection_and_what_runs_in_it_only(proc: FakeProc) -> None:
    proc.connection(connected=-1.0, forked=0.5)
    proc.auth_file("aaaaaaaaaaaaaaa", ALICE)
    signalled: list[tuple[int, int]] = []
    assert sessions.end_sessions([OWNER], proc=proc.root, tmp=proc.tmp, kill=lambda *a: signalled.append(a)) == []
    assert signalled == []
    assert sessions.end_sessions([ALICE + " alice"], proc=proc.root, tmp=proc.tmp,
                                 kill=lambda *a: signalled.append(a)) == [28]
    assert sorted(signalled) == [(pid, signal.SIGTERM) for pid in (26, 28, 29, 40)]  # never the listener, 9


def test_a_session_that_may_have_logged_in_with_a_removed_key_ends_too(proc: FakeProc) -> None:
    proc.connection(connected=-1.0, forked=0.5)
    proc.auth_file("aaaaaaaaaaaaaaa", ALICE)
    proc.auth_file("bbbbbbbbbbbbbbb", OWNER)  # two logins in the same moment: whose is whose cannot be told
    signalled: list[tuple[int, int]] = []
    assert sessions.end_sessions([ALICE], proc=proc.root, tmp=proc.tmp, kill=lambda *a: signalled.append(a)) == [28]
