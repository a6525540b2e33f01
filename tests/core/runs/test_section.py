"""The run section: the report of one run rendered as a notebook entry."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.notebook import SaveRecord, is_entry
from devagent.core.runs.environment import allowed_env
from devagent.core.runs.exits import ExitInfo, classify_exit
from devagent.core.runs.hparams import ArgDefault, argparse_defaults, overlay_argv
from devagent.core.runs.metrics import MetricSeries, curve_values, sparkline, summarize_metrics
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.section import MEMORY_EXPLANATION, RunReport, format_duration, hparam_table, render_run
from tests.core.runs.samples import TRACEBACK, TRAIN_SCRIPT

GIB = 1024**3


def defaults_for(*lines: str) -> dict[str, ArgDefault]:
    return argparse_defaults("\n".join(lines))


class TestHparamTable:
    DEFAULTS = defaults_for("p.add_argument('--lr', default=3e-4)", "p.add_argument('--bs', default=64)",
                            "p.add_argument('--opt', default='adam')", "p.add_argument('--seed')")

    def test_without_a_previous_run_values_that_differ_from_the_default_are_bold(self) -> None:
        current = overlay_argv(self.DEFAULTS, ["--lr", "0.0003", "--bs", "32", "--extra", "a|b"])
        assert hparam_table(current, defaults=self.DEFAULTS, previous=None, previous_run=None) == (
            "| hyperparameter | default | this run |\n"
            "|---|---|---|\n"
            "| `lr` | `3e-4` | `0.0003` |\n"
            "| `bs` | `64` | **`32`** |\n"
            "| `opt` | `adam` | `adam` |\n"
            "| `seed` | — | `None` |\n"
            "| `extra` | — | **`a\\|b`** |"
        )

    def test_with_a_previous_run_values_that_changed_since_are_bold(self) -> None:
        current = overlay_argv(self.DEFAULTS, ["--bs", "32", "--seed", "1"])
        previous = overlay_argv(self.DEFAULTS, ["--bs", "32", "--lr", "1e-3", "--old", "x"])
        assert hparam_table(current, defaults=self.DEFAULTS, previous=previous, previous_run=3) == (
            "| hyperparameter | default | this run | run 3 |\n"
            "|---|---|---|---|\n"
            "| `lr` | `3e-4` | **`3e-4`** | `1e-3` |\n"
            "| `bs` | `64` | `32` | `32` |\n"
            "| `opt` | `adam` | `adam` | `adam` |\n"
            "| `seed` | — | **`1`** | `None` |\n"
            "| `old` | — | **—** | `x` |"
        )

    def test_nothing_current_gives_no_table(self) -> None:
        assert hparam_table({}, defaults=self.DEFAULTS, previous=None, previous_run=None) == ""

    def test_an_empty_value_shows_as_empty_quotes(self) -> None:
        table = hparam_table({"name": ""}, defaults={}, previous=None, previous_run=None)
        assert table.splitlines()[-1] == '| `name` | — | **`""`** |'


STARTED = datetime(2026, 11, 27, 14, 5, 9, tzinfo=timezone(timedelta(hours=1)))


def full_report() -> RunReport:
    defaults = argparse_defaults(TRAIN_SCRIPT)
    argv = ("python", "train.py", "data/", "--lr", "1e-3", "-b", "32", "--amp")
    previous = RunRecord(2, False, "train.py", ("python", "train.py", "data/"), "/workspace",
                         "2026-11-27T13:00:00+01:00", 60.0, 0, "success", overlay_argv(defaults, ["data/"]),
                         {"loss": 0.61, "val_acc": 0.8})
    series = MetricSeries()
    for step, (loss, acc) in enumerate([(1.0, 0.5), (0.7, 0.7), (0.5, 0.9), (0.45, 0.85)], start=1):
        series.add({"step": step * 100, "loss": loss, "val_acc": acc, "lr": 1e-3})
    name, values = curve_values(series) or ("", [])
    tail = ["epoch 4 loss=0.45", "x = ```code```", *TRACEBACK]
    record = RunRecord(3, False, "train.py", argv, "/workspace", STARTED.isoformat(), 252.4, 1, "failure",
                       overlay_argv(defaults, list(argv[2:])), {"loss": 0.45, "val_acc": 0.85, "lr": 1e-3})
    return RunReport(
        record=record, started_at=STARTED, exit=classify_exit(1, tail=tail), defaults=defaults, previous=previous,
        git=GitState("abc1234def567", "main", True, (("train.py", 10, 3), ("model.py", 2, 1)),
                     "lab-notebook.assets/run-3.patch"),
        edits_since=[SaveRecord("t1", "train.py", "a", 3, 1), SaveRecord("t2", "train.py", "b", 1, 0)],
        env=allowed_env({"CUDA_VISIBLE_DEVICES": "0,1", "SEED": "1", "HF_TOKEN": "hf_x"}),
        metrics=summarize_metrics(series), metric_sources=("output",), curve_name=name, curve_image=None,
        curve_sparkline=sparkline(values),
        gpu=GpuMemory(nvml_peak=12 * GIB, nvml_total=160 * GIB, torch_allocated=9 * GIB, torch_reserved=10 * GIB,
                      gpus=2),
        output_tail=tail, output_lines=1234,
    )


class TestRenderRun:
    def test_a_full_report(self) -> None:
        text = render_run(full_report())
        assert is_entry(text)
        lines = text.splitlines()
        assert lines[1] == (
            "## 2026-11-27 14:05 · run 3 · train.py · ❌ exit 1 · ValueError: bad shape torch.Size(\\[64, 3\\])")
        expected_in_order = [
            "| | |",
            "|---|---|",
            "| command | `python train.py data/ --lr 1e-3 -b 32 --amp` |",
            "| started | 2026-11-27T14:05:09+01:00 |",
            "| duration | 4 min 12 s |",
            "| exit | ❌ exit 1 · ValueError: bad shape torch.Size(\\[64, 3\\]) |",
            "| cwd | `/workspace` |",
            "| GPUs | 2 |",
            "### Hyperparameters",
            "| hyperparameter | default | this run | run 2 |",
            "| `lr` | `3e-4` | **`1e-3`** | `3e-4` |",
            "| `batch_size` | `64` | **`32`** | `64` |",
            "| `epochs` | `10` | `10` | `10` |",
            "| `amp` | `False` | **`True`** | `False` |",
            "batch size 32 × 2 GPUs = effective batch 64 (if each GPU runs its own batch, as with DDP)",
            "### Code",
            "git `abc1234` on `main`, dirty: 2 files (+12/−4) — [patch](lab-notebook.assets/run-3.patch)",
            "- `train.py` +10/−3",
            "- `model.py` +2/−1",
            "edits since run 2: train.py saved 2× (+4/−1)",
            "### Metrics",
            "| metric | final | best (step) | run 2 |",
            "| `loss` | 0.45 | 0.45 (step 400) | 0.61 |",
            "| `lr` | 0.001 | — | — |",
            "| `val_acc` | 0.85 | 0.9 (step 300) | 0.8 |",
            "from the output",
            "`loss` █▄▂▁ (4 points)",
            "### GPU memory",
            "12.0 GiB of 160.0 GiB peak on the 2 GPUs, sampled by NVML over the run's processes.",
            "PyTorch: max allocated 9.0 GiB, max reserved 10.0 GiB "
            "(`torch.cuda.max_memory_allocated` / `max_memory_reserved`).",
            MEMORY_EXPLANATION,
            "### Environment",
            "`CUDA_VISIBLE_DEVICES=0,1` `SEED=1`",
            "<details><summary>output (last 9 of 1234 lines)</summary>",
            "````text",
            "x = ```code```",
            "ValueError: bad shape torch.Size([64, 3])",
            "````",
            "</details>",
            "**Observations:** ",
            "",
            "**Next:** ",
        ]
        positions = [lines.index(line) for line in expected_in_order[:-3]]
        assert positions == sorted(positions)
        assert lines[-3:] == expected_in_order[-3:]
        assert "hf_x" not in text

    def test_a_minimal_observed_run(self) -> None:
        record = RunRecord(4, True, "train.py", ("python", "train.py"), "/workspace", "2026-11-27T15:00:00+01:00",
                           None, None, "unknown", {}, {})
        report = RunReport(record, datetime(2026, 11, 27, 15, 0), classify_exit(None, tail=[]), {}, None, None,
                           None, {}, [], (), None, None, None, None, [], 0)
        assert render_run(report) == (
            "\n## 2026-11-27 15:00 · run 4 (observed) · train.py · exit status unknown\n"
            "| | |\n"
            "|---|---|\n"
            "| command | `python train.py` |\n"
            "| started | 2026-11-27T15:00:00+01:00 |\n"
            "| exit | exit status unknown |\n"
            "| cwd | `/workspace` |\n"
            "\n"
            "### Hyperparameters\n"
            "\n"
            "no arguments\n"
            "\n"
            "**Observations:** \n"
            "\n"
            "**Next:** \n"
        )

    def test_a_script_without_argparse_shows_its_argv(self) -> None:
        report = full_report()
        record = RunRecord(3, False, "tools/train.py", ("python", "-u", "tools/train.py", "cfg.yaml", "--x", "1"),
                           "/w", "s", 1.0, 0, "success", {}, {})
        text = render_run(RunReport(record, STARTED, classify_exit(0, tail=[]), {}, None, None, None, {}, [], (),
                                    None, None, None, GpuMemory(None, None, None, None, 0), [], 0))
        assert "### Hyperparameters\n\nargv: `cfg.yaml --x 1`\n" in text
        assert "### GPU memory\n\nno GPU used (CPU run)\n" in text
        assert "| GPUs | none (CPU) |" in text
        assert report.defaults  # the full report has argparse, and so no argv line
        assert "argv:" not in render_run(report)

    def test_a_command_without_a_script_is_named_by_its_command(self) -> None:
        record = RunRecord(5, False, None, ("make", "train", "LR=*3*"), "/w", "s", 0.84, 0, "success", {}, {})
        text = render_run(RunReport(record, STARTED, classify_exit(0, tail=[]), {}, None, None, [], {}, [], (),
                                    None, None, None, None, ["ok"], 1))
        assert text.splitlines()[1] == "## 2026-11-27 14:05 · run 5 · make train 'LR=\\*3\\*' · ✅ exit 0"
        assert "| duration | 0.8 s |" in text
        assert "edits before this run: no saves" in text
        assert "### Hyperparameters" not in text

    def test_a_curve_image_is_linked_instead_of_the_sparkline(self) -> None:
        report = full_report()
        text = render_run(RunReport(**{**report.__dict__, "curve_image": "lab-notebook.assets/run-3-loss.png"}))
        assert "![loss curve](lab-notebook.assets/run-3-loss.png)" in text
        assert "█" not in text

    def test_a_clean_tree_and_partial_gpu_numbers(self) -> None:
        report = full_report()
        text = render_run(RunReport(**{
            **report.__dict__, "git": GitState("abc1234", None, False, (), None),
            "gpu": GpuMemory(3 * GIB, None, None, None, 1)}))
        assert "git `abc1234`, clean" in text
        assert "3.0 GiB peak on the GPU, sampled by NVML over the run's processes." in text
        assert MEMORY_EXPLANATION not in text

    def test_a_repository_that_is_not_ours_says_why_its_state_is_missing(self) -> None:
        report = full_report()
        reason = "the repository at /tmp is owned by uid 1234, not you (uid 1000)"
        text = render_run(RunReport(**{**report.__dict__, "git": GitState(None, None, False, (), None,
                                                                          skipped=reason)}))
        code = text[text.index("### Code"):text.index("### Metrics")]
        assert code == ("### Code\n\ngit state skipped: the repository at /tmp is owned by uid 1234, not you "
                        "(uid 1000)\n\nedits since run 2: train.py saved 2× (+4/−1)\n\n")

    def test_files_left_out_of_the_patch_are_marked_and_named(self) -> None:
        report = full_report()
        files = (("train.py", 1, 1), (".env", 2, 0), ("w.bin", 0, 0), *((f"f{i}.py", 1, 0) for i in range(20)))
        git = GitState("abc1234", "main", True, files, "lab-notebook.assets/run-3.patch", withheld=(".env",),
                       left_out=("w.bin", "f19.py"), omitted=1)
        text = render_run(RunReport(**{**report.__dict__, "git": git}))
        assert "- `train.py` +1/−1\n- `.env` +2/−0 · not in the patch: looks like a secret\n" in text
        assert "- `w.bin` +0/−0 · not in the patch: too big\n" in text
        assert "- … and 3 more\n\nwithheld from the patch, as they look like secrets: `.env`\n\n" in text
        assert "left out of the patch, as they are too big for it: `w.bin`, `f19.py`\n\n" in text
        assert "1 more untracked file neither listed nor in the patch\n\n" in text

    def test_the_metrics_say_when_a_cap_was_hit(self) -> None:
        report = full_report()
        text = render_run(RunReport(**{**report.__dict__, "metrics_left_out": 936,
                                       "metric_files_cut": (("lab.jsonl", 32 << 20, 2 << 30),)}))
        metrics = text.split("### Metrics\n", 1)[1].split("\n### ", 1)[0]
        assert metrics.endswith(
            "\n\n936 more metrics were logged but not kept: a run keeps the first 64 names, none longer than 128 "
            "characters.\n\nOnly the last 32 MiB of `lab.jsonl` (2.0 GiB) were read: final values are exact, best "
            "values and point counts cover that part.\n")
        alone = render_run(RunReport(**{**report.__dict__, "metrics": [], "metrics_left_out": 1}))
        assert "### Metrics\n\n1 more metric was logged but not kept" in alone
        assert "not kept" not in render_run(report) and "were read" not in render_run(report)

    @given(st.lists(st.text()), st.text(), st.text())
    def test_any_values_give_an_entry(self, tail: list[str], script: str, label: str) -> None:
        report = full_report()
        record = RunRecord(**{**report.record.__dict__, "script": script or None})
        text = render_run(RunReport(**{**report.__dict__, "record": record, "output_tail": tail,
                                       "exit": ExitInfo("failure", 1, label, label)}))
        assert is_entry(text)
        assert re.match(r"\n## [^\n]*\n\| \| \|\n", text)


@pytest.mark.parametrize(("seconds", "text"), [(0.84, "0.8 s"), (9.96, "10.0 s"), (42.4, "42 s"),
                                               (252.4, "4 min 12 s"), (3725, "1 h 02 min"), (90000, "25 h 00 min")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
