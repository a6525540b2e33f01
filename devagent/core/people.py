"""Who may log in to an environment: its owner and the teammates invited with `devagent share`, as plain data.

Pure: no I/O, no clock, no environment read. A teammate's public key is checked here before anything is written:
exactly one bare key line (no `command=`, `from=` or any other authorized_keys option), of a type the hardened
sshd accepts, with a key blob that parses and an RSA modulus of at least 3072 bits. Every rejection is a
DevagentError(USAGE) that says why and names the fix.

What the container gets, written by `up` and by `share`/`unshare` (devagent/control/features/teammates.py):
``/etc/devagent/authorized_keys`` — one bare key per person, devagent's own name for them as the comment — and
``/etc/devagent/people.json``, which maps each key's fingerprint to that name, for the notebook's "started by".

>>> key = check_public_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU a@b")
>>> key.kind, key.fingerprint
('ED25519', 'SHA256:yBREWhwkPQcU6OD/RZ0us3d8uoII9UWAbvi6MrF6fPo')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from devagent.core.markdown import code, escape, escape_heading, table
from devagent.core.notebook import entry, heading
from devagent.core.spec import NAME_RE, USER_RE
from devagent.core.ssh.host_entry import valid_proxy_jump
from devagent.errors import DevagentError, ExitStatus

MIN_RSA_BITS = 3072
# Key type (the first field of a public key line) -> how sshd and ssh-keygen name it.
KEY_KINDS = {
    "ssh-ed25519": "ED25519",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
}
_ECDSA_CURVES = {"ecdsa-sha2-nistp256": "nistp256", "ecdsa-sha2-nistp384": "nistp384",
                 "ecdsa-sha2-nistp521": "nistp521"}
# The one definition of a teammate's name: it becomes an authorized_keys comment, a JSON value and a notebook cell.
PERSON_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
PERSON_RULE = "use 1-32 characters: lowercase letters, digits, '_', '.', '-', starting with a letter"
_KEY_HINT = "make one with `ssh-keygen -t ed25519` and pass its .pub file"


def _usage(message: str, hint: str = _KEY_HINT) -> DevagentError:
    return DevagentError(message, hint=hint, status=ExitStatus.USAGE)


@dataclass(frozen=True)
class PublicKey:
    """One checked public key: its type and base64 blob as they go into authorized_keys (no options, no
    comment), the comment it came with, and what people and sshd call it."""

    type: str
    blob: str  # base64
    comment: str = ""
    bits: int | None = None  # RSA only

    @property
    def line(self) -> str:
        """``TYPE BASE64``: how the key is compared, pinned and written."""
        return f"{self.type} {self.blob}"

    @property
    def kind(self) -> str:
        return KEY_KINDS[self.type]

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ssh-keygen -l and sshd's log print it."""
        return fingerprint(self.blob)


