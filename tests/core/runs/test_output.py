"""Output cleaning: raw bytes in, clean lines and a bounded tail out."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devagent.core.runs.output import ANSI_RE, LineCollector


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


def test_ansi_re_matches_colours() -> None:
    assert ANSI_RE.sub("", "\x1b[38;5;196mred\x1b[0m") == "red"
