"""What each GPU did over a run (devagent/core/runs/gpu_timeline.py), pure: the bounded buckets, the exact
figures beside them, the summary rows, the hints and the picture. The sampler that feeds it from NVML is
tested in tests/runs/test_gpu_timeline.py."""

from __future__ import annotations

import pytest

from devagent.core.runs.gpu_timeline import (
    BUCKETS,
    SUMMARY_HEADER,
    Bucket,
    DeviceTimeline,
    format_span,
    hints,
    summary_rows,
    timeline_svg,
)


def test_low_utilisation_everywhere_with_a_saturated_cpu_points_at_the_input_pipeline() -> None:
    gpu = DeviceTimeline(0)
    for i in range(20):
        gpu.add(i * 0.5, util=12, mem_used=1 << 30, mem_total=80 << 30, dt=0.5)
    (hint,) = hints([gpu], cpu_share=0.95)
    assert "input pipeline" in hint and "95% of the cores" in hint
    assert hints([gpu], cpu_share=0.3) == []  # low, but the CPU was not the limit: no guess


def test_a_sleeping_gpu_alone_gets_the_idle_hint() -> None:
    gpu = DeviceTimeline(0)
    for i in range(20):
        gpu.add(i * 0.5, util=90 if i < 4 else 0, mem_used=1 << 30, dt=0.5)
    (hint,) = hints([gpu], cpu_share=None)
    assert hint.startswith("The GPU was idle at least 80% of the run")


def test_a_week_of_samples_stays_in_its_buckets_and_keeps_exact_figures() -> None:
    gpu = DeviceTimeline(0)
    samples = 7 * 24 * 3600 * 2 // 60  # a week at 0.5 s, every 60th sample here: the merging is the same
    for i in range(samples):
        gpu.add(i * 30.0, util=100 if i % 2 else 0, mem_used=i, dt=30.0)
    assert BUCKETS // 2 <= len(gpu.buckets) <= BUCKETS
    assert gpu.buckets[0].start == -30.0 and gpu.buckets[-1].end == (samples - 1) * 30.0
    assert sum(b.samples for b in gpu.buckets) == samples
    assert gpu.mean_util == 50.0 and gpu.idle_s == samples // 2 * 30.0 and gpu.mem_peak == samples - 1


def test_a_bucket_keeps_the_mean_and_the_peaks_of_what_nvml_told() -> None:
    bucket = Bucket(0.0, 0.0)
    for t, util, mem in ((1.0, 40, None), (2.0, 60, 5), (3.0, None, 3), (4.0, 50, 4)):
        bucket.add(t, util, mem)
    assert bucket == Bucket(0.0, 4.0, samples=4, util_sum=150.0, util_n=3, util_max=60, mem_max=5)
    assert bucket.util_mean == 50.0
    assert Bucket(0.0, 1.0, samples=1).util_mean is None  # utilisation never told


def test_merged_buckets_span_both_and_keep_the_peaks_known() -> None:
    a = Bucket(0.0, 1.0, samples=2, util_sum=30.0, util_n=2, util_max=20, mem_max=None)
    b = Bucket(1.0, 2.0, samples=1, util_sum=5.0, util_n=1, util_max=5, mem_max=7)
    assert a.merged(b) == Bucket(0.0, 2.0, samples=3, util_sum=35.0, util_n=3, util_max=20, mem_max=7)
    assert b.merged(a) == Bucket(1.0, 1.0, samples=3, util_sum=35.0, util_n=3, util_max=20, mem_max=7)
    assert Bucket(0.0, 1.0).merged(Bucket(1.0, 2.0)) == Bucket(0.0, 2.0)


@pytest.mark.parametrize("buckets", [-2, 0, 1, 3])
def test_the_bucket_count_must_be_even_and_at_least_2(buckets: int) -> None:
    with pytest.raises(ValueError, match=r"^buckets must be an even number ≥ 2$"):
        DeviceTimeline(0, buckets=buckets)