def fingerprint(blob_base64: str) -> str:
    """The SHA-256 fingerprint of a key blob, as OpenSSH prints it.

    >>> fingerprint("AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU")
    'SHA256:yBREWhwkPQcU6OD/RZ0us3d8uoII9UWAbvi6MrF6fPo'
    """
    digest = hashlib.sha256(base64.b64decode(blob_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _strings(blob: bytes) -> list[bytes]:
    """The SSH wire-format strings (uint32 length, then bytes) of BLOB; ValueError when it does not split."""
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise ValueError("truncated length")
        n = int.from_bytes(blob[i:i + 4], "big")
        if i + 4 + n > len(blob):
            raise ValueError("truncated field")
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _check_blob(key_type: str, blob: bytes) -> int | None:
    """Check that BLOB is a KEY_TYPE key; return an RSA key's size in bits (None for the others)."""
    parts = _strings(blob)
    if not parts or parts[0].decode(errors="replace") != key_type:
        raise ValueError("the key's data names another key type than its line")
    if key_type == "ssh-rsa":
        if len(parts) != 3:
            raise ValueError("an RSA key has an exponent and a modulus")
        return int.from_bytes(parts[2], "big").bit_length()
    if key_type in _ECDSA_CURVES:
        if len(parts) != 3 or parts[1].decode(errors="replace") != _ECDSA_CURVES[key_type] or not parts[2]:
            raise ValueError("the ECDSA curve or point is missing or wrong")
    elif key_type == "ssh-ed25519":
        if len(parts) != 2 or len(parts[1]) != 32:
            raise ValueError("an ed25519 key is 32 bytes")
    elif key_type == "sk-ssh-ed25519@openssh.com" and (len(parts) != 3 or len(parts[1]) != 32):
        raise ValueError("a security-key ed25519 key is 32 bytes and an application")
    return None


def check_public_key(text: str, *, source: str = "the key") -> PublicKey:
    """TEXT (a .pub file's content) as one checked PublicKey; DevagentError(USAGE) saying why it is refused.

    >>> check_public_key('command="rm -rf ~" ssh-ed25519 AAAA x', source="alice.pub")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: alice.pub has options before the key (command=...): devagent accepts a bare \
key and adds no options
      hint: pass the plain public key line (TYPE BASE64 [comment]), as ssh-keygen wrote it
    """
    if "PRIVATE KEY" in text:
        raise _usage(f"{source} is a private key: never copy a private key",
                     "pass her public key, the .pub file beside it (ssh-keygen -y -f KEY prints it)")
    if "\0" in text:
        raise _usage(f"{source} holds a NUL byte: it is not a public key file")
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise _usage(f"{source} holds no public key")
    if len(lines) > 1:
        raise _usage(f"{source} holds {len(lines)} lines: exactly one public key line is expected",
                     "invite one key at a time (each person gets their own --as name)")
    line = lines[0].strip()
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in line):
        raise _usage(f"{source} holds a control character (a carriage return?): one plain line is expected",
                     "pass the public key line as ssh-keygen wrote it")
    fields = line.split(maxsplit=2)
    key_type = fields[0]
    if key_type not in KEY_KINDS:
        if any(f in KEY_KINDS for f in line.replace('"', " ").split()[1:]) or "=" in key_type:
            raise _usage(f"{source} has options before the key ({key_type.split('=')[0][:20]}=...): devagent "
                         "accepts a bare key and adds no options",
                         "pass the plain public key line (TYPE BASE64 [comment]), as ssh-keygen wrote it")
        if key_type == "sk-ecdsa-sha2-nistp256@openssh.com" or key_type.startswith("ssh-"):  # ssh-dss too
            raise _usage(f"{source} is a {key_type} key, which is not accepted: use ed25519, ecdsa, or rsa of at "
                         f"least {MIN_RSA_BITS} bits")
        raise _usage(f"{source} is not an OpenSSH public key line (it starts with {key_type[:40]!r})")
    if len(fields) < 2:
        raise _usage(f"{source} has a key type but no key data")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        bits = _check_blob(key_type, blob)
    except (binascii.Error, ValueError) as exc:
        raise _usage(f"{source} is not a valid {KEY_KINDS[key_type]} public key: {exc}") from None
    if bits is not None and bits < MIN_RSA_BITS:
        raise _usage(f"{source} is an RSA key of {bits} bits; at least {MIN_RSA_BITS} are required",
                     "make a new one: ssh-keygen -t ed25519 (or ssh-keygen -t rsa -b 4096)")
    return PublicKey(type=key_type, blob=fields[1], comment=fields[2] if len(fields) > 2 else "", bits=bits)


def validate_person(name: str) -> str:
    """Return NAME if it may name a teammate.

    >>> validate_person("alice")
    'alice'
    """
    if not PERSON_RE.fullmatch(name):
        raise DevagentError(f"invalid name {name!r} for a teammate", hint=PERSON_RULE, status=ExitStatus.USAGE)
    return name


def person_from_key_file(file_name: str) -> str:
    """The name `share --key FILE` gives when --as is not given: the file's name without `.pub`.

    >>> person_from_key_file("alice.pub")
    'alice'
    >>> person_from_key_file("id_ed25519.pub")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: cannot tell whose key id_ed25519.pub is from its name
      hint: name her: --as alice
    """
    stem = file_name.rsplit("/", 1)[-1].removesuffix(".pub")
    if stem.startswith("id_") or not PERSON_RE.fullmatch(stem):
        raise DevagentError(f"cannot tell whose key {file_name} is from its name", hint="name her: --as alice",
                            status=ExitStatus.USAGE)
    return stem


@dataclass(frozen=True)
class Person:
    """Someone who may log in: NAME, their key as ``TYPE BASE64``, and whether they own the environment."""

    name: str
    key: str
    owner: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.split()[1])

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "key": self.key, "fingerprint": self.fingerprint,
                "role": "owner" if self.owner else "invited"}


