"""Whether the kernel's OOM killer struck during a run: the kill counter of our memory cgroup, read before and
after (a SIGKILL alone does not say why)."""

from __future__ import annotations

from pathlib import Path


def oom_kill_count(proc_self_cgroup: Path = Path("/proc/self/cgroup"),
                   cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """How many processes the kernel's OOM killer has killed in our memory cgroup (cgroup v2 ``memory.events``,
    v1 ``memory.oom_control``); None when that cannot be read.

    Inside a container without a cgroup namespace, /proc/self/cgroup names the host's path while the container
    sees its own cgroup at the mount's root: the path is shortened from the left until the file exists.
    """
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    # A v1 memory controller wins: on a hybrid host the v2 hierarchy has no memory controller.
    if v1_path is not None:
        return _read_oom_kill(cgroup_root / "memory", v1_path, "memory.oom_control")
    if v2_path is not None:
        return _read_oom_kill(cgroup_root, v2_path, "memory.events")
    return None


def _read_oom_kill(mount: Path, cgroup: str, name: str) -> int | None:
    parts = [p for p in cgroup.split("/") if p]
    for start in range(len(parts) + 1):
        try:
            text = mount.joinpath(*parts[start:], name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None  # the file, without the counter (a kernel before 4.13)
    return None
