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
    assert watch.line_count == 500 * 21
    steps = [step for step, _ in summary]
    assert steps == sorted(steps)  # gaps, never a line read twice or out of order

