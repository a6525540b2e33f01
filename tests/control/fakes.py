"""Fakes at devagent's outside boundaries, for fast host-side tests that need no Docker Engine.

`FakeEngine` has the interface of control/engine/docker_engine.py's `Engine` (the one module that talks to Docker): it
keeps its containers and images in memory, records every call, and fails a chosen call on request, e.g.
``engine.fail("start", DevagentError(...))`` or ``engine.fail("put_files", KeyboardInterrupt())``.
`BannerServer` is a stand-in sshd on 127.0.0.1 that says its banner and hangs up: enough for `up`'s wait for sshd,
and a login against it fails the way a login to a broken sshd does.
"""

from __future__ import annotations

import hashlib
import itertools
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devagent.control.engine.engine_api import EngineApi, ImageFacts
from devagent.control.engine.engine_data import LEASE_LABEL, ArchiveFile, ContainerInfo, ContainerRow
from devagent.core import health
from devagent.core.gpu.ledger import ContainerGpus, Lease
from devagent.core.mounts.home import Mount
from devagent.core.spec import GpuRequest
from devagent.errors import DevagentError, ExitStatus


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    options: dict[str, Any]  # everything create() was given
    status: str = "created"
    host_port: int | None = None  # published while running
    fixed_port: int | None = None  # the host port it was made with (None: the engine picks one at each start)
    exit_code: int | None = None
    files: dict[str, ArchiveFile] = field(default_factory=dict)  # by path inside the container
    logs: str = ""
    health: str | None = None  # Docker's health status, as a test sets it
    health_log: str = ""  # what its last health check printed, as a test sets it (core/health.py's form)
    health_until: float = 0.0  # this machine's time.time() until which that stays the last check's output
    finished: int = 0  # when it last stopped, on the engine's clock (the id counter); 0: never

    def info(self) -> ContainerInfo:
        return ContainerInfo(id=self.id, name=self.name, status=self.status, labels=dict(self.labels),
                             host_port=self.host_port, image=self.image, created="2026-11-27T14:02:00Z",
                             exit_code=self.exit_code, fixed_port=self.fixed_port, health=self.health)


