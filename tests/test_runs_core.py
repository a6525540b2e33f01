"""The pure core of run summaries: output cleaning, exit classification, metrics, hyperparameters, the section."""

from __future__ import annotations

import json
import math
import re
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devagent.core.notebook import SaveRecord, is_entry
from devagent.core.runs import (
    ANSI_RE,
    MEMORY_EXPLANATION,
    NAN_RE,
    ArgDefault,
    ExitInfo,
    GitState,
    GpuMemory,
    LineCollector,
    MetricSeries,
    MetricSummary,
    RunRecord,
    RunReport,
    allowed_env,
    argparse_defaults,
    classify_exit,
    curve_values,
    effective_batch,
    format_duration,
    hparam_table,
    lower_is_better,
    overlay_argv,
    parse_metric_line,
    read_lightning_csv,
    read_metrics_jsonl,
    render_run,
    sparkline,
    summarize_metrics,
)

GIB = 1024**3


def collect(*chunks: bytes, **options: int) -> tuple[list[str], LineCollector]:
    collector = LineCollector(**options)
    lines = [line for chunk in chunks for line in collector.feed(chunk)]
    return lines + collector.close(), collector


# ------------------------------------------------------------------------------------------------------------


class TestLineCollector:
    def test_a_tqdm_progress_bar_leaves_only_its_last_state(self) -> None:
        bar = (
            b"Epoch 1:   0%|          | 0/3 [00:00<?, ?it/s]"
            b"\rEpoch 1:  33%|###3      | 1/3 [00:01<00:02, 1.0it/s, loss=0.9]"
            b"\rEpoch 1: 100%|##########| 3/3 [00:03<00:00, 1.0it/s, loss=0.5]\n"
        )
        lines, _ = collect(b"starting\n", bar, b"done\n")
        assert lines == ["starting", "Epoch 1: 100%|##########| 3/3 [00:03<00:00, 1.0it/s, loss=0.5]", "done"]

    def test_a_carriage_return_keeps_the_last_segment(self) -> None:
        assert collect(b"a\rb\rc\n")[0] == ["c"]

    def test_a_cleared_progress_bar_leaves_the_text_written_over_it(self) -> None:
        assert collect(b"\r 50%|#####\r          \rvalidation done\n")[0] == ["validation done"]

    def test_a_carriage_return_before_the_newline_keeps_what_the_terminal_shows(self) -> None:
        assert collect(b"abc\r\r\n")[0] == ["abc"]

    def test_crlf_is_one_newline_even_split_across_feeds(self) -> None:
        assert collect(b"one\r\ntwo\r", b"\nthree\r\n")[0] == ["one", "two", "three"]

    def test_ansi_colours_and_hyperlinks_are_stripped(self) -> None:
        lines, _ = collect(
            b"\x1b[1;32mINFO\x1b[0m \x1b]8;;https://wandb.ai/run/1\x1b\\run page\x1b]8;;\x1b\\ ready\x1b(B\x1b[m\n"
        )
        assert lines == ["INFO run page ready"]

    def test_an_escape_sequence_split_across_feeds_is_still_stripped(self) -> None:
        assert collect(b"loss \x1b[3", b"1", b"m0.5\x1b", b"[0m\n")[0] == ["loss 0.5"]

    def test_a_utf8_character_split_across_feeds_is_joined(self) -> None:
        text = "lossé 🚀 ok\n".encode()
        cut = text.index("🚀".encode())
        assert collect(text[:3 + 2], text[5:cut + 1], text[cut + 1:cut + 3], text[cut + 3:])[0] == ["lossé 🚀 ok"]

    def test_binary_junk_becomes_replacement_characters_and_control_characters_are_dropped(self) -> None:
        lines, _ = collect(b"\x00bin\xff\xfe\x07ary\x08\x0c\x1b\tend\x7f\n")
        assert lines == ["bin\ufffd\ufffdary\tend"]

    def test_lines_longer_than_max_line_are_cut_with_an_ellipsis(self) -> None:
        lines, _ = collect(b"0123456789\n", b"012345\n", max_line=6)
        assert lines == ["01234…", "012345"]

    def test_five_megabytes_without_a_newline_keep_memory_bounded(self) -> None:
        collector = LineCollector(max_line=2000)
        chunk = b"x" * 65536
        tracemalloc.start()
        try:
            for _ in range(5 * 1024 * 1024 // len(chunk)):
                assert collector.feed(chunk) == []
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < 64 * 1024  # a few KB of state, not megabytes
        [line] = collector.close()
        assert line == "x" * 1999 + "…"

    def test_a_long_progress_line_of_megabytes_keeps_only_its_last_state(self) -> None:
        data = b"".join(b"\r step %d/100000" % i for i in range(100000)) + b"\n"
        lines, collector = collect(data)
        assert lines == [" step 99999/100000"]  # leading space kept: indentation matters in tracebacks
        assert collector.line_count == 1

    def test_the_tail_holds_the_last_non_empty_lines_and_the_count_all_lines(self) -> None:
        data = b"".join(b"line %d\n\n" % i for i in range(1000))
        lines, collector = collect(data, tail_lines=40)
        assert len(lines) == 2000
        assert collector.line_count == 2000
        assert collector.tail == [f"line {i}" for i in range(960, 1000)]

    def test_feed_returns_only_new_complete_lines_and_close_flushes_the_rest(self) -> None:
        collector = LineCollector()
        assert collector.feed(b"a\nb") == ["a"]
        assert collector.feed(b"c") == []
        assert collector.close() == ["bc"]
        assert collector.close() == []
        assert collector.line_count == 2

    def test_close_without_a_partial_line_flushes_nothing(self) -> None:
        assert collect(b"a\n", b"\x1b[0m")[0] == ["a"]

    def test_an_empty_line_is_returned_but_kept_out_of_the_tail(self) -> None:
        lines, collector = collect(b"a\n\n   \nb\n")
        assert lines == ["a", "", "", "b"]
        assert collector.tail == ["a", "b"]

    def test_unicode_line_separators_never_survive_into_a_line(self) -> None:
        assert collect("a\u2028b\x85c\n".encode())[0] == ["abc"]

    def test_bad_sizes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="max_line"):
            LineCollector(max_line=1)

    @settings(max_examples=300)
    @given(st.lists(st.binary(max_size=64), max_size=20), st.data())
    def test_any_bytes_in_any_chunking_give_clean_lines_and_the_same_lines(
        self, chunks: list[bytes], data: st.DataObject
    ) -> None:
        alphabet = st.sampled_from([b"\r", b"\n", b"\r\n", b"\x1b", b"\x1b[", b"\x1b]", b"\x07", b"\xe2\x82",
                                    b"\xac", b"m", b"x", b"\\", b"\x00"])
        noise = data.draw(st.lists(alphabet, max_size=30))
        stream = b"".join(chunks) + b"".join(noise)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        whole, _ = collect(stream, max_line=20)
        lines, collector = collect(*pieces, max_line=20)
        assert lines == whole
        assert collector.line_count == len(lines)
        for line in lines:
            assert "\r" not in line and "\x1b" not in line and "\n" not in line
            assert len(line.splitlines()) <= 1
            assert len(line) <= 20
        assert collector.tail == [line for line in lines if line][-40:]


