"""The node's Docker Engine as an environment whose Slurm job has ended sees it: nothing of it is left there.

The job's holder removed the container when the job ended (core/slurm/holder.py), and the node may not let the
user in any more (pam_slurm_adopt), so devagent does not log in to it: asked what is there (`get`,
`list_managed`, `container_rows`, the leases, the home volume) this engine says nothing, and `down` then only
forgets what this machine keeps; asked to do anything there, it raises GONE (the job ended; `up` again asks for
a new one). Typed as `EngineApi` with every method written out, so that the type checker proves it is one and a
method added to the Protocol must be added here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from devagent.control.engine.engine_api import EngineApi, ImageFacts
    from devagent.control.engine.engine_data import ArchiveFile, ContainerInfo, ContainerRow
    from devagent.core import health
    from devagent.core.gpu.ledger import ContainerGpus, Lease
    from devagent.core.mounts.home import Mount
    from devagent.core.spec import GpuRequest
    from devagent.errors import DevagentError


class EndedJobEngine:
    """The engine of NODE for an environment whose job has ended (GONE says so)."""

    def __init__(self, node: str, gone: DevagentError) -> None:
        self._node, self._gone = node, gone

    def _raise(self) -> NoReturn:
        raise self._gone

    @property
    def server(self) -> str | None:
        return self._node

    def close(self) -> None:
        return None

    # -- what is there: nothing of the environment
    def get(self, name: str) -> ContainerInfo | None:
        return None

    def list_managed(self, *, name: str | None = None) -> list[ContainerInfo]:
        return []

    def container_rows(self) -> list[ContainerRow]:
        return []

    def leases(self) -> list[Lease]:
        return []

    def volume_labels(self, name: str) -> dict[str, str] | None:  # the node is not reachable: no home is seen
        return None

    # -- anything else: the job has ended
    def cpu_count(self) -> int:
        self._raise()

    def image_id(self, ref: str) -> str | None:
        self._raise()

    def image_digest(self, ref: str) -> str:
        self._raise()

    def image_labels(self, ref: str) -> dict[str, str] | None:
        self._raise()

    def image_facts(self, ref: str) -> ImageFacts | None:
        self._raise()

    def image_user_uid(self, image: str, user: str) -> int | None:
        self._raise()

    def repo_digests(self, ref: str) -> list[str]:
        self._raise()

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        self._raise()

    def remove_image(self, ref: str) -> None:
        self._raise()

    def push(self, repository: str, tag: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        self._raise()

    def pull(self, ref: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        self._raise()

    def build(self, context: Path, tag: str, labels: Mapping[str, str], on_line: Callable[[str], None], *,
              dockerfile: str | None = None, buildargs: Mapping[str, str] | None = None,
              target: str | None = None) -> None:
        self._raise()

    def bound_ports(self) -> set[int]:
        self._raise()

    def create(self, *, name: str, image: str, command: list[str], user: str, labels: Mapping[str, str],
               container_port: int, host_port: int | None, mounts: Iterable[tuple[str, str, str]], memory: int,
               cpus: float, shm_size: int, pids: int, gpus: GpuRequest, environment: Mapping[str, str],
               volumes: Iterable[Mount] = (), read_only: bool = False) -> str:
        self._raise()

    def lifetime(self, container_id: str) -> tuple[int, int] | None:
        self._raise()

    def read_file(self, container_id: str, path: str, *, limit: int = 1 << 20) -> bytes | None:
        self._raise()

    def health_usage(self, container_id: str, *, clock_is_ours: bool) -> health.Printed:
        self._raise()

    def environment_network(self) -> str:
        self._raise()

    def put_files(self, container_id: str, dest: str, files: Iterable[ArchiveFile]) -> None:
        self._raise()

    def start(self, container_id: str) -> ContainerInfo:
        self._raise()

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._raise()

    def logs(self, container_id: str, tail: int = 20) -> str:
        self._raise()

    def remove_if_labelled(self, name: str, key: str, value: str) -> None:
        self._raise()

    def remove(self, container_id: str) -> None:
        self._raise()

    def rename(self, container_id: str, name: str) -> None:
        self._raise()

    def exec_as(self, container_id: str, user: str, argv: list[str]) -> tuple[int, str]:
        self._raise()

    def user_uid(self, container_id: str, user: str) -> int | None:
        self._raise()

    def volume_size(self, name: str) -> int | None:
        self._raise()

    def remove_volume(self, name: str) -> bool:
        self._raise()

    def container_gpus(self, container_id: str) -> ContainerGpus | None:
        self._raise()

    def create_lease(self, name: str, labels: Mapping[str, str]) -> Lease | None:
        self._raise()


if TYPE_CHECKING:
    def _the_ended_engine_is_one(engine: EndedJobEngine) -> EngineApi:  # the type checker proves it
        return engine
