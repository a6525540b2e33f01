"""Output cleaning: raw bytes in, clean lines and a bounded tail out."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devagent.core.runs.output import ANSI_RE, LineCollector, shorten


def collect(*chunks: bytes, **options: int) -> tuple[list[str], LineCollector]:
    collector = LineCollector(**options)
    lines = [line for chunk in chunks for line in collector.feed(chunk)]
    return lines + collector.close(), collector


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

    def test_a_line_that_reaches_max_line_in_one_feed_and_goes_on_in_the_next_is_cut(self) -> None:
        assert collect(b"012345", b"6\n", b"abcdef", b"\n", max_line=6)[0] == ["01234…", "abcdef"]

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

    @pytest.mark.parametrize("options", [{"max_line": 1}, {"tail_lines": -1}])
    def test_bad_sizes_are_refused(self, options: dict[str, int]) -> None:
        with pytest.raises(ValueError) as err:
            LineCollector(**options)
        assert str(err.value) == "tail_lines must be ≥ 0 and max_line ≥ 2"

    def test_the_smallest_sizes_work(self) -> None:
        lines, collector = collect(b"abc\nd\n", tail_lines=0, max_line=2)
        assert lines == ["a…", "d"]
        assert (collector.tail, collector.line_count) == ([], 2)

    def test_by_default_the_tail_holds_40_lines_of_up_to_2000_characters(self) -> None:
        lines, collector = collect(b"x" * 2000 + b"\n" + b"y" * 2001 + b"\n" + b"".join(b"%d\n" % i for i in range(39)))
        assert lines[:2] == ["x" * 2000, "y" * 1999 + "…"]
        assert collector.tail == lines[1:] and len(collector.tail) == 40

    def test_closing_a_collector_that_saw_nothing_gives_no_line(self) -> None:
        collector = LineCollector()
        assert (collector.close(), collector.tail, collector.line_count) == ([], [], 0)

    def test_a_utf8_character_cut_off_at_the_end_becomes_a_replacement_character(self) -> None:
        collector = LineCollector()
        assert collector.feed("ok é".encode()[:-1]) == []
        assert collector.close() == ["ok \ufffd"]

    @pytest.mark.parametrize(("length", "line"), [
        (4096, "before after"),  # held back whole, then stripped with its end
        (4097, "before ]" + "a" * 4095 + "after"),  # junk: shown as text, its ESC dropped
    ])
    def test_an_unfinished_escape_sequence_is_held_back_up_to_4096_characters(self, length: int, line: str) -> None:
        osc = b"\x1b]" + b"a" * (length - 2)
        assert collect(b"before " + osc, b"\x07after\n", max_line=10000)[0] == [line]

    def test_an_unfinished_escape_sequence_after_a_long_text_is_still_held_back(self) -> None:
        assert collect(b"x" * 5000 + b"\x1b[3", b"1mred\n", max_line=10000)[0] == ["x" * 5000 + "red"]

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


@pytest.mark.parametrize(("text", "limit", "short"), [("abcdef", 4, "abc…"), ("abcd", 4, "abcd"), ("abc", 4, "abc"),
                                                     ("abcde", 4, "abc…"), ("ab", 2, "ab"), ("abc", 2, "a…")])
def test_shorten_cuts_only_what_is_longer_than_the_limit(text: str, limit: int, short: str) -> None:
    assert shorten(text, limit) == short


def test_ansi_re_matches_colours() -> None:
    assert ANSI_RE.sub("", "\x1b[38;5;196mred\x1b[0m") == "red"