def test_a_new_timeline_knows_nothing_yet() -> None:
    t = DeviceTimeline(3, buckets=2)
    assert (t.index, t.buckets_max, t.span, t.buckets) == (3, 2, 1, [])
    assert (t.mem_total, t.util_peak, t.mem_peak, t.temp_peak, t.power_peak) == (None,) * 5
    assert (t.util_time, t.util_s, t.idle_s, t.observed_s) == (0.0,) * 4
    assert (t.mean_util, t.idle_share) == (None, None)
    assert DeviceTimeline(0).buckets_max == BUCKETS == 512


def test_the_exact_figures_count_only_the_seconds_whose_utilisation_was_told() -> None:
    t = DeviceTimeline(0)
    t.add(1.0, util=4, mem_used=None, mem_total=10, power_w=90.0, temp_c=50, dt=1.0)  # under 5 %: idle
    t.add(2.0, util=5, mem_used=2, power_w=100.5, temp_c=40, dt=1.0)  # 5 %: working
    t.add(3.0, util=None, mem_used=1, power_w=95.0, dt=0.5)  # NVML did not say
    assert (t.observed_s, t.util_s, t.util_time, t.idle_s) == (2.5, 2.0, 9.0, 1.0)
    assert (t.mean_util, t.idle_share) == (4.5, 0.5)
    assert (t.mem_total, t.util_peak, t.mem_peak, t.temp_peak, t.power_peak) == (10, 5, 2, 50, 100.5)
    unknown = DeviceTimeline(1)
    unknown.add(1.0, util=None, mem_used=None, dt=1.0)
    assert (unknown.observed_s, unknown.mean_util, unknown.idle_share) == (1.0, None, None)


def test_full_buckets_merge_in_pairs_and_then_hold_twice_as_many_samples() -> None:
    t = DeviceTimeline(0, buckets=4)
    layout = []
    for i in range(1, 10):
        t.add(float(i), util=10 * i, mem_used=i, dt=1.0)
        layout.append((t.span, [(b.start, b.end, b.samples) for b in t.buckets]))
    assert layout == [
        (1, [(0.0, 1.0, 1)]),
        (1, [(0.0, 1.0, 1), (1.0, 2.0, 1)]),
        (1, [(0.0, 1.0, 1), (1.0, 2.0, 1), (2.0, 3.0, 1)]),
        (1, [(0.0, 1.0, 1), (1.0, 2.0, 1), (2.0, 3.0, 1), (3.0, 4.0, 1)]),
        (2, [(0.0, 2.0, 2), (2.0, 4.0, 2), (4.0, 5.0, 1)]),
        (2, [(0.0, 2.0, 2), (2.0, 4.0, 2), (4.0, 6.0, 2)]),
        (2, [(0.0, 2.0, 2), (2.0, 4.0, 2), (4.0, 6.0, 2), (6.0, 7.0, 1)]),
        (2, [(0.0, 2.0, 2), (2.0, 4.0, 2), (4.0, 6.0, 2), (6.0, 8.0, 2)]),
        (4, [(0.0, 4.0, 4), (4.0, 8.0, 4), (8.0, 9.0, 1)]),
    ]
    assert [(b.util_mean, b.util_max, b.mem_max) for b in t.buckets] == [(25.0, 40, 4), (65.0, 80, 8), (90.0, 90, 9)]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59.4, "59 s"), (59.6, "1 min 00 s"), (61, "1 min 01 s"), (600, "10 min 00 s"),
    (3599, "59 min 59 s"), (3600, "1 h 00 min"), (3661, "1 h 01 min"), (7140, "1 h 59 min"), (7325, "2 h 02 min"),
    (36000, "10 h 00 min")])
