"""devagent's own records on the laptop: which server each environment made with `up --host` lives on.

One small JSON file per environment in DEVAGENT_HOME/environments/, written atomically by `up` before it makes
anything on the server (so that `down NAME` finds the server even after an `up` was killed) and removed by `down`
and by a failed `up`'s rollback. An environment without a record is a local one, as every environment made before
`--host` existed. Docker on each server stays the source of truth for what exists there; a record only says where
to look, plus what `ls` shows for a server that does not answer.

    records = Records(paths)
    records.put(Record(name="pytorch-dev", server="gpu-server", user="dev", workspace="/home/alice/devagent/x"))
    records.get("pytorch-dev").server      # 'gpu-server'
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from devagent.control.atomic import atomic_write, ensure_private_dir
from devagent.control.paths import Paths
from devagent.core.spec import NAME_RE
from devagent.errors import DevagentError, ExitStatus

VERSION = 1


@dataclass(frozen=True)
class Record:
    name: str
    server: str  # as the user gave it (Server.text): parse_server reads it back
    user: str
    workspace: str  # absolute, on the server
    port: int | None = None  # once known; ls shows it for a server that does not answer
    # On a Slurm cluster (SERVER is its login node): the job that holds the allocation and the node it runs on.
    slurm_job: str | None = None
    slurm_node: str | None = None
    slurm_partition: str | None = None


class Records:
    def __init__(self, paths: Paths) -> None:
        self.folder = paths.records

    def _path(self, name: str) -> Path:
        if not NAME_RE.fullmatch(name):  # names are checked before; never let one walk out of the folder
            raise ValueError(f"invalid environment name {name!r}")
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Record | None:
        try:
            data = json.loads(self._path(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            # None, or DEVAGENT_HOME is not ours to read: the command goes on as for a local environment, and
            # meets the unreadable home where it would have before --host existed.
            return None
        return _record(data)

    def server_of(self, name: str) -> str | None:
        """The server NAME lives on, as the user named it; None: this machine's engine (no record)."""
        record = self.get(name)
        return record.server if record is not None else None

    def user_of(self, name: str) -> str | None:
        """The login user of NAME on its server; None: no record (this machine's engine knows)."""
        record = self.get(name)
        return record.user if record is not None else None

    def put(self, record: Record) -> None:
        ensure_private_dir(self.folder)
        data = {"version": VERSION, **asdict(record)}
        atomic_write(self._path(record.name), (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)

    def used(self) -> bool:
        """Whether this machine has made environments on servers (the records folder exists)."""
        try:
            return self.folder.is_dir()
        except OSError:
            return False

    def remove(self, name: str) -> bool:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def all(self) -> list[Record]:
        """Every record, by name; a file that does not read as one is skipped (a half-copied home, say)."""
        try:
            files = sorted(os.listdir(self.folder))
        except OSError:  # none yet, or DEVAGENT_HOME is not ours to read: no environment on a server is known
            return []
        found = []
        for file in files:
            if not file.endswith(".json") or not NAME_RE.fullmatch(file[:-5]):
                continue
            try:
                found.append(_record(json.loads((self.folder / file).read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found


def _record(data: dict[str, object]) -> Record:
    port = data.get("port")
    slurm = {key: str(data[key]) for key in ("slurm_job", "slurm_node", "slurm_partition")
             if isinstance(data.get(key), str)}
    return Record(name=str(data["name"]), server=str(data["server"]), user=str(data["user"]),
                  workspace=str(data["workspace"]), port=int(port) if isinstance(port, int) else None, **slurm)


def refuse_elsewhere(name: str, server: str, *, here: str) -> DevagentError:
    """Names are unique across the local engine and every server: NAME lives on SERVER, not HERE."""
    return DevagentError(f"environment {name!r} exists on {server}; names are unique across servers",
                         status=ExitStatus.CONFLICT,
                         hint=f"pick another name to make one {here}, or remove that one first: devagent down {name}")