# ------------------------------------------------------------------------------------------------------------


TRACEBACK = [
    "epoch 2 loss=0.41",
    "Traceback (most recent call last):",
    '  File "/workspace/train.py", line 88, in <module>',
    "    main()",
    '  File "/workspace/train.py", line 71, in main',
    "    raise ValueError(f'bad shape {x.shape}')",
    "ValueError: bad shape torch.Size([64, 3])",
]


class TestClassifyExit:
    def test_exit_0_is_a_success(self) -> None:
        assert classify_exit(0, tail=["done"]) == ExitInfo("success", 0, "✅ exit 0", None)

    def test_a_failure_shows_the_exception_line(self) -> None:
        info = classify_exit(1, tail=TRACEBACK)
        assert info == ExitInfo("failure", 1, "❌ exit 1 · ValueError: bad shape torch.Size([64, 3])",
                                "ValueError: bad shape torch.Size([64, 3])")

    def test_the_exception_line_of_the_last_traceback_wins_even_when_it_is_not_an_error_name(self) -> None:
        tail = ["Traceback (most recent call last):", "  File x", "KeyError: 'lr'", "",
                "During handling of the above exception, another exception occurred:", "",
                "Traceback (most recent call last):", "  File y", "mylib.Boom: config broken", "cleanup"]
        assert classify_exit(1, tail=tail).detail == "mylib.Boom: config broken"

    def test_without_a_traceback_the_last_error_looking_line_is_the_detail(self) -> None:
        tail = ["[rank0]: RuntimeError: NCCL timeout", "[rank0]: shutting down"]
        assert classify_exit(1, tail=tail).detail == "RuntimeError: NCCL timeout"

    def test_a_failure_without_an_exception_has_no_detail(self) -> None:
        assert classify_exit(3, tail=["some output"]) == ExitInfo("failure", 3, "❌ exit 3", None)

    def test_an_argparse_usage_error_is_the_detail(self) -> None:
        tail = ["usage: train.py [-h] [--lr LR]", "train.py: error: unrecognized arguments: --lrr 3"]
        assert classify_exit(2, tail=tail).detail == "train.py: error: unrecognized arguments: --lrr 3"

    def test_a_long_exception_is_shortened_in_the_label_and_whole_in_the_detail(self) -> None:
        line = "AssertionError: " + "x" * 300
        info = classify_exit(1, tail=[line])
        assert info.detail == line
        assert info.label == "❌ exit 1 · " + line[:99] + "…"

    def test_sigint_is_interrupted(self) -> None:
        tail = ["Traceback (most recent call last):", "  File x", "KeyboardInterrupt"]
        assert classify_exit(130, tail=tail) == ExitInfo("interrupted", 130, "⛔ interrupted (130)", None)

    def test_sigkill_with_the_oom_killer_says_so(self) -> None:
        info = classify_exit(137, tail=[], oom_killed=True)
        assert info == ExitInfo("killed", 137, "💀 killed (137) · out of memory killer?", None)

    def test_other_signals_are_named(self) -> None:
        assert classify_exit(137, tail=[]).label == "💀 killed (137) · SIGKILL"
        assert classify_exit(143, tail=[]) == ExitInfo("killed", 143, "💀 killed (143) · SIGTERM", None)
        assert classify_exit(129, tail=[]).label == "💀 killed (129) · SIGHUP"

    def test_a_negative_code_from_subprocess_is_taken_as_the_shell_would_report_it(self) -> None:
        assert classify_exit(-9, tail=[]) == ExitInfo("killed", 137, "💀 killed (137) · SIGKILL", None)

    def test_a_code_above_128_that_is_no_signal_is_a_failure(self) -> None:
        assert classify_exit(255, tail=[]).kind == "failure"

    @pytest.mark.parametrize("line", [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB",
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
        "RuntimeError: CUDA out of memory. Tried to allocate 1.50 GiB (GPU 0; 15.78 GiB total capacity)",
        "RuntimeError: CUDA error: out of memory",
    ])
    def test_cuda_out_of_memory_is_its_own_kind(self, line: str) -> None:
        info = classify_exit(1, tail=["Traceback (most recent call last):", "  File x", line])
        assert info == ExitInfo("cuda-oom", 1, "❌ CUDA out of memory", line)

    def test_a_cuda_oom_that_the_script_survived_is_still_a_success(self) -> None:
        assert classify_exit(0, tail=["CUDA out of memory; retrying with batch 32"]).kind == "success"

    def test_a_nan_loss_on_exit_0_is_a_warning(self) -> None:
        info = classify_exit(0, tail=["step 10 loss=0.3", "step 20 loss=nan", "done"], nan_seen=True)
        assert info == ExitInfo("nan", 0, "⚠️ NaN loss", "step 20 loss=nan")

    def test_a_nan_loss_with_a_failure_is_a_failure(self) -> None:
        assert classify_exit(1, tail=TRACEBACK, nan_seen=True).kind == "failure"

    def test_an_unknown_code_is_unknown(self) -> None:
        assert classify_exit(None, tail=[]) == ExitInfo("unknown", None, "exit status unknown", None)

    @pytest.mark.parametrize("line", ["loss=nan", "loss: NaN", "train_loss = inf", "val/loss: -inf",
                                      "{'loss': nan}", "loss: tensor(nan, device='cuda:0')"])
    def test_nan_re_finds_a_loss_that_went_nan(self, line: str) -> None:
        assert NAN_RE.search(line)

    @pytest.mark.parametrize("line", ["loss=0.5", "nan_count=3", "loss: inference", "acc=nan", "accuracy: nan"])
    def test_nan_re_ignores_other_lines(self, line: str) -> None:
        assert NAN_RE.search(line) is None

    def test_ansi_re_matches_colours(self) -> None:
        assert ANSI_RE.sub("", "\x1b[38;5;196mred\x1b[0m") == "red"


