"""A teammate's public key is checked before it reaches authorized_keys; what the container and Alice get."""

from __future__ import annotations

import base64
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.people import (
    Person,
    check_public_key,
    identity_hint,
    name_for,
    parse_people,
    person_from_key_file,
    render_authorized_keys,
    render_export,
    render_people,
    render_people_entry,
    validate_person,
    who,
)
from devagent.core.ssh.job_hop import JobCheck, proxy_command
from devagent.errors import DevagentError, ExitStatus


def public_line(key: object, comment: str = "alice@laptop") -> str:
    data = key.public_key().public_bytes(serialization.Encoding.OpenSSH,  # type: ignore[attr-defined]
                                         serialization.PublicFormat.OpenSSH)
    return f"{data.decode()} {comment}"


ED25519 = public_line(ed25519.Ed25519PrivateKey.generate())


def wire(key_type: str, *fields: bytes) -> str:
    """A key line whose blob is KEY_TYPE then FIELDS in SSH wire format (uint32 length, then the bytes)."""
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (key_type.encode(), *fields))
    return f"{key_type} {base64.b64encode(blob).decode()} alice@laptop"


def refusal(text: str) -> DevagentError:
    with pytest.raises(DevagentError) as caught:
        check_public_key(text, source="alice.pub")
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.hint
    return caught.value


class TestKeysThatAreAccepted:
    def test_an_ed25519_key_keeps_its_type_and_data_and_drops_nothing_else(self) -> None:
        key = check_public_key(ED25519 + "\n")
        assert key.line == " ".join(ED25519.split()[:2])
        assert (key.kind, key.comment) == ("ED25519", "alice@laptop")

    def test_the_fingerprint_is_the_one_ssh_keygen_prints(self, tmp_path: Path) -> None:
        (tmp_path / "k.pub").write_text(ED25519 + "\n")
        printed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
        assert check_public_key(ED25519).fingerprint == printed

    @pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
    def test_ecdsa_keys_on_each_nist_curve(self, curve: ec.EllipticCurve) -> None:
        assert check_public_key(public_line(ec.generate_private_key(curve))).kind == "ECDSA"

    def test_an_rsa_key_of_3072_bits(self) -> None:
        key = check_public_key(public_line(rsa.generate_private_key(public_exponent=65537, key_size=3072)))
        assert (key.kind, key.bits) == ("RSA", 3072)

    def test_a_file_with_windows_line_endings_and_blank_lines_around_the_key(self) -> None:
        assert check_public_key(f"\r\n{ED25519}\r\n\r\n").line == " ".join(ED25519.split()[:2])

    def test_a_tab_between_the_fields_is_whitespace_not_a_control_character(self) -> None:
        key_type, blob, _ = ED25519.split()
        assert check_public_key(f"{key_type}\t{blob}\talice").line == f"{key_type} {blob}"

    def test_a_comment_of_several_words_is_kept_whole(self) -> None:
        key_type, blob, _ = ED25519.split()
        key = check_public_key(f"{key_type} {blob} alice on her laptop")
        assert (key.line, key.comment) == (f"{key_type} {blob}", "alice on her laptop")

    def test_a_key_without_a_comment(self) -> None:
        assert check_public_key(" ".join(ED25519.split()[:2])).comment == ""


