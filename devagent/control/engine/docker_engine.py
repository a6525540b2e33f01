"""The one module that talks to Docker (the docker SDK). The rest of devagent sees `Engine` and plain data.

Errors from the SDK become DevagentErrors that say what to do; nothing else in devagent imports docker.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from devagent.control.engine.engine_api import ImageFacts
from devagent.control.engine.engine_data import (
    LEASE_ENV_LABEL,
    LEASE_IMAGE,
    LEASE_LABEL,
    LEASE_OWNER_LABEL,
    LEASE_SHARED_LABEL,
    LEASE_SINCE_LABEL,
    LEASE_UP_LABEL,
    ArchiveFile,
    ContainerInfo,
    ContainerRow,
    engine_ns,
    listed_exit_code,
)
from devagent.core import health
from devagent.core.gpu.ledger import ContainerGpus, Lease, container_gpus
from devagent.core.mounts.home import Mount
from devagent.core.spec import LABEL_PREFIX, GpuRequest
from devagent.errors import DevagentError, ExitStatus

# The SDK's ssh:// transport imports paramiko: 0.1 s and more here, on every command that talks to an engine
# (about half the SDK's import). devagent reaches every engine over a Unix socket (a server's through
# its own ssh link), so the SDK is imported without it — docker catches the ImportError that a None in
# sys.modules makes, and leaves ssh:// out — unless DOCKER_HOST asks for ssh:// itself.
_WITHOUT = () if "paramiko" in sys.modules or os.environ.get("DOCKER_HOST", "").startswith("ssh://") else (
    "paramiko",)
for _name in _WITHOUT:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    import docker
    import docker.errors
    import docker.types
    from docker.models.containers import _create_container_args
finally:
    for _name in _WITHOUT:
        if sys.modules.get(_name, False) is None:
            del sys.modules[_name]


MANAGED = f"{LABEL_PREFIX}managed=true"

# Every environment joins one bridge network with inter-container traffic off: environments cannot reach each other
# (nor other containers: Docker isolates networks from each other), outbound traffic is NATed as on Docker's
# default bridge, and a port published on it without an address goes to 127.0.0.1. One shared network rather
# than one per environment: Docker's default address pools hold about 30 networks per engine, all users together.
ENV_NETWORK = "devagent"
ENV_NETWORK_OPTIONS = {
    "com.docker.network.bridge.enable_icc": "false",
    "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
}
# sshd logs every connection (-e): the container's log is bounded to 3 files of 10 MB.
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}
# Open files: the same everywhere, not inherited from however the engine was started (from 1024 to 1048576). Soft
# and hard alike, and not more: a container can lower the engine's own hard limit but may not raise it unless the
# engine holds CAP_SYS_RESOURCE (sandboxed engines do not). 16 times the 1024 of newer engines, for DataLoader
# workers, which pass tensors as file descriptors. No nproc: it counts the uid's processes on the whole host, so it
# would couple environments to each other; --pids bounds each container's processes instead.
NOFILE = 16384


def _explain_connection_error(exc: Exception, server: str | None = None) -> DevagentError:
    text = str(exc)
    if server is not None:  # an engine on a GPU server, through devagent's ssh link to it
        if "Permission denied" in text or "PermissionError" in text:
            return DevagentError(
                f"your user on {server} may not use its Docker Engine's socket (permission denied)",
                hint=f"on {server}, add them to the docker group (sudo usermod -aG docker USER, then log in again); "
                "that group is root-equivalent on that server",
                status=ExitStatus.DOCKER_PERMISSION, details=text)
        return DevagentError(
            f"no Docker Engine answers on {server} (through the ssh link to it)",
            hint=f"check it there: ssh {server} docker info (start it: sudo systemctl start docker); if its socket "
            "is elsewhere, name it: DEVAGENT_DOCKER_SOCKET",
            status=ExitStatus.DOCKER_UNAVAILABLE, details=text)
    if "Permission denied" in text or "PermissionError" in text:
        return DevagentError(
            "you may not use the Docker Engine's socket (permission denied)",
            hint="add yourself to the docker group (sudo usermod -aG docker $USER, then log in again) "
            "or run devagent as a user who may use Docker",
            status=ExitStatus.DOCKER_PERMISSION,
            details=text,
        )
    return DevagentError(
        "no Docker Engine answers",
        hint="start it (sudo systemctl start docker, or `make docker` in the devagent repo), "
        "or point DOCKER_HOST at a running engine",
        status=ExitStatus.DOCKER_UNAVAILABLE,
        details=text,
    )


def gpu_device_requests(gpus: GpuRequest) -> list[docker.types.DeviceRequest]:
    """Docker's device requests for GPUS: every GPU (Count -1) or the GPUs listed. Never a count of N, which the
    engine maps to GPUs 0..N-1 whoever holds them: "any:N" is resolved to UUIDs before a container is made."""
    assert gpus.mode != "any", "any:N must be resolved to UUIDs by the GPU ledger first"
    if gpus.mode == "none":
        return []
    if gpus.mode == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [docker.types.DeviceRequest(device_ids=list(gpus.devices), capabilities=[["gpu"]])]


def _lease(row: Mapping[str, Any]) -> Lease:
    return lease_of(str(row["Id"]), row.get("Labels") or {})


def lease_of(container_id: str, labels: Mapping[str, str]) -> Lease:
    """The lease a lease container's labels record."""
    return Lease(id=container_id, gpu_uuid=labels.get(LEASE_LABEL, ""), environment=labels.get(LEASE_ENV_LABEL, ""),
                 owner=labels.get(LEASE_OWNER_LABEL, "?"), since=labels.get(LEASE_SINCE_LABEL, "?"),
                 shared=labels.get(LEASE_SHARED_LABEL) == "true", up_id=labels.get(LEASE_UP_LABEL, ""))


