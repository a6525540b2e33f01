"""Metrics: lines, series, readers, summaries, the sparkline."""

from __future__ import annotations

import json
import math

import pytest

from devagent.core.runs.metrics import (
    MAX_NAME_LENGTH,
    MAX_NAMES,
    MAX_TOTAL_POINTS,
    MetricSeries,
    MetricSummary,
    curve_values,
    format_number,
    lower_is_better,
    parse_metric_line,
    read_lightning_csv,
    read_metrics_jsonl,
    short_number,
    sparkline,
    summarize_metrics,
)


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
        ("INFO: 3 | loss=0.5", {"loss": 0.5}),  # a log level is skipped, what follows it is read
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
        "(mode: 'train', loss: 0.5 )",
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
        ("lr", False), ("MONKEY_score", False), ("trainloss", True),
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
            MetricSummary("loss", math.inf, None, None, 1, final_step=1),
            MetricSummary("train_loss", 1.5, 1.0, 2, 4, final_step=4, best_point=2),
            MetricSummary("epoch", 1.0, None, None, 2, final_step=4),
            MetricSummary("lr", 1e-4, None, None, 2, final_step=4),
            MetricSummary("val_acc", 0.8, 0.9, 2, 4, final_step=4, best_point=2),
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


class TestCaps:
    """A script can log any number of metric names, each any number of times: what is kept stays bounded."""

    def test_names_beyond_the_cap_are_counted_not_kept(self) -> None:
        series = MetricSeries()
        for step in range(3):
            series.add({f"class_{i}_acc": step / 10 for i in range(10_000)}, step=step)
        assert list(series.points) == [f"class_{i}_acc" for i in range(MAX_NAMES)]
        assert series.left_out == 10_000 - MAX_NAMES
        assert [s.count for s in summarize_metrics(series)] == [3] * MAX_NAMES

    def test_a_name_longer_than_the_cap_is_left_out(self) -> None:
        series = read_metrics_jsonl(json.dumps({"x" * (MAX_NAME_LENGTH + 1): 1.0, "loss": 0.5}))
        assert (list(series.points), series.left_out) == (["loss"], 1)

    def test_names_left_out_by_one_source_but_kept_from_another_are_not_counted_as_left_out(self) -> None:
        lab = MetricSeries(max_names=1)
        lab.add({"loss": 0.5, "acc": 0.9})
        merged = MetricSeries()
        merged.merge_missing(lab)
        merged.merge_missing(MetricSeries({"acc": [(None, 0.8)]}))
        assert (sorted(merged.points), merged.left_out) == (["acc", "loss"], 0)

    def test_many_metrics_share_one_budget_of_points_and_their_summaries_stay_exact(self) -> None:
        series = MetricSeries()
        for step in range(10_000):
            series.add({f"m{i}_loss": 1.0 - step / 10_000 + (i == 0 and step == 77) * -5 for i in range(MAX_NAMES)},
                       step=step)
        assert sum(len(points) for points in series.points.values()) <= MAX_TOTAL_POINTS
        first = summarize_metrics(series)[0]
        assert (first.name, first.count, first.best, first.best_step) == ("m0_loss", 10_000, 1.0 - 77 / 10_000 - 5,
                                                                          77)
        assert first.final == pytest.approx(1.0 - 9_999 / 10_000)


class TestWhereValuesWereLogged:
    def test_values_without_a_step_are_placed_by_their_count_unless_the_series_was_thinned(self) -> None:
        series = MetricSeries({"acc": [(None, 0.5), (None, 0.9), (None, 0.8)]})
        [acc] = summarize_metrics(series)
        assert (acc.final_step, acc.best_step, acc.best_point, acc.count) == (None, None, 2, 3)
        thinned = MetricSeries({"acc": [(None, 0.5), (None, 0.9)]}, counts={"acc": 5})
        assert summarize_metrics(thinned)[0].best_point is None

    @pytest.mark.parametrize(("value", "text"), [(0.37306, "0.373"), (0.8856, "0.886"), (2.27052, "2.27"),
                                                 (1234.56, "1235"), (5.0, "5"), (3e-4, "0.0003"),
                                                 (math.nan, "NaN")])
    def test_the_summary_line_shows_three_significant_digits(self, value: float, text: str) -> None:
        assert short_number(value) == text


class TestNumbers:
    @pytest.mark.parametrize(("value", "text"), [
        (0.42133712, "0.421337"), (3e-4, "0.0003"), (12.0, "12"), (-12.0, "-12"), (0.0, "0"),
        (123456789.5, "1.23457e+08"), (1e15, "1e+15"), (999_999_999_999_999.0, "999999999999999"),
        (-1e15, "-1e+15"), (math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "-inf"),
    ])
    def test_a_table_cell_shows_six_significant_digits_and_whole_numbers_without_a_point(
            self, value: float, text: str) -> None:
        assert format_number(value) == text

    @pytest.mark.parametrize(("value", "text"), [
        (-1234.56, "-1235"), (150.4, "150"), (99.5, "99.5"), (-0.37306, "-0.373"), (1e15, "1000000000000000"),
        (math.inf, "inf"), (-math.inf, "-inf"),
    ])
    def test_a_summary_line_shows_whole_numbers_from_a_hundred_on(self, value: float, text: str) -> None:
        assert short_number(value) == text


