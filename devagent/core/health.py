"""The environment's health as Docker checks it: a heartbeat line the agent writes, a shell test Docker runs.

Every HEARTBEAT_SECONDS the agent writes one line to ``~/HEALTH_FILE``: the host's boot-clock seconds and ``ok``,
or what is wrong (sshd not running, or not listening on its port). Docker runs HEALTH_TEST every
INTERVAL_SECONDS; it also prints the agent's GPU usage record (core/gpu/idle_rule.py, one JSON line)
when there is one, so that `devagent gpus` reads it with one inspect (State.Health.Log keeps the last
outputs, each cut at 4,096 bytes) instead of one get_archive per environment. The test is ``sh``
builtins only (``read``, arithmetic), so a check starts no process besides the shell Docker starts for it — no
Python, nothing to import. A heartbeat older than STALE_SECONDS means the agent is stuck.

Pure: the agent (agent/heartbeat.py) does the reading and writing, the engine adapter hands the test to Docker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devagent.core import layout

HEALTH_FILE = layout.HEARTBEAT  # under the login user's home, beside the agent's other state
USAGE_FILE = layout.GPU_USAGE
# The usage record's line in the check's output; Docker keeps at most this much of an output (maxOutputLen).
USAGE_MARK = "gpu-usage: "
DOCKER_OUTPUT_LIMIT = 4096
# A longer record (many GPUs) is left out of the output, so the status line is never cut off with it.
USAGE_LINE_LIMIT = 3500
HEARTBEAT_SECONDS = 10
STALE_SECONDS = 60
# Docker's schedule: the first check INTERVAL after the start, unhealthy after RETRIES failures in a row (failures
# within START_PERIOD do not count).
INTERVAL_SECONDS = 30
TIMEOUT_SECONDS = 10
RETRIES = 3
START_PERIOD_SECONDS = 60

LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket

# /proc/uptime and the heartbeat use the same clock (boot time), so the age survives a changed wall clock; a
# heartbeat from before a reboot (a negative age) is as stale as an old one.
HEALTH_TEST = f"""\
f="$HOME/{HEALTH_FILE}"
read -r up _ < /proc/uptime
if ! read -r beat status < "$f"; then echo "the agent has not reported yet"; exit 1; fi
age=$(( ${{up%.*}} - beat ))
if [ "$age" -lt 0 ] || [ "$age" -gt {STALE_SECONDS} ]; then
  echo "the agent's last report is $age s old: it is stuck or gone"; exit 1