def render_authorized_keys(people: Iterable[Person]) -> str:
    """authorized_keys for PEOPLE: bare keys (no options), devagent's name for each person as the comment.

    >>> print(render_authorized_keys([Person("me", "ssh-ed25519 AAAA", owner=True), Person("bo", "ssh-rsa BBBB")]),
    ...       end="")
    ssh-ed25519 AAAA me
    ssh-rsa BBBB bo
    """
    return "".join(f"{p.key} {p.name}\n" for p in people)


def render_people(people: Iterable[Person]) -> str:
    """people.json: what the container knows of who may log in (fingerprint -> name), one JSON object."""
    return json.dumps({"version": 1, "people": [p.to_dict() for p in people]}, indent=1) + "\n"


def parse_people(text: str) -> list[Person]:
    """Read what ``render_people`` wrote; ValueError on anything else.

    >>> parse_people(render_people([Person("me", "ssh-ed25519 AAAA", owner=True)]))
    [Person(name='me', key='ssh-ed25519 AAAA', owner=True)]
    """
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValueError("people.json: expected {\"people\": [...]}")
    out = []
    for row in data["people"]:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not isinstance(row.get("key"), str):
            raise ValueError("people.json: each person has a name and a key")
        out.append(Person(name=row["name"], key=row["key"], owner=row.get("role") == "owner"))
    return out


def name_for(people: Sequence[Person], key_fingerprint: str) -> str | None:
    """The name of the person whose key has KEY_FINGERPRINT, or None."""
    return next((p.name for p in people if p.fingerprint == key_fingerprint), None)


def who(people: Sequence[Person]) -> str:
    """People as the notebook header lists them.

    >>> who([Person("me", "k1", owner=True), Person("alice", "k2"), Person("bo", "k3")])
    'me (owner), alice, bo'
    """
    return ", ".join(f"{p.name} (owner)" if p.owner else p.name for p in people)


def identity_hint(key_type: str) -> str:
    """The private key file ssh looks for by default for a key of KEY_TYPE.

    >>> identity_hint("ssh-rsa"), identity_hint("ecdsa-sha2-nistp256"), identity_hint("ssh-ed25519")
    ('~/.ssh/id_rsa', '~/.ssh/id_ecdsa', '~/.ssh/id_ed25519')
    """
    if key_type == "ssh-rsa":
        return "~/.ssh/id_rsa"
    if key_type.startswith("ecdsa"):
        return "~/.ssh/id_ecdsa"
    if key_type.startswith("sk-"):
        return "~/.ssh/id_ed25519_sk"
    return "~/.ssh/id_ed25519"


def render_export(*, name: str, person: Person, port: int, user: str, host_key: str,
                  proxy_jump: str | None = None) -> str:
    """What a teammate pastes on her machine: a Host block for the environment, and the known_hosts line that pins
    its host key under the alias — she never has to trust a key on first use.

    >>> print(render_export(name="exp", person=Person("alice", "ssh-ed25519 AAAA"), port=49153, user="dev",
    ...                     host_key="ssh-ed25519 HOSTKEY devagent-host-exp"))  # doctest: +NORMALIZE_WHITESPACE
    # devagent environment exp, for alice: append to ~/.ssh/config
    Host exp
      HostName 127.0.0.1
      Port 49153
      User dev
      HostKeyAlias exp
      StrictHostKeyChecking yes
      IdentitiesOnly yes
      # IdentityFile ~/.ssh/id_ed25519    (the private key of the public key you sent; uncomment if elsewhere)
    <BLANKLINE>
    # and append this line to ~/.ssh/known_hosts (it pins the environment's host key):
    exp ssh-ed25519 HOSTKEY
    """
    _check_export(name=name, person=person, port=port, user=user, host_key=host_key, proxy_jump=proxy_jump)
    lines = [
        f"# devagent environment {name}, for {person.name}: append to ~/.ssh/config",
        f"Host {name}",
        "  HostName 127.0.0.1",
        f"  Port {port}",
        f"  User {user}",
        f"  HostKeyAlias {name}",
        "  StrictHostKeyChecking yes",
        "  IdentitiesOnly yes",
        *([f"  ProxyJump {proxy_jump}"] if proxy_jump else []),
        f"  # IdentityFile {identity_hint(person.key.split()[0])}    (the private key of the public key you sent; "
        "uncomment if elsewhere)",
        "",
        "# and append this line to ~/.ssh/known_hosts (it pins the environment's host key):",
        f"{name} {' '.join(host_key.split()[:2])}",
    ]
    return "\n".join(lines) + "\n"


