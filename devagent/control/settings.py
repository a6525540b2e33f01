"""The environment variables devagent's control side reads, on one frozen object built once per command.

`Paths` (control/paths.py) holds the locations; this holds the rest. Nothing else on the control side reads
these variables: a test builds a `Settings` from a dict, as it builds `Paths` from one.

    settings = Settings.from_environ()
    settings.host              # DEVAGENT_HOST: the server a command works on when --host is not given
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from devagent.core.gpu.idle_rule import MINIMUM_STAND_IN
from devagent.core.ports import PORTS_VARIABLE

HOST_VARIABLE = "DEVAGENT_HOST"
DOCKER_SOCKET_VARIABLE = "DEVAGENT_DOCKER_SOCKET"
# TEST SEAM, never set by the product: a JSON file standing in for this machine's GPUs (core/gpu/ledger.py's
# stand_in_inventory), for tests on machines without a GPU. Documented as test-only.
GPU_INVENTORY_STAND_IN = "DEVAGENT_TEST_GPU_INVENTORY"


@dataclass(frozen=True)
class Settings:
    host: str | None = None  # DEVAGENT_HOST ("" counts as unset)
    docker_socket: str | None = None  # DEVAGENT_DOCKER_SOCKET: the engine's socket on a server
    ports: str | None = None  # DEVAGENT_PORTS as written: parsed when a local environment needs a port
    gpu_inventory_stand_in: str | None = None  # DEVAGENT_TEST_GPU_INVENTORY (test seam)
    min_idle_release: str | None = None  # DEVAGENT_TEST_MIN_IDLE_RELEASE (test seam), seconds as written
    environ: Mapping[str, str] | None = None  # the whole environment, for what passes it on (ssh, Docker contexts)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(host=env.get(HOST_VARIABLE) or None, docker_socket=env.get(DOCKER_SOCKET_VARIABLE) or None,
                   ports=env.get(PORTS_VARIABLE) or None,
                   gpu_inventory_stand_in=env.get(GPU_INVENTORY_STAND_IN) or None,
                   min_idle_release=env.get(MINIMUM_STAND_IN), environ=env)