# ------------------------------------------------------------------------------------------------------------


class TestMetricLines:
    @pytest.mark.parametrize(("line", "expected"), [
        ("epoch 3 | loss=0.4213 acc: 91.2%", {"loss": 0.4213, "acc": 91.2}),
        ("step=10, lr=3e-4", {"step": 10.0, "lr": 0.0003}),
        ("train/loss=0.25\tval.acc: 0.9 | val-f1 = 0.81", {"train/loss": 0.25, "val.acc": 0.9, "val-f1": 0.81}),
        ("delta=-1.5E-3, grad_norm=.5", {"delta": -0.0015, "grad_norm": 0.5}),
        ("{'loss': 0.6931, 'grad_norm': 1.23, 'learning_rate': 4.5e-05, 'epoch': 0.1}",
         {"loss": 0.6931, "grad_norm": 1.23, "learning_rate": 4.5e-05, "epoch": 0.1}),
        ('{"loss":0.5,"acc":1}', {"loss": 0.5, "acc": 1.0}),
        ("Epoch 1/10 - loss: 0.4213 - accuracy: 0.8750", {"loss": 0.4213, "accuracy": 0.875}),
        ("loss=1 loss=2", {"loss": 2.0}),
    ])
    def test_metrics_are_read_from_a_line(self, line: str, expected: dict[str, float]) -> None:
        assert parse_metric_line(line) == expected

    def test_nan_and_inf_are_values(self) -> None:
        values = parse_metric_line("loss=nan grad: inf min=-Infinity")
        assert math.isnan(values["loss"]) and values["grad"] == math.inf and values["min"] == -math.inf

    @pytest.mark.parametrize("line", [
        "epoch 3",
        "see https://wandb.ai/team/proj/runs/abc?step=10&lr=3",
        "serving on http://localhost:8080",
        "localhost:8080 cuda:0",
        "12:30:01 started",
        "time: 12:30:01",
        "INFO: starting",
        "INFO: 3 workers",
        "WARNING: 2",
        "{'optimizer': 'adam', 'lr': 0.001}",
        'config {"model": "resnet50", "epochs": 90}',
        "Namespace(data='data/', lr=0.001, batch_size=64)",
        "Namespace(lr=0.001, batch_size=64, epochs=10)",
        "elapsed=3.2s eta=10m",
        "loss=0.5.3",
        "x=y=3",
    ])
    def test_things_that_are_not_metrics_give_nothing(self, line: str) -> None:
        assert parse_metric_line(line) == {}