fi
rec=
IFS= read -r rec 2>/dev/null < "$HOME/{USAGE_FILE}"
[ -n "$rec" ] && [ ${{#rec}} -le {USAGE_LINE_LIMIT} ] && echo "{USAGE_MARK}$rec"
echo "$status"
[ "$status" = ok ]
"""


def split_output(output: str) -> tuple[str, str | None]:
    """A check's output as (the status for people, the usage record's text or None).

    The record is only taken whole: Docker cuts an output at DOCKER_OUTPUT_LIMIT bytes, and a cut record (it
    would end the output, before the status line) is no record; the reader then reads the file instead.

    >>> split_output('gpu-usage: {"version": 1}\\nok\\n')
    ('ok', '{"version": 1}')
    >>> split_output("the agent has not reported yet\\n")
    ('the agent has not reported yet', None)
    >>> split_output('gpu-usage: {"version": 1, "gp')  # cut by Docker: no status line after it
    ('', None)
    """
    lines = output.splitlines()
    record = None
    if lines and lines[0].startswith(USAGE_MARK):
        if len(lines) > 1:
            record = lines[0].removeprefix(USAGE_MARK)
        lines = lines[1:]
    return "\n".join(lines).strip(), record


@dataclass(frozen=True)
class Printed:
    """The usage record a container's last check printed (None: none, or cut), and UNTIL: this machine's
    ``time.time()`` before which Docker cannot hold a newer check's output (0: not known)."""

    record: str | None
    until: float = 0.0


def printed(inspect: Mapping[str, Any], *, now: float, local: bool) -> Printed:
    """What a container's inspect says of its last check (see split_output), and how long that stays the last.

    Docker starts the next check one interval after it has stored the last one's result (its start interval
    instead while a container within its start period is still "starting"), so until the last check's end plus
    that interval nothing newer can be asked for: `devagent gpus` keeps the record until then and shows the
    same thing without asking again. Only for an engine on this machine (LOCAL), whose clock is ours; never
    longer than one interval from NOW, whatever the clocks say.

    >>> inspect = {"Config": {"Healthcheck": {"Interval": 30_000_000_000}}, "State": {"Health": {
    ...     "Status": "healthy", "Log": [{"End": "1970-01-01T00:01:40.5+00:00", "Output": "gpu-usage: {}\\nok\\n"}]}}}
    >>> printed(inspect, now=110.0, local=True)
    Printed(record='{}', until=130.5)
    >>> printed(inspect, now=110.0, local=False), printed(inspect, now=131.0, local=True).until
    (Printed(record='{}', until=0.0), 0.0)
    >>> printed({}, now=1.0, local=True)
    Printed(record=None, until=0.0)
    """
    state = inspect.get("State") or {}
    last = ((state.get("Health") or {}).get("Log") or [{}])[-1]
    record = split_output(str(last.get("Output") or ""))[1]
    check = (inspect.get("Config") or {}).get("Healthcheck") or {}
    interval = int(check.get("Interval") or 0) or 30_000_000_000  # Docker's default
    if (state.get("Health") or {}).get("Status") == "starting" and int(check.get("StartInterval") or 0) > 0:
        interval = min(interval, int(check["StartInterval"]))
    end = _seconds(last.get("End"))
    if record is None or not local or end is None:
        return Printed(record)
    until = min(end, now) + interval / 1e9
    return Printed(record, until if until > now else 0.0)


def _seconds(text: object) -> float | None:
    """Seconds since the epoch of a time in Docker's RFC 3339 form (nanoseconds, Z or an offset).

    >>> _seconds("1970-01-01T01:00:01.123456789+01:00"), _seconds("1970-01-01T00:00:02Z"), _seconds("")
    (1.123456, 2.0, None)
    """
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", str(text or ""))
    if not m:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + zone).timestamp() + int((m.group(2) or "0")[:6].ljust(6, "0")) / 1e6


def heartbeat_line(boot_seconds: float, problems: Iterable[str]) -> str:
    """The line the agent writes: boot-clock seconds, then `ok` or its problems.

    >>> heartbeat_line(1234.9, [])
    '1234 ok\\n'
    >>> heartbeat_line(1234.9, ["sshd is not running (3 restarts)"])
    '1234 sshd is not running (3 restarts)\\n'
    """
    text = "; ".join(p.replace("\n", " ") for p in problems) or "ok"
    return f"{int(boot_seconds)} {text}\n"


def listening_ports(proc_net_tcp: str) -> set[int]:
    """The local ports of listening sockets in the text of /proc/net/tcp or /proc/net/tcp6.

    >>> listening_ports('''  sl  local_address rem_address   st tx_queue rx_queue
    ...    0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000
    ...    1: 0100007F:08AE 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000''')
    {2222}
    """
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def sshd_problems(*, running: bool, restarts: int, listening: bool, port: int) -> list[str]:
    """What is wrong with sshd, as the agent sees it; empty when it runs and listens on PORT.

    >>> sshd_problems(running=True, restarts=0, listening=True, port=2222)
    []
    >>> sshd_problems(running=False, restarts=1, listening=False, port=2222)
    ['sshd is not running (1 restart; docker logs shows why)']
    >>> sshd_problems(running=True, restarts=0, listening=False, port=2222)
    ['sshd does not listen on port 2222']
    """
    if not running:
        return [f"sshd is not running ({restarts} restart{'s' * (restarts != 1)}; docker logs shows why)"]
    if not listening:
        return [f"sshd does not listen on port {port}"]
    return []
