"""Which host port an environment's sshd gets: a fixed one, on the engine's 127.0.0.1, kept for its whole life.

devagent cannot test a port itself (the engine may be on another machine), so it lets the engine decide: it skips
every port some container on the engine already binds, tries the lowest one left, and when the engine answers that
the port is taken it tries the next (up to ATTEMPTS times).

>>> parse_ports("24000-24999") == range(24000, 25000)
True
>>> list(candidates(range(24000, 24005), bound={24000, 24002}, tried={24001}))
[24003, 24004]
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from devagent.errors import DevagentError, ExitStatus

PORTS_VARIABLE = "DEVAGENT_PORTS"
# Below Linux's ephemeral range (32768-60999), from which both outgoing connections and Docker's own unpinned
# host ports come, and away from Kubernetes' NodePorts (30000-32767): a port there is not taken by chance while its
# environment is stopped.
DEFAULT_PORTS = range(24000, 25000)
# How many ports one `up` tries before it gives up; each try costs a container create and remove. The engine
# refuses a port only to a container that another program or a started container holds, and every port of a
# started container is skipped at the next try: of N concurrent `up`s each loses at most N-1 times to the others,
# so up to ATTEMPTS of them always all succeed (fewer when other programs hold ports of the range).
ATTEMPTS = 20


def parse_ports(text: str) -> range:
    """DEVAGENT_PORTS: `FIRST-LAST` (both included) or one port."""
    first, sep, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last) if sep else int(first)
    except ValueError:
        low, high = 0, -1
    if not 1024 <= low <= high <= 65535:
        raise DevagentError(f"{PORTS_VARIABLE}={text!r} is not a port range",
                            hint=f"write FIRST-LAST, ports from 1024 to 65535, e.g. {PORTS_VARIABLE}="
                            f"{DEFAULT_PORTS.start}-{DEFAULT_PORTS.stop - 1}, or unset it",
                            status=ExitStatus.USAGE)
    return range(low, high + 1)


def describe(ports: range) -> str:
    return f"{ports.start}-{ports.stop - 1}" if len(ports) > 1 else str(ports.start)


def candidates(ports: range, *, bound: Collection[int], tried: Collection[int]) -> Iterator[int]:
    """The ports of PORTS no container binds and this `up` has not tried yet, lowest first."""
    return (p for p in ports if p not in bound and p not in tried)
