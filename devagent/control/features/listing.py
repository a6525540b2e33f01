"""`devagent ls` across the local engine and every server in devagent's records, queried in parallel.

A server that does not answer fails none of the others: its environments are listed from the records, marked
unreachable, with what ssh said. Without any record the local engine is asked alone, exactly as before `--host`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from devagent.control.sites.records import Record
from devagent.errors import DevagentError, ExitStatus


@dataclass(frozen=True)
class Row:
    """One environment as `ls` shows it. A server that did not answer gives rows from devagent's records: state
    "unreachable", ERROR what ssh said, and no owner or invitations (INVITED None)."""

    name: str
    state: str
    health: str | None
    port: int | None
    user: str | None
    image: str | None
    gpus: str | None
    workspace: str | None
    ssh_alias: str | None
    created: str | None
    invited: tuple[str, ...] | None = None
    owner: str | None = None
    mine: bool | None = None
    host: str | None = None  # the server, as the user named it; None: this machine's engine
    error: str | None = None
    slurm: str | None = None  # in a Slurm job: "Slurm job 12 on n1, partition gpu: running, 9 min left"

    def to_json(self, *, with_host: bool) -> dict[str, object]:
        """The row of `ls --json`, key for key as it has always been: HOST only once this machine has used a
        server (WITH_HOST), no owner fields for an unreachable server's row, ERROR only there."""
        data = dataclasses.asdict(self)
        if self.error is not None:
            for key in ("invited", "owner", "mine"):
                del data[key]
        else:
            del data["error"]
        if self.slurm is None:
            del data["slurm"]
        if not with_host:
            del data["host"]
        return data


class Lister(Protocol):
    def ls(self) -> list[Row]: ...


OpenServer = Callable[[str], contextlib.AbstractContextManager[Lister]]


def unreachable_rows(records: list[Record], error: DevagentError) -> list[Row]:
    """The rows of a server that did not answer, from devagent's records."""
    return [Row(name=r.name, state="unreachable", health=None, port=r.port, user=r.user, image=None, gpus=None,
                workspace=r.workspace, ssh_alias=r.name, created=None, host=r.server, error=error.message)
            for r in records]


def list_all(records: list[Record], *, host: str | None, local: Callable[[], Lister] | None,
             open_server: OpenServer, used_servers: bool = False,
             slurm_rows: Callable[[Record], list[Row]] | None = None) -> list[Row]:
    """Rows of every environment: the local engine's (unless HOST filters to one server; LOCAL None: skip it) and
    each recorded server's, by name. Servers are asked at once, one ssh login each. USED_SERVERS: this machine
    has made environments on servers (a laptop then often has no engine of its own, and that is no error).
    SLURM_ROWS: the rows of an environment its record places in a Slurm job (Slurm says where and how it is)."""
    by_server: dict[str, list[Record]] = {}
    in_jobs = [r for r in records if r.slurm_job is not None and slurm_rows is not None
               and (host is None or r.server == host)]
    for record in records:
        if record in in_jobs:
            continue
        if host is None or record.server == host:
            by_server.setdefault(record.server, []).append(record)
    if host is not None and host not in by_server:
        by_server[host] = []  # `ls --host X` asks X even when no record names it

    def ask_server(server: str) -> list[Row]:
        mine = by_server[server]
        try:
            with open_server(server) as lister:
                names = {r.name for r in mine}
                # The server's engine also lists its other users' environments: show the ones this laptop made.
                return [row for row in lister.ls() if row.name in names]
        except DevagentError as exc:
            if exc.status not in (ExitStatus.SERVER_UNREACHABLE, ExitStatus.SERVER_AUTH,
                                  ExitStatus.SERVER_REFUSED, ExitStatus.DOCKER_UNAVAILABLE,
                                  ExitStatus.DOCKER_PERMISSION):
                raise
            if not mine:
                raise
            return unreachable_rows(mine, exc)

    def ask_local() -> list[Row]:
        assert local is not None
        remote_names = {r.name for r in records}
        try:
            return [row for row in local().ls() if row.name not in remote_names]
        except DevagentError as exc:
            # A laptop often has no engine of its own: with servers to show, that is no error.
            no_engine = exc.status in (ExitStatus.DOCKER_UNAVAILABLE, ExitStatus.DOCKER_PERMISSION)
            if (records or used_servers) and no_engine:
                return []
            raise

    jobs: list[Callable[[], list[Row]]] = []
    if host is None and local is not None:
        jobs.append(ask_local)
    jobs += [lambda server=server: ask_server(server) for server in sorted(by_server)]  # type: ignore[misc]
    assert slurm_rows is not None or not in_jobs
    jobs += [lambda record=record: slurm_rows(record) for record in in_jobs]  # type: ignore[misc]
    if len(jobs) == 1:
        rows = jobs[0]()
    else:
        with ThreadPoolExecutor(max_workers=min(len(jobs), 16)) as pool:
            rows = [row for part in pool.map(lambda job: job(), jobs) for row in part]
    return sorted(rows, key=lambda row: row.name)

