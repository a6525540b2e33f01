"""The sshd configuration of each profile, and the environment ssh sessions get."""

from __future__ import annotations

import pytest

from devagent.core.ssh.sshd import Supported, kex_for, profile_for_client, render_sshd_config, session_env

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


@pytest.mark.parametrize("version", [(9, 2), (10, 0), None])
def test_another_local_user_cannot_use_up_the_pre_auth_slots_for_long(version: tuple[int, int] | None) -> None:
    supported = Supported(BOOKWORM.kex, BOOKWORM.ciphers, BOOKWORM.macs, version=version)
    text = render_sshd_config(profile="strict", user="dev", port=2222, supported=supported)
    # One value: no random early drop, so 100 idle connections of someone else leave the owner a slot for sure.
    assert option(text, "MaxStartups") == "256"
    assert option(text, "LoginGraceTime") == "20"
    assert option(text, "MaxAuthTries") == "3"


def test_per_source_penalties_are_off_where_sshd_knows_them_and_unsaid_where_it_does_not() -> None:
    def rendered(version: tuple[int, int] | None) -> str:
        supported = Supported(BOOKWORM.kex, BOOKWORM.ciphers, BOOKWORM.macs, version=version)
        return render_sshd_config(profile="compat", user="dev", port=2222, supported=supported)

    # Behind Docker's proxy the one "source" is every client: a few failed logins would lock everybody out.
    assert option(rendered((9, 8)), "PerSourcePenalties") == "no"
    assert option(rendered((10, 0)), "PerSourcePenalties") == "no"
    # sshd refuses to start on a keyword it does not know; an unknown version is treated as too old.
    assert "PerSourcePenalties" not in rendered((9, 7))
    assert "PerSourcePenalties" not in rendered(None)


def test_a_server_without_post_quantum_kex_cannot_do_the_strict_profile() -> None:
    old = Supported(kex=("curve25519-sha256",), ciphers=BOOKWORM.ciphers, macs=BOOKWORM.macs)
    with pytest.raises(ValueError, match="cannot do the strict profile"):
        render_sshd_config(profile="strict", user="dev", port=2222, supported=old)
    assert "curve25519-sha256" in render_sshd_config(profile="compat", user="dev", port=2222, supported=old)


def test_the_default_profile_follows_the_local_client() -> None:
    assert profile_for_client((8, 5)) == "strict"
    assert profile_for_client((8, 4)) == "compat"


def test_ssh_sessions_get_the_images_path_and_cuda_variables_but_nothing_unsafe() -> None:
    env = session_env({"PATH": "/opt/conda/bin:/usr/bin", "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
                       "NVIDIA_VISIBLE_DEVICES": "all", "HOSTNAME": "builder", "HOME": "/root",
                       "CUDA_HOME": 'evil"quote', "PYTORCH_VERSION": "2.8.0", "EMPTY": ""})
    assert env == {"LD_LIBRARY_PATH": "/usr/local/nvidia/lib64", "NVIDIA_VISIBLE_DEVICES": "all",
                   "PATH": "/opt/conda/bin:/usr/bin", "PYTORCH_VERSION": "2.8.0"}
    text = render_sshd_config(profile="strict", user="dev", port=2222, supported=BOOKWORM, env=env)
    assert option(text, "SetEnv").startswith('LD_LIBRARY_PATH="/usr/local/nvidia/lib64" NVIDIA_VISIBLE_DEVICES="all"')


def test_each_session_learns_its_key_and_invited_teammates_keys_may_be_ecdsa_or_sha2_rsa_of_3072_bits() -> None:
    def rendered(version: tuple[int, int] | None) -> str:
        supported = Supported(BOOKWORM.kex, BOOKWORM.ciphers, BOOKWORM.macs, version=version)
        return render_sshd_config(profile="strict", user="dev", port=2222, supported=supported)

    text = rendered((9, 2))
    assert option(text, "ExposeAuthInfo") == "yes"  # the notebook's "started by" (inside/sessions.py)
    assert option(text, "PubkeyAcceptedAlgorithms").split(",") == [
        "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"]  # never SHA-1 ssh-rsa
    assert option(text, "RequiredRSASize") == "3072"
    assert "RequiredRSASize" not in rendered((9, 0))  # an older sshd would not start with a keyword it lacks
    assert "RequiredRSASize" not in rendered(None)
