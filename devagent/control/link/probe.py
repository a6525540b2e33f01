"""What the link finds out on the server right after the login, in one POSIX sh script: who devagent is there,
which Docker Engine socket it may use, and where the paths it was asked about resolve. The script's text and the
reading of its output are here; link.py runs it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devagent.core.ssh.destination import Server
from devagent.errors import DevagentError, ExitStatus

DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


@dataclass(frozen=True)
class ServerFacts:
    """Who devagent is on the server, and the engine socket it uses there."""

    user: str
    uid: int
    gid: int
    home: str
    docker_socket: str
    # Each path the link was asked to resolve (as typed: `~/x`, relative to the home, or absolute) → as the server
    # sees it: absolute, `..` and links resolved (links in the part that exists); '' where it could not be.
    resolved: Mapping[str, str] = field(default_factory=dict)


def probe_script(docker_socket: str | None) -> str:
    """The POSIX sh script (run as `sh -s -- PATH…`, whatever the login shell) that prints the server user's facts,
    for each candidate engine socket that exists whether that user may use it, and each PATH resolved."""
    if docker_socket is not None:
        candidates = shlex.quote(docker_socket)
    else:
        # DOCKER_HOST (when the server's environment sets one), the rootful engine, then rootless Docker's.
        candidates = " ".join([
            '"${DOCKER_HOST#unix://}"', *DEFAULT_SOCKETS,
            '"${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/docker.sock"', '"/run/user/$(id -u)/docker.sock"'])
    return "\n".join([
        "printf 'user=%s\\n' \"$(id -un)\"",
        "printf 'uid=%s\\n' \"$(id -u)\"",
        "printf 'gid=%s\\n' \"$(id -g)\"",
        "printf 'home=%s\\n' \"$HOME\"",
        'case "${DOCKER_HOST:-}" in unix://*) ;; *) DOCKER_HOST= ;; esac',
        f"for s in {candidates}; do",
        '  [ -n "$s" ] || continue',
        '  if [ -S "$s" ]; then',
        "    if [ -r \"$s\" ] && [ -w \"$s\" ]; then printf 'usable=%s\\n' \"$s\"; "
        "else printf 'denied=%s\\n' \"$s\"; fi",
        "  else printf 'missing=%s\\n' \"$s\"; fi",
        "done",
        # The paths to resolve: one line each, in order; one that resolves to a name with a newline is not usable.
        "nl=$(printf '\\nx'); nl=${nl%x}",
        'for w in "$@"; do',
        '  case $w in "~") a=$HOME ;; "~/"*) a=$HOME/${w#"~/"} ;; /*) a=$w ;; *) a=$HOME/$w ;; esac',
        '  r=$(realpath -m -- "$a" 2>/dev/null) || r=',
        '  case $r in *"$nl"*) r= ;; esac',
        "  printf 'resolved=%s\\n' \"$r\"",
        "done",
        "",
    ])


def read_facts(server: Server, output: str, *, named: str | None, resolve: Sequence[str] = (),
               engine: bool = True) -> ServerFacts:
    """The probe's OUTPUT as ServerFacts (RESOLVE: the paths it was given, in order), or the DevagentError that says
    why the engine cannot be used. ENGINE=False: a server that needs none (a Slurm login node, asked only to run
    Slurm's commands); its docker_socket is then '' where none is usable.

    >>> read_facts(Server("gpu"), "user=al\\nuid=1000\\ngid=1000\\nhome=/home/al\\nmissing=/var/run/docker.sock\\n"
    ...            "usable=/run/user/1000/docker.sock\\n", named=None).docker_socket
    '/run/user/1000/docker.sock'
    """
    values: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    resolved: list[str] = []
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "resolved":
            resolved.append(value)
        elif key in ("usable", "denied", "missing"):
            found.append((key, value))
        elif key in ("user", "uid", "gid", "home"):
            values.setdefault(key, value)
    if not (values.get("uid", "").isdigit() and values.get("gid", "").isdigit() and values.get("user")):
        raise DevagentError(f"devagent could not find out who it is on {server} (`id` printed nothing usable)",
                            hint=f"check that `ssh {server} id` works and prints a uid",
                            status=ExitStatus.SERVER_UNREACHABLE, details=output)
    usable = [path for kind, path in found if kind == "usable"]
    denied = [path for kind, path in found if kind == "denied"]
    user = values["user"]
    if not engine and not usable:
        usable = [""]
    if not usable and denied:
        raise DevagentError(
            f"{user} on {server} may not use the Docker Engine's socket {denied[0]} (permission denied)",
            hint=f"on {server}, add them to the docker group (sudo usermod -aG docker {user}, then log in again); "
            "that group is root-equivalent on that server",
            status=ExitStatus.DOCKER_PERMISSION)
    if not usable:
        looked = ", ".join(dict.fromkeys(path for _, path in found)) or "(nothing)"
        raise DevagentError(
            f"no Docker Engine socket on {server}" + (f" at {named}" if named else ""),
            hint=f"start Docker there (sudo systemctl start docker, or rootless: systemctl --user start docker); "
            f"looked at {looked}; if its socket is elsewhere, name it: DEVAGENT_DOCKER_SOCKET",
            status=ExitStatus.DOCKER_UNAVAILABLE)
    return ServerFacts(user=user, uid=int(values["uid"]), gid=int(values["gid"]), home=values.get("home", ""),
                       docker_socket=usable[0],
                       resolved=dict(zip(resolve, resolved, strict=True)) if len(resolved) == len(resolve) else {})