class TestMetricSeries:
    def test_step_keys_are_the_step_and_everything_else_a_metric(self) -> None:
        series = MetricSeries()
        series.add({"global_step": 100, "loss": 0.5, "epoch": 1, "lr": 3e-4})
        series.add({"iter": 200.0, "loss": 0.4})
        series.add({"loss": 0.3})
        assert series.points == {"loss": [(100, 0.5), (200, 0.4), (None, 0.3)], "epoch": [(100, 1.0)],
                                 "lr": [(100, 3e-4)]}

    def test_an_explicit_step_wins_over_a_step_key(self) -> None:
        series = MetricSeries()
        series.add({"step": 5, "loss": 1.0}, step=7)
        assert series.points == {"loss": [(7, 1.0)]}

    def test_merge_appends_the_other_series(self) -> None:
        a = MetricSeries({"loss": [(1, 1.0)]})
        a.merge(MetricSeries({"loss": [(2, 0.5)], "acc": [(2, 0.9)]}))
        assert a.points == {"loss": [(1, 1.0), (2, 0.5)], "acc": [(2, 0.9)]}

    def test_json_lines_skip_private_keys_booleans_strings_and_bad_lines(self) -> None:
        text = "\n".join([
            json.dumps({"step": 1, "loss": 0.9, "acc": 0.5, "_t": 12.3, "_torch": {"devices": 1}}),
            "not json",
            "[1, 2]",
            json.dumps({"step": 2, "loss": 0.7, "done": True, "phase": "train", "nested": {"a": 1}}),
            "",
            '{"step": 3, "loss": NaN}',
        ])
        series = read_metrics_jsonl(text)
        assert list(series.points) == ["loss", "acc"]
        assert series.points["loss"][:2] == [(1, 0.9), (2, 0.7)]
        assert series.points["loss"][2][0] == 3 and math.isnan(series.points["loss"][2][1])
        assert series.points["acc"] == [(1, 0.5)]

    def test_lightning_csv_skips_empty_cells_and_uses_step(self) -> None:
        text = (
            "epoch,step,train_loss,val_loss,val_acc\n"
            "0,49,0.91,,\n"
            "0,99,0.62,,\n"
            "0,99,,0.70,0.74\n"
            "1,149,0.45,,\n"
            "1,199,bad,0.55,0.81\n"
        )
        series = read_lightning_csv(text)
        assert series.points["train_loss"] == [(49, 0.91), (99, 0.62), (149, 0.45)]
        assert series.points["val_loss"] == [(99, 0.70), (199, 0.55)]
        assert series.points["val_acc"] == [(99, 0.74), (199, 0.81)]
        assert "step" not in series.points
        assert [v for _, v in series.points["epoch"]] == [0, 0, 0, 1, 1]

    def test_an_empty_csv_gives_an_empty_series(self) -> None:
        assert read_lightning_csv("").points == {}
        assert read_lightning_csv("epoch,step\n").points == {}