def test_the_names_left_out_are_told_apart_up_to_a_bound() -> None:
    series = MetricSeries(max_names=0)
    series.add({f"m{i}": 1.0 for i in range(100_005)})
    assert (series.points, series.left_out) == ({}, 100_000)


class TestSeriesEdges:
    def test_a_series_is_thinned_only_past_its_limit_and_keeps_the_best_of_a_higher_is_better_metric(self) -> None:
        series = MetricSeries(max_points=4)
        for step, value in enumerate([0.1, 0.9, 0.2, 0.3], start=1):
            series.add({"acc": value}, step=step)
        assert series.points == {"acc": [(1, 0.1), (2, 0.9), (3, 0.2), (4, 0.3)]}
        series.add({"acc": 0.4}, step=5)
        assert series.points == {"acc": [(1, 0.1), (2, 0.9), (3, 0.2), (5, 0.4)]}

    def test_a_step_that_is_not_finite_is_no_step(self) -> None:
        series = MetricSeries()
        series.add({"step": math.nan, "loss": 1.0})
        assert series.points == {"loss": [(None, 1.0)]}

    def test_merging_keeps_the_other_series_true_counts(self) -> None:
        thinned = MetricSeries({"loss": [(1, 1.0)]}, counts={"loss": 5})
        merged = MetricSeries({"loss": [(0, 2.0)]})
        merged.merge(thinned)
        assert (merged.points, merged.count("loss")) == ({"loss": [(0, 2.0), (1, 1.0)]}, 6)
        fresh = MetricSeries()
        assert fresh.merge_missing(thinned) is True
        assert fresh.count("loss") == 5
        assert fresh.merge_missing(thinned) is False

    def test_a_name_of_exactly_the_longest_length_is_kept(self) -> None:
        series = MetricSeries()
        series.add({"x" * MAX_NAME_LENGTH: 1.0})
        assert (list(series.points), series.left_out) == (["x" * MAX_NAME_LENGTH], 0)

    def test_names_left_out_and_merged_in_stay_within_the_bound(self) -> None:
        other = MetricSeries(max_names=0)
        other.add({f"m{i}": 1.0 for i in range(100_000)})
        merged = MetricSeries(max_names=0)
        merged.add({"x": 1.0})
        merged.merge(other)
        assert merged.left_out == 100_000

    def test_readers_take_the_lines_one_by_one_too(self) -> None:
        assert read_metrics_jsonl(['{"loss": 1}']).points == {"loss": [(None, 1.0)]}
        assert read_lightning_csv(["a", "1"]).points == {"a": [(None, 1.0)]}

    def test_a_csv_row_shorter_than_its_header_and_a_column_without_a_name(self) -> None:
        assert read_lightning_csv("a,,b\n1,2,3\n4\n").points == {"a": [(None, 1.0), (None, 4.0)], "b": [(None, 3.0)]}


class TestSummaryEdges:
    def test_the_first_of_equal_best_values_is_the_best_and_empty_metrics_are_skipped(self) -> None:
        summaries = summarize_metrics(MetricSeries({"e": [], "loss": [(1, 1.0), (2, 1.0)], "ab": [(1, 1.0)],
                                                    "a_x": [(1, 1.0)]}))
        assert [(m.name, m.best_step) for m in summaries] == [("loss", 1), ("a_x", 1), ("ab", 1)]

    def test_the_curve_prefers_train_loss_over_other_losses(self) -> None:
        assert curve_values(MetricSeries({"val_loss": [(1, 3.0), (2, 2.0)], "train_loss": [(1, 1.0), (2, 0.5)]
                                          })) == ("train_loss", [1.0, 0.5])

    def test_the_sparkline_width_defaults_to_40_and_may_be_1(self) -> None:
        assert len(sparkline([float(i) for i in range(41)])) == 40
        assert sparkline([1.0, 2.0], width=1) == "▄"
        with pytest.raises(ValueError) as caught:
            sparkline([1.0], width=0)
        assert str(caught.value) == "width must be at least 1"

    def test_buckets_are_averaged_and_one_holding_both_infinities_is_a_dot(self) -> None:
        assert sparkline([1.0] * 5, width=2) == "▄▄"  # buckets of 2 and 3 values, both averaging 1
        assert sparkline([math.inf, -math.inf, 1.0, 2.0], width=2) == "·▄"
