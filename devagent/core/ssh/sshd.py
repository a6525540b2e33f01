"""The hardened sshd configuration, rendered from a profile and the algorithms the image's OpenSSH supports.

Two profiles:
- ``strict``: post-quantum hybrid key exchange only (sntrup761/mlkem768). ssh-audit reports no failure and no
  warning. Needs OpenSSH >= 8.5 on the client (VS Code uses the local ssh).
- ``compat``: adds curve25519 key exchange for older clients and for paramiko; ssh-audit reports no failure.

sshd runs as the login user (rootless), so: a high port, ``UsePAM no``, ``PidFile none``, host key owned by the user.

Docker's port proxy makes every client one address to sshd, so nothing here may key on the source address, and the
pre-auth limits are sized so that another local user cannot lock the owner out (docs/explanation/security-model.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from devagent.core import layout
from devagent.core.people import MIN_RSA_BITS

PROFILES = ("strict", "compat")

STRICT_KEX = ("mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com")
COMPAT_EXTRA_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org")
CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com")
HOST_KEY_ALGORITHMS = ("ssh-ed25519",)
# Pre-auth limits. Up to MAX_STARTUPS unauthenticated connections are served, none dropped at random before that
# (a random early drop would make the owner's login a lottery at a lower count); each is cut after
# LOGIN_GRACE_TIME seconds. The full value bounds what a flood costs the container: one process and about 1.3 MB
# per connection (measured on OpenSSH 9.2 and 10.0).
MAX_STARTUPS = 256
LOGIN_GRACE_TIME = 20
# OpenSSH 9.8 added PerSourcePenalties (on by default): behind Docker's proxy its "source" is everybody.
PER_SOURCE_PENALTIES_SINCE = (9, 8)
# The owner's key is ed25519 (devagent makes it); a teammate invited with `devagent share` may bring ecdsa or RSA
# (core/people.py checks it first: RSA from 3072 bits, and sshd enforces that too where it can, RequiredRSASize).
# RSA signs with SHA-2 only: ssh-rsa (SHA-1) signatures are not accepted.
PUBKEY_ALGORITHMS = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                     "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256")
REQUIRED_RSA_SIZE_SINCE = (9, 1)


# The image's own environment that ssh sessions should see (sshd gives sessions a bare PATH otherwise):
# `ssh NAME python train.py` must find the image's python (/opt/conda/bin, /opt/venv/bin) and its CUDA libraries.
SESSION_ENV_NAMES = ("PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", layout.WORKSPACE_ENV)
SESSION_ENV_PREFIXES = ("NVIDIA_", "CUDA_", "NV_", "PYTORCH_", "CONDA_", "TORCH_")
_SAFE_ENV_VALUE = re.compile(r'[^"\\\n\r]*')


def session_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ENVIRON (the image's, read at build) that ssh sessions get through SetEnv.

    >>> session_env({"PATH": "/opt/conda/bin:/usr/bin", "HOSTNAME": "x", "NVIDIA_VISIBLE_DEVICES": "all"})
    {'NVIDIA_VISIBLE_DEVICES': 'all', 'PATH': '/opt/conda/bin:/usr/bin'}
    """
    chosen = {k: v for k, v in environ.items() if k in SESSION_ENV_NAMES or k.startswith(SESSION_ENV_PREFIXES)}
    # A value sshd could not quote safely is left out rather than mangled.
    return {k: v for k, v in sorted(chosen.items()) if v and _SAFE_ENV_VALUE.fullmatch(v)}


@dataclass(frozen=True)
class Supported:
    """What the image's OpenSSH offers (`ssh -Q kex|cipher|mac`) and its version (`sshd -V`; None if unknown)."""

    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    version: tuple[int, int] | None = None


