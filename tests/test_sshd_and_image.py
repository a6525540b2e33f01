"""The sshd configuration profiles and the derived image's Dockerfile, tag and wheels."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from devagent.core.image import ImageSpec
from devagent.core.sshd import Supported, kex_for, profile_for_client, render_sshd_config
from devagent.host.wheels import build_wheelhouse, payload_fingerprint

BOOKWORM = Supported(
    kex=("curve25519-sha256", "curve25519-sha256@libssh.org", "sntrup761x25519-sha512",
         "sntrup761x25519-sha512@openssh.com", "diffie-hellman-group14-sha1"),
    ciphers=("aes128-cbc", "aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com",
             "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"),
    macs=("hmac-sha1", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "umac-128-etm@openssh.com"),
)


def option(text: str, key: str) -> str:
    values = [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [key]]
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def test_the_strict_profile_offers_only_post_quantum_key_exchange() -> None:
    text = render_sshd_config(profile="strict", user="dev", port=2222, supported=BOOKWORM)
    assert option(text, "KexAlgorithms") == "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com"
    assert "cbc" not in option(text, "Ciphers")
    assert option(text, "MACs").split(",") == ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
                                               "umac-128-etm@openssh.com"]


def test_the_compat_profile_adds_curve25519_after_the_post_quantum_ones() -> None:
    assert kex_for("compat", BOOKWORM)[-2:] == ("curve25519-sha256", "curve25519-sha256@libssh.org")


@pytest.mark.parametrize("profile", ["strict", "compat"])
def test_both_profiles_are_key_only_rootless_and_forward_only_locally(profile: str) -> None:
    text = render_sshd_config(profile=profile, user="dev", port=2222, supported=BOOKWORM)
    expected = {"Port": "2222", "UsePAM": "no", "PidFile": "none", "PermitRootLogin": "no",
                "AuthenticationMethods": "publickey", "PasswordAuthentication": "no",
                "KbdInteractiveAuthentication": "no", "AllowTcpForwarding": "local",
                "AllowStreamLocalForwarding": "local", "AllowAgentForwarding": "no", "X11Forwarding": "no",
                "AllowUsers": "dev", "HostKeyAlgorithms": "ssh-ed25519", "PermitTunnel": "no"}
    assert {key: option(text, key) for key in expected} == expected
    assert "PerSourceMaxStartups" not in text  # behind Docker's proxy every client is one address


def test_a_server_without_post_quantum_kex_cannot_do_the_strict_profile() -> None:
    old = Supported(kex=("curve25519-sha256",), ciphers=BOOKWORM.ciphers, macs=BOOKWORM.macs)
    with pytest.raises(ValueError, match="cannot do the strict profile"):
        render_sshd_config(profile="strict", user="dev", port=2222, supported=old)
    assert "curve25519-sha256" in render_sshd_config(profile="compat", user="dev", port=2222, supported=old)


def test_the_default_profile_follows_the_local_client() -> None:
    assert profile_for_client((8, 5)) == "strict"
    assert profile_for_client((8, 4)) == "compat"


def spec(**overrides: object) -> ImageSpec:
    values: dict[str, object] = dict(base_image="devagent-base:bookworm", base_id="sha256:abc", user="dev",
                                     uid=1000, sshd_port=2222, payload=(("devagent==0.1.0", "11"),))
    values.update(overrides)
    return ImageSpec(**values)  # type: ignore[arg-type]


def test_an_unchanged_spec_gives_the_same_tag_and_any_change_a_new_one() -> None:
    assert spec().tag == spec().tag
    assert spec().tag.startswith("devagent/env:")
    others = [spec(base_id="sha256:def"), spec(user="alice"), spec(uid=1001),
              spec(payload=(("devagent==0.1.0", "22"),))]
    assert len({s.tag for s in others} | {spec().tag}) == 5


def test_the_dockerfile_installs_from_carried_wheels_only_and_runs_the_agent_as_the_user() -> None:
    text = spec().dockerfile()
    assert "--no-index" in text and "--find-links /tmp/devagent-wheels" in text
    assert text.rstrip().endswith('CMD ["devagent", "agent"]')
    assert "\nUSER dev\n" in text
    assert "rm -f /etc/ssh/ssh_host_*" in text  # no host key baked into the image


def test_the_payload_fingerprint_changes_with_the_source_and_names_every_carried_wheel() -> None:
    names = [name.split("==")[0] for name, _ in payload_fingerprint()]
    assert sorted(names) == ["click", "devagent", "nvidia_ml_py", "watchdog"]
    assert payload_fingerprint() == payload_fingerprint()


def test_the_wheelhouse_is_reproducible_and_installs_offline_without_host_dependencies(tmp_path: Path) -> None:
    first = build_wheelhouse(tmp_path / "a")
    second = build_wheelhouse(tmp_path / "b")
    assert [w.read_bytes() for w in first] == [w.read_bytes() for w in second]
    names = sorted(w.name.split("-")[0] for w in first)
    assert names == ["click", "devagent", "nvidia_ml_py", "watchdog"]
    with zipfile.ZipFile(next(w for w in first if w.name.startswith("devagent-"))) as zf:
        metadata = zf.read("devagent-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: docker" not in metadata and "Requires-Dist: paramiko" not in metadata

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(tmp_path / "a"),
                    "devagent"], check=True)
    out = subprocess.run([py, "-c", "import devagent.container.agent, devagent.container.watcher, sys; "
                          "print(sorted(m for m in ('docker', 'paramiko', 'torch') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_out = subprocess.run([target / "bin" / "devagent", "--help"], capture_output=True, text=True, check=True)
    assert "up" in help_out.stdout
    assert sys.prefix != str(target)


def test_ssh_sessions_get_the_images_path_and_cuda_variables_but_nothing_unsafe() -> None:
    from devagent.core.sshd import session_env

    env = session_env({"PATH": "/opt/conda/bin:/usr/bin", "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
                       "NVIDIA_VISIBLE_DEVICES": "all", "HOSTNAME": "builder", "HOME": "/root",
                       "CUDA_HOME": 'evil"quote', "PYTORCH_VERSION": "2.8.0", "EMPTY": ""})
    assert env == {"LD_LIBRARY_PATH": "/usr/local/nvidia/lib64", "NVIDIA_VISIBLE_DEVICES": "all",
                   "PATH": "/opt/conda/bin:/usr/bin", "PYTORCH_VERSION": "2.8.0"}
    text = render_sshd_config(profile="strict", user="dev", port=2222, supported=BOOKWORM, env=env)
    assert option(text, "SetEnv").startswith('LD_LIBRARY_PATH="/usr/local/nvidia/lib64" NVIDIA_VISIBLE_DEVICES="all"')
