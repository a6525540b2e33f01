"""Idle GPUs (core/gpu/idle_rule.py): the idle limit `up --idle-release` takes, how often the agent samples, the
last hour's samples and idle times, when the GPUs are given back, the usage record `devagent gpus` reads and the
notebook's line."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from devagent.core.gpu.idle_rule import (
    NVML_STAND_IN,
    GpuUsage,
    History,
    describe_usage,
    format_duration,
    idle_test_seam,
    parse_duration,
    parse_usage,
    release_due,
    released_entry,
    sample_interval,
    usage_record,
)
from devagent.errors import DevagentError, ExitStatus

A, B = "GPU-aaaa", "GPU-bbbb"


def test_the_nvml_stand_in_reaches_the_container_only_when_a_test_set_it() -> None:
    assert NVML_STAND_IN == "DEVAGENT_TEST_NVML"
    assert idle_test_seam({}) == {}
    assert idle_test_seam({NVML_STAND_IN: ""}) == {}
    assert idle_test_seam({NVML_STAND_IN: "/tmp/nvml.json", "HOME": "/h"}) == {NVML_STAND_IN: "/tmp/nvml.json"}


@pytest.mark.parametrize(("limit", "interval"), [
    (None, 15.0), (3600.0, 15.0), (150.0, 15.0), (100.0, 10.0), (5.0, 0.5), (2.0, 0.2), (1.0, 0.2), (0.5, 0.2)])
def test_the_agent_samples_every_tenth_of_the_limit_between_0_2_and_15_seconds(limit: float | None,
                                                                              interval: float) -> None:
    assert sample_interval(limit) == interval


class TestParseDuration:
    @pytest.mark.parametrize(("text", "seconds"), [
        ("300s", 300.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
        (" 1H30M ", 5400.0), ("1d2h3m4s", 93784.0), ("4m60s", 300.0)])
    def test_units_add_up(self, text: str, seconds: float) -> None:
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", " ", "30", "m", "30 m", "1h 30m", "30min", "-30m", "30m5", "x30m", "1w"])
    def test_what_is_no_duration_is_refused_with_an_example(self, text: str) -> None:
        with pytest.raises(DevagentError) as raised:
            parse_duration(text)
        assert (raised.value.message, raised.value.hint, raised.value.status) == (
            f"--idle-release {text!r} is not a duration", "e.g. --idle-release 30m (units: s, m, h, d; 1h30m)",
            ExitStatus.USAGE)

    def test_a_limit_below_the_shortest_is_refused_naming_it(self) -> None:
        with pytest.raises(DevagentError) as raised:
            parse_duration("4m59s")
        assert (raised.value.message, raised.value.hint, raised.value.status) == (
            "--idle-release 4m59s is shorter than the shortest limit, 5m", "give 5m or more, e.g. --idle-release 30m",
            ExitStatus.USAGE)

    def test_the_option_and_the_minimum_are_the_callers(self) -> None:
        assert parse_duration("2s", option="--wait", minimum=2.0) == 2.0
        with pytest.raises(DevagentError) as raised:
            parse_duration("1s", option="--wait", minimum=120.0)
        assert (raised.value.message, raised.value.hint) == (
            "--wait 1s is shorter than the shortest limit, 2m", "give 2m or more, e.g. --wait 30m")
        with pytest.raises(DevagentError) as raised:
            parse_duration("soon", option="--wait")
        assert (raised.value.message, raised.value.hint) == (
            "--wait 'soon' is not a duration", "e.g. --wait 30m (units: s, m, h, d; 1h30m)")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (42, "42s"), (59.4, "59s"), (59.6, "1m"), (60, "1m"), (119, "1m"), (300, "5m"), (3600, "1h"),
    (3660, "1h1m"), (5400, "1h30m"), (86400, "1d"), (86460, "1d1m"), (90000, "1d1h"), (93784, "1d2h3m")])
def test_durations_are_written_as_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


class TestHistory:
    @pytest.mark.parametrize(("interval", "capacity"), [(15.0, 241), (10.0, 361), (3600.0, 2), (7200.0, 1)])
    def test_the_ring_holds_an_hour_and_one_sample_more(self, interval: float, capacity: int) -> None:
        h = History(interval=interval)
        assert h.capacity == capacity
        for t in range(capacity + 5):
            h.add(float(t), {A: 50})
        assert list(h.samples[A]) == [(float(t), 50) for t in range(5, capacity + 5)]

    def test_a_gpu_is_idle_below_5_percent_from_its_first_idle_sample(self) -> None:
        h = History(interval=10.0)
        h.add(0.0, {A: 4, B: 5})
        h.add(10.0, {A: 0, B: 0})
        assert h.idle_since == {A: 0.0, B: 10.0}
        assert (h.idle_seconds(A, now=25.0), h.idle_seconds(B, now=25.0)) == (25.0, 15.0)

    @pytest.mark.parametrize("busy", [5, 80, None])  # NVML that cannot say is not idle either
    def test_a_busy_or_unread_sample_ends_the_idle_time(self, busy: int | None) -> None:
        h = History(interval=10.0)
        h.add(0.0, {A: 0})
        h.add(10.0, {A: busy})
        assert h.idle_since == {A: None}
        assert h.idle_seconds(A, now=20.0) == 0.0
        h.add(20.0, {A: 1})
        assert h.idle_seconds(A, now=30.0) == 10.0

    def test_idle_time_is_never_negative_nor_known_for_a_gpu_never_read(self) -> None:
        h = History(interval=10.0)
        h.add(100.0, {A: 0})
        assert h.idle_seconds(A, now=90.0) == 0.0  # a clock that went back
        assert h.idle_seconds(B, now=200.0) == 0.0

    def test_the_mean_leaves_out_samples_nvml_could_not_read(self) -> None:
        h = History(interval=10.0)
        assert h.mean(A) is None
        h.add(0.0, {A: None, B: None})
        assert (h.mean(A), h.mean(B)) == (None, None)
        for t, value in enumerate([10, 0, 45]):
            h.add(float(t + 1), {A: value})
        assert h.mean(A) == 55 / 3

    def test_all_gpus_are_idle_together_for_as_long_as_the_latest_became_idle(self) -> None:
        h = History(interval=10.0)
        assert h.all_idle_seconds(now=100.0) == 0.0
        h.add(0.0, {A: 0, B: 90})
        h.add(40.0, {A: 0, B: 0})
        assert h.all_idle_seconds(now=100.0) == 60.0
        h.add(50.0, {A: 30, B: 0})
        assert h.all_idle_seconds(now=100.0) == 0.0


class TestReleaseDue:
    @staticmethod
    def idle_since(t: float) -> History:
        h = History(interval=10.0)
        h.add(t, {A: 0, B: 1})
        return h

    @pytest.mark.parametrize(("now", "last_busy", "due"), [
        (600.0, 0.0, True), (599.0, 0.0, False),  # idle for the limit, exactly, and a second short
        (700.0, 100.0, True), (700.0, 101.0, False)])  # quiet (no ssh session, no run) for as long
    def test_every_gpu_idle_and_nobody_busy_for_the_limit(self, now: float, last_busy: float, due: bool) -> None:
        assert release_due(self.idle_since(0.0), now=now, limit=600.0, last_busy=last_busy) is due

    def test_one_busy_gpu_holds_them_all(self) -> None:
        h = self.idle_since(0.0)
        h.add(10.0, {B: 50})
        assert release_due(h, now=9999.0, limit=600.0, last_busy=0.0) is False

    def test_without_any_sample_nothing_is_given_back(self) -> None:
        assert release_due(History(interval=10.0), now=9999.0, limit=0.0, last_busy=0.0) is False


def test_the_usage_record_holds_each_gpus_mean_idle_time_and_sample_count() -> None:
    h = History(interval=15.0)
    h.add(0.0, {B: 90, A: None})
    h.add(15.0, {B: 1, A: None})
    h.add(30.0, {B: 3, A: None})
    record = usage_record(h, now=52.36, wall=datetime(2026, 12, 7, 22, 5, 9, 123456), limit=1800.0, last_busy=10.0)
    assert record == {
        "version": 1, "time": "2026-12-07T22:05:09", "interval_seconds": 15.0, "idle_release_seconds": 1800.0,
        "quiet_seconds": 42.4,
        "gpus": {A: {"mean_utilization_percent": None, "idle_seconds": 0.0, "samples": 3},
                 B: {"mean_utilization_percent": 31.3, "idle_seconds": 37.4, "samples": 3}},
    }
    assert list(record["gpus"]) == [A, B]  # type: ignore[call-overload]
    assert parse_usage(json.dumps(record)) == {A: GpuUsage(None, 0.0, "2026-12-07T22:05:09"),
                                               B: GpuUsage(31.3, 37.4, "2026-12-07T22:05:09")}


def test_the_record_says_quiet_for_0_s_when_the_last_busy_time_is_ahead() -> None:
    h = History(interval=15.0)
    h.add(0.0, {A: 0})
    record = usage_record(h, now=10.0, wall=datetime(2026, 12, 7), limit=None, last_busy=20.0)
    assert (record["quiet_seconds"], record["idle_release_seconds"]) == (0.0, None)
    assert record["gpus"] == {A: {"mean_utilization_percent": 0.0, "idle_seconds": 10.0, "samples": 1}}


class TestParseUsage:
    @pytest.mark.parametrize("text", [
        "", "not json", "[]", '"text"', '{"time": "t", "gpus": {}}', '{"version": 2, "gpus": {"G": {}}}',
        '{"version": 1, "gpus": ["G"]}', '{"version": 1}'])
    def test_a_record_that_cannot_be_read_holds_no_gpu(self, text: str) -> None:
        assert parse_usage(text) == {}

    def test_fields_of_the_wrong_type_read_as_unknown_mean_and_no_idle_time(self) -> None:
        text = json.dumps({"version": 1, "time": "t", "gpus": {
            "G1": {"mean_utilization_percent": "3", "idle_seconds": "60"}, "G2": "row", "G3": {},
            "G4": {"mean_utilization_percent": 7, "idle_seconds": 60}}})
        assert parse_usage(text) == {"G1": GpuUsage(None, 0.0, "t"), "G3": GpuUsage(None, 0.0, "t"),
                                     "G4": GpuUsage(7.0, 60.0, "t")}

    def test_a_record_without_a_time_has_an_empty_one(self) -> None:
        assert parse_usage('{"version": 1, "gpus": {"G": {"idle_seconds": 1.5}}}') == {"G": GpuUsage(None, 1.5, "")}


@pytest.mark.parametrize(("usage", "cells"), [
    (None, ("-", "-")), (GpuUsage(None, 0.0, "t"), ("?", "0s")), (GpuUsage(0.4, 0.3, "t"), ("0%", "0s")),
    (GpuUsage(99.5, 5400.0, "t"), ("100%", "1h30m")), (GpuUsage(12.0, 59.0, "t"), ("12%", "59s")),
    (GpuUsage(1.0, 0.7, "t"), ("1%", "1s")), (GpuUsage(1.0, -5.0, "t"), ("1%", "0s"))])  # a record's odd clock
def test_devagent_gpus_cells(usage: GpuUsage | None, cells: tuple[str, str]) -> None:
    assert describe_usage(usage) == cells


def test_the_notebook_line_when_the_gpus_are_given_back() -> None:
    assert released_entry(when=datetime(2026, 12, 7, 22, 5), name="exp*1", uuids=[A, B], limit=1800.0) == (
        "\n## 2026-12-07 22:05 · GPUs given back\n\n"
        "The GPUs were idle for 30m with no ssh session open and no `devagent run` running (idle limit 30m): the "
        "container stopped and gave back `GPU-aaaa`, `GPU-bbbb`. The workspace and the home stay; "
        "`devagent up exp\\*1` takes GPUs anew.\n")
    assert "gave back its GPUs. " in released_entry(when=datetime(2026, 12, 7), name="e", uuids=[], limit=300.0)