class TestMetricSummaries:
    @pytest.mark.parametrize(("name", "lower"), [
        ("loss", True), ("val_loss", True), ("train/loss", True), ("top1_err", True), ("error_rate", True),
        ("ppl", True), ("val.perplexity", True), ("rmse", True), ("nll", True), ("epoch_time", True),
        ("latency_ms", True), ("wer", True), ("acc", False), ("val_f1", False), ("auc", False), ("bleu", False),
        ("lr", False), ("MONKEY_score", False),
    ])
    def test_lower_is_better_for_losses_errors_and_times(self, name: str, lower: bool) -> None:
        assert lower_is_better(name) is lower

    def test_best_is_the_minimum_of_a_loss_and_the_maximum_of_an_accuracy(self) -> None:
        series = MetricSeries({
            "val_acc": [(1, 0.5), (2, 0.9), (3, 0.9), (4, 0.8)],
            "train_loss": [(1, 2.0), (2, 1.0), (3, math.nan), (4, 1.5)],
            "lr": [(1, 1e-3), (4, 1e-4)],
            "epoch": [(1, 0.0), (4, 1.0)],
            "loss": [(1, math.inf)],
        })
        assert summarize_metrics(series) == [
            MetricSummary("loss", math.inf, None, None, 1),
            MetricSummary("train_loss", 1.5, 1.0, 2, 4),
            MetricSummary("epoch", 1.0, None, None, 2),
            MetricSummary("lr", 1e-4, None, None, 2),
            MetricSummary("val_acc", 0.8, 0.9, 2, 4),
        ]

    def test_the_curve_prefers_loss_then_train_loss_then_any_loss(self) -> None:
        assert curve_values(MetricSeries({"val_loss": [(1, 3.0), (2, 2.0)], "loss": [(1, 1.0), (2, 0.5)]})) == (
            "loss", [1.0, 0.5])
        assert curve_values(MetricSeries({"val_loss": [(1, 3.0), (2, 2.0)], "train/loss": [(1, 1.0), (2, 0.5)]
                                          })) == ("train/loss", [1.0, 0.5])
        assert curve_values(MetricSeries({"loss": [(1, 1.0)], "val_loss": [(1, 3.0), (2, 2.0)]})) == (
            "val_loss", [3.0, 2.0])
        assert curve_values(MetricSeries({"loss": [(1, 1.0)], "acc": [(1, 0.1), (2, 0.2)]})) is None

    def test_sparkline_scales_between_min_and_max(self) -> None:
        assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
        assert sparkline([7, 0]) == "█▁"

    def test_sparkline_shows_nan_and_inf_as_dots(self) -> None:
        assert sparkline([1.0, math.nan, 0.0, math.inf]) == "█·▁·"
        assert sparkline([math.nan, math.nan]) == "··"

    def test_a_constant_series_is_a_flat_line_and_an_empty_one_nothing(self) -> None:
        assert sparkline([2.5] * 5) == "▄▄▄▄▄"
        assert sparkline([]) == ""

    def test_a_long_series_is_averaged_down_to_the_width(self) -> None:
        values = [float(i) for i in range(1000)]
        line = sparkline(values, width=40)
        assert len(line) == 40
        assert line[0] == "▁" and line[-1] == "█"
        assert sparkline([0, 0, 8, 8, math.nan, 4], width=3) == "▁█·"

    def test_extreme_values_do_not_overflow(self) -> None:
        assert sparkline([-1e308, 1e308]) == "▁█"

    def test_a_width_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="width"):
            sparkline([1.0], width=0)


# ------------------------------------------------------------------------------------------------------------

TRAIN_SCRIPT = '''\
"""Train a ResNet on CIFAR-10."""
import argparse
import os

import torch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", help="where CIFAR-10 lives")
    parser.add_argument("--lr", "--learning-rate", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--batch-size", "-b", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--wd", dest="weight_decay", type=float, default=0.01)
    parser.add_argument("--amp", action="store_true", help="mixed precision")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 4)))
    parser.add_argument("--out", default=os.environ.get("OUT_DIR", "runs/"))
    model = parser.add_argument_group("model")
    model.add_argument("--depth", type=int, default=18)
    parser.add_argument_group("data").add_argument("--augment", default="none")
    parser.add_argument("--layers", nargs="+", type=int, default=[64,
                                                                  128])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--version", action="version", version="1.0")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed or 0)


if __name__ == "__main__":
    main()
'''