_HOST_KEY_RE = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}")


def _check_export(*, name: str, person: Person, port: int, user: str, host_key: str,
                  proxy_jump: str | None) -> None:
    """Refuse (CONFLICT) any value the teammate's ssh config would read as more than it is: a line break in a
    value starts a new option there (``ProxyCommand``, ``LocalCommand`` run commands on her machine)."""
    host_key_fields = " ".join(host_key.split()[:2]) if isinstance(host_key, str) else host_key
    problems = [
        ("environment name", name, isinstance(name, str) and NAME_RE.fullmatch(name)),
        ("teammate name", person.name, isinstance(person.name, str) and PERSON_RE.fullmatch(person.name)),
        ("teammate key", person.key, isinstance(person.key, str) and person.key.split(" ")[0] in KEY_KINDS),
        ("port", port, isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535),
        ("login user", user, isinstance(user, str) and USER_RE.fullmatch(user)),
        ("host key", host_key, isinstance(host_key_fields, str) and _HOST_KEY_RE.fullmatch(host_key_fields)),
        ("ProxyJump", proxy_jump, proxy_jump is None or valid_proxy_jump(proxy_jump)),
    ]
    for what, value, ok in problems:
        if not ok:
            raise DevagentError(f"refusing to print a Host block with the {what} {value!r}: a teammate's ssh "
                                "config would read it as more than one value", status=ExitStatus.CONFLICT,
                                hint="recreate the environment (devagent up NAME --recreate) so that devagent "
                                "writes its labels again")


def job_export_refused(*, name: str, job_id: str, partition: str, login: str, proxy_jump: str) -> DevagentError:
    """Why `share --export` prints nothing for an environment in a Slurm job (CONFLICT): its alias reaches it
    through a job check, a ProxyCommand (core/ssh/job_hop.py), and a command line is never passed on (it would run
    on the teammate's machine, from someone else's file). LOGIN: the login node as the user names it; PROXY_JUMP:
    the two hops to the node ('LOGIN,NODE').

    >>> print(job_export_refused(name="exp", job_id="4812", partition="gpu", login="hpc",
    ...                         proxy_jump="hpc,gpu07"))
    no Host block for a teammate: environment 'exp' runs in Slurm job 4812, and its alias reaches it through a \
job check (a ProxyCommand that asks Slurm first), which devagent never passes on: it would run on her machine
      hint: she makes her own environment in her own job (devagent up NAME --host hpc --slurm gpu), or, if she \
has a login on the cluster and node gpu07 lets her in, writes ProxyJump hpc,gpu07 into her own Host block
    """
    node = proxy_jump.rpartition(",")[2]
    return DevagentError(f"no Host block for a teammate: environment {name!r} runs in Slurm job {job_id}, and its "
                         "alias reaches it through a job check (a ProxyCommand that asks Slurm first), which "
                         "devagent never passes on: it would run on her machine", status=ExitStatus.CONFLICT,
                         hint=f"she makes her own environment in her own job (devagent up NAME --host {login} "
                         f"--slurm {partition}), or, if she has a login on the cluster and node {node} lets her "
                         f"in, writes ProxyJump {proxy_jump} into her own Host block")


def render_people_entry(people: Sequence[Person], change: str, when: datetime) -> str:
    """The notebook entry `share` and `unshare` append: what changed, and who may log in from now on.

    >>> print(render_people_entry([Person("me", "ssh-ed25519 AAAA", owner=True)], "alice removed",
    ...                           datetime(2026, 12, 1, 9, 30)), end="")
    <BLANKLINE>
    ## 2026-12-01 09:30 · people · alice removed
    | who may log in | key |
    |---|---|
    | me (owner) | ED25519 `SHA256:cJ6AyISHokEeHuTfufIqhhSS0gxHZRUMDHlKvXD4FHw` |
    """
    rows = [[f"{escape(p.name)} (owner)" if p.owner else escape(p.name),
             f"{KEY_KINDS.get(p.key.split()[0], '?')} {code(p.fingerprint)}"] for p in people]
    return entry(heading(when, "people", escape_heading(change)), table(["who may log in", "key"], rows))
