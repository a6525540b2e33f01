"""Keys: made once, ed25519 only, safe when several devagents start at once."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devagent.control.ssh import keys
from devagent.errors import DevagentError, ExitStatus


def _make(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(keys.ensure_keypair(Path(path), comment="t"))


def test_ten_processes_asking_at_once_all_get_the_one_same_key(tmp_path: Path) -> None:
    path = tmp_path / "home" / "id_ed25519"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_make, args=(str(path), queue)) for _ in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = {queue.get(timeout=5) for _ in procs}
    assert results == {path.with_name("id_ed25519.pub").read_text().strip()}
    assert keys.public_line(path) == next(iter(results)).rsplit(" ", 1)[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not list(path.parent.glob("*.tmp"))


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    first = keys.ensure_keypair(path, comment="a")
    assert keys.ensure_keypair(path, comment="b") == first


def test_an_identity_that_is_not_ed25519_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    with pytest.raises(DevagentError) as err:
        keys.public_line(path)
    assert err.value.message == f"identity file {path} is not an ed25519 key"
    assert err.value.status == ExitStatus.USAGE
    assert err.value.hint and "ssh-keygen -t ed25519" in err.value.hint


def test_a_missing_identity_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DevagentError, match="does not exist"):
        keys.public_line(tmp_path / "nope")


def test_a_made_key_is_byte_for_byte_what_cryptography_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # keys.py frames the key itself (cryptography's serialization costs ~20 ms to import on every up).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    monkeypatch.setattr("os.urandom", lambda n: b"\x01\x02\x03\x04"[:n])
    for seed in (bytes(32), bytes(range(32)), b"\xff" * 32):
        key = Ed25519PrivateKey.from_private_bytes(seed)
        theirs = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                   serialization.NoEncryption())
        ours = keys._openssh_private(seed, key.public_key().public_bytes_raw())
        assert ours == theirs
    made, line = keys._generate("devagent-host-x")
    loaded = serialization.load_ssh_private_key(made, password=None)
    assert line == loaded.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH).decode() + " devagent-host-x"


def test_making_a_key_does_not_import_cryptography_s_serialization() -> None:
    import subprocess
    import sys

    code = ("import sys, pathlib, tempfile; from devagent.control.ssh import keys; "
            "keys.ensure_keypair(pathlib.Path(tempfile.mkdtemp()) / 'k', comment='c'); "
            "print('cryptography.hazmat.primitives.serialization' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
