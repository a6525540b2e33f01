"""A one-node torchrun's rank files, tailed by devagent: whole lines tagged with their rank, what is left read at
once when the run ends (no poll to wait out), the folder gone afterwards. The real torchrun runs in
tests/runs/test_distributed.py; here files laid out as torch's DefaultLogsSpecs lays them out."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from devagent.runs.rank_logs import READ_BYTES, RankLogs
from devagent.runs.streaming import run_streaming
from devagent.runs.wrapped import rank_tagging, tags_rank_files

NEVER = 3600.0  # a poll interval no test waits out: what arrives, arrives through stop()'s drain


def _rank_file(root: Path, rank: int, stream: str = "stdout", attempt: int = 0) -> Path:
    folder = root / "none_abc123" / f"attempt_{attempt}" / str(rank)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stream}.log"


class _Collected:
    def __init__(self) -> None:
        self.data = bytearray()
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.data += data


def test_lines_are_tagged_whole_and_what_is_left_is_read_at_stop(tmp_path: Path) -> None:
    logs = RankLogs(tmp_path / "ranks", interval=NEVER)
    (tmp_path / "ranks").mkdir()
    out = _Collected()
    logs.start(out.write)
    _rank_file(logs.root, 0).write_bytes(b"step=0 loss=1.0\nstep=1 loss=0.5\n")
    _rank_file(logs.root, 1, "stderr").write_bytes(b"Traceback (most recent call last):\nValueError: bo")
    logs.stop()  # returns without waiting out the interval: it reads what the files hold now
    lines = out.data.decode().splitlines()
    assert sorted(lines) == sorted(["[rank0]:step=0 loss=1.0", "[rank0]:step=1 loss=0.5",
                                    "[rank1]:Traceback (most recent call last):", "[rank1]:ValueError: bo"])
    assert out.data.endswith(b"\n")  # the last line, cut short by the rank's end, is closed


def test_a_line_is_held_until_it_ends_and_a_progress_bar_keeps_its_tag(tmp_path: Path) -> None:
    (tmp_path / "ranks").mkdir()
    logs = RankLogs(tmp_path / "ranks", interval=NEVER)
    out = _Collected()
    logs.start(out.write)
    path = _rank_file(logs.root, 0, "stderr")
    path.write_bytes(b" 10%|#\r 50%|#####\r")
    logs._poll(final=False)  # one look while the run lasts
    assert out.data == b"[rank0]: 10%|#\r"  # the last \r is held: a \n may follow it
    with path.open("ab") as f:
        f.write(b"\nepoch 1 done, wait")
    logs._poll(final=False)
    assert out.data == b"[rank0]: 10%|#\r[rank0]: 50%|#####\r\n"  # the line's start waits for its end
    with path.open("ab") as f:
        f.write(b"ing\n")
    logs.stop()
    assert out.data.endswith(b"[rank0]:epoch 1 done, waiting\n")


def test_a_restart_is_followed_and_the_folder_goes(tmp_path: Path) -> None:
    logs = RankLogs.create()
    assert logs is not None
    try:
        out = _Collected()
        logs.start(out.write)
        _rank_file(logs.root, 0).write_text("first attempt\n")
        _rank_file(logs.root, 0, attempt=1).write_text("second attempt\n")
        logs.stop()
        assert sorted(out.data.decode().splitlines()) == ["[rank0]:first attempt", "[rank0]:second attempt"]
    finally:
        logs.remove()
    assert not logs.root.exists()


def test_the_rank_lines_join_the_commands_own_output(tmp_path: Path) -> None:
    """run_streaming starts the tailer beside the command and drains it once the command has ended."""
    logs = RankLogs(tmp_path, interval=NEVER)
    rank = _rank_file(tmp_path, 1)
    script = f"import pathlib; pathlib.Path({str(rank)!r}).write_text('from rank 1\\n'); print('launcher')"
    seen = bytearray()
    outcome = run_streaming([sys.executable, "-c", script], on_output=seen.extend, side=logs)
    assert outcome.returncode == 0
    assert seen == b"launcher\n[rank1]:from rank 1\n"


def test_devagent_tags_the_files_of_one_node_only() -> None:
    one_node = ["torchrun", "--nproc-per-node=2", "t.py", "--log-dir", "x"]  # the script's own --log-dir
    assert tags_rank_files(one_node, {})
    assert rank_tagging(one_node, {}, log_dir=Path("/tmp/r")) == {"PET_REDIRECTS": "3", "PET_LOG_DIR": "/tmp/r"}
    tee = {"PET_TEE": "3", "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "[rank${rank}]:"}
    for argv, environ in (
        (["torchrun", "--nnodes", "2", "--nproc-per-node=2", "t.py"], {}),  # a file's name is its local rank
        (["torchrun", "--nnodes=1:2", "t.py"], {}),
        (["torchrun", "--log-dir", "/logs", "t.py"], {}),  # the command's own folder: torchrun's tee there
        (["torchrun", "t.py"], {"PET_LOG_DIR": "/logs"}),
    ):
        assert not tags_rank_files(argv, environ), argv
        assert rank_tagging(argv, environ, log_dir=Path("/tmp/r")) == tee, argv
    own_prefix = {"TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "<${rank}>"}
    assert rank_tagging(["torchrun", "t.py"], own_prefix, log_dir=Path("/tmp/r")) == {
        "PET_TEE": "3", "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "<${rank}>"}
    assert rank_tagging(["torchrun", "--redirects", "3", "t.py"], {}, log_dir=Path("/tmp/r")) == {}
    assert not tags_rank_files(["python", "t.py"], {"WORLD_SIZE": "2"})


def test_a_flood_is_passed_on_in_pieces_and_whole(tmp_path: Path) -> None:
    (tmp_path / "ranks").mkdir()
    logs = RankLogs(tmp_path / "ranks", interval=NEVER)
    writes: list[int] = []
    out = _Collected()

    def write(data: bytes) -> None:
        writes.append(len(data))
        out.write(data)

    logs.start(write)
    line = b"x" * 99 + b"\n"
    _rank_file(logs.root, 0).write_bytes(line * 50_000)  # 5 MB
    logs.stop()
    assert len(writes) > 1 and max(writes) < 2 * READ_BYTES  # never the whole flood at once
    assert out.data == (b"[rank0]:" + line) * 50_000
