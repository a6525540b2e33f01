"""`devagent share` and `unshare`: teammates who may log in to an environment, each with their own key.

Where invitations live: devagent's record in DEVAGENT_HOME (``invitations/NAME.json``, the source) and a copy in
the container — ``/etc/devagent/authorized_keys`` and ``people.json``, root's files the login user can read but not
change — written with the engine's archive upload (`docker cp`), which works on a created, running or stopped
container alike, with no capability inside. `up` gives every container it creates the record's people, so they
survive ``--recreate``; `down` removes the record with the environment.

Who owns an environment is a label of its container (the owner's key and name, set by `up`): the owner is never
in the record and can never be unshared.

    sharing = Sharing(engine=Engine(), paths=Paths.from_environ())
    sharing.share("exp", key_text, source="alice.pub", person="alice")
    print(sharing.export("exp", "alice"))          # what Alice pastes on her machine
    sharing.unshare("exp", "alice")                 # her key goes at once, her sessions end
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import string
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from devagent.control.atomic import FileLock, atomic_write, ensure_private_dir
from devagent.control.engine.engine_api import EngineApi
from devagent.control.engine.engine_data import ArchiveFile, ContainerInfo
from devagent.control.paths import Paths
from devagent.control.sites.site import SiteName
from devagent.control.ssh import keys, known_hosts, managed_config
from devagent.core import layout
from devagent.core.people import (
    PERSON_RE,
    Person,
    check_public_key,
    job_export_refused,
    person_from_key_file,
    render_authorized_keys,
    render_export,
    render_people,
    validate_person,
)
from devagent.core.spec import LABEL_PREFIX, USER_RE, validate_name
from devagent.core.ssh.host_entry import valid_proxy_jump
from devagent.errors import DevagentError, ExitStatus

OWNER_KEY_LABEL = "devagent.owner-key"  # "TYPE BASE64" of the key `up` was run with
OWNER_NAME_LABEL = "devagent.owner-name"  # the login name of whoever ran `up`, on the machine devagent ran on
LOCK_TIMEOUT = 900.0  # as long as `up` may hold the environment (an image build)


def owner_name() -> str:
    """The name the owner goes by in people.json and the notebook: their login name where devagent runs (made
    into a valid person name)."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = os.environ.get("USER", "")
    allowed = string.ascii_lowercase + string.digits + "_.-"
    cleaned = "".join(c if c in allowed else "-" for c in name.lower()).lstrip("0123456789_.-")[:32]
    return cleaned if PERSON_RE.fullmatch(cleaned) else "owner"