def test_a_span_as_people_say_it(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


def test_the_summary_has_a_row_per_gpu_and_a_dash_where_nvml_did_not_tell() -> None:
    told, silent, no_total = DeviceTimeline(0), DeviceTimeline(1), DeviceTimeline(2)
    for i in range(4):
        told.add(i, util=0 if i == 0 else 90, mem_used=3 << 30, mem_total=8 << 30, power_w=301.4, temp_c=61, dt=30.0)
        silent.add(i, util=None, mem_used=None, dt=30.0)
        no_total.add(i, util=50, mem_used=1 << 29, dt=30.0)
    assert summary_rows([told, silent, no_total]) == [
        ["GPU 0", "68 %", "90 %", "3.0 GiB of 8.0 GiB", "30 s (25%)", "301 W", "61 °C"],
        ["GPU 1", "—", "—", "—", "—", "—", "—"],
        ["GPU 2", "50 %", "50 %", "0.5 GiB", "0 s (0%)", "—", "—"],
    ]
    assert len(SUMMARY_HEADER) == len(summary_rows([told])[0])


def gpu(index: int, utils: list[int | None]) -> DeviceTimeline:
    t = DeviceTimeline(index)
    for i, util in enumerate(utils):
        t.add(float(i), util=util, mem_used=1, dt=1.0)
    return t


_SHARE = ("does every process get its own GPU and its share of the work (`LOCAL_RANK` → `torch.cuda.set_device`, "
          "the sampler's shards)?")


@pytest.mark.parametrize(("timelines", "cpu_share", "expected"), [
    # 30 % is working, idle half the time is idle
    ([gpu(0, [30, 30]), gpu(1, [0, 10])], None,
     "GPU 1 was idle 50% of the run while GPU 0 worked (mean 30 %): " + _SHARE),
    ([gpu(0, [80, 80]), gpu(1, [0, 0]), gpu(2, [100, 100]), gpu(3, [0, 0, 0, 0, 90])], 0.99,
     "GPU 1, GPU 3 were idle 100%, 80% of the run while GPU 0, GPU 2 worked (mean 90 %): " + _SHARE),
    ([gpu(0, [29, 29]), gpu(1, [10, 10])], 0.8,
     "Utilisation was low on every GPU (mean at most 29 %) while the CPU was saturated (80% of the cores the run "
     "could use): the input pipeline is the likely bottleneck — more `DataLoader` workers, `pin_memory=True`, "
     "lighter decoding or augmentation on the CPU."),
    ([gpu(0, [0, 0])], 0.9,
     "Utilisation was low on every GPU (mean at most 0 %) while the CPU was saturated (90% of the cores the run "
     "could use): the input pipeline is the likely bottleneck — more `DataLoader` workers, `pin_memory=True`, "
     "lighter decoding or augmentation on the CPU."),
    ([gpu(0, [0, 0, 0, 20, 20]), gpu(1, [0, 0, 0, 0, 20]), gpu(2, [None])], 0.5,
     "The GPUs were idle at least 60% of the run: the run spent most of its time elsewhere (data loading, "
     "evaluation on the CPU, waiting)."),
    ([gpu(0, [0, 20])], None,
     "The GPU was idle at least 50% of the run: the run spent most of its time elsewhere (data loading, "
     "evaluation on the CPU, waiting)."),
])
def test_a_hint_where_the_figures_point_at_a_cause(timelines: list[DeviceTimeline], cpu_share: float | None,
                                                   expected: str) -> None:
    assert hints(timelines, cpu_share=cpu_share) == [expected]


@pytest.mark.parametrize(("timelines", "cpu_share"), [
    ([], 1.0), ([gpu(0, [None, None])], 1.0),  # nothing known
    ([gpu(0, [90, 90]), gpu(1, [4, 90, 90])], None),  # every GPU worked
    ([gpu(0, [29, 29]), gpu(1, [0, 10])], 0.79),  # low, one GPU not idle, the CPU not saturated
    ([gpu(0, [29, 29]), gpu(1, [0, 10])], None),
])
def test_no_hint_where_the_figures_do_not_point_at_a_cause(timelines: list[DeviceTimeline],
                                                           cpu_share: float | None) -> None:
    assert hints(timelines, cpu_share=cpu_share) == []


def test_the_picture_draws_each_gpus_utilisation_and_memory_against_the_runs_time() -> None:
    a = DeviceTimeline(0, buckets=4)
    a.add(1.0, util=0, mem_used=2 << 30, mem_total=4 << 30, dt=1.0)
    a.add(2.0, util=100, mem_used=5 << 30, dt=1.0)  # more than the total: drawn at the top
    b = DeviceTimeline(1, buckets=4)
    b.add(1.0, util=None, mem_used=None, dt=1.0)  # nothing told: no point
    b.add(3.0, util=50, mem_used=1 << 30, dt=2.0)  # after duration_s: the time axis reaches it; no total: no line
    assert timeline_svg([a, b], duration_s=2.0, title="run <3> & co") == SVG


def test_the_picture_of_no_gpu_has_its_frame_and_axis_only() -> None:
    svg = timeline_svg([], duration_s=0.0, title="t")
    assert "<polyline" not in svg and "■" not in svg
    assert svg.count(">0 s</text>") == 5


def test_the_time_axis_reaches_the_runs_duration_or_the_last_sample() -> None:
    svg = timeline_svg([gpu(0, [50])], duration_s=8.0, title="t")  # the GPU's one sample ends at 0 s
    assert '<text x="550.0" y="272" text-anchor="end">8 s</text>' in svg
    instant = DeviceTimeline(0)
    instant.add(0.0, util=50, mem_used=None, dt=0.0)  # a run that took no time
    assert 'points="44.0,85.0"' in timeline_svg([instant], duration_s=0.0, title="t")


def test_the_legend_names_8_gpus_and_the_colours_go_round() -> None:
    svg = timeline_svg([gpu(i, [50]) for i in range(9)], duration_s=1.0, title="t")
    strokes = [line.split('stroke="')[1].split('"')[0] for line in svg.splitlines() if "<polyline" in line]
    assert strokes == ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                       "#1f77b4"]
    assert svg.count("■") == 8 and '<text x="464" y="288" fill="#e377c2">■ GPU 7</text>' in svg


SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="560" height="300" viewBox="0 0 560 300" font-family="sans-serif" \
font-size="11">
<rect width="560" height="300" fill="white"/>
<text x="44" y="16" font-size="13">run &lt;3&gt; &amp; co</text>
<rect x="44" y="40" width="506" height="90" fill="none" stroke="#999"/>
<text x="40" y="134.0" text-anchor="end">0</text>
<text x="40" y="89.0" text-anchor="end">50</text>
<text x="40" y="44.0" text-anchor="end">100</text>
<text x="44" y="34" fill="#555">utilisation %</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.4" points="128.3,130.0 297.0,40.0"/>
<polyline fill="none" stroke="#d62728" stroke-width="1.4" points="381.3,85.0"/>
<rect x="44" y="170" width="506" height="90" fill="none" stroke="#999"/>
<text x="40" y="264.0" text-anchor="end">0</text>
<text x="40" y="219.0" text-anchor="end">50</text>
<text x="40" y="174.0" text-anchor="end">100</text>
<text x="44" y="164" fill="#555">memory % of total</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.4" points="128.3,215.0 297.0,170.0"/>
<text x="44.0" y="272" text-anchor="start">0 s</text>
<text x="170.5" y="272" text-anchor="middle">1 s</text>
<text x="297.0" y="272" text-anchor="middle">2 s</text>
<text x="423.5" y="272" text-anchor="middle">2 s</text>
<text x="550.0" y="272" text-anchor="end">3 s</text>
<text x="44" y="288" fill="#1f77b4">■ GPU 0</text>
<text x="104" y="288" fill="#d62728">■ GPU 1</text>
</svg>
"""
