"""The sshd configuration of each profile, and the environment ssh sessions get."""

from __future__ import annotations

import pytest

from devagent.core.ssh.sshd import (
    Supported,
    check_env,
    kex_for,
    openssh_version,
    parse_setenv,
    profile_for_client,
    render_sshd_config,
    session_env,
    session_env_file,
    session_setenv,
)

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


def test_the_whole_configuration_line_by_line() -> None:
    """Every line sshd reads, in order: an option left out or mistyped would be sshd's default, not devagent's."""
    supported = Supported(BOOKWORM.kex, BOOKWORM.ciphers, BOOKWORM.macs, version=(9, 8))
    text = render_sshd_config(profile="compat", user="dev", port=2222, supported=supported,
                              env={"PATH": "/usr/bin", "A": "x y"})
    assert text.splitlines() == [
        "# devagent sshd configuration, profile compat. Rendered by devagent at image build; do not edit.",
        "# sshd runs as the login user (rootless): no PAM, no privilege separation, a high port.",
        "Port 2222",
        "HostKey /etc/devagent/ssh_host_ed25519_key",
        "PidFile none",
        "UsePAM no",
        "StrictModes yes",
        "AllowUsers dev",
        "PermitRootLogin no",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile /etc/devagent/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitEmptyPasswords no",
        "PermitUserEnvironment no",
        "ExposeAuthInfo yes",
        "MaxAuthTries 3",
        "LoginGraceTime 20",
        "MaxStartups 256",
        "PerSourcePenalties no",
        "RequiredRSASize 3072",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        "UseDNS no",
        "PrintMotd no",
        "PermitTTY yes",
        "AllowTcpForwarding local",
        "AllowStreamLocalForwarding local",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "Subsystem sftp internal-sftp",
        "KexAlgorithms sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
        "curve25519-sha256@libssh.org",
        "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,"
        "aes128-ctr",
        "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
        "HostKeyAlgorithms ssh-ed25519",
        "PubkeyAcceptedAlgorithms ssh-ed25519,sk-ssh-ed25519@openssh.com,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
        "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256",
        "LogLevel INFO",
        'SetEnv PATH="/usr/bin" A="x y"',
    ]
    assert text.endswith("LogLevel INFO\nSetEnv PATH=\"/usr/bin\" A=\"x y\"\n")
    assert "SetEnv" not in render_sshd_config(profile="compat", user="dev", port=2222, supported=supported, env={})


@pytest.mark.parametrize(("text", "version"), [
    ("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19", (9, 2)),
    ("unknown option -- V\nOpenSSH_8.4p1, OpenSSL 1.1.1", (8, 4)),  # an older sshd's usage text
    ("OpenSSH_10.12", (10, 12)),
    ("OpenSSH_9", None),
    ("openssh_9.2", None),
    ("", None),
])
def test_the_openssh_version_is_read_from_its_version_text(text: str, version: tuple[int, int] | None) -> None:
    assert openssh_version(text) == version


def test_an_unknown_profile_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^unknown sshd profile 'fast'$"):
        kex_for("fast", BOOKWORM)


@pytest.mark.parametrize(("ciphers", "macs", "message"), [
    ((), BOOKWORM.macs, "this OpenSSH server cannot do the strict profile (kex ('sntrup761x25519-sha512', "
     "'sntrup761x25519-sha512@openssh.com'), ciphers ())"),
    (("aes128-cbc", "aes256-ctr"), ("hmac-sha1",), "this OpenSSH server cannot do the strict profile (kex "
     "('sntrup761x25519-sha512', 'sntrup761x25519-sha512@openssh.com'), ciphers ('aes256-ctr',))"),
])
def test_a_server_without_any_of_the_ciphers_or_macs_can_do_no_profile(ciphers: tuple[str, ...],
                                                                       macs: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError) as err:
        render_sshd_config(profile="strict", user="dev", port=2222, supported=Supported(BOOKWORM.kex, ciphers, macs))
    assert str(err.value) == message


def test_rsa_keys_are_held_to_3072_bits_from_openssh_9_1() -> None:
    def rendered(version: tuple[int, int]) -> str:
        supported = Supported(BOOKWORM.kex, BOOKWORM.ciphers, BOOKWORM.macs, version=version)
        return render_sshd_config(profile="strict", user="dev", port=2222, supported=supported)

    assert option(rendered((9, 1)), "RequiredRSASize") == "3072"
    assert "RequiredRSASize" not in rendered((8, 9))


def test_an_unknown_client_version_gets_the_compat_profile() -> None:
    assert profile_for_client(None) == "compat"
    assert profile_for_client((10, 0)) == "strict"


