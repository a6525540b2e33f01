"""Every host-side location devagent reads or writes, on one object that tests repoint.

DEVAGENT_SSH_CONFIG is the user's ssh config (default ~/.ssh/config); DEVAGENT_HOME holds devagent's own files:
the user key, the host keys, the managed ssh config, its known_hosts, the invitations, and which server each
environment made with `--host` lives on (default ~/.ssh/devagent).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    home: Path  # DEVAGENT_HOME
    user_ssh_config: Path  # DEVAGENT_SSH_CONFIG
    ssh_dir: Path | None = None  # the user's ~/.ssh: never part of a workspace

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        user_home = Path(env.get("HOME") or Path.home())
        home = Path(env.get("DEVAGENT_HOME") or user_home / ".ssh" / "devagent")
        ssh_config = Path(env.get("DEVAGENT_SSH_CONFIG") or user_home / ".ssh" / "config")
        return cls(home=home.absolute(), user_ssh_config=ssh_config.absolute(),
                   ssh_dir=(user_home / ".ssh").absolute())

    @property
    def identity(self) -> Path:
        """The user's private key (ed25519), generated once."""
        return self.home / "id_ed25519"

    @property
    def managed_ssh_config(self) -> Path:
        """devagent's own ssh config: one Host block per environment, written through sshconf."""
        return self.home / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    @property
    def lock(self) -> Path:
        """Held while the ssh config, the managed config or known_hosts change (across processes)."""
        return self.home / ".lock"

    def env_lock(self, name: str) -> Path:
        """Held by `up` and `down` of NAME for their whole run: two of them on one environment take turns."""
        return self.home / "locks" / f"{name}.lock"

    @property
    def backups(self) -> Path:
        return self.home / "backups"

    @property
    def gpu_cache(self) -> Path:
        """What each container asked for in GPUs, by container id (fixed at create): `devagent gpus` inspects only
        the containers it has not seen."""
        return self.home / "cache" / "container-gpus.json"

    @property
    def records(self) -> Path:
        """Which server each remote environment lives on: one file per environment (control/sites/records.py)."""
        return self.home / "environments"

    def invitations(self, name: str) -> Path:
        """Who is invited to environment NAME (`devagent share`): kept here so that `up --recreate` gives the new
        container the same people; `down` removes it."""
        return self.home / "invitations" / f"{name}.json"

    def host_key(self, name: str) -> Path:
        """The environment's host private key; kept across --recreate so the pinned key never changes."""
        return self.home / "hostkeys" / f"{name}_ed25519"