def openssh_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from OpenSSH's version text: `sshd -V`, or the usage an older sshd prints for it.

    >>> openssh_version("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19"), openssh_version("OpenSSH_10.0, LibreSSL")
    ((9, 2), (10, 0))
    >>> openssh_version("sshd: illegal option -- V") is None
    True
    """
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def kex_for(profile: str, supported: Supported) -> tuple[str, ...]:
    """Key exchange algorithms for PROFILE, in preference order, limited to what the server supports.

    >>> server = Supported(kex=("curve25519-sha256", "sntrup761x25519-sha512@openssh.com"), ciphers=(), macs=())
    >>> kex_for("strict", server)
    ('sntrup761x25519-sha512@openssh.com',)
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown sshd profile {profile!r}")
    wanted = STRICT_KEX + (COMPAT_EXTRA_KEX if profile == "compat" else ())
    return tuple(k for k in wanted if k in supported.kex)


def render_sshd_config(*, profile: str, user: str, port: int, supported: Supported,
                       env: Mapping[str, str] | None = None) -> str:
    """The sshd_config text for one profile. Raises ValueError when the server cannot do the profile."""
    kex = kex_for(profile, supported)
    ciphers = tuple(c for c in CIPHERS if c in supported.ciphers)
    macs = tuple(m for m in MACS if m in supported.macs)
    if not kex or not ciphers or not macs:
        raise ValueError(f"this OpenSSH server cannot do the {profile} profile (kex {kex}, ciphers {ciphers})")
    lines = [
        f"# devagent sshd configuration, profile {profile}. Rendered by devagent at image build; do not edit.",
        "# sshd runs as the login user (rootless): no PAM, no privilege separation, a high port.",
        f"Port {port}",
        f"HostKey {layout.HOST_KEY_PATH}",
        "PidFile none",
        "UsePAM no",
        "StrictModes yes",
        f"AllowUsers {user}",
        "PermitRootLogin no",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        f"AuthorizedKeysFile {layout.AUTHORIZED_KEYS_PATH}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitEmptyPasswords no",
        "PermitUserEnvironment no",
        # Each session learns which key it logged in with (SSH_USER_AUTH names a file that says): the notebook's
        # "started by" (devagent/runs/identity.py).
        "ExposeAuthInfo yes",
        "MaxAuthTries 3",
        f"LoginGraceTime {LOGIN_GRACE_TIME}",
        # Docker's proxy makes every client one address: keep MaxStartups global, never per source.
        f"MaxStartups {MAX_STARTUPS}",
        *(["PerSourcePenalties no"] if knows_per_source_penalties(supported) else []),
        *([f"RequiredRSASize {MIN_RSA_BITS}"] if supported.version and supported.version >= REQUIRED_RSA_SIZE_SINCE
          else []),
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        "UseDNS no",
        "PrintMotd no",
        "PermitTTY yes",
        # VS Code Remote-SSH forwards a local port (ssh -D / -L) or a socket; nothing else is needed.
        "AllowTcpForwarding local",
        "AllowStreamLocalForwarding local",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "Subsystem sftp internal-sftp",
        f"KexAlgorithms {','.join(kex)}",
        f"Ciphers {','.join(ciphers)}",
        f"MACs {','.join(macs)}",
        f"HostKeyAlgorithms {','.join(HOST_KEY_ALGORITHMS)}",
        f"PubkeyAcceptedAlgorithms {','.join(PUBKEY_ALGORITHMS)}",
        "LogLevel INFO",
    ]
    if env:
        lines.append("SetEnv " + " ".join(f'{k}="{v}"' for k, v in env.items()))
    return "\n".join(lines) + "\n"


def knows_per_source_penalties(supported: Supported) -> bool:
    """Whether the server knows `PerSourcePenalties` (an unknown keyword would stop sshd from starting).

    >>> knows_per_source_penalties(Supported((), (), (), version=(9, 8)))
    True
    >>> knows_per_source_penalties(Supported((), (), (), version=(9, 2)))
    False
    >>> knows_per_source_penalties(Supported((), (), ()))  # version unknown: treated as too old
    False
    """
    return supported.version is not None and supported.version >= PER_SOURCE_PENALTIES_SINCE


def profile_for_client(client_version: tuple[int, int] | None) -> str:
    """The default profile for a local OpenSSH client: strict from 8.5 (post-quantum kex), compat before.

    >>> profile_for_client((9, 2)), profile_for_client((8, 4)), profile_for_client(None)
    ('strict', 'compat', 'compat')
    """
    if client_version is None:
        return "compat"
    return "strict" if client_version >= (8, 5) else "compat"