@pytest.mark.parametrize(("name", "kept"), [
    ("PATH", True), ("LD_LIBRARY_PATH", True), ("LANG", True), ("LC_ALL", True), ("DEVAGENT_WORKSPACE", True),
    ("NVIDIA_DRIVER_CAPABILITIES", True), ("CUDA_VERSION", True), ("NV_LIBCUBLAS_VERSION", True),
    ("PYTORCH_VERSION", True), ("CONDA_DIR", True), ("TORCH_CUDA_ARCH_LIST", True),
    ("HOME", False), ("HOSTNAME", False), ("LC_CTYPE", False), ("MY_CUDA_HOME", False), ("PATHS", False),
])
def test_ssh_sessions_get_the_images_variables_by_name_or_prefix(name: str, kept: bool) -> None:
    assert session_env({name: "1"}) == ({name: "1"} if kept else {})


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\nb", "a\rb", ""])
def test_a_value_sshd_could_not_quote_is_left_out(value: str) -> None:
    assert session_env({"PATH": value, "LANG": "C.UTF-8"}) == {"LANG": "C.UTF-8"}


def test_the_session_variables_are_sorted_by_name() -> None:
    assert list(session_env({"PATH": "/bin", "LANG": "C", "CUDA_HOME": "/cuda"})) == ["CUDA_HOME", "LANG", "PATH"]


def test_the_agent_reads_the_first_setenv_line_of_the_image_configuration() -> None:
    text = 'Port 2222\n  setenv PATH="/opt/bin" Q="a\\"b\\\\c"\nSetEnv LANG="C"\n'
    assert parse_setenv(text) == {"PATH": "/opt/bin", "Q": 'a"b\\c'}
    assert parse_setenv("Port 2222\nSetEnvironment X=\"1\"\n") == {}


def test_setenv_quoting_reads_back_as_it_was_written() -> None:
    env = {"A": 'x"y', "B": "back\\slash", "C": "tab\there"}
    option = session_setenv({}, session_env_file(tuple(env.items()), ()).decode(), {})
    assert option == 'SetEnv A="x\\"y" B="back\\\\slash" C="tab\there"'
    assert parse_setenv(f"Port 2222\n{option}\n") == env


def test_the_sessions_setenv_is_the_image_then_container_env_then_remote_env() -> None:
    file_text = session_env_file(
        (("A", "container"), ("B", "container"), ("C", "kept")),
        (("B", "remote ${containerEnv:HOME}/${containerEnv:NONE:fallback}/${containerEnv:NONE}/"),
         ("PATH", None), ("GONE", None)))
    option = session_setenv({"PATH": "/bin", "A": "image", "Z": "image"}, file_text.decode(), {"HOME": "/home/dev"})
    assert option == 'SetEnv A="container" Z="image" B="remote /home/dev/fallback//" C="kept"'


def test_names_and_values_sshd_cannot_take_are_dropped_and_nothing_left_is_no_option() -> None:
    file_text = session_env_file((("1A", "x"), ("A-B", "x"), ("NL", "a\nb"), ("DEL", "a\x7fb"), ("TAB", "a\tb")),
                                 ())
    assert session_setenv({}, file_text.decode(), {}) == 'SetEnv TAB="a\tb"'
    assert session_setenv({"A": "1"}, session_env_file((), (("A", None),)).decode(), {}) is None
    assert session_setenv({}, "{}", {}) is None


def test_the_session_env_file_is_json_of_both_lists() -> None:
    assert session_env_file((("A", "1"), ("B", "2")), (("C", None), ("D", "x"))) == (
        b'{"containerEnv": [["A", "1"], ["B", "2"]], "remoteEnv": [["C", null], ["D", "x"]]}')


@pytest.mark.parametrize(("key", "name", "value", "why"), [
    ("containerEnv", "A_1", "x\ty", None),
    ("remoteEnv", "_A", None, None),
    ("remoteEnv", "1A", "x", "remoteEnv: 1A is not a variable name (letters, digits, _; not starting with a digit)"),
    ("containerEnv", "A B", "x", "containerEnv: A B is not a variable name (letters, digits, _; not starting with "
     "a digit)"),
    ("containerEnv", "A", "x\x00", "containerEnv: the value of A holds a line break or control character"),
    ("remoteEnv", "A", "x\ry", "remoteEnv: the value of A holds a line break or control character"),
    ("remoteEnv", "A", "x\x1fy", "remoteEnv: the value of A holds a line break or control character"),
])
def test_a_variable_is_checked_by_name_and_value(key: str, name: str, value: str | None, why: str | None) -> None:
    assert check_env(key, name, value) == why
