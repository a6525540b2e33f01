"""The run section: the report of one run rendered as a notebook entry."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.notebook import SaveRecord, is_entry
from devagent.core.runs.distributed import EffectiveBatch, Launch
from devagent.core.runs.exits import ExitInfo, classify_exit
from devagent.core.runs.gpu_timeline import DeviceTimeline
from devagent.core.runs.hparams import ArgDefault, argparse_defaults, overlay_argv
from devagent.core.runs.metrics import MetricSeries, MetricSummary, curve_values, sparkline, summarize_metrics
from devagent.core.runs.record import GitState, GpuMemory, RunRecord
from devagent.core.runs.reproduce_block import ReproduceFacts, render_reproduce
from devagent.core.runs.run_environment import allowed_env
from devagent.core.runs.section import (
    MEMORY_EXPLANATION,
    MEMORY_NOTE,
    RunReport,
    distributed_facts,
    format_duration,
    format_size,
    gpu_fact,
    hparam_table,
    render_run,
    shorten_middle,
    summary_line,
)
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
            "loss 0.45 (run 2: 0.61) · val\\_acc 0.85 (0.8) · 4 min 12 s · lr 1e-3 (was 3e-4) · "
            "batch\\_size 32 (was 64) · amp True (was False)",
            "| command | `python train.py data/ --lr 1e-3 -b 32 --amp` |",
            "|---|---|",
            "| folder | `/workspace` |",
            "| GPUs | 2 GPUs |",
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
            "| metric | final (step) | best (step) | run 2 |",
            "| `loss` | 0.45 (step 400) | 0.45 (step 400) | 0.61 |",
            "| `lr` | 0.001 (step 400) | — | — |",
            "| `val_acc` | 0.85 (step 400) | 0.9 (step 300) | 0.8 |",
            "Sources: the output. *final* is the last value logged.",
            "`loss` █▄▂▁ — 4 points · last 0.45",
            "### GPU memory",
            "12.0 GiB of 160.0 GiB peak on the 2 GPUs, sampled by NVML over the run's processes. "
            "PyTorch: max allocated 9.0 GiB, max reserved 10.0 GiB.",
            f"<details><summary>{MEMORY_NOTE}</summary>",
            "### Environment",
            "`CUDA_VISIBLE_DEVICES=0,1` `SEED=1`",
            "<details><summary>output (last 9 of 1234 lines)</summary>",
            "````text",
            "x = ```code```",
            "ValueError: bad shape torch.Size([64, 3])",
            "````",
            "**Observations:** ",
            "",
            "**Next:** ",
        ]
        assert lines[2] == expected_in_order[0]  # the summary, right under the heading
        positions = [lines.index(line) for line in expected_in_order[:-3]]
        assert positions == sorted(positions)
        assert lines[-3:] == expected_in_order[-3:]
        assert "hf_x" not in text

    def test_a_minimal_observed_run(self) -> None:
        record = RunRecord(4, True, "train.py", ("python", "train.py"), "/workspace", "2026-11-27T15:00:00+01:00",
                           None, None, "unknown", {}, {})
        report = RunReport(record, datetime(2026, 11, 27, 15, 0), classify_exit(None, tail=[]), {}, None, None,
                           None, {}, [], (), None, None, None, None, [], 0)
        assert render_run(report) == (  # no summary: no metric, no duration, no hyperparameter
            "\n## 2026-11-27 15:00 · run 4 (observed) · train.py · exit status unknown\n"
            "| command | `python train.py` |\n"
            "|---|---|\n"
            "| folder | `/workspace` |\n"
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
        assert "| GPUs | none (CPU run) |" in text
        assert "GPU memory" not in text  # the facts said it: no part repeats it
        assert report.defaults  # the full report has argparse, and so no argv line
        assert "argv:" not in render_run(report)

    def test_a_command_without_a_script_is_named_by_its_command(self) -> None:
        record = RunRecord(5, False, None, ("make", "train", "LR=*3*"), "/w", "s", 0.84, 0, "success", {}, {})
        text = render_run(RunReport(record, STARTED, classify_exit(0, tail=[]), {}, None, None, [], {}, [], (),
                                    None, None, None, None, ["ok"], 1))
        assert text.splitlines()[1] == "## 2026-11-27 14:05 · run 5 · make train 'LR=\\*3\\*' · ✅ exit 0"
        assert text.splitlines()[2] == "0.8 s"  # the summary line: just the duration
        assert "no saves" not in text and "### Code" not in text
        assert "### Hyperparameters" not in text

    def test_who_started_the_run_follows_the_command(self) -> None:
        report = full_report()
        text = render_run(RunReport(**{**report.__dict__, "started_by": "alice"}))
        lines = text.splitlines()
        command = next(i for i, line in enumerate(lines) if line.startswith("| command |"))
        assert lines[command + 1:command + 3] == ["|---|---|", "| started by | alice |"]
        assert "started by" not in render_run(report)  # outside an environment nothing is said

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
        assert "### GPU memory\n\n3.0 GiB peak on the GPU, sampled by NVML over the run's processes.\n" in text
        assert MEMORY_EXPLANATION not in text  # one figure: nothing to tell apart

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
        assert "| | |" not in text
        # A label or a heading between two tables. Fenced blocks (the output's tail) are text, not tables: left out.
        outside_fences = re.sub(r"\n(`{3,}|~{3,})[^\n]*\n.*?\n\1\n", "\n\n", text, flags=re.S)
        blocks = outside_fences.strip("\n").split("\n\n")
        for before, after in itertools.pairwise(blocks):
            assert not (before.startswith("|") and after.startswith("|")), (before, after)
        assert re.match(r"\n## [^\n]*\n[^|\n][^\n]*\n\n\| command \| ", text)  # summary, then the facts


@pytest.mark.parametrize(("seconds", "text"), [(0.84, "0.8 s"), (9.96, "10.0 s"), (42.4, "42 s"),
                                               (252.4, "4 min 12 s"), (3725, "1 h 02 min"), (90000, "25 h 00 min")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- issue 12 item 5: a section that says first what matters, and reads well in a 600 px preview -------------


def with_(report: RunReport, **changes: object) -> RunReport:
    return RunReport(**{**report.__dict__, **changes})


def h100_report(*, explained: bool = False) -> RunReport:
    """Run 2 of the H100 SimpleNet runs of 2026-11-27 (docs/how-to/use-gpus.md), as its facts were recorded."""
    defaults = defaults_for("p.add_argument('--lr', type=float, default=1e-3)",
                            "p.add_argument('--batch-size', type=int, default=64)")
    previous = RunRecord(1, False, "train_simplenet.py", ("python3", "train_simplenet.py"), "/w", "", 13.6, 0,
                         "success", overlay_argv(defaults, ["--batch-size", "256"]), {"loss": 0.283009, "acc": 0.8856})
    argv = ("python3", "train_simplenet.py", "--batch-size", "256", "--lr", "3e-3")
    record = RunRecord(2, False, "train_simplenet.py", argv, "/tmp/tmp.PWA9eUS5hX/workspace", "", 11.2, 0, "success",
                       overlay_argv(defaults, list(argv[2:])), {"loss": 0.37306, "acc": 0.8592})
    metrics = [MetricSummary("loss", 0.37306, 0.227227, 694, 1000, final_step=1000),
               MetricSummary("acc", 0.8592, 0.8592, None, 5, best_point=5),
               MetricSummary("epoch", 5, None, None, 5)]
    return RunReport(
        record=record, started_at=STARTED, exit=classify_exit(0, tail=[]), defaults=defaults, previous=previous,
        git=None, edits_since=None, env={}, metrics=metrics, metric_sources=("devagent.lab", "output"),
        curve_name="loss", curve_image=None, curve_sparkline="█▄▂▁", curve_range=(0.227227, 2.31),
        gpu=GpuMemory(819 << 20, 81559 << 20, 110 << 20, 128 << 20, 1, (0,)), output_tail=["epoch=5 loss=0.3491"],
        output_lines=6, output_finals={"loss": 0.3491, "acc": 0.8592}, memory_explained=explained)


class TestWhatASectionSaysFirst:
    def test_the_line_under_the_heading_has_the_metrics_against_the_previous_run_the_duration_and_what_changed(
            self) -> None:
        text = render_run(h100_report())
        assert text.splitlines()[2] == "loss 0.373 (run 1: 0.283) · acc 0.859 (0.886) · 11 s · lr 3e-3 (was 1e-3)"

    def test_a_first_run_names_the_hyperparameters_that_differ_from_their_defaults(self) -> None:
        report = with_(h100_report(), previous=None)
        assert summary_line(report) == "loss 0.373 · acc 0.859 · 11 s · lr 3e-3 (default 1e-3) · batch\\_size 256 " \
                                       "(default 64)"

    def test_the_summary_keeps_to_three_metrics_and_three_hyperparameters(self) -> None:
        report = h100_report()
        metrics = [MetricSummary(f"m{i}_acc", 0.5, 0.5, None, 1) for i in range(5)]
        hparams = {f"h{i}": "2" for i in range(5)}
        record = RunRecord(**{**report.record.__dict__, "hparams": hparams, "duration_s": None})
        line = summary_line(with_(report, metrics=metrics, record=record))
        assert line == ("m0\\_acc 0.5 · m1\\_acc 0.5 · m2\\_acc 0.5 · h0 2 (new in run 2) · h1 2 (new in run 2) · "
                        "h2 2 (new in run 2) · 2 more changed")

    def test_the_facts_table_starts_with_the_command_and_repeats_nothing_the_heading_says(self) -> None:
        text = render_run(h100_report())
        facts = text.split("\n\n")[1]
        assert facts == ("| command | `python3 train_simplenet.py --batch-size 256 --lr 3e-3` |\n"
                         "|---|---|\n"
                         "| folder | `/tmp/tmp.PWA9eUS5hX/workspace` |\n"
                         "| GPUs | 1 GPU: 0 |")
        assert "| | |" not in text and "started" not in text and "| exit |" not in text

    @pytest.mark.parametrize(("gpu", "text"), [
        (GpuMemory(None, None, None, None, 1, (0,)), "1 GPU: 0"),
        (GpuMemory(None, None, None, None, 2, (3, 1)), "2 GPUs: 1, 3"),
        (GpuMemory(None, None, None, None, 2, (1,)), "2 GPUs"),
        (GpuMemory(None, None, None, None, 0), "none (CPU run)"),
        (None, ""),
    ])
    def test_the_gpus_read_as_a_count_and_their_indices(self, gpu: GpuMemory | None, text: str) -> None:
        assert gpu_fact(gpu) == text

    def test_an_error_the_heading_had_to_cut_is_in_the_facts_whole(self) -> None:
        detail = "FileNotFoundError: [Errno 2] No such file or directory: 'data/train/images.npy' " + "x" * 30
        exit_info = classify_exit(1, tail=[detail])
        text = render_run(with_(h100_report(), exit=exit_info))
        assert text.splitlines()[1].endswith("❌ exit 1 · FileNotFoundError: \\[Errno 2\\] No such file or dir…")
        assert f"| error | `{detail}` |" in text

    def test_a_value_with_a_word_too_long_for_a_table_cell_goes_below_it_in_a_code_block(self) -> None:
        cwd = "/home/dev/workspace/experiments/simplenet-lr-sweep-2026"
        record = RunRecord(**{**h100_report().record.__dict__, "cwd": cwd})
        text = render_run(with_(h100_report(), record=record))
        assert f"| GPUs | 1 GPU: 0 |\n\n**folder:**\n\n```text\n{cwd}\n```\n\n### Hyperparameters" in text

    def test_empty_parts_are_not_shown(self) -> None:
        record = RunRecord(4, False, "train.py", ("python", "train.py"), "/w", "", 1.0, 0, "success", {}, {})
        text = render_run(RunReport(record, STARTED, classify_exit(0, tail=[]), {}, None, None, [], {}, [], (),
                                    None, None, None, GpuMemory(None, None, None, None, 0), [], 0))
        for nothing in ("no arguments", "no saves", "no GPU used", "### Hyperparameters", "### Code",
                        "### GPU memory", "### Metrics"):
            assert nothing not in text


class TestTheMetricsPart:
    def test_every_best_value_says_where_it_was_logged(self) -> None:
        text = render_run(h100_report())
        assert "| metric | final (step) | best (step) | run 1 |" in text
        assert "| `loss` | 0.37306 (step 1000) | 0.227227 (step 694) | 0.283009 |" in text
        assert "| `acc` | 0.8592 | 0.8592 (value 5 of 5) | 0.8856 |" in text

    def test_it_says_final_is_the_last_value_logged_and_what_the_output_printed_when_that_differs(self) -> None:
        text = render_run(h100_report())
        assert ("\n\nSources: `devagent.lab`, the output. *final* is the last value logged; the output's own last "
                "line printed `loss` 0.3491.\n\n") in text

    def test_the_sparkline_gives_the_points_per_bar_the_lowest_highest_and_last_value(self) -> None:
        text = render_run(h100_report())
        assert "\n`loss` █▄▂▁ — 1000 points in 4 bars · min 0.227227 · max 2.31 · last 0.37306\n" in text


class TestTheGpuMemoryPart:
    def test_the_explanation_is_folded_under_the_first_gpu_run(self) -> None:
        text = render_run(h100_report())
        part = text.split("### GPU memory\n\n", 1)[1].split("\n### ", 1)[0]
        assert part.startswith("0.8 GiB of 79.6 GiB peak on GPU 0, sampled by NVML over the run's processes. "
                               "PyTorch: max allocated 0.1 GiB, max reserved 0.1 GiB.\n\n"
                               f"<details><summary>{MEMORY_NOTE}</summary>\n\n{MEMORY_EXPLANATION}")

    def test_a_notebook_that_has_it_already_does_not_get_it_again(self) -> None:
        text = render_run(h100_report(explained=True))
        assert MEMORY_NOTE not in text and MEMORY_EXPLANATION not in text
        assert "### GPU memory\n\n0.8 GiB of 79.6 GiB peak on GPU 0" in text


def _outside_fences(text: str) -> list[str]:
    lines, fence = [], None
    for line in text.splitlines():
        if fence is None and re.fullmatch(r"`{3,}\w*", line):
            fence = line.rstrip("abcdefghijklmnopqrstuvwxyz")
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def table_words(text: str) -> list[str]:
    """The words of every table cell outside fenced blocks: a cell cannot wrap inside one."""
    return [word for line in _outside_fences(text) if line.startswith("|")
            for cell in re.split(r"(?<!\\)\|", line) for word in cell.replace("`", " ").replace("**", " ").split()]


class TestWidthInA600PxPreview:
    """At 600 px VS Code's preview has about 548 px for text: about 53 characters of code in a two-column table's
    value cell. A table cell cannot wrap inside a word; everything else wraps (scripts/preview-check.sh measures
    the real thing in Chromium)."""

    def test_no_table_cell_holds_a_word_longer_than_the_bound(self) -> None:
        long = "/home/dev/workspace/" + "very-long-folder-name/" * 4
        record = RunRecord(**{**h100_report().record.__dict__, "cwd": long,
                              "argv": ("python3", "train_simplenet.py", "--data", long + "train.npy"),
                              "hparams": {"data": long + "train.npy", "a" * 100: "1"}})
        metrics = [MetricSummary("m" * 128, 1.0, 1.0, 1, 1), *h100_report().metrics]
        text = render_run(with_(h100_report(), record=record, metrics=metrics))
        assert max(len(word) for word in table_words(text)) <= 48
        assert long in text  # whole, in a code block below the table

    def test_a_four_column_table_shares_the_width(self) -> None:
        report = with_(h100_report(), previous=RunRecord(**{**h100_report().previous.__dict__,
                                                            "hparams": {"lr": "x" * 60}}))
        rows = [line for line in render_run(report).splitlines() if line.startswith("| `lr` |")]
        assert [len(word) for word in table_words(rows[0])] == [2, 4, 4, 16]

    def test_the_whole_section_has_no_line_outside_a_code_block_wider_than_a_table_allows(self) -> None:
        for line in _outside_fences(render_run(full_report())):
            if line.startswith("|"):
                assert max((len(w) for w in table_words(line)), default=0) <= 48, line


def test_a_nan_loss_run_names_the_line_where_the_nan_was_seen() -> None:
    exit_info = classify_exit(0, tail=["step 7 loss=nan"], nan_seen=True)
    text = render_run(with_(h100_report(), exit=exit_info))
    assert text.splitlines()[1].endswith("· ⚠️ NaN loss")
    assert "| NaN in | `step 7 loss=nan` |" in text


# --- each part exactly, at its edges (issue 23: mutation score) --------------------------------------------------


def minimal_report(**changes: object) -> RunReport:
    record = RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", 1.0, 0, "success", {}, {})
    return with_(RunReport(record, datetime(2026, 12, 7, 17, 0), ExitInfo("success", 0, "✅ exit 0", None), {}, None,
                           None, None, {}, [], (), None, None, None, None, [], 0), **changes)


BATCH = EffectiveBatch(8, 4, 1, False, ())
_NO_BACKEND = "backend not named in the command or script"


@pytest.mark.parametrize(("launch", "other_nodes", "rows"), [
    (None, {}, []),
    (Launch("environment", world=4, rank=2), {},
     [("distributed", f"WORLD_SIZE 4 in its environment · this is rank 2 · {_NO_BACKEND}")]),
    (Launch("environment", world=2, backend="nccl"), {},
     [("distributed", "WORLD_SIZE 2 in its environment · backend nccl")]),
    (Launch("torchrun", nproc_per_node=1, backend="gloo"), {},
     [("distributed", "torchrun · 1 process per node × 1 node = world size 1 · backend gloo")]),
    (Launch("accelerate launch", world=8, nnodes=2), {7: None, 5: 1},
     [("distributed", f"accelerate launch · world size 8 on 2 nodes · {_NO_BACKEND}"),
      ("node", "node rank ? of 2 · other nodes: run 5 (node 1), run 7 (node ?)")]),
    (Launch("accelerate launch", world=4, nnodes=1), {},
     [("distributed", f"accelerate launch · world size 4 · {_NO_BACKEND}")]),
    (Launch("torchrun", nnodes=2, node_rank=0), {},
     [("distributed", f"torchrun · world size not known (processes per node chosen on the node) · {_NO_BACKEND}"),
      ("node", "node rank 0 of 2")]),
])
def test_a_distributed_runs_rows(launch: Launch | None, other_nodes: dict[int, int | None],
                                 rows: list[tuple[str, str]]) -> None:
    assert distributed_facts(minimal_report(launch=launch, other_nodes=other_nodes)) == rows
    if launch is not None:
        assert distributed_facts(minimal_report(launch=launch, other_nodes=other_nodes, batch=BATCH))[-1] == (
            "effective batch", BATCH.describe())


def test_a_distributed_run_has_its_rows_in_the_facts_and_no_per_gpu_batch_guess() -> None:
    launch = Launch("torchrun", nproc_per_node=2, backend="gloo")
    report = minimal_report(launch=launch, batch=BATCH, gpu=GpuMemory(None, None, None, None, 2, (0, 1)),
                            record=RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", 1.0, 0, "success",
                                             {"batch_size": "8"}, {}))
    text = render_run(report)
    assert "| distributed | torchrun · 2 processes per node × 1 node = world size 2 · backend gloo |" in text
    assert f"| effective batch | {BATCH.describe()} |" in text
    assert "as with DDP" not in text  # the launcher's shape says it better


@pytest.mark.parametrize(("gpus", "launch", "line"), [
    (2, None, "batch size 8 × 2 GPUs = effective batch 16 (if each GPU runs its own batch, as with DDP)"),
    (1, None, None), (None, None, None), (2, Launch("torchrun", nproc_per_node=2), None),
])
def test_the_per_gpu_batch_guess_is_for_several_gpus_without_a_launcher(gpus: int | None, launch: Launch | None,
                                                                        line: str | None) -> None:
    record = RunRecord(6, False, "t.py", ("python", "t.py", "--batch-size", "8"), "/w", "", 1.0, 0, "success",
                       {"batch_size": "8"}, {})
    gpu = GpuMemory(None, None, None, None, gpus) if gpus is not None else None
    text = render_run(minimal_report(record=record, gpu=gpu, launch=launch))
    assert (line in text) if line else ("effective batch 8" not in text and "as with DDP" not in text)


@pytest.mark.parametrize(("n", "text"), [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1 KiB"),
                                         ((1 << 20) - 1, "1023 KiB"), (1 << 20, "1 MiB"), ((1 << 30) - 1, "1023 MiB"),
                                         (1 << 30, "1.0 GiB")])
def test_a_file_size_as_people_say_it(n: int, text: str) -> None:
    assert format_size(n) == text


def gpu_run(**changes: object) -> RunReport:
    a, b = DeviceTimeline(0), DeviceTimeline(1)
    for i in range(4):
        a.add(float(i), util=90, mem_used=1 << 30, mem_total=8 << 30, dt=1.0)
        b.add(float(i), util=0, mem_used=1 << 29, mem_total=8 << 30, dt=1.0)
    return minimal_report(gpu=GpuMemory(1 << 30, 8 << 30, None, None, 2, (0, 1)), gpu_timelines=(a, b), **changes)


def test_the_gpu_activity_part_has_the_rows_the_hint_and_the_picture() -> None:
    text = render_run(gpu_run(gpu_timeline_image="lab-notebook.assets/run 6.svg", cpu_share=0.1))
    part = text[text.index("### GPU activity"):text.index("**Observations:**")]
    assert part == (
        "### GPU activity\n\n"
        "| GPU | mean util. | peak util. | peak memory | idle | peak power | peak temp. |\n"
        "|---|---|---|---|---|---|---|\n"
        "| GPU 0 | 90 % | 90 % | 1.0 GiB of 8.0 GiB | 0 s (0%) | — | — |\n"
        "| GPU 1 | 0 % | 0 % | 0.5 GiB of 8.0 GiB | 4 s (100%) | — | — |\n\n"
        "Sampled through NVML every 0.5 s; idle is under 5 % utilisation.\n\n"
        "**Hint:** GPU 1 was idle 100% of the run while GPU 0 worked (mean 90 %): does every process get its own "
        "GPU and its share of the work (`LOCAL_RANK` → `torch.cuda.set_device`, the sampler's shards)?\n\n"
        "![GPU utilisation and memory over the run](<lab-notebook.assets/run 6.svg>)\n\n")


def test_the_cpu_share_reaches_the_hints() -> None:
    a = DeviceTimeline(0)
    for i in range(4):
        a.add(float(i), util=10, mem_used=1, dt=1.0)
    text = render_run(minimal_report(gpu_timelines=(a,), cpu_share=0.9))
    assert "**Hint:** Utilisation was low on every GPU (mean at most 10 %) while the CPU was saturated (90% " in text
    assert "![GPU" not in text  # no picture: none is linked


def test_the_reproduce_block_ends_the_section_before_the_observations() -> None:
    facts = ReproduceFacts(6, "dev", "img", None, None, (), "abc", None, ("python", "t.py"), "/w")
    text = render_run(minimal_report(reproduce=facts, notebook_name="notes/lab.md"))
    block = render_reproduce(facts, notebook="notes/lab.md")
    assert text.endswith(f"\n\n{block}\n\n**Observations:** \n\n**Next:** \n")
    assert "devagent reproduce notes/lab.md#run-6" in block


def test_an_estimated_output_total_says_about() -> None:
    text = render_run(minimal_report(output_tail=["a\nb"], output_lines=2_400_000, output_lines_estimated=True))
    assert "<details><summary>output (last 1 of about 2,400,000 lines)</summary>" in text
    assert "```text\na b\n```" in text  # a tail line with a line break stays one line
    assert "(last 1 of 2400000 lines)" in render_run(minimal_report(output_tail=["x"], output_lines=2_400_000))


def test_a_command_with_no_script_and_no_words_is_an_unknown_command() -> None:
    record = RunRecord(6, False, None, (), "", "", None, None, "unknown", {}, {})
    assert render_run(minimal_report(record=record)).splitlines()[1] == (
        "## 2026-12-07 17:00 · run 6 · unknown command · ✅ exit 0")


def code_part(git: GitState, **changes: object) -> str:
    text = render_run(minimal_report(git=git, **changes))
    return text[text.index("### Code"):text.index("**Observations:**")]


def test_the_code_part_of_a_repository_without_a_commit_or_with_one_file() -> None:
    assert code_part(GitState(None, "main", False, (), None)) == "### Code\n\ngit (no commit yet) on `main`, clean\n\n"
    assert code_part(GitState("abc1234ff", None, True, (("a.py", 1, 0),), None)) == (
        "### Code\n\ngit `abc1234`, dirty: 1 file (+1/−0)\n\n- `a.py` +1/−0\n\n")
    assert "- `a.py`" not in code_part(GitState("abc1234ff", None, False, (("a.py", 1, 0),), None))  # clean


def test_the_code_part_lists_20_files_and_counts_the_rest() -> None:
    files = tuple((f"f{i}.py", 1, 0) for i in range(20))
    assert "more" not in code_part(GitState("abc1234", None, True, files, None))
    assert "- … and 1 more\n" in code_part(GitState("abc1234", None, True, (*files, ("g.py", 1, 0)), None))


def test_the_patch_notes_name_10_files_and_count_the_rest() -> None:
    names = tuple(f"s{i}.env" for i in range(11))
    part = code_part(GitState("abc1234", None, True, (), None, withheld=names))
    assert "`s9.env` and 1 more\n" in part
    assert "and" not in code_part(GitState("abc1234", None, True, (), None, withheld=names[:10]))


def test_edits_before_a_first_run() -> None:
    saves = [SaveRecord("t1", "train.py", "a", 3, 1)]
    assert code_part(GitState("abc1234", None, False, (), None), edits_since=saves).endswith(
        "\n\nedits before this run: train.py saved 1× (+3/−1)\n\n")


def facts_part(**changes: object) -> str:
    text = render_run(minimal_report(**changes))
    return text[text.index("\n", text.index("\n## ") + 1) + 1:text.index("**Observations:**")]


def test_an_error_the_heading_shows_whole_is_not_repeated_in_the_facts() -> None:
    assert "| error |" not in facts_part(exit=ExitInfo("failure", 1, "❌ exit 1 · ValueError: x", "ValueError: x"))
    assert "| error | `ValueError: y` |" in facts_part(exit=ExitInfo("failure", 1, "❌ exit 1", "ValueError: y"))


def test_a_word_of_48_characters_stays_in_the_table_and_no_table_is_left_empty() -> None:
    folder = "/" + "w" * 47
    part = facts_part(record=RunRecord(6, False, "t.py", ("python", "t.py"), folder, "", 1.0, 0, "success", {}, {}))
    assert f"| folder | `{folder}` |" in part and "**folder:**" not in part
    long = "/" + "w" * 48
    record = RunRecord(6, False, "t.py", ("python", long), long, "", 1.0, 0, "success", {}, {})
    assert facts_part(record=record).startswith(f"1.0 s\n\n**command:**\n\n```text\npython {long}\n```\n\n"
                                                f"**folder:**\n\n```text\n{long}\n```")


def test_an_empty_word_of_the_command_stays_a_word() -> None:
    record = RunRecord(6, False, "t.py", ("python", "t.py", ""), "/w", "", 1.0, 0, "success", {}, {})
    assert "| command | `python t.py ''` |" in facts_part(record=record)


def test_gpu_memory_with_two_figures_explains_them_and_with_none_says_so() -> None:
    text = render_run(minimal_report(gpu=GpuMemory(2 * GIB, None, GIB, None, 1, (3,))))
    assert text[text.index("### GPU memory"):text.index("**Observations:**")] == (
        "### GPU memory\n\n2.0 GiB peak on GPU 3, sampled by NVML over the run's processes. PyTorch: max allocated "
        f"1.0 GiB.\n\n<details><summary>{MEMORY_NOTE}</summary>\n\n{MEMORY_EXPLANATION} The PyTorch figures are "
        "`torch.cuda.max_memory_allocated` and `max_memory_reserved`, from `devagent.lab`.\n\n</details>\n\n")
    assert "### GPU memory\n\n2 GPUs: 0, 1 used; memory not measured.\n\n" in render_run(
        minimal_report(gpu=GpuMemory(None, None, None, None, 2, (0, 1))))


def metrics_part(**changes: object) -> str:
    text = render_run(minimal_report(**changes))
    return text[text.index("### Metrics"):text.index("**Observations:**")]


LOSS = MetricSummary("loss", 0.35, 0.3, 7, 10, final_step=10)


def test_the_metrics_table_has_a_previous_runs_column_only_when_it_logged_one_of_them() -> None:
    alone = metrics_part(metrics=[LOSS])
    assert "| metric | final (step) | best (step) |\n|---|---|---|\n| `loss` | 0.35 (step 10) | 0.3 (step 7) |" in alone
    other = RunRecord(5, False, "t.py", ("python", "t.py"), "/w", "", 1.0, 0, "success", {}, {"acc": 0.9})
    assert "| metric | final (step) | best (step) |\n|---|---|---|\n| `loss` | 0.35 (step 10) | 0.3 (step 7) |\n" in (
        metrics_part(metrics=[LOSS], previous=other))


def test_the_outputs_own_last_values_are_named_where_they_differ_in_what_the_table_shows() -> None:
    acc = MetricSummary("acc", 0.9, 0.9, None, 3)
    note = metrics_part(metrics=[LOSS, acc], output_finals={"loss": 0.36, "acc": 0.91})
    assert "*final* is the last value logged; the output's own last line printed `loss` 0.36, `acc` 0.91." in note
    same = metrics_part(metrics=[LOSS, acc], output_finals={"loss": 0.350000001, "acc": float("nan")})
    assert "*final* is the last value logged; the output's own last line printed `acc` NaN." in same


def test_a_curve_without_a_sparkline_or_a_summary() -> None:
    assert metrics_part(metrics=[LOSS], curve_name="loss").endswith("*final* is the last value logged.\n\n")
    acc = MetricSummary("acc", 0.9, 0.9, None, 3)
    assert metrics_part(metrics=[acc], curve_name="loss", curve_sparkline="▁█").endswith("\n\n`loss` ▁█\n\n")


def test_the_summary_line_says_a_default_of_none_and_an_empty_value() -> None:
    defaults = defaults_for("p.add_argument('--seed')")
    record = RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", None, 0, "success", {"seed": "1"}, {})
    assert summary_line(minimal_report(record=record, defaults=defaults)) == "seed 1 (default None)"
    previous = RunRecord(5, False, "t.py", ("python", "t.py"), "/w", "", None, 0, "success", {"name": "x"}, {})
    record = RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", None, 0, "success", {"name": ""}, {})
    assert summary_line(minimal_report(record=record, previous=previous)) == 'name "" (was x)'


def test_a_script_not_in_its_command_line_shows_the_words_after_the_program() -> None:
    record = RunRecord(6, False, "x.py", ("runner", "a", "b"), "/w", "", 1.0, 0, "success", {}, {})
    assert "argv: `a b`" in render_run(minimal_report(record=record))


@pytest.mark.parametrize(("value", "cell"), [
    ("a " + "x" * 24, "`a " + "x" * 24 + "`"),  # 48 / 2 columns: 24 fit
    ("a " + "y" * 25, "`a " + "y" * 12 + "…" + "y" * 11 + "`"),
])
def test_a_value_cell_cuts_only_words_longer_than_its_share(value: str, cell: str) -> None:
    table = hparam_table({"p": value}, defaults={}, previous=None, previous_run=None)
    assert table.splitlines()[-1] == f"| `p` | — | **{cell}** |"


def test_the_summary_names_only_hyperparameters_that_changed() -> None:
    defaults = defaults_for("p.add_argument('--lr', default=1e-3)", "p.add_argument('--bs', default=64)")
    record = RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", None, 0, "success",
                       {"lr": "0.001", "extra": "1", "bs": "32"}, {})
    # lr is its default, extra has none: neither is said
    assert summary_line(minimal_report(record=record, defaults=defaults)) == "bs 32 (default 64)"
    previous = RunRecord(5, False, "t.py", ("python", "t.py"), "/w", "", None, 0, "success", {"a": "1", "b": "3"}, {})
    record = RunRecord(6, False, "t.py", ("python", "t.py"), "/w", "", 0.0, 0, "success", {"a": "1", "b": "2"}, {})
    assert summary_line(minimal_report(record=record, previous=previous)) == "0.0 s · b 2 (was 3)"


def test_ten_seconds_read_as_a_span() -> None:
    assert (format_duration(9.94), format_duration(10)) == ("9.9 s", "10 s")


def test_a_previous_run_without_a_number_heads_its_column_as_the_previous_run() -> None:
    table = hparam_table({"lr": "1"}, defaults={}, previous={"lr": "2"}, previous_run=None)
    assert table.splitlines()[0] == "| hyperparameter | default | this run | previous run |"


def test_a_default_cell_cuts_words_longer_than_its_share_too() -> None:
    defaults = {"p": ArgDefault("p", ("--p",), "y" * 25, None)}
    table = hparam_table({"p": "y" * 25}, defaults=defaults, previous=None, previous_run=None)
    cut = "y" * 12 + "…" + "y" * 11
    assert table.splitlines()[-1] == f"| `p` | `{cut}` | `{cut}` |"


def test_a_text_as_long_as_the_limit_is_not_cut() -> None:
    assert (shorten_middle("abcde", 5), shorten_middle("abcdef", 5)) == ("abcde", "ab…ef")
