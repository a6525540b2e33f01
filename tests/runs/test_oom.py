"""The cgroup OOM-kill counter, from hand-made cgroup v1 and v2 files, and on this machine."""

from __future__ import annotations

from pathlib import Path

from devagent.runs.oom import oom_kill_count


def cgroup_files(tmp_path: Path, self_cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (tmp_path / "self-cgroup").write_text(self_cgroup)
    return tmp_path / "self-cgroup", root


V2_EVENTS = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
V1_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"


def test_oom_kill_count_reads_cgroup_v2_memory_events(tmp_path: Path) -> None:
    self_cgroup, root = cgroup_files(tmp_path, "0::/user.slice/run-7.scope\n",
                                     {"user.slice/run-7.scope/memory.events": V2_EVENTS})
    assert oom_kill_count(self_cgroup, root) == 2


def test_oom_kill_count_reads_cgroup_v1_memory_oom_control_and_prefers_it_on_a_hybrid_host(tmp_path: Path) -> None:
    self_cgroup, root = cgroup_files(
        tmp_path, "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n",
        {"memory/docker/abc/memory.oom_control": V1_CONTROL, "docker/abc/memory.events": V2_EVENTS})
    assert oom_kill_count(self_cgroup, root) == 5


def test_oom_kill_count_finds_a_containers_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    # Without a cgroup namespace the container sees the host's path in /proc/self/cgroup, and its own cgroup
    # mounted at /sys/fs/cgroup/memory.
    self_cgroup, root = cgroup_files(tmp_path, "4:memory,hugetlb:/docker/abc123\n",
                                     {"memory/memory.oom_control": V1_CONTROL})
    assert oom_kill_count(self_cgroup, root) == 5
    self_cgroup, root = cgroup_files(tmp_path / "v2", "0::/system.slice/docker-abc.scope\n",
                                     {"memory.events": V2_EVENTS})
    assert oom_kill_count(self_cgroup, root) == 2


def test_oom_kill_count_is_none_when_it_cannot_be_read(tmp_path: Path) -> None:
    self_cgroup, root = cgroup_files(tmp_path, "0::/a\n", {"a/memory.events": "low 0\nhigh 0\n"})
    assert oom_kill_count(self_cgroup, root) is None  # a kernel before 4.13 has no counter
    assert oom_kill_count(tmp_path / "missing", root) is None
    self_cgroup, root = cgroup_files(tmp_path / "none", "0::/a\n", {})
    assert oom_kill_count(self_cgroup, root) is None
    self_cgroup, root = cgroup_files(tmp_path / "garbled", "garbled\n4:memory:/x\n",
                                     {"memory/x/memory.oom_control": "oom_kill many\n"})
    assert oom_kill_count(self_cgroup, root) is None


def test_oom_kill_count_on_this_machine_is_a_number_or_none() -> None:
    count = oom_kill_count()
    assert count is None or (isinstance(count, int) and count >= 0)