# -- a devcontainer.json's containerEnv and remoteEnv in the sessions ------------------------------------------------
# sshd gives a session a fresh environment, so what Docker sets (containerEnv) never reaches `ssh NAME cmd`. The agent
# starts sshd with one `-o SetEnv ...` (OpenSSH >= 8.7; the first SetEnv sshd reads wins, so it carries the image's
# SetEnv values too): no ~/.ssh/environment (PermitUserEnvironment stays no), no profile script a non-login
# `ssh NAME cmd` would not read.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTAINER_ENV_VAR = re.compile(r"\$\{containerEnv:([^}:]*)(?::([^}]*))?\}")
_SETENV_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def session_env_file(container_env: tuple[tuple[str, str], ...],
                     remote_env: tuple[tuple[str, str | None], ...]) -> bytes:
    """The file `up` puts into the container for the agent (layout.SESSION_ENV_PATH).

    >>> session_env_file((("A", "1"),), (("B", None),))
    b'{"containerEnv": [["A", "1"]], "remoteEnv": [["B", null]]}'
    """
    return json.dumps({"containerEnv": [list(p) for p in container_env],
                       "remoteEnv": [list(p) for p in remote_env]}).encode()


def parse_setenv(config_text: str) -> dict[str, str]:
    """The variables of the first SetEnv line of an sshd_config (render_sshd_config's quoting).

    >>> parse_setenv('Port 2222\\nSetEnv PATH="/usr/bin" LANG="C.UTF-8"\\n')
    {'PATH': '/usr/bin', 'LANG': 'C.UTF-8'}
    """
    for line in config_text.splitlines():
        if line.strip().lower().startswith("setenv "):
            return {k: re.sub(r"\\(.)", r"\1", v) for k, v in _SETENV_PAIR.findall(line)}
    return {}


def session_setenv(base: Mapping[str, str], file_text: str, environ: Mapping[str, str]) -> str | None:
    """The `SetEnv` option the agent gives sshd: BASE (the image's SetEnv), then containerEnv, then remoteEnv
    (``${containerEnv:VAR[:default]}`` read from ENVIRON, the container's environment; ``null`` unsets) from
    FILE_TEXT (session_env_file's). None when nothing is left to set. A value is quoted as sshd unquotes it.

    >>> session_setenv({"PATH": "/bin"}, session_env_file((("A", 'x"y'),),
    ...                (("PATH", "/opt:${containerEnv:PATH}"), ("NO", None))), {"PATH": "/usr/bin"})
    'SetEnv PATH="/opt:/usr/bin" A="x\\\\"y"'
    """
    data = json.loads(file_text)
    env = dict(base)
    env.update((str(k), str(v)) for k, v in data.get("containerEnv", []))
    for key, value in data.get("remoteEnv", []):
        if value is None:
            env.pop(str(key), None)
        else:
            env[str(key)] = _CONTAINER_ENV_VAR.sub(
                lambda m: environ.get(m.group(1), m.group(2) or ""), str(value))
    pairs = [(k, v) for k, v in env.items() if ENV_NAME.fullmatch(k) and not _BAD_ENV_VALUE.search(v)]
    if not pairs:
        return None
    return "SetEnv " + " ".join(f'{k}="{_quote(v)}"' for k, v in pairs)


_BAD_ENV_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is fine; a line break or NUL never


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def check_env(key: str, name: str, value: str | None) -> str | None:
    """Why NAME=VALUE of KEY (containerEnv/remoteEnv) cannot be set, or None. The value is never quoted back.

    >>> check_env("containerEnv", "A-B", "1")
    'containerEnv: A-B is not a variable name (letters, digits, _; not starting with a digit)'
    >>> check_env("remoteEnv", "A", "x\\ny")
    'remoteEnv: the value of A holds a line break or control character'
    """
    if not ENV_NAME.fullmatch(name):
        return f"{key}: {name} is not a variable name (letters, digits, _; not starting with a digit)"
    if value is not None and _BAD_ENV_VALUE.search(value):
        return f"{key}: the value of {name} holds a line break or control character"
    return None