def _is_gpu_runtime_error(text: str) -> bool:
    return "could not select device driver" in text or "nvidia-container-cli" in text or (
        "unknown or invalid runtime name: nvidia" in text
    )


def _is_port_taken(text: str) -> bool:
    # "Bind for 127.0.0.1:P failed: port is already allocated": another container holds it (the engine's own
    # allocator); "listen tcp4 127.0.0.1:P: bind: address already in use": another program does.
    return "port is already allocated" in text or "address already in use" in text


def _bound_ports(bindings: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    """(host address, host port) of every binding that names its host port."""
    return [(str(b.get("HostIp") or ""), int(b["HostPort"]))
            for rows in (bindings or {}).values() for b in rows or [] if str(b.get("HostPort") or "").isdigit()]


def _mount(m: Mount) -> docker.types.Mount:
    """A volume of core/mounts/home.py's plan (named, anonymous, or a tmpfs), made by the engine on first use."""
    if m.tmpfs_bytes:
        return docker.types.Mount(target=m.target, source=None, type="tmpfs", tmpfs_size=m.tmpfs_bytes,
                                  tmpfs_mode=0o1777)
    return docker.types.Mount(target=m.target, source=m.volume, type="volume", labels=dict(m.labels) or None)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class Engine:
    """A Docker Engine. One SDK client per Engine (for remote engines each new client costs a round trip)."""

    def __init__(self, client: Any | None = None, *, server: str | None = None) -> None:
        # The machine the engine runs on when not this one: what it does with names and addresses (a registry's
        # 127.0.0.1) happens there, while the registry credentials the SDK sends with a push or pull (X-Registry-
        # Auth) are read here, from this machine's Docker config, like the docker CLI with a remote DOCKER_HOST.
        self.server = server
        if client is None:
            try:
                # No ping: making the client asks the engine's /version, which fails as a ping would.
                client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise _explain_connection_error(exc) from None
        self._client = client

    @classmethod
    def at(cls, base_url: str, *, server: str | None = None, timeout: float = 60.0) -> Engine:
        """The engine at BASE_URL (e.g. unix:///run/user/1000/devagent-link-x/docker.sock), answering /version.

        SERVER names the machine it runs on when that is not this one (a socket forwarded by ssh): the errors then
        name it, and say what to do there."""
        try:
            client = docker.DockerClient(base_url=base_url, timeout=int(timeout))
        except docker.errors.DockerException as exc:
            raise _explain_connection_error(exc, server) from None
        return cls(client, server=server)

    def close(self) -> None:
        """Close the SDK's connections (a forwarded socket is about to go away)."""
        self._client.close()

    # -- images ---------------------------------------------------------------------------------------------

    def cpu_count(self) -> int:
        return int(self._client.info().get("NCPU") or 1)

    def image_id(self, ref: str) -> str | None:
        try:
            return str(self._client.images.get(ref).id)
        except docker.errors.ImageNotFound:
            return None

    def image_digest(self, ref: str) -> str:
        """The base image's digest (repo digest when pulled, content id when imported or built)."""
        image = self._client.images.get(ref)
        digests = image.attrs.get("RepoDigests") or []
        return str(digests[0].split("@", 1)[1]) if digests else str(image.id)

    def image_facts(self, ref: str) -> ImageFacts | None:
        """REF's id, repo digests and labels from one request; None when the engine has no such image."""
        try:
            attrs = self._client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        return ImageFacts(id=str(attrs["Id"]), repo_digests=tuple(str(d) for d in attrs.get("RepoDigests") or []),
                          labels=dict((attrs.get("Config") or {}).get("Labels") or {}))

    def image_user_uid(self, image: str, user: str) -> int | None:
        """USER's uid in IMAGE's /etc/passwd, from a container of it that never starts (None: refused)."""
        try:
            made = self._client.api.create_container(
                image, command=["true"], network_disabled=True, labels={f"{LABEL_PREFIX}image-probe": "true"},
                host_config=self._client.api.create_host_config(network_mode="none"))
        except docker.errors.APIError:
            return None
        try:
            return self.user_uid(str(made["Id"]), user)
        finally:
            self.remove(str(made["Id"]))

    def image_labels(self, ref: str) -> dict[str, str] | None:
        """REF's labels (empty when it has none); None when the engine has no such image."""
        try:
            image = self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        return dict((image.attrs.get("Config") or {}).get("Labels") or {})

    def repo_digests(self, ref: str) -> list[str]:
        """REPOSITORY@sha256:… for each registry REF was pushed to or pulled from; [] for an image only here."""
        try:
            return [str(d) for d in self._client.images.get(ref).attrs.get("RepoDigests") or []]
        except docker.errors.ImageNotFound:
            return []

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        self._client.api.tag(image, repository, tag, force=True)

    def remove_image(self, ref: str) -> None:
        """Remove the name REF (the image itself goes with its last name, unless a container uses it)."""
        with contextlib.suppress(docker.errors.NotFound):
            self._client.api.remove_image(ref)

    def push(self, repository: str, tag: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        """Push REPOSITORY:TAG with the credentials of Docker's own config (the SDK reads $DOCKER_CONFIG or
        ~/.docker/config.json, credential helpers included). Returns (the registry's digest or None, its last word)."""
        last, digest = "", None
        try:
            for event in self._client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    return None, str(event["error"])
                aux = event.get("aux") or {}
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                last = str(event.get("status", ""))
                if last in ("Pushed", "Layer already exists") or "digest:" in last:
                    on_line(f"{event.get('id', '')} {last}".strip())
        except docker.errors.DockerException as exc:
            return None, str(getattr(exc, "explanation", None) or exc)
        return digest, last

    def pull(self, ref: str, on_line: Callable[[str], None]) -> tuple[str | None, str]:
        """Pull REF, reporting each layer once it is done. Returns (image id or None, the engine's last word)."""
        last = ""
        try:
            # The SDK splits REF into repository and tag (or digest), registry ports included.
            for event in self._client.api.pull(ref, stream=True, decode=True):
                if "error" in event:
                    return None, str(event["error"])
                last = str(event.get("status", ""))
                if last in ("Pull complete", "Already exists") or last.startswith(("Digest:", "Status:")):
                    on_line(f"{event.get('id', '')} {last}".strip())
        except docker.errors.DockerException as exc:
            return None, str(getattr(exc, "explanation", None) or exc)
        return self.image_id(ref), last

    def build(self, context: Path, tag: str, labels: Mapping[str, str], on_line: Callable[[str], None], *,
              dockerfile: str | None = None, buildargs: Mapping[str, str] | None = None,
              target: str | None = None) -> None:
        """Build CONTEXT into TAG, streaming progress lines to ON_LINE. DOCKERFILE (relative to CONTEXT),
        BUILDARGS and TARGET as `docker build` takes them (a devcontainer.json's build)."""
        log: list[str] = []
        try:
            for chunk in self._client.api.build(
                path=str(context), tag=tag, labels=dict(labels), rm=True, forcerm=True, decode=True, pull=False,
                dockerfile=dockerfile, buildargs=dict(buildargs or {}) or None, target=target,
            ):
                if "stream" in chunk:
                    for line in str(chunk["stream"]).splitlines():
                        # Step lines show progress; Docker's bookkeeping lines are noise to a user.
                        if line.strip() and not line.startswith((" ---> ", "Removing intermediate")):
                            log.append(line)
                            on_line(line)
                if "error" in chunk:
                    raise DevagentError(
                        f"building image {tag} failed: {str(chunk['error']).strip()}",
                        hint="read the build output above; the base image must be Debian/Ubuntu-based with python3",
                        status=ExitStatus.IMAGE_BUILD_FAILED,
                        details="\n".join(log[-15:]),
                    )
        except docker.errors.APIError as exc:
            raise DevagentError(f"building image {tag} failed: {exc.explanation or exc}",
                                status=ExitStatus.IMAGE_BUILD_FAILED,
                                hint="check the base image and the Docker Engine's log") from None

    # -- containers -----------------------------------------------------------------------------------------

    def _info(self, c: Any) -> ContainerInfo:
        ports = (c.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        host_port = None
        for bindings in ports.values():
            for b in bindings or []:
                if b.get("HostIp") == "127.0.0.1" and b.get("HostPort"):
                    host_port = int(b["HostPort"])
        fixed = [port for ip, port in _bound_ports((c.attrs.get("HostConfig") or {}).get("PortBindings"))
                 if ip == "127.0.0.1"]
        state = c.attrs.get("State") or {}
        checks = state.get("Health") or {}
        last = (checks.get("Log") or [{}])[-1]
        return ContainerInfo(
            id=c.id, name=c.name, status=c.status, labels=c.labels or {}, host_port=host_port,
            image=(c.attrs.get("Config") or {}).get("Image", ""), created=c.attrs.get("Created", ""),
            exit_code=state.get("ExitCode") if state.get("Status") == "exited" else None,
            health=checks.get("Status") or None,
            health_output=health.split_output(str(last.get("Output") or ""))[0],
            fixed_port=fixed[0] if fixed else None,
        )

    def get(self, name: str) -> ContainerInfo | None:
        try:
            c = self._client.containers.get(name)
        except docker.errors.NotFound:
            return None
        return self._info(c)

    def list_managed(self, *, name: str | None = None) -> list[ContainerInfo]:
        """devagent's containers; NAME: only environment NAME's (each one listed costs an inspect)."""
        labels = [MANAGED] if name is None else [MANAGED, f"{LABEL_PREFIX}name={name}"]
        # A container removed between the SDK's list and its inspect of each one is left out, not an error.
        return [self._info(c) for c in self._client.containers.list(all=True, filters={"label": labels},
                                                                    ignore_removed=True)]

    def bound_ports(self) -> set[int]:
        """Every host port a container on this engine publishes or will publish when started: running ones'
        ports, and the fixed ports (PortBindings) of the stopped and not yet started ones, whoever made them."""
        ports: set[int] = set()
        for row in self._client.api.containers(all=True):
            if row.get("State") == "running":
                ports.update(int(p["PublicPort"]) for p in row.get("Ports") or [] if p.get("PublicPort"))
                continue
            if (row.get("HostConfig") or {}).get("NetworkMode") == "none":
                continue  # publishes nothing (the engine refuses ports there): a GPU lease, one inspect less each
            try:  # the list shows no ports for a container that is not running: its bindings are in inspect
                host_config = self._client.api.inspect_container(row["Id"]).get("HostConfig") or {}
            except docker.errors.NotFound:  # removed meanwhile
                continue
            ports.update(port for _, port in _bound_ports(host_config.get("PortBindings")))
        return ports

    def create(self, *, name: str, image: str, command: list[str], user: str, labels: Mapping[str, str],
               container_port: int, host_port: int | None, mounts: Iterable[tuple[str, str, str]], memory: int,
               cpus: float, shm_size: int, pids: int, gpus: GpuRequest, environment: Mapping[str, str],
               volumes: Iterable[Mount] = (), read_only: bool = False) -> str:
        """Create (not start) a hardened container on the environments' network (made on first use). Returns its id.

        CONTAINER_PORT is published on the engine's 127.0.0.1:HOST_PORT at every start (None: a port Docker picks
        anew each time). Whether HOST_PORT is free shows only at `start`.

        Its hostname is the environment's name (the devagent.name label), not NAME: `up` creates it under a
        temporary name and renames it once it is complete, and a hostname stays what it was made with."""
        network = self.environment_network()
        try:
            # containers.create's own request (its argument translation), without the inspect it makes after.
            c = self._client.api.create_container(**_create_container_args(dict(
                version=self._client.api._version,  # as containers.create passes it
                image=image, name=name, command=command, user=user, labels=dict(labels),
                hostname=labels.get(f"{LABEL_PREFIX}name", name), init=True, detach=True,
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                network=network, ports={f"{container_port}/tcp": ("127.0.0.1", host_port)},
                # Mount objects, not "host:inside:mode" strings: a ':' or ',' in a path stays a path.
                mounts=[docker.types.Mount(target=inside, source=host, type="bind", read_only=mode == "ro")
                        for host, inside, mode in mounts] + [_mount(v) for v in volumes], read_only=read_only,
                mem_limit=memory, memswap_limit=memory, nano_cpus=int(cpus * 1e9),
                shm_size=shm_size, pids_limit=pids,
                device_requests=gpu_device_requests(gpus),
                environment=dict(environment),
                restart_policy={"Name": "no"},
                log_config=docker.types.LogConfig(type="json-file", config=LOG_CONFIG),
                ulimits=[docker.types.Ulimit(name="nofile", soft=NOFILE, hard=NOFILE)],
                healthcheck=docker.types.Healthcheck(
                    test=["CMD-SHELL", health.HEALTH_TEST], interval=_ns(health.INTERVAL_SECONDS),
                    timeout=_ns(health.TIMEOUT_SECONDS), retries=health.RETRIES,
                    start_period=_ns(health.START_PERIOD_SECONDS)),
            )))
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise DevagentError(f"a container named {name!r} already exists",
                                    hint=f"choose another name, or remove it: docker rm -f {name}",
                                    status=ExitStatus.CONFLICT) from None
            if exc.status_code == 400:  # the engine refused an option: its words name the limit
                raise DevagentError(f"the Docker Engine refused the container: {exc.explanation}",
                                    hint="adjust the option it names (e.g. --cpus, --memory, --shm-size)",
                                    status=ExitStatus.USAGE) from None
            raise
        return str(c["Id"])

    # -- the GPU ledger -------------------------------------------------------------------------------------------

    def container_rows(self) -> list[ContainerRow]:
        """Every container, from one list call."""
        return [ContainerRow(id=str(row["Id"]), name=str((row.get("Names") or ["/"])[0]).lstrip("/"),
                             state=str(row.get("State", "")), labels=row.get("Labels") or {},
                             exit_code=listed_exit_code(row.get("Status")))
                for row in self._client.api.containers(all=True)]

    def lifetime(self, container_id: str) -> tuple[int, int] | None:
        """When the container was made and when it last finished (0 or less: never), in nanoseconds of the
        engine's own clock (so two containers' times compare whoever asks); None when it is gone."""
        try:
            inspect = self._client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        return engine_ns(inspect.get("Created")), engine_ns((inspect.get("State") or {}).get("FinishedAt"))

    def read_file(self, container_id: str, path: str, *, limit: int = 1 << 20) -> bytes | None:
        """The regular file PATH in a container (running or not), at most LIMIT bytes; None when it is not there
        (or is not a regular file, or the container is gone). One get_archive call."""
        try:
            stream, _ = self._client.api.get_archive(container_id, path)
            data = b"".join(stream)
        except docker.errors.APIError:
            return None
        with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            if member is None or not member.isfile() or member.size > limit:
                return None
            extracted = tar.extractfile(member)
            return extracted.read(limit) if extracted else None
        return None

    def health_usage(self, container_id: str, *, clock_is_ours: bool) -> health.Printed:
        """The GPU usage record the container's last health check printed and until when it stays the last
        (core/health.py's printed: only where CLOCK_IS_OURS, the site's word); its record is None with no check
        yet, an older devagent's check, a record too long for the output, the container gone. One inspect."""
        try:
            inspect = self._client.api.inspect_container(container_id)
        except docker.errors.APIError:
            return health.Printed(None)
        return health.printed(inspect, now=time.time(), local=clock_is_ours)

    def container_gpus(self, container_id: str) -> ContainerGpus | None:
        """What the container asked for in GPUs (its inspect); None when it is gone."""
        try:
            return container_gpus(self._client.api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None

    def leases(self) -> list[Lease]:
        """The ledger's leases, from one list call."""
        rows = self._client.api.containers(all=True, filters={"label": LEASE_LABEL})
        return [_lease(row) for row in rows]

    def create_lease(self, name: str, labels: Mapping[str, str]) -> Lease | None:
        """Create the lease container NAME (never started, no network, no command that could run); None when a
        container of that name exists: the engine makes this check and the create one step, so of two devagents
        creating NAME at once exactly one succeeds."""
        image = self._lease_image()
        try:
            c = self._client.api.create_container(
                image, command=["devagent-gpu-lease"], name=name, labels=dict(labels), network_disabled=True,
                host_config=self._client.api.create_host_config(network_mode="none", restart_policy={"Name": "no"}))
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return None
            raise DevagentError(f"the Docker Engine refused the GPU lease {name!r}: {exc.explanation or exc}",
                                status=ExitStatus.CONTAINER_FAILED,
                                hint="check the Docker Engine's log; `devagent gpus` shows the leases") from None
        rows = self._client.api.containers(all=True, filters={"id": c["Id"]})
        return _lease(rows[0]) if rows else None

    def _lease_image(self) -> str:
        """LEASE_IMAGE, imported from an empty archive when missing (about 50 ms, once per engine; two devagents
        importing it at once both succeed)."""
        try:
            self._client.api.inspect_image(LEASE_IMAGE)
        except docker.errors.ImageNotFound:
            empty = io.BytesIO()
            tarfile.open(fileobj=empty, mode="w").close()
            repository, tag = LEASE_IMAGE.rsplit(":", 1)
            self._client.api.import_image_from_data(empty.getvalue(), repository=repository, tag=tag,
                                                    changes=[f"LABEL {LABEL_PREFIX}gpu-lease-image=true"])
        return LEASE_IMAGE

    def environment_network(self) -> str:
        """The id of the network every environment joins (ENV_NETWORK), created when missing. It is shared, so no
        `up` removes it; `docker network rm devagent` does, once no environment is left."""
        found = self._find_environment_network()
        if found is None:
            try:
                self._client.api.create_network(ENV_NETWORK, driver="bridge", options=ENV_NETWORK_OPTIONS,
                                                labels={f"{LABEL_PREFIX}managed": "true"}, check_duplicate=True)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: another devagent made it meanwhile
                    raise DevagentError(f"the Docker Engine refused to create the network {ENV_NETWORK!r}: "
                                        f"{exc.explanation or exc}", status=ExitStatus.CONTAINER_FAILED,
                                        hint="the engine's address pools may be used up: `docker network prune` "
                                        "removes unused networks") from None
            found = self._find_environment_network()
            assert found is not None, "the network was created but cannot be found"
        return found

    def _find_environment_network(self) -> str | None:
        rows = [n for n in self._client.api.networks(names=[ENV_NETWORK]) if n.get("Name") == ENV_NETWORK]
        ours = [n for n in rows if (n.get("Labels") or {}).get(f"{LABEL_PREFIX}managed") == "true"]
        if rows and not ours:
            raise DevagentError(f"a Docker network named {ENV_NETWORK!r} exists and devagent did not make it",
                                status=ExitStatus.CONFLICT,
                                hint=f"remove or rename it (docker network rm {ENV_NETWORK}); devagent makes its "
                                "own, with traffic between containers turned off")
        # An engine older than API 1.44 may let two concurrent creates both succeed: every devagent takes the
        # oldest, so all environments still share one network.
        return str(min(ours, key=lambda n: (n.get("Created", ""), n["Id"]))["Id"]) if ours else None

    def put_files(self, container_id: str, dest: str, files: Iterable[ArchiveFile]) -> None:
        """Copy files into a (created, not yet started) container, with owners and modes set in the tar."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for f in files:
                info = tarfile.TarInfo(f.path)
                info.size, info.mode, info.uid, info.gid = len(f.data), f.mode, f.uid, f.gid
                tar.addfile(info, io.BytesIO(f.data))
        self._client.api.put_archive(container_id, dest, buf.getvalue())

    def start(self, container_id: str) -> ContainerInfo:
        """Start a container; DevagentError(PORT_TAKEN) when its fixed host port is taken, which leaves it as
        it was (not running, its port unchanged)."""
        try:
            self._client.api.start(container_id)
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if _is_port_taken(text):
                raise DevagentError("the container did not start: its host port is taken",
                                    status=ExitStatus.PORT_TAKEN, details=text,
                                    hint="free the port, or give the container another one") from None
            if _is_gpu_runtime_error(text):
                raise DevagentError(
                    "GPUs were requested but this Docker Engine cannot give them (no NVIDIA runtime)",
                    hint="install the NVIDIA Container Toolkit on the server and restart Docker, "
                    "or run without GPUs: --gpus none",
                    status=ExitStatus.GPU_UNAVAILABLE, details=text,
                ) from None
            if "error setting rlimit" in text:
                raise DevagentError(
                    f"the container did not start: the Docker Engine cannot give it {NOFILE} open files",
                    hint=f"its own limit is lower and it may not raise it: start dockerd with a limit of at least "
                    f"{NOFILE} (LimitNOFILE= in its systemd unit, or `ulimit -n` in the shell that starts it)",
                    status=ExitStatus.CONTAINER_FAILED, details=text) from None
            raise DevagentError(f"the container did not start: {text}", status=ExitStatus.CONTAINER_FAILED,
                                hint="check the options and the Docker Engine's log") from None
        info = self.get(container_id)
        assert info is not None
        return info

    def stop(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container (SIGTERM, then SIGKILL after TIMEOUT seconds); a stopped or missing one is fine."""
        with contextlib.suppress(docker.errors.NotFound):
            self._client.api.stop(container_id, timeout=timeout)

    def logs(self, container_id: str, tail: int = 20) -> str:
        try:
            return str(self._client.api.logs(container_id, tail=tail).decode(errors="replace"))
        except docker.errors.NotFound:
            return ""

    def remove_if_labelled(self, name: str, key: str, value: str) -> None:
        """Force-remove the container NAME only if it carries the label KEY=VALUE (so it is the one we made)."""
        rows = self._client.api.containers(all=True, filters={"name": name, "label": f"{key}={value}"})
        for row in rows:
            if f"/{name}" in row.get("Names", []):
                self.remove(row["Id"])

    def remove(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes (/tmp, /var/tmp: core/mounts/home.py; a named one, such as
        the home, stays); a missing one is fine."""
        try:
            self._client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "is already in progress" not in str(exc):
                raise

    def volume_labels(self, name: str) -> dict[str, str] | None:
        """The named volume NAME's labels; None when the engine has no such volume."""
        try:
            return dict(self._client.api.inspect_volume(name).get("Labels") or {})
        except docker.errors.NotFound:
            return None

    def volume_size(self, name: str) -> int | None:
        """The bytes volume NAME holds, as `docker system df -v` reports them; None when unknown or missing."""
        for row in self._client.api.df().get("Volumes") or []:
            if row.get("Name") == name:
                size = (row.get("UsageData") or {}).get("Size")
                return int(size) if isinstance(size, int) and size >= 0 else None
        return None

    def remove_volume(self, name: str) -> bool:
        """Remove the named volume NAME; False when it is missing. A volume a container still mounts is an error
        that names that container."""
        try:
            self._client.api.remove_volume(name)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            raise DevagentError(f"the Docker Engine did not remove the volume {name}: {exc.explanation or exc}",
                                status=ExitStatus.CONFLICT,
                                hint="remove the container that uses it first (docker ps -a --filter "
                                f"volume={name})") from None
        return True

    def rename(self, container_id: str, name: str) -> None:
        try:
            self._client.api.rename(container_id, name)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise DevagentError(f"a container named {name!r} already exists",
                                    hint=f"choose another name, or remove it: docker rm -f {name}",
                                    status=ExitStatus.CONFLICT) from None
            raise

    def exec_as(self, container_id: str, user: str, argv: list[str]) -> tuple[int, str]:
        """Run ARGV in a running container as USER; (exit status, stdout and stderr together)."""
        try:
            exec_id = self._client.api.exec_create(container_id, argv, user=user, stdout=True, stderr=True)["Id"]
            output = self._client.api.exec_start(exec_id)
            code = self._client.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as exc:
            return 1, str(exc.explanation or exc)
        return int(code if code is not None else 1), bytes(output).decode(errors="replace")

    def user_uid(self, container_id: str, user: str) -> int | None:
        """The uid of USER in a created container's /etc/passwd (the base image may have given another uid)."""
        stream, _ = self._client.api.get_archive(container_id, "/etc/passwd")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("passwd")
            text = member.read().decode() if member else ""
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) > 3 and parts[0] == user:
                return int(parts[2])
        return None
