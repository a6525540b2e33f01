"""OutputWatch: what `devagent run` reads from the output on the side, within its time budget."""

from __future__ import annotations

from devagent.runs.output_watch import OutputWatch


class SlowClock:
    """Each reading is STEP seconds after the previous one: every parse looks expensive."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def lines(start: int, count: int) -> bytes:
    return b"".join(f"step={i} loss={1 / (i + 1):.6f} | progress\n".encode() for i in range(start, start + count))


def test_a_quiet_run_is_read_whole() -> None:
    watch = OutputWatch()
    for chunk in range(10):
        watch.feed(lines(chunk * 10, 10))
    watch.close()
    assert watch.parsed_share == 1.0
    assert watch.series.count("loss") == 100
    assert watch.tail[-1] == "step=99 loss=0.010000 | progress"


def test_a_flood_is_sampled_but_the_final_values_and_the_tail_are_the_real_ones() -> None:
    # Each feed costs 0.1 s of "parsing" while the run's clock also moves 0.1 s: far over a 5 % budget.
    watch = OutputWatch(clock=SlowClock(0.1))
    for chunk in range(500):
        watch.feed(lines(chunk * 20, 20) + b"cut in the mid")  # chunks end mid-line, like pipe reads
        watch.feed(b"dle of a line\n")
    watch.close()
    assert 0 < watch.parsed_share < 0.5
    summary = watch.series.points["loss"]
    assert summary[-1] == (9999, 1 / 10000)  # the last printed value, read back from the raw tail at close
    assert watch.tail[-1] == "cut in the middle of a line"
    assert watch.tail[-2] == "step=9999 loss=0.000100 | progress"
    # the line count too is read within the budget: the skipped parts' lines are estimated, and the section says so
    assert watch.line_count_estimated
    assert abs(watch.line_count - 500 * 21) <= 500 * 21 * 0.02
    steps = [step for step, _ in summary]
    assert steps == sorted(steps)  # gaps, never a line read twice or out of order



class WorkClock:
    """A clock that moves only with the work done: 70 ns per byte read (about 7 µs per 100-byte line, what
    parsing costs), as when a flood arrives faster than it can be read."""

    def __init__(self) -> None:
        self.watch: OutputWatch | None = None

    def __call__(self) -> float:
        return 0.0 if self.watch is None else self.watch.parsed_bytes * 70e-9


def test_a_flood_stalls_the_stream_for_a_few_milliseconds_not_a_quarter_second() -> None:
    # The first allowance was 0.25 s and a 1 MiB read was parsed whole between two looks at the clock: under a
    # flood the stream stood still that long, which alone kept `devagent run` under half a pipe to `cat`.
    clock = WorkClock()
    watch = clock.watch = OutputWatch(clock=clock)
    chunk = lines(0, 10_000)  # ~0.4 MiB of short lines, read at once like a full pipe
    for _ in range(25):
        watch.feed(chunk)
    assert watch.parsed_bytes * 70e-9 < 0.04  # 20 ms allowed, plus one 64 KiB slice and 5 % of the time
    assert 0 < watch.parsed_share < 0.1


def test_the_line_count_of_a_flood_is_estimated_from_the_part_counted_and_says_so() -> None:
    clock = WorkClock()
    watch = clock.watch = OutputWatch(clock=clock)
    chunk = lines(0, 10_000)
    for _ in range(25):
        watch.feed(chunk)
    watch.close()
    assert watch.line_count_estimated
    assert abs(watch.line_count - 250_000) < 250_000 * 0.01
    assert watch.series.points["loss"][-1] == (9999, 1 / 10000)  # the final value is still the real one


def test_a_quiet_run_has_an_exact_line_count() -> None:
    watch = OutputWatch()
    watch.feed(lines(0, 10) + b"no newline at the end")
    watch.close()
    assert (watch.line_count, watch.line_count_estimated) == (11, False)