class TestArgparseDefaults:
    def test_a_realistic_training_script(self) -> None:
        found = argparse_defaults(TRAIN_SCRIPT)
        assert list(found) == ["data_dir", "lr", "batch_size", "epochs", "optimizer", "weight_decay", "amp",
                               "shuffle", "verbose", "workers", "out", "depth", "augment", "layers", "seed"]
        assert found["data_dir"] == ArgDefault("data_dir", ("data_dir",), None, None)
        assert found["lr"] == ArgDefault("lr", ("--lr", "--learning-rate"), "3e-4", None)
        assert found["batch_size"] == ArgDefault("batch_size", ("--batch-size", "-b"), "64", None)
        assert found["optimizer"].default == "adam"
        assert found["weight_decay"] == ArgDefault("weight_decay", ("--wd",), "0.01", None)
        assert found["amp"] == ArgDefault("amp", ("--amp",), "False", "store_true")
        assert found["shuffle"] == ArgDefault("shuffle", ("--no-shuffle",), "True", "store_false")
        assert found["verbose"] == ArgDefault("verbose", ("-v", "--verbose"), "0", "count")
        assert found["workers"].default == "int(os.environ.get('WORKERS', 4))"
        assert found["out"].default == "os.environ.get('OUT_DIR', 'runs/')"
        assert found["depth"].default == "18"
        assert found["augment"].default == "none"
        assert found["layers"] == ArgDefault("layers", ("--layers",), "[64, 128]", None, nargs="+")
        assert found["seed"] == ArgDefault("seed", ("--seed",), None, None)

    def test_set_defaults_overrides_a_default_as_argparse_does(self) -> None:
        source = "p.set_defaults(lr=0.1)\np.add_argument('--lr', default=1e-3)\np.set_defaults(unknown=1)\n"
        assert argparse_defaults(source) == {"lr": ArgDefault("lr", ("--lr",), "0.1", None)}

    def test_boolean_optional_action_is_kept_as_written(self) -> None:
        source = "p.add_argument('--compile', action=argparse.BooleanOptionalAction, default=True)"
        assert argparse_defaults(source)["compile"].action == "argparse.BooleanOptionalAction"

    def test_a_call_with_a_computed_flag_is_skipped(self) -> None:
        assert argparse_defaults("for name in names:\n    p.add_argument(name, default=1)\n") == {}

    def test_a_script_with_a_plain_dict_config_has_none(self) -> None:
        source = "config = {'lr': 3e-4, 'batch_size': 64}\n\ndef train(cfg):\n    return cfg['lr']\n"
        assert argparse_defaults(source) == {}

    @pytest.mark.parametrize("source", ["def broken(:\n    pass\n", "x = 1\x00", "add_argument('--x'"])
    def test_a_source_that_does_not_parse_has_none(self, source: str) -> None:
        assert argparse_defaults(source) == {}

    def test_the_script_is_never_run(self) -> None:
        source = "import sys\nsys.exit(3)\nraise SystemExit\np.add_argument('--x', default=open('/nope').read())"
        assert argparse_defaults(source)["x"].default == "open('/nope').read()"