class FakeEngine:
    """An in-memory Docker Engine with `Engine`'s methods: it satisfies control/engine/engine_api.py's `EngineApi`.

    IMAGES maps a reference to an image id; every image `up` asks about is there when ALL_IMAGES is true (so no
    build runs). A started container publishes its fixed port, or START_PORT when it was made without one. A fixed
    port in TAKEN (held by another program) or published by another running container makes `start` fail as the
    real engine's does; with PUBLISHES false, a started container publishes nothing (a broken engine). ON_START,
    if given, may change the container as it starts (e.g. make it exit).
    """

    def __init__(self, *, cpus: int = 8, all_images: bool = True, start_port: int | None = None,
                 publishes: bool = True, uid: int = 1000,
                 on_start: Callable[[FakeContainer], None] | None = None) -> None:
        self.cpus = cpus
        self.server: str | None = None  # a local engine (Engine.server)
        self.all_images = all_images
        self.images: dict[str, str] = {}
        self.labels_of: dict[str, dict[str, str]] = {}  # an image's labels, by reference
        self.start_port = start_port
        self.publishes = publishes
        self.uid = uid
        self.on_start = on_start
        self.taken: set[int] = set()
        self.containers: dict[str, FakeContainer] = {}  # by id
        self.volumes: dict[str, dict[str, str]] = {}  # named volumes, by name: their labels
        self.gpu_leases: dict[str, tuple[str, Lease, dict[str, str]]] = {}  # by id: (container name, lease, labels)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._failures: dict[str, tuple[BaseException, bool]] = {}
        self._ids = itertools.count(1)

    def exit(self, c: FakeContainer, code: int) -> None:
        """C's main process exits with CODE (the agent giving its GPUs back: 75)."""
        c.status, c.host_port, c.exit_code, c.finished = "exited", None, code, next(self._ids)

    # -- test controls --------------------------------------------------------------------------------------------

    def fail(self, method: str, exc: BaseException, *, after: bool = False) -> None:
        """Make the next call of METHOD raise EXC: before it takes effect, or AFTER it (a Ctrl-C that lands
        between the engine doing it and devagent hearing back)."""
        self._failures[method] = (exc, after)

    def add(self, name: str, *, labels: Mapping[str, str], status: str = "running", host_port: int | None = None,
            fixed_port: int | None = None, image: str = "devagent/env:old") -> FakeContainer:
        """A container that exists before the test's call (made by an earlier `up`, or by someone else); one
        with a FIXED_PORT publishes it while running."""
        if fixed_port is not None and host_port is None and status == "running":
            host_port = fixed_port
        c = FakeContainer(id=f"c{next(self._ids):04d}", name=name, image=image, labels=dict(labels), options={},
                          status=status, host_port=host_port, fixed_port=fixed_port)
        self.containers[c.id] = c
        return c

    def names(self) -> list[str]:
        return sorted(c.name for c in self.containers.values())

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    def _call(self, method: str, *args: Any) -> Callable[[], None]:
        """Record the call; raise a failure set for before it; return what to run once it has taken effect."""
        self.calls.append((method, args))
        exc, after = self._failures.pop(method, (None, False))
        if exc is not None and not after:
            raise exc

        def done() -> None:
            if exc is not None:
                raise exc
        return done

    def _find(self, name_or_id: str) -> FakeContainer | None:
        return self.containers.get(name_or_id) or next(
            (c for c in self.containers.values() if c.name == name_or_id), None)

    # -- images ---------------------------------------------------------------------------------------------------

    def cpu_count(self) -> int:
        self._call("cpu_count")()
        return self.cpus

    def image_id(self, ref: str) -> str | None:
        self._call("image_id", ref)()
        if ref not in self.images and self.all_images:
            self.images[ref] = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        return self.images.get(ref)

    def image_digest(self, ref: str) -> str:
        self._call("image_digest", ref)()
        return self.images.get(ref, "sha256:" + "0" * 64)

    def repo_digests(self, ref: str) -> list[str]:
        self._call("repo_digests", ref)()
        return []

    def image_labels(self, ref: str) -> dict[str, str] | None:
        self._call("image_labels", ref)()
        return dict(self.labels_of.get(ref, {})) if ref in self.images else None

    def image_facts(self, ref: str) -> ImageFacts | None:
        """One inspect of the real engine; here the id, digest and labels calls it stands for (so that a test can
        fail any of them)."""
        image_id = self.image_id(ref)
        if image_id is None:
            return None
        self.image_digest(ref)
        return ImageFacts(id=image_id, repo_digests=tuple(self.repo_digests(ref)),
                          labels=dict(self.labels_of.get(ref, {})))

    def image_user_uid(self, image: str, user: str) -> int | None:
        self._call("image_user_uid", image, user)()
        return self.uid

    def pull(self, ref: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        self._call("pull", ref)()
        return None, "no registry in a fake"

    def build(self, context: Path, tag: str, labels: Mapping[str, str], on_line: Callable[[str], None], *,
              dockerfile: str | None = None, buildargs: Mapping[str, str] | None = None,
              target: str | None = None) -> None:
        self._call("build", tag)()
        self.images[tag] = f"sha256:built-{tag}"
        self.labels_of[tag] = {**self.labels_of.get(tag, {}), **labels}

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        self._call("tag_image", image, repository, tag)()
        self.images[f"{repository}:{tag}"] = self.images.get(image, image)

    def remove_image(self, ref: str) -> None:
        self._call("remove_image", ref)()
        self.images.pop(ref, None)

    def push(self, repository: str, tag: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        self._call("push", repository, tag)()
        return None, "no registry in a fake"

    def close(self) -> None:
        self._call("close")()

    # -- containers -----------------------------------------------------------------------------------------------

    def get(self, name: str) -> ContainerInfo | None:
        self._call("get", name)()
        c = self._find(name)
        return c.info() if c else None

    def list_managed(self, *, name: str | None = None) -> list[ContainerInfo]:
        self._call("list_managed")()
        return [c.info() for c in self.containers.values() if c.labels.get("devagent.managed") == "true"
                and (name is None or c.labels.get("devagent.name") == name)]

    def environment_network(self) -> str:
        return "devagent-network-id"

    def bound_ports(self) -> set[int]:
        self._call("bound_ports")()
        return {p for c in self.containers.values() for p in (c.host_port, c.fixed_port) if p is not None}

    def create(self, *, name: str, image: str, command: list[str], user: str, labels: Mapping[str, str],
               container_port: int, host_port: int | None, mounts: Iterable[tuple[str, str, str]], memory: int,
               cpus: float, shm_size: int, pids: int, gpus: GpuRequest, environment: Mapping[str, str],
               volumes: Iterable[Mount] = (), read_only: bool = False) -> str:
        done = self._call("create", name, host_port)
        if self._find(name) is not None:
            raise DevagentError(f"a container named {name!r} already exists",
                                hint=f"choose another name, or remove it: docker rm -f {name}",
                                status=ExitStatus.CONFLICT)
        volumes = list(volumes)
        c = FakeContainer(id=f"c{next(self._ids):04d}", name=name, image=image, labels=dict(labels), options={
            "command": command, "user": user, "container_port": container_port, "mounts": list(mounts),
            "memory": memory, "cpus": cpus, "shm_size": shm_size, "pids": pids, "gpus": gpus,
            "environment": dict(environment), "volumes": volumes, "read_only": read_only}, fixed_port=host_port)
        self.containers[c.id] = c
        for v in volumes:  # the engine makes a named volume on first use, with the mount's labels
            if v.volume is not None:
                self.volumes.setdefault(v.volume, dict(v.labels))
        done()
        return c.id

    def volume_labels(self, name: str) -> dict[str, str] | None:
        self._call("volume_labels", name)()
        return dict(self.volumes[name]) if name in self.volumes else None

    def volume_size(self, name: str) -> int | None:
        self._call("volume_size", name)()
        return 4096 if name in self.volumes else None

    def remove_volume(self, name: str) -> bool:
        self._call("remove_volume", name)()
        return self.volumes.pop(name, None) is not None

    def put_files(self, container_id: str, dest: str, files: Iterable[ArchiveFile]) -> None:
        done = self._call("put_files", container_id, dest)
        c = self.containers[container_id]
        for f in files:
            c.files[f"{dest}/{f.path}"] = f
        done()

    def start(self, container_id: str) -> ContainerInfo:
        done = self._call("start", container_id)
        c = self.containers[container_id]
        if c.status == "running":
            done()
            return c.info()
        port = c.fixed_port
        holders = [o for o in self.containers.values() if o is not c and o.status == "running" and o.host_port == port]
        if port is not None and (port in self.taken or holders):
            why = (f"Bind for 127.0.0.1:{port} failed: port is already allocated" if holders else
                   f"Error starting userland proxy: listen tcp4 127.0.0.1:{port}: bind: address already in use")
            raise DevagentError("the container did not start: its host port is taken", status=ExitStatus.PORT_TAKEN,
                                details=f"driver failed programming external connectivity on endpoint {c.name}: {why}",
                                hint="free the port, or give the container another one")
        c.status, c.host_port = "running", (self.start_port if port is None else port) if self.publishes else None
        if self.on_start is not None:
            self.on_start(c)
        done()
        return c.info()

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._call("stop", container_id)()
        c = self._find(container_id)
        if c is not None and c.status == "running":
            c.status, c.host_port, c.exit_code, c.finished = "exited", None, 143, next(self._ids)

    def logs(self, container_id: str, tail: int = 20) -> str:
        self._call("logs", container_id)()
        c = self._find(container_id)
        return "\n".join(c.logs.splitlines()[-tail:]) if c else ""

    def remove_if_labelled(self, name: str, key: str, value: str) -> None:
        self._call("remove_if_labelled", name, key, value)()
        for c in list(self.containers.values()):
            if c.name == name and c.labels.get(key) == value:
                del self.containers[c.id]

    def remove(self, container_id: str) -> None:
        self._call("remove", container_id)()
        c = self._find(container_id)
        if c is not None:
            del self.containers[c.id]
        self.gpu_leases.pop(container_id, None)

    # -- the GPU ledger -------------------------------------------------------------------------------------------

    def container_rows(self) -> list[ContainerRow]:
        self._call("container_rows")()
        return [*(ContainerRow(c.id, c.name, c.status, dict(c.labels), c.exit_code)
                  for c in self.containers.values()),
                *(ContainerRow(lease.id, name, "created", labels) for name, lease, labels in self.gpu_leases.values())]

    def container_gpus(self, container_id: str) -> ContainerGpus | None:
        self._call("container_gpus", container_id)()
        c = self.containers.get(container_id)
        if c is None:
            return None
        gpus: GpuRequest = c.options.get("gpus", GpuRequest("none"))
        return ContainerGpus(c.id, c.name, c.status, all_gpus=gpus.mode == "all", ids=gpus.devices,
                             how=f"--gpus {gpus.describe()}", labels=dict(c.labels))

    def lifetime(self, container_id: str) -> tuple[int, int] | None:
        """(made, finished) on the engine's clock: ids are numbered in the order things happen."""
        self._call("lifetime", container_id)()
        if container_id in self.gpu_leases:
            return int(container_id[1:]), 0
        c = self.containers.get(container_id)
        return None if c is None else (int(c.id[1:]), c.finished)

    def health_usage(self, container_id: str, *, clock_is_ours: bool) -> health.Printed:
        """As the real one: HEALTH_UNTIL only where the site says the engine's clock is ours."""
        self._call("health_usage", container_id, clock_is_ours)()
        c = self.containers.get(container_id)
        if c is None:
            return health.Printed(None)
        return health.Printed(health.split_output(c.health_log)[1], c.health_until if clock_is_ours else 0.0)

    def read_file(self, container_id: str, path: str, *, limit: int = 1 << 20) -> bytes | None:
        self._call("read_file", container_id, path)()
        c = self.containers.get(container_id)
        found = c.files.get(path) if c else None
        return found.data[:limit] if found is not None and len(found.data) <= limit else None

    def leases(self) -> list[Lease]:
        self._call("leases")()
        return [lease for _, lease, _ in self.gpu_leases.values()]

    def create_lease(self, name: str, labels: Mapping[str, str]) -> Lease | None:
        self._call("create_lease", name)()
        if any(n == name for n, _, _ in self.gpu_leases.values()) or self._find(name) is not None:
            return None
        lease = Lease(id=f"l{next(self._ids):04d}", gpu_uuid=labels[LEASE_LABEL],
                      environment=labels["devagent.lease-env"], owner=labels["devagent.lease-owner"],
                      since=labels["devagent.lease-since"], shared=labels["devagent.lease-shared"] == "true",
                      up_id=labels["devagent.lease-up-id"])
        self.gpu_leases[lease.id] = (name, lease, dict(labels))
        return lease

    def rename(self, container_id: str, name: str) -> None:
        self._call("rename", container_id, name)()
        self.containers[container_id].name = name

    def exec_as(self, container_id: str, user: str, argv: list[str]) -> tuple[int, str]:
        """Records the call; prints one line per key for `devagent end-sessions` (a session ended for each)."""
        self._call("exec_as", container_id, user, argv)()
        return 0, "".join("4242\n" for _ in argv[2:]) if argv[1:2] == ["end-sessions"] else ""

    def user_uid(self, container_id: str, user: str) -> int | None:
        self._call("user_uid", container_id, user)()
        return self.uid


def _fake_engine_is_one(engine: FakeEngine) -> EngineApi:  # mypy proves FakeEngine satisfies the Protocol
    return engine


class BannerServer:
    """A stand-in sshd on 127.0.0.1: every connection gets BANNER, then the server hangs up.

    >>> with BannerServer() as server:
    ...     server.port > 0
    True
    """

    def __init__(self, banner: bytes = b"SSH-2.0-OpenSSH_9.2p1 fake\r\n") -> None:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(outer.banner)

        self.banner = banner
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> BannerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