GENERATE = "make one with `ssh-keygen -t ed25519` and pass its .pub file"
BARE = "pass the plain public key line (TYPE BASE64 [comment]), as ssh-keygen wrote it"
NOT_ACCEPTED = "key, which is not accepted: use ed25519, ecdsa, or rsa of at least 3072 bits"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestEachRefusalSaysWhyAndNamesTheFix:
    @pytest.mark.parametrize(("text", "message", "hint"), [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
         "alice.pub is a private key: never copy a private key",
         "pass her public key, the .pub file beside it (ssh-keygen -y -f KEY prints it)"),
        ("ssh-ed25519 AAAA a\nssh-ed25519 AAAA b\n", "alice.pub holds 2 lines: exactly one public key line is expected",
         "invite one key at a time (each person gets their own --as name)"),
        ("ssh-ed25519 AAAA\rx", "alice.pub holds a control character (a carriage return?): one plain line is expected",
         "pass the public key line as ssh-keygen wrote it"),
        ("ssh-ed25519 AAAA\x7fx", "alice.pub holds a control character (a carriage return?): one plain line is "
         "expected", "pass the public key line as ssh-keygen wrote it"),
        ('command="/bin/sh" ssh-ed25519 AAAA', "alice.pub has options before the key (command=...): devagent accepts "
         "a bare key and adds no options", BARE),
        ("no-port-forwarding-and-more ssh-ed25519 AAAA", "alice.pub has options before the key "
         "(no-port-forwarding-a=...): devagent accepts a bare key and adds no options", BARE),
        ("ssh-dss AAAA", f"alice.pub is a ssh-dss {NOT_ACCEPTED}", GENERATE),
        ("sk-ecdsa-sha2-nistp256@openssh.com AAAA", f"alice.pub is a sk-ecdsa-sha2-nistp256@openssh.com {NOT_ACCEPTED}",
         GENERATE),
        ("ssh-foo AAAA", f"alice.pub is a ssh-foo {NOT_ACCEPTED}", GENERATE),
        ("x" * 50, f"alice.pub is not an OpenSSH public key line (it starts with {'x' * 40!r})", GENERATE),
        ("ssh-ed25519 AAAA!!", "alice.pub is not a valid ED25519 public key: Only base64 data is allowed", GENERATE),
        ("ssh-ed25519 " + b64(b"\0\0\0\x0bssh-ed25519\0\0"),
         "alice.pub is not a valid ED25519 public key: truncated length", GENERATE),
        ("ssh-ed25519 " + b64(b"\0\0\0\x0bssh-ed25519\0\0\0\x20abc"),
         "alice.pub is not a valid ED25519 public key: truncated field", GENERATE),
        ("ssh-ed25519 " + b64(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + b"k" * 28),  # 4 bytes short
         "alice.pub is not a valid ED25519 public key: truncated field", GENERATE),
        (wire("ssh-ed25519", b"k" * 32).replace(" AAAAC3NzaC1lZDI1NTE5", " AAAAC/9zaC1lZDI1NTE5"),  # \xff in the type
         "alice.pub is not a valid ED25519 public key: the key's data names another key type than its line",
         GENERATE),
        (wire("ecdsa-sha2-nistp256", b"nistp\xff56", b"\x04" + b"k" * 64),
         "alice.pub is not a valid ECDSA public key: the ECDSA curve or point is missing or wrong", GENERATE),
        ("tunnel=1", "alice.pub has options before the key (tunnel=...): devagent accepts a bare key and adds no "
         "options", "pass the plain public key line (TYPE BASE64 [comment]), as ssh-keygen wrote it"),
        (wire("ssh-rsa", b"\x01\x00\x01"),
         "alice.pub is not a valid RSA public key: an RSA key has an exponent and a modulus", GENERATE),
        (f"ecdsa-sha2-nistp256 {ED25519.split()[1]}",
         "alice.pub is not a valid ECDSA public key: the key's data names another key type than its line", GENERATE),
    ])
    def test_the_exact_words(self, text: str, message: str, hint: str) -> None:
        error = refusal(text)
        assert (error.message, error.hint) == (message, hint)

    def test_an_rsa_key_of_2048_bits_names_a_stronger_one(self) -> None:
        weak = public_line(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        assert refusal(weak).hint == "make a new one: ssh-keygen -t ed25519 (or ssh-keygen -t rsa -b 4096)"


class TestKeysThatAreRefused:
    def test_an_options_prefix_of_any_kind(self) -> None:
        for options in ('command="/bin/sh"', 'from="10.0.0.1"', "no-pty", 'environment="A=b",no-pty',
                        "restrict"):
            error = refusal(f"{options} {ED25519}")
            assert "has options before the key" in error.message, options

    def test_two_key_lines(self) -> None:
        assert refusal(f"{ED25519}\n{ED25519}\n").message == (
            "alice.pub holds 2 lines: exactly one public key line is expected")

    def test_a_carriage_return_inside_the_line(self) -> None:
        assert "control character" in refusal(f"{ED25519}\rssh-ed25519 AAAA").message

    def test_an_rsa_key_under_3072_bits(self) -> None:
        weak = public_line(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        assert refusal(weak).message == "alice.pub is an RSA key of 2048 bits; at least 3072 are required"

    def test_a_private_key(self) -> None:
        private = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
        assert refusal(private).message == "alice.pub is a private key: never copy a private key"

    def test_garbage(self) -> None:
        assert refusal("hello world").message == (
            "alice.pub is not an OpenSSH public key line (it starts with 'hello')")
        assert refusal("").message == "alice.pub holds no public key"
        assert "is not a valid ED25519 public key" in refusal("ssh-ed25519 AAAA!!").message

    def test_key_data_of_another_type_than_its_line_says(self) -> None:
        blob = ED25519.split()[1]
        assert "names another key type" in refusal(f"ecdsa-sha2-nistp256 {blob}").message

    def test_a_truncated_key(self) -> None:
        assert "truncated" in refusal(f"ssh-ed25519 {ED25519.split()[1][:40]}").message

    def test_a_line_with_only_a_key_type(self) -> None:
        # Refused by name, not with the IndexError that reading the missing key data would raise.
        for line in ("ssh-ed25519", "  ssh-ed25519\t", "ssh-rsa\n"):
            assert refusal(line).message == "alice.pub has a key type but no key data", line

    def test_a_nul_byte(self) -> None:
        assert refusal(f"{ED25519}\0").message == "alice.pub holds a NUL byte: it is not a public key file"

    @pytest.mark.parametrize("fields", [
        (b"nistp384", b"\x04" + b"\x01" * 64),  # another curve than the type names
        (b"nistp256",),  # no point
        (b"nistp256", b""),  # an empty point
        (b"nistp256", b"\x04" + b"\x01" * 64, b"extra"),  # one field too many
    ])
    def test_a_malformed_ecdsa_key(self, fields: tuple[bytes, ...]) -> None:
        assert refusal(wire("ecdsa-sha2-nistp256", *fields)).message == (
            "alice.pub is not a valid ECDSA public key: the ECDSA curve or point is missing or wrong")

    @pytest.mark.parametrize("fields", [(b"\x01" * 31,), (b"\x01" * 33,), (b"\x01" * 32, b"extra")])
    def test_an_ed25519_key_of_the_wrong_length(self, fields: tuple[bytes, ...]) -> None:
        assert refusal(wire("ssh-ed25519", *fields)).message == (
            "alice.pub is not a valid ED25519 public key: an ed25519 key is 32 bytes")

    def test_a_security_key_ed25519_key_is_accepted_whole_and_refused_malformed(self) -> None:
        sk = "sk-ssh-ed25519@openssh.com"
        assert check_public_key(wire(sk, b"\x01" * 32, b"ssh:")).kind == "ED25519-SK"
        for fields in ((b"\x01" * 31, b"ssh:"), (b"\x01" * 32,), (b"\x01" * 32, b"ssh:", b"extra")):
            assert refusal(wire(sk, *fields)).message == (
                "alice.pub is not a valid ED25519-SK public key: a security-key ed25519 key is 32 bytes and an "
                "application"), fields

    def test_dsa_keys(self) -> None:
        assert refusal("ssh-dss AAAAB3NzaC1kc3MAAACBAP").message.startswith(
            "alice.pub is a ssh-dss key, which is not accepted")


class TestNames:
    def test_a_teammate_name_follows_the_rule(self) -> None:
        assert validate_person("alice.w") == "alice.w"
        for bad in ("", "Alice", "1alice", "al ice", "alice\n", "a" * 33, "-alice"):
            with pytest.raises(DevagentError) as caught:
                validate_person(bad)
            assert (caught.value.message, caught.value.hint, caught.value.status) == (
                f"invalid name {bad!r} for a teammate",
                "use 1-32 characters: lowercase letters, digits, '_', '.', '-', starting with a letter",
                ExitStatus.USAGE)

    def test_the_name_comes_from_the_key_file_unless_it_is_a_default_key_name(self) -> None:
        assert person_from_key_file("/tmp/keys/alice.pub") == "alice"
        for unclear in ("id_ed25519.pub", "Alice Key.pub"):
            with pytest.raises(DevagentError) as caught:
                person_from_key_file(unclear)
            assert (caught.value.message, caught.value.hint, caught.value.status) == (
                f"cannot tell whose key {unclear} is from its name", "name her: --as alice", ExitStatus.USAGE)


class TestWhatTheContainerAndAliceGet:
    def test_authorized_keys_has_bare_keys_named_by_devagent(self) -> None:
        key = check_public_key('ssh-ed25519 ' + ED25519.split()[1] + ' evil"comment')
        text = render_authorized_keys([Person("me", "ssh-ed25519 OWNER", owner=True), Person("alice", key.line)])
        assert text == f"ssh-ed25519 OWNER me\n{key.line} alice\n"

    def test_people_json_round_trips_with_fingerprints(self) -> None:
        people = [Person("me", " ".join(ED25519.split()[:2]), owner=True)]
        assert parse_people(render_people(people)) == people
        assert check_public_key(ED25519).fingerprint in render_people(people)
        assert who([*people, Person("alice", "k")]) == "me (owner), alice"

    def test_the_export_pins_the_host_key_under_the_alias_and_jumps_through_the_server_when_remote(self) -> None:
        text = render_export(name="exp", person=Person("alice", "ecdsa-sha2-nistp256 AAAA"), port=40001,
                             user="dev", host_key="ssh-ed25519 HOSTKEY devagent-host-exp", proxy_jump="gpu-server")
        assert "  ProxyJump gpu-server\n" in text
        assert "  # IdentityFile ~/.ssh/id_ecdsa" in text
        assert text.endswith("\nexp ssh-ed25519 HOSTKEY\n")
        local = render_export(name="exp", person=Person("alice", "ssh-ed25519 AAAA"), port=40001, user="dev",
                              host_key="ssh-ed25519 HOSTKEY")
        assert "ProxyJump" not in local


# Every line the export may hold, by its first word: nothing else may reach a teammate's ssh config.
_EXPORT_KEYWORDS = {"#", "Host", "HostName", "Port", "User", "HostKeyAlias", "StrictHostKeyChecking",
                    "IdentitiesOnly", "ProxyJump", "exp"}


@given(user=st.text(max_size=40), jump=st.one_of(st.none(), st.text(max_size=40)))
def test_an_export_never_holds_a_line_of_a_label_s_making(user: str, jump: str | None) -> None:
    try:
        text = render_export(name="exp", person=Person("alice", "ssh-ed25519 AAAA"), port=40001, user=user,
                             host_key="ssh-ed25519 HOSTKEY", proxy_jump=jump)
    except DevagentError as exc:
        assert exc.status == ExitStatus.CONFLICT
        return
    lines = [line for line in text.split("\n") if line.strip()]
    assert {line.split()[0] for line in lines} <= _EXPORT_KEYWORDS
    assert f"  User {user}\n" in text
    assert all(ord(c) >= 32 for line in lines for c in line)
    assert len(lines) == 11 + bool(jump)


SLURM_HOP = proxy_command(JobCheck("12", "gpu", "/h/.ssh/config"), name="exp", login="hpc", node="n1", port=40001)


@pytest.mark.parametrize(("user", "jump", "message"), [
    ("dev\n  ProxyCommand sh -c 'touch /tmp/pwned'", None,
     "refusing to print a Host block with the login user \"dev\\n  ProxyCommand sh -c 'touch /tmp/pwned'\""),
    ("dev", "gpu\nLocalCommand id", "refusing to print a Host block with the ProxyJump 'gpu\\nLocalCommand id'"),
    ("dev", "gpu,evil", "refusing to print a Host block with the ProxyJump 'gpu,evil'"),
    # The ProxyCommand of an alias to an environment in a Slurm job (core/ssh/job_hop.py) is never passed on.
    ("dev", SLURM_HOP, f"refusing to print a Host block with the ProxyJump {SLURM_HOP!r}"),
])
def test_an_export_with_a_value_that_would_be_two_options_is_refused(user: str, jump: str | None,
                                                                     message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        render_export(name="exp", person=Person("alice", "ssh-ed25519 AAAA"), port=40001, user=user,
                      host_key="ssh-ed25519 HOSTKEY", proxy_jump=jump)
    assert caught.value.message == message + ": a teammate's ssh config would read it as more than one value"
    assert caught.value.status == ExitStatus.CONFLICT


OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINtE8P7IS4aFJJDAgjlU2gASYIfHnmv1qeCGk8044ylU"
OWNER_FINGERPRINT = "SHA256:yBREWhwkPQcU6OD/RZ0us3d8uoII9UWAbvi6MrF6fPo"


class TestWordForWord:
    """What the container, the notebook and Alice get, every character."""

    def test_people_json(self) -> None:
        text = render_people([Person("me", OWNER_KEY, owner=True), Person("al", OWNER_KEY)])
        assert text == (
            '{\n "version": 1,\n "people": [\n'
            f'  {{\n   "name": "me",\n   "key": "{OWNER_KEY}",\n   "fingerprint": "{OWNER_FINGERPRINT}",\n'
            '   "role": "owner"\n  },\n'
            f'  {{\n   "name": "al",\n   "key": "{OWNER_KEY}",\n   "fingerprint": "{OWNER_FINGERPRINT}",\n'
            '   "role": "invited"\n  }\n ]\n}\n')
        assert name_for(parse_people(text), OWNER_FINGERPRINT) == "me"
        assert name_for(parse_people(text), "SHA256:other") is None

    @pytest.mark.parametrize(("text", "message"), [
        ("[]", 'people.json: expected {"people": [...]}'),
        ('{"people": {}}', 'people.json: expected {"people": [...]}'),
        ('{"people": [1]}', "people.json: each person has a name and a key"),
        ('{"people": [{"name": "a"}]}', "people.json: each person has a name and a key"),
        ('{"people": [{"name": 1, "key": "k"}]}', "people.json: each person has a name and a key"),
    ])
    def test_people_json_of_another_shape_is_refused(self, text: str, message: str) -> None:
        with pytest.raises(ValueError) as caught:
            parse_people(text)
        assert str(caught.value) == message

    def test_only_the_owner_role_makes_an_owner(self) -> None:
        assert parse_people('{"people": [{"name": "a", "key": "k", "role": "admin"}]}') == [Person("a", "k")]

    def test_the_notebook_entry_escapes_the_change_and_the_names(self) -> None:
        people = [Person("me", "ssh-ed25519 AAAA", owner=True), Person("a_b", "ecdsa-sha2-nistp256 AAAA"),
                  Person("x", "odd AAAA")]
        fingerprint = "`SHA256:cJ6AyISHokEeHuTfufIqhhSS0gxHZRUMDHlKvXD4FHw`"
        assert render_people_entry(people, "alice | added #1", datetime(2026, 12, 1, 9, 30)) == (
            "\n## 2026-12-01 09:30 · people · alice | added \\#1\n"
            "| who may log in | key |\n|---|---|\n"
            f"| me (owner) | ED25519 {fingerprint} |\n| a\\_b | ECDSA {fingerprint} |\n| x | ? {fingerprint} |\n")

    def test_the_identity_file_ssh_looks_for_by_key_type(self) -> None:
        assert [identity_hint(t) for t in ("ssh-rsa", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
                                           "ssh-ed25519")] == [
            "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519_sk", "~/.ssh/id_ed25519"]

    def test_the_export_of_a_remote_environment(self) -> None:
        text = render_export(name="exp", person=Person("alice", "sk-ssh-ed25519@openssh.com AAAA"), port=65535,
                             user="dev", host_key="ecdsa-sha2-nistp384 AAAA== host", proxy_jump="gpu-server")
        assert text == (
            "# devagent environment exp, for alice: append to ~/.ssh/config\n"
            "Host exp\n  HostName 127.0.0.1\n  Port 65535\n  User dev\n  HostKeyAlias exp\n"
            "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  ProxyJump gpu-server\n"
            "  # IdentityFile ~/.ssh/id_ed25519_sk    (the private key of the public key you sent; uncomment if "
            "elsewhere)\n\n"
            "# and append this line to ~/.ssh/known_hosts (it pins the environment's host key):\n"
            "exp ecdsa-sha2-nistp384 AAAA==\n")

    @pytest.mark.parametrize(("change", "what"), [
        ({"name": "Exp!"}, "environment name 'Exp!'"),
        ({"person": Person("Alice", "ssh-ed25519 AAAA")}, "teammate name 'Alice'"),
        ({"person": Person("alice", "ssh-dss AAAA")}, "teammate key 'ssh-dss AAAA'"),
        ({"port": 0}, "port 0"),
        ({"port": 65536}, "port 65536"),
        ({"port": True}, "port True"),
        ({"port": "22"}, "port '22'"),
        ({"user": "Dev"}, "login user 'Dev'"),
        ({"host_key": "ssh-ed25519"}, "host key 'ssh-ed25519'"),
        ({"host_key": "ssh-dss AAAA"}, "host key 'ssh-dss AAAA'"),
        ({"host_key": "ssh-ed25519 AAAA==="}, "host key 'ssh-ed25519 AAAA==='"),
        ({"host_key": None}, "host key None"),
        ({"person": Person("alice", "ssh-ed25519\tAAAA")}, "teammate key 'ssh-ed25519\\tAAAA'"),
    ])
    def test_every_value_of_the_export_is_checked(self, change: dict[str, object], what: str) -> None:
        values: dict[str, object] = {"name": "exp", "person": Person("alice", "ssh-ed25519 AAAA"), "port": 1,
                                     "user": "dev", "host_key": "ssh-rsa AAAA="}
        assert "Port 1\n" in render_export(**values)  # type: ignore[arg-type]
        with pytest.raises(DevagentError) as caught:
            render_export(**{**values, **change})  # type: ignore[arg-type]
        assert (caught.value.message, caught.value.hint, caught.value.status) == (
            f"refusing to print a Host block with the {what}: a teammate's ssh config would read it as more than "
            "one value", "recreate the environment (devagent up NAME --recreate) so that devagent writes its "
            "labels again", ExitStatus.CONFLICT)


def test_a_key_refused_without_a_source_name_is_called_the_key() -> None:
    with pytest.raises(DevagentError) as caught:
        check_public_key("")
    assert caught.value.message == "the key holds no public key"