class TestOverlayArgv:
    def test_given_values_overlay_the_defaults_in_source_order(self) -> None:
        defaults = argparse_defaults(TRAIN_SCRIPT)
        result = overlay_argv(defaults, ["--lr", "1e-3", "--batch-size=32", "--amp", "data/", "-vv",
                                         "--layers", "32", "64", "--no-shuffle"])
        assert result == {
            "data_dir": "data/", "lr": "1e-3", "batch_size": "32", "epochs": "10", "optimizer": "adam",
            "weight_decay": "0.01", "amp": "True", "shuffle": "False", "verbose": "2",
            "workers": "int(os.environ.get('WORKERS', 4))", "out": "os.environ.get('OUT_DIR', 'runs/')",
            "depth": "18", "augment": "none", "layers": "32 64", "seed": "None",
        }

    @pytest.mark.parametrize("argv", [["-b", "32"], ["-b32"], ["-b=32"], ["--batch-size", "32"],
                                      ["--batch", "32"], ["--batch-s=32"]])
    def test_every_spelling_of_a_short_or_long_flag(self, argv: list[str]) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), argv)["batch_size"] == "32"

    def test_combined_short_switches(self) -> None:
        defaults = argparse_defaults("p.add_argument('-v', action='count')\np.add_argument('-q', action='store_true')")
        assert overlay_argv(defaults, ["-vqv"]) == {"v": "2", "q": "True"}

    def test_an_alias_is_the_same_argument(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--learning-rate", "0.1"])["lr"] == "0.1"

    def test_a_negative_number_is_a_value(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--lr", "-1e-3"])["lr"] == "-1e-3"

    def test_unknown_flags_are_kept_under_their_names(self) -> None:
        result = overlay_argv({}, ["--warmup-steps", "100", "--fast", "--name=run 1", "--dry-run", "-x"])
        assert result == {"warmup_steps": "100", "fast": "True", "name": "run 1", "dry_run": "True", "x": "True"}

    def test_positionals_go_in_order_and_extra_ones_under_their_index(self) -> None:
        defaults = argparse_defaults("p.add_argument('src')\np.add_argument('dst')\np.add_argument('--k', default=1)")
        assert overlay_argv(defaults, ["a", "--k", "2", "b", "c", "--", "-d"]) == {
            "src": "a", "dst": "b", "k": "2", "argv[4]": "c", "argv[6]": "-d"}

    def test_a_star_positional_takes_what_the_others_leave(self) -> None:
        defaults = argparse_defaults("p.add_argument('files', nargs='*')\np.add_argument('out')")
        assert overlay_argv(defaults, ["a", "b", "c"]) == {"files": "a b", "out": "c"}

    def test_boolean_optional_action_knows_its_no_flag(self) -> None:
        defaults = argparse_defaults("p.add_argument('--compile', action=argparse.BooleanOptionalAction, default=True)")
        assert overlay_argv(defaults, ["--no-compile"]) == {"compile": "False"}
        assert overlay_argv(defaults, []) == {"compile": "True"}

    def test_store_const_and_append(self) -> None:
        defaults = argparse_defaults("p.add_argument('--fp16', dest='dtype', action='store_const', const='half')\n"
                                     "p.add_argument('--tag', action='append')")
        assert overlay_argv(defaults, ["--fp16", "--tag", "a", "--tag=b"]) == {"dtype": "half", "tag": "a, b"}

    def test_a_missing_value_keeps_the_default(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--epochs"])["epochs"] == "10"


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

    def test_effective_batch(self) -> None:
        assert effective_batch({"batch_size": "64"}, 2) == (64, 2, 128)
        assert effective_batch({"bs": "auto", "per_device_train_batch_size": "8"}, 4) == (8, 4, 32)
        assert effective_batch({"batch_size": "64"}, 0) is None
        assert effective_batch({"lr": "1"}, 2) is None
        assert effective_batch({"batch_size": "0"}, 2) is None


# ------------------------------------------------------------------------------------------------------------


class TestAllowedEnv:
    def test_only_allow_listed_names_sorted(self) -> None:
        env = {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "0,1",
               "NCCL_DEBUG": "INFO", "TORCH_HOME": "/home/Ana/.cache/torch", "DATA_SEED": "7", "SEED": "1",
               "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "WANDB_API_KEY": "abc", "LOCAL_RANK": "0"}
        assert allowed_env(env) == {
            "CUDA_VISIBLE_DEVICES": "0,1", "DATA_SEED": "7", "LOCAL_RANK": "0", "NCCL_DEBUG": "INFO",
            "OMP_NUM_THREADS": "8", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "SEED": "1",
            "TORCH_HOME": "/home/Ana/.cache/torch",
        }

    @pytest.mark.parametrize("name", ["TORCH_AUTH_TOKEN", "NCCL_SECRET", "TORCH_HUB_PASSWORD", "PYTORCH_API_KEY",
                                      "TORCH_CREDENTIALS", "NCCL_PRIVATE_KEYS", "TORCH_COOKIE"])
    def test_values_under_secret_looking_names_are_redacted(self, name: str) -> None:
        assert allowed_env({name: "hunter2"}) == {name: "‹redacted›"}

    def test_key_inside_a_word_is_not_a_secret_name(self) -> None:
        assert allowed_env({"TORCH_MONKEY_PATCH": "1", "NCCL_KEYRING_MODE": "2"}) == {
            "TORCH_MONKEY_PATCH": "1", "NCCL_KEYRING_MODE": "2"}

    @pytest.mark.parametrize("value", [
        "ghp_" + "A1b2C3d4E5f6G7h8I9j0", "hf_abcdefghijklmnopqrstuvwxyz", "sk-proj1234567890abcdefXYZ",
        "Bearer eyJhbGciOiJIUzI1NiJ9aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", "3f2a9c1e" * 5,
    ])
    def test_secret_looking_values_are_redacted_even_under_allowed_names(self, value: str) -> None:
        assert allowed_env({"SEED": value, "NCCL_DEBUG": "WARN"}) == {"NCCL_DEBUG": "WARN", "SEED": "‹redacted›"}

    @pytest.mark.parametrize("value", [
        "/workspace/outputs/2024-11-27_14-02-59/checkpoints", "/home/Ana/Projects2024/MyModelCheckpoints/v1",
        "b1ee1ba9-58fe-44f5-a572-4966b6e83c38", "expandable_segments_true_max_split_size_mb",
    ])
    def test_paths_run_ids_and_settings_are_not_secrets(self, value: str) -> None:
        assert allowed_env({"TORCH_X": value}) == {"TORCH_X": value}


# ------------------------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
any_float = st.floats()
records = st.builds(
    RunRecord,
    number=st.integers(1, 10**9),
    observed=st.booleans(),
    script=st.none() | st.text(),
    argv=st.lists(st.text()).map(tuple),
    cwd=st.text(),
    started=st.text(),
    duration_s=st.none() | any_float,
    exit_code=st.none() | st.integers(-(2**31), 2**31),
    exit_kind=st.sampled_from(["success", "failure", "interrupted", "killed", "cuda-oom", "nan", "unknown"]),
    hparams=st.dictionaries(st.text(), st.text()),
    metrics=st.dictionaries(st.text(), any_float),
)


def same_float(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


class TestRunRecord:
    @given(records)
    def test_json_round_trip(self, record: RunRecord) -> None:
        text = record.to_json()
        assert "\n" not in text
        back = RunRecord.from_json(text)
        assert back.to_json() == text
        assert (back.number, back.observed, back.script, back.argv, back.cwd, back.started, back.exit_code,
                back.exit_kind, back.hparams) == (record.number, record.observed, record.script, record.argv,
                                                  record.cwd, record.started, record.exit_code, record.exit_kind,
                                                  record.hparams)
        assert same_float(back.duration_s, record.duration_s)
        assert list(back.metrics) == list(record.metrics)
        assert all(same_float(back.metrics[k], v) for k, v in record.metrics.items())

    def test_json_is_standard_json_even_with_nan(self) -> None:
        record = RunRecord(1, False, "t.py", ("python", "t.py"), "/w", "2026-11-27T14:00:00+00:00", 1.5, 0,
                           "nan", {}, {"loss": math.nan, "x": -math.inf})
        assert json.loads(record.to_json(), parse_constant=pytest.fail)["metrics"] == {
            "loss": "NaN", "x": "-Infinity"}

    def test_unknown_keys_are_ignored(self) -> None:
        record = RunRecord(2, True, None, (), "/w", "s", None, None, "unknown", {}, {})
        data = json.loads(record.to_json()) | {"future": 1}
        assert RunRecord.from_json(json.dumps(data)) == record

    @pytest.mark.parametrize("text", [
        '{"reserve": 3, "started": "2026-11-27T14:00:00+00:00"}', "[]", "null", "not json",
        '{"number": "1", "observed": false, "script": null, "argv": [], "cwd": "", "started": "", '
        '"duration_s": null, "exit_code": null, "exit_kind": "unknown", "hparams": {}, "metrics": {}}',
        '{"number": true, "observed": false, "script": null, "argv": [], "cwd": "", "started": "", '
        '"duration_s": null, "exit_code": null, "exit_kind": "unknown", "hparams": {}, "metrics": {}}',
        '{"number": 1, "observed": false, "script": null, "argv": "python", "cwd": "", "started": "", '
        '"duration_s": null, "exit_code": null, "exit_kind": "unknown", "hparams": {}, "metrics": {}}',
        '{"number": 1, "observed": false, "script": null, "argv": [], "cwd": "", "started": "", '
        '"duration_s": null, "exit_code": null, "exit_kind": "unknown", "hparams": {"a": 1}, "metrics": {}}',
        '{"number": 1, "observed": false, "script": null, "argv": [], "cwd": "", "started": "", '
        '"duration_s": null, "exit_code": null, "exit_kind": "unknown", "hparams": {}, "metrics": {"a": "x"}}',
    ])
    def test_bad_input_raises_value_error(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"run record|Expecting|Extra data"):
            RunRecord.from_json(text)


# ------------------------------------------------------------------------------------------------------------

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


def test_a_series_logged_a_million_times_stays_bounded_and_its_summary_exact() -> None:
    series = MetricSeries(max_points=1000)
    for step in range(1_000_000 // 10):  # 100,000 points: thinned many times over
        series.add({"loss": 1.0 + ((step * 7919) % 1000) / 1000 - (1.5 if step == 4321 else 0), "acc": step / 1e5},
                   step=step)
    assert len(series.points["loss"]) <= 1000
    [loss, acc] = summarize_metrics(series)
    assert (loss.name, loss.count, loss.best_step) == ("loss", 100_000, 4321)
    assert loss.best == pytest.approx(1.0 + ((4321 * 7919) % 1000) / 1000 - 1.5)
    assert loss.final == pytest.approx(1.0 + ((99_999 * 7919) % 1000) / 1000)
    assert (acc.final, acc.best, acc.best_step, acc.count) == (0.99999, 0.99999, 99_999, 100_000)