def read_invited(paths: Paths, name: str) -> list[Person]:
    """The teammates invited to NAME, in the order they were invited (none when there is no record)."""
    try:
        data = json.loads(paths.invitations(name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise DevagentError(f"cannot read the invitations of {name!r} ({paths.invitations(name)}): {exc}",
                            status=ExitStatus.USAGE,
                            hint="fix or remove the file; `devagent share` then writes it again") from None
    return [Person(name=str(p["name"]), key=str(p["key"])) for p in data.get("people", [])]


def _write_invited(paths: Paths, name: str, people: list[Person]) -> None:
    path = paths.invitations(name)
    if not people:
        path.unlink(missing_ok=True)
        return
    ensure_private_dir(path.parent)
    data = {"version": 1, "environment": name, "people": [{"name": p.name, "key": p.key} for p in people]}
    atomic_write(path, (json.dumps(data, indent=1) + "\n").encode(), mode=0o600)


def forget(paths: Paths, name: str) -> bool:
    """Remove NAME's invitations record (`down`); True if there was one."""
    path = paths.invitations(name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def container_files(owner: Person, invited: list[Person]) -> list[ArchiveFile]:
    """authorized_keys and people.json for a container, root's and world-readable (sshd's StrictModes)."""
    people = [owner, *invited]
    return [ArchiveFile(layout.AUTHORIZED_KEYS, render_authorized_keys(people).encode(), 0o644),
            ArchiveFile(layout.PEOPLE, render_people(people).encode(), 0o644)]


@dataclass(frozen=True)
class Shared:
    person: Person
    kind: str  # ED25519, ECDSA, RSA
    added: bool  # False: she was invited with this key already
    not_noted: str | None = None  # why the notebook has no entry for it (None: it has, or nothing runs to write it)


class Sharing:
    """Invitations to the environments of one engine and one DEVAGENT_HOME."""

    def __init__(self, *, engine: EngineApi, paths: Paths, jump: str | None = None,
                 job: tuple[str, str, str] | None = None) -> None:
        """JUMP: the ProxyJump a teammate's entry needs, for an environment on a server (devagent's record names
        it); None for one on this machine's engine. JOB: (job id, partition, login node) of an environment in a
        Slurm job, whose alias no teammate's entry can copy (`export` says why)."""
        self.engine, self.paths, self.jump, self.job = engine, paths, jump, job

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[FileLock]:
        """The environment's own lock (provision.py): no `up` or `down` of it runs meanwhile. When the command
        fails and there is no container NAME, the lock file goes too: `share` of a name that does not exist
        leaves nothing behind (as a failed `up` does)."""
        with FileLock(self.paths.env_lock(name), timeout=LOCK_TIMEOUT, purpose=f"environment {name!r}",
                      status=ExitStatus.CONFLICT) as lock:
            try:
                yield lock
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one the user sees
                    if self.engine.get(name) is None:
                        lock.discard()
                raise

    def _container(self, name: str) -> ContainerInfo:
        info = self.engine.get(validate_name(name))
        if info is None or info.labels.get("devagent.managed") != "true":
            raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                                hint="`devagent ls` lists the environments")
        return info

    def _mine(self, info: ContainerInfo, command: str) -> ContainerInfo:
        """INFO, if the caller owns it: a name whose environment is gone may now be someone else's."""
        if not owned_by(info, caller_keys(self.paths, info.name)):
            raise not_owned(info, command=command)
        return info

    def _owner(self, info: ContainerInfo) -> Person:
        key = info.labels.get(OWNER_KEY_LABEL)
        if not key:
            raise DevagentError(f"environment {info.name!r} was made by an older devagent that did not record its "
                                "owner", status=ExitStatus.CONFLICT,
                                hint=f"recreate it once: devagent up {info.name} --recreate (files are kept)")
        return Person(name=info.labels.get(OWNER_NAME_LABEL) or "owner", key=key, owner=True)

    def _deliver(self, info: ContainerInfo, owner: Person, invited: list[Person]) -> None:
        self.engine.put_files(info.id, layout.CONFIG_DIR, container_files(owner, invited))

    def share(self, name: str, key_text: str, *, source: str, person: str | None = None) -> Shared:
        """Let PERSON log in to NAME with the public key KEY_TEXT (read from SOURCE, named in messages)."""
        key = check_public_key(key_text, source=source)
        keys.check_loadable(key.line, source=source)
        who = validate_person(person) if person is not None else person_from_key_file(source)
        with self._lock(name):
            info = self._mine(self._container(name), "share")
            owner = self._owner(info)
            if who == owner.name:
                raise DevagentError(f"{who!r} is the owner of {name!r}", status=ExitStatus.USAGE,
                                    hint="give the teammate another name: --as NAME")
            if key.line == owner.key:
                raise DevagentError(f"{source} is the owner's own key", status=ExitStatus.USAGE,
                                    hint="each teammate logs in with a key of their own")
            invited = read_invited(self.paths, name)
            for p in invited:
                if p.name == who and p.key == key.line:
                    return Shared(person=p, kind=key.kind, added=False)
                if p.name == who:
                    raise DevagentError(f"{who} is invited to {name!r} with another key", status=ExitStatus.CONFLICT,
                                        hint=f"to replace it: devagent unshare {name} {who}, then share again")
                if p.key == key.line:
                    raise DevagentError(f"{source} is already invited to {name!r}, as {p.name}",
                                        status=ExitStatus.CONFLICT, hint="each person gets one name and one key")
            added = Person(name=who, key=key.line)
            self._change(info, owner, invited, [*invited, added])
            return Shared(person=added, kind=key.kind, added=True,
                          not_noted=self._note(info, f"{who} invited ({key.kind} {key.fingerprint})"))

    def unshare(self, name: str, person: str) -> tuple[int, str | None]:
        """Take PERSON's key out of NAME at once and end the ssh sessions that logged in with it. Returns how many
        sessions were ended, and why the notebook does not say so (None when it does)."""
        who = validate_person(person)
        with self._lock(name):
            info = self._mine(self._container(name), "unshare")
            owner = self._owner(info)
            invited = read_invited(self.paths, name)
            gone = [p for p in invited if p.name == who]
            if not gone:
                raise DevagentError(f"{who} is not invited to {name!r}", status=ExitStatus.NOT_FOUND,
                                    hint=f"`devagent ls` shows who is; `devagent share {name} --key FILE` invites")
            self._change(info, owner, invited, [p for p in invited if p.name != who])
            ended = self._end_sessions(info, [p.key for p in gone])
            return ended, self._note(info, f"{who} may no longer log in ({ended} session{'s' * (ended != 1)} ended)")

    def _change(self, info: ContainerInfo, owner: Person, before: list[Person], after: list[Person]) -> None:
        """The container first (what sshd reads), then the record; the container back if the record fails."""
        self._deliver(info, owner, after)
        try:
            _write_invited(self.paths, info.name, after)
        except OSError as exc:
            self._deliver(info, owner, before)
            raise DevagentError(f"cannot write {self.paths.invitations(info.name)}: {exc.strerror or exc}",
                                status=ExitStatus.USAGE, hint="make DEVAGENT_HOME writable, then run it again"
                                ) from None

    def _note(self, info: ContainerInfo, change: str) -> str | None:
        """Append CHANGE and who may log in now to the running environment's notebook; why not, when it failed."""
        if not self._running(info):
            return None  # the header of the next notebook, and `devagent ls`, say who is invited
        code, output = self.engine.exec_as(info.id, info.labels.get("devagent.user") or "dev",
                                           ["devagent", "people-entry", change])
        return None if code == 0 else (output.strip().splitlines() or [f"exit status {code}"])[0]

    def _running(self, info: ContainerInfo) -> bool:
        fresh = self.engine.get(info.id)
        return fresh is not None and fresh.status == "running"

    def _end_sessions(self, info: ContainerInfo, keys: list[str]) -> int:
        if not self._running(info):
            return 0  # a stopped container has no sessions
        user = info.labels.get("devagent.user") or "dev"
        code, output = self.engine.exec_as(info.id, user, ["devagent", "end-sessions", *keys])
        if code != 0:
            raise DevagentError("the key is removed, but the sessions that logged in with it could not be ended: "
                                f"{output.strip()}",
                                status=ExitStatus.CONTAINER_FAILED,
                                hint=f"restart the environment to end every session: docker restart {info.name}")
        return len(output.split())

    def export(self, name: str, person: str) -> str:
        """What PERSON pastes on her machine: a Host block and the line that pins the host key."""
        who = validate_person(person)
        if self.job is not None and self.jump is not None:  # before the engine: the job may have ended
            job_id, partition, login = self.job
            raise job_export_refused(name=name, job_id=job_id, partition=partition, login=login,
                                     proxy_jump=self.jump)
        info = self._mine(self._container(name), "share --export")
        found = next((p for p in read_invited(self.paths, name) if p.name == who), None)
        if found is None:
            raise DevagentError(f"{who} is not invited to {name!r}", status=ExitStatus.NOT_FOUND,
                                hint=f"invite her first: devagent share {name} --key {who}.pub")
        if info.host_port is None:
            raise DevagentError(f"environment {name!r} is not running, so it has no port", status=ExitStatus.USAGE,
                                hint=f"start it: devagent up {name}")
        host_key = known_hosts.lookup(self.paths.known_hosts, name)
        if host_key is None:
            raise DevagentError(f"no host key is pinned for {name!r} in {self.paths.known_hosts}",
                                status=ExitStatus.LOGIN_FAILED, hint=f"run `devagent up {name}` to pin it again")
        user = info.labels.get("devagent.user") or "dev"
        _check_label(info, "devagent.user", user, "a login name", valid=bool(USER_RE.fullmatch(user)))
        jump = self.jump or jump_host(info)
        if not self.jump and jump is not None:
            _check_label(info, "devagent.server", jump, "a server as ProxyJump names it",
                         valid=valid_proxy_jump(jump))
        return render_export(name=name, person=found, port=info.host_port, user=user, host_key=host_key,
                             proxy_jump=jump)


def _check_label(info: ContainerInfo, label: str, value: str, what: str, *, valid: bool) -> None:
    """Refuse a label that devagent did not write: its value goes into a Host block a teammate pastes into her
    ssh config, where a line break starts an option of the attacker's (ProxyCommand runs on her machine)."""
    if not valid:
        raise DevagentError(f"environment {info.name!r} has a {label} label that is not {what} ({value!r}): its "
                            "labels are not devagent's, so no Host block is printed for it",
                            status=ExitStatus.CONFLICT,
                            hint=f"recreate it with devagent (devagent up {info.name} --recreate), or ask who "
                            "changed its labels")


def jump_host(info: ContainerInfo) -> str | None:
    """The server a teammate jumps through, from a `devagent.server` label; None without one. Environments made
    with `up --host` are known by devagent's records instead, which the CLI passes as Sharing(jump=…)."""
    server = info.labels.get("devagent.server")
    return server or None


def invited_names(paths: Paths, name: str) -> list[str]:
    """For `ls`: who is invited to NAME (an unreadable record shows as nobody, `share` reports it)."""
    try:
        return [p.name for p in read_invited(paths, name)]
    except DevagentError:
        return []


def who_may_log_in(paths: Paths, name: str, public_line: str) -> tuple[Person, list[Person]]:
    """For `up`: the owner (this machine's login name and the key `up` runs with) and NAME's invited teammates."""
    return owner_person(public_line), read_invited(paths, name)


def owner_labels(public_line: str) -> dict[str, str]:
    """The container labels that say who owns it (`up` sets them)."""
    owner = owner_person(public_line)
    return {OWNER_KEY_LABEL: owner.key, OWNER_NAME_LABEL: owner.name}


def caller_keys(paths: Paths, name: str) -> frozenset[str]:
    """The keys (``TYPE BASE64``) this DEVAGENT_HOME runs `up` of NAME with: its own key, and the key of the
    IdentityFile its alias NAME names (`up --identity`). Empty when it has neither."""
    found: set[str] = set()
    own_public = paths.identity.with_name(paths.identity.name + ".pub")
    with contextlib.suppress(OSError, DevagentError):  # read as keys.ensure_keypair reads it for `up`
        found.add(" ".join((own_public.read_text() if own_public.exists()
                            else keys.public_line(paths.identity)).split()[:2]))
    with contextlib.suppress(OSError, DevagentError):  # as `up --identity` derived it
        identity = managed_config.options(paths.managed_ssh_config, name).get("identityfile", "").strip('"')
        if identity and Path(identity) != paths.identity:
            found.add(" ".join(keys.public_line(Path(identity)).split()[:2]))
    return frozenset(found)


def owned_by(info: ContainerInfo, caller: Collection[str]) -> bool:
    """Whether the owner recorded on the container (its owner-key label, set by `up`) is one of the CALLER's
    keys. A container of a devagent older than that label has no owner to compare: it counts as the caller's,
    as it always did."""
    key = info.labels.get(OWNER_KEY_LABEL)
    return not key or " ".join(key.split()[:2]) in caller


def not_owned(info: ContainerInfo, *, command: str, server: str | None = None,
              details: str | None = None) -> DevagentError:
    """The refusal of COMMAND on a container someone else owns (the name now belongs to another environment)."""
    key = info.labels.get(OWNER_KEY_LABEL, "")
    label_name = info.labels.get(OWNER_NAME_LABEL, "")
    who = label_name if PERSON_RE.fullmatch(label_name) else "someone else"
    try:
        fingerprint = f"key {Person(who, key).fingerprint}"
    except (IndexError, ValueError):
        fingerprint = "a key that is not yours"
    on = SiteName(server or None).on
    return DevagentError(
        f"environment {info.name!r}{on} belongs to {who} ({fingerprint}), not to you: `devagent {command}` "
        "leaves it alone", status=ExitStatus.CONFLICT, details=details,
        hint=f"ask its owner; if it is yours, made with another DEVAGENT_HOME or --identity, run `devagent "
        f"{command}` from there")


def owner_person(public_line: str) -> Person:
    """The owner as `up` records them: this machine's login name and the key `up` runs with."""
    return Person(name=owner_name(), key=" ".join(public_line.split()[:2]), owner=True)


def callers_own(info: ContainerInfo, paths: Paths) -> bool | None:
    """For `ls` and `doctor`: whether the environment in container INFO is the caller's (`owned_by` the keys this
    DEVAGENT_HOME runs `up` of it with), None when no owner was recorded (made by an older devagent: it could be
    anyone's; `owned_by` counts it as the caller's)."""
    if not info.labels.get(OWNER_KEY_LABEL):
        return None
    return owned_by(info, caller_keys(paths, info.labels.get(f"{LABEL_PREFIX}name") or info.name))
