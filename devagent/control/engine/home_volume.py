"""The environment's home volume on its engine (this machine's or a server's): what `up`, `down` and `doctor` do
with it. What it is and why: devagent/core/mounts/home.py."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from devagent.control.engine.docker_engine import ContainerInfo
from devagent.control.engine.engine_api import EngineApi
from devagent.core.mounts import home
from devagent.errors import DevagentError, ExitStatus


def remove_made(engine: EngineApi, name: str, up_id: str) -> None:
    """A failed `up`'s undo: remove NAME's home volume if this up (UP_ID) made it, after its container went.
    One that a concurrent up of NAME mounts by now stays (the engine refuses to remove a volume in use)."""
    labels = engine.volume_labels(home.home_volume(name))
    if home.is_ours(labels, name) and labels is not None and labels.get(home.HOME_UP_LABEL) == up_id:
        with contextlib.suppress(DevagentError):
            engine.remove_volume(home.home_volume(name))


def not_yours(name: str, user: str, image: str, logs: str) -> DevagentError:
    """The error for a container whose login user does not own the home volume it mounts (the container's first
    words, in LOGS, name both uids): another --user, or a team image built for another uid."""
    volume = home.home_volume(name)
    return DevagentError(
        f"the home of {name!r} (the volume {volume}) belongs to another user than the login user {user!r} of "
        f"{image}", status=ExitStatus.CONFLICT, details=logs.strip() or None,
        hint=f"run `devagent up {name}` with the options it was made with (`devagent ls` shows its user); or "
        f"give the home to that user: docker run --rm --user 0 -v {volume}:/h --entrypoint chown {image} "
        f"-R {user}: /h — or remove it: `devagent down {name}` (removes the home too), then up again")


def check_exit(engine: EngineApi, info: ContainerInfo | None, name: str) -> None:
    """Raise not_yours() when INFO, a container of NAME, exited because its login user does not own its home."""
    if info is not None and info.status in ("exited", "dead") and info.exit_code == home.HOME_NOT_YOURS_EXIT:
        raise not_yours(name, info.labels.get("devagent.user", "?"), info.image, engine.logs(info.id, tail=5))


def measure(engine: EngineApi, info: ContainerInfo | None) -> int | None:
    """The bytes in the home of INFO, NAME's container, measured in it while it runs (home.DU_HOME); None when it
    does not run or could not say (then the engine is asked: `volume_size`)."""
    if info is None or info.status != "running":
        return None
    code, output = engine.exec_as(info.id, info.labels.get("devagent.user") or "dev", ["sh", "-c", home.DU_HOME])
    return home.du_bytes(output) if code == 0 else None


def remove(engine: EngineApi, name: str, *, keep: bool, report: Callable[[str], None],
           size: int | None = None) -> list[str]:
    """`down`'s last step: NAME's home volume removed, with its SIZE (measured while its container ran; else the
    engine's figure) for down's report, or kept (KEEP: `down --keep-home`, said through REPORT). A volume so named
    that devagent did not make is left alone."""
    volume = home.home_volume(name)
    if not home.is_ours(engine.volume_labels(volume), name):
        return []
    size_text = home.describe_size(size if size is not None else engine.volume_size(volume))
    if keep:
        report(f"kept the home volume {volume} ({size_text}): `devagent up {name}` mounts it again, "
               f"`devagent down {name}` removes it")
        return []
    try:
        removed = engine.remove_volume(volume)
    except DevagentError as exc:  # another person's container of NAME, which down left alone, mounts it
        report(f"kept the home volume {volume} ({size_text}): a container down leaves alone still uses it "
               f"({exc.message}); the `devagent down {name}` that removes that container removes it too")
        return []
    return [f"home volume {volume} ({size_text})"] if removed else []


def size_line(engine: EngineApi, name: str, info: ContainerInfo | None) -> str | None:
    """For `doctor`: NAME's home volume and its size (measured in INFO, its container, when it runs); None when
    NAME has none (made before devagent kept homes)."""
    volume = home.home_volume(name)
    if not home.is_ours(engine.volume_labels(volume), name):
        return None
    size = measure(engine, info)
    size = size if size is not None else engine.volume_size(volume)
    return f"{volume}, {home.describe_size(size)}; kept by --recreate, removed by down"
