"""The Markdown building blocks every renderer uses: escaping, code spans, fences, tables."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.markdown import (
    code,
    code_span,
    details,
    escape,
    escape_heading,
    escape_pipes,
    fence,
    link_target,
    one_line,
    split_lines,
    squeeze,
    table,
)


def cells(row: str) -> list[str]:
    """Split a GFM table row the way GFM does: on pipes not escaped with a backslash."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def read_code_span(span: str) -> str:
    """What CommonMark shows for SPAN, a whole code span: the text between the backtick runs, one space
    stripped from each side when both sides have one and not everything is a space."""
    ticks = re.match(r"`+", span)
    assert ticks is not None and span.endswith(ticks.group())
    inner = span[ticks.end() : -ticks.end()]
    assert ticks.group() not in re.findall(r"`+", inner), "a run as long as the span's own would close it"
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]
    return inner


class TestLines:
    def test_one_line_makes_each_line_break_a_space_and_keeps_other_whitespace(self) -> None:
        assert one_line("a\nb\r\nc  d\te\n") == "a b c  d\te"
        assert one_line("") == ""

    def test_squeeze_makes_each_whitespace_run_one_space_and_trims_the_ends(self) -> None:
        assert squeeze(" NVIDIA\tA100 \n 80GB\r\n") == "NVIDIA A100 80GB"

    def test_split_lines_cuts_at_every_line_end_markdown_knows(self) -> None:
        assert split_lines("a\r\nb\rc\nd") == ["a", "b", "c", "d"]

    @given(st.text())
    def test_one_line_and_squeeze_leave_no_line_break(self, text: str) -> None:
        assert len(split_lines(one_line(text))) == 1
        assert len(split_lines(squeeze(text))) == 1


class TestEscape:
    def test_markup_shows_literally(self) -> None:
        assert escape("*fast* | [x](y) <b> _i_ #1 !~`") == r"\*fast\* \| \[x\](y) \<b\> \_i\_ \#1 \!\~\`"

    def test_a_backslash_before_a_pipe_is_escaped_too(self) -> None:
        assert escape("a\\|b") == "a\\\\\\|b"

    def test_a_line_break_becomes_a_space(self) -> None:
        assert escape("0\n| evil | row |") == r"0 \| evil \| row \|"

    def test_a_heading_keeps_underscores_inside_words_and_escapes_the_rest(self) -> None:
        assert escape_heading("my_train_v2.py _x_ `a` [b] #c") == r"my_train_v2.py \_x\_ \`a\` \[b\] \#c"

    def test_a_heading_leaves_pipes_alone(self) -> None:
        assert escape_heading("a|b") == "a|b"

    def test_escape_pipes_escapes_every_pipe_and_nothing_else(self) -> None:
        assert escape_pipes("`a|b` *c* ||") == r"`a\|b` *c* \|\|"


class TestCodeSpans:
    def test_a_plain_value_gets_single_backticks(self) -> None:
        assert code_span("/usr/bin/python3") == "`/usr/bin/python3`"

    def test_backticks_inside_get_a_longer_run_around_them(self) -> None:
        assert code_span("a`b``c") == "```a`b``c```"

    def test_a_value_ending_in_a_backtick_is_padded_so_the_code_span_closes(self) -> None:
        assert code("say `hi`") == "`` say `hi` ``"

    def test_a_value_with_a_space_at_each_end_is_padded_so_commonmark_keeps_them(self) -> None:
        assert code_span(" x ") == "`  x  `"
        assert code_span("   ") == "`   `"  # all spaces: CommonMark strips nothing
        # Only spaces count as "all spaces": a tab between them, or an X, is content, so both get padded.
        assert code_span(" \t ") == "`  \t  `"
        assert code_span(" X ") == "`  X  `"

    def test_an_empty_value_is_no_span_at_all(self) -> None:
        assert code_span("") == ""
        assert code("\n") == ""

    def test_a_bare_span_keeps_pipes_and_a_table_safe_one_escapes_them(self) -> None:
        assert code_span("a|b") == "`a|b`"
        assert code("a|b") == "`a\\|b`"

    @given(st.text())
    def test_code_shows_the_value_as_commonmark_reads_a_code_span_in_a_table_cell(self, value: str) -> None:
        if not one_line(value):
            assert code(value) == ""
            return
        assert read_code_span(code(value).replace("\\|", "|")) == one_line(value)

    @given(st.text(alphabet="`| ab", min_size=1))
    def test_any_backticks_and_spaces_survive_a_bare_span(self, value: str) -> None:
        assert read_code_span(code_span(value)) == value


class TestFences:
    def test_a_fence_is_three_backticks_and_the_info_string(self) -> None:
        assert fence(["a", "b"]) == "```text\na\nb\n```"
        assert fence([], info="json") == "```json\n```"

    def test_a_fence_is_longer_than_any_backtick_run_inside(self) -> None:
        assert fence(["x = ```code```", "`````"]) == "``````text\nx = ```code```\n`````\n``````"

    @given(st.lists(st.text(alphabet="`a \t~")))
    def test_no_line_inside_can_close_the_fence(self, lines: list[str]) -> None:
        block = fence(lines).split("\n")
        ticks = block[0].removesuffix("text")
        assert block[1:-1] == lines and block[-1] == ticks
        assert not any(line.strip(" \t").startswith(ticks) for line in lines)

    def test_details_fold_a_body_under_a_summary(self) -> None:
        assert details("output", "```text\nx\n```") == (
            "<details><summary>output</summary>\n\n```text\nx\n```\n\n</details>")


class TestTables:
    def test_a_table_is_a_header_a_delimiter_row_and_the_rows(self) -> None:
        assert table(["metric", "final"], [["`loss`", "0.4"], ["`acc`", "0.9"]]) == (
            "| metric | final |\n|---|---|\n| `loss` | 0.4 |\n| `acc` | 0.9 |")

    def test_column_names_that_are_all_empty_make_a_label_and_value_table(self) -> None:
        assert table(["", ""], [["exit", "0"]]) == "| | |\n|---|---|\n| exit | 0 |"

    def test_an_empty_cell_in_a_row_is_kept(self) -> None:
        assert table(["a", "b"], [["x", ""]]).splitlines()[-1] == "| x |  |"

    @pytest.mark.parametrize("make_cell", [escape, code, lambda text: escape_pipes(squeeze(text))],
                             ids=["escape", "code", "escape_pipes"])
    def test_a_pipe_or_a_line_break_in_a_value_cannot_break_a_row(self, make_cell: Callable[[str], str]) -> None:
        @given(st.text(), st.text())
        def check(left: str, right: str) -> None:
            rows = table(["name", "value"], [[make_cell(left), make_cell(right)]]).split("\n")
            assert len(rows) == 3
            assert [len(cells(row)) for row in rows] == [2, 2, 2]

        check()


class TestLinks:
    def test_a_plain_path_is_its_own_target(self) -> None:
        assert link_target("lab-notebook.assets/run-3-loss.svg") == "lab-notebook.assets/run-3-loss.svg"

    @pytest.mark.parametrize("path", ["my runs/x.svg", "run (3).svg", "a<b>.svg", "a\tb.svg"])
    def test_spaces_parentheses_and_angle_brackets_put_the_target_in_angle_brackets(self, path: str) -> None:
        assert link_target(path) == f"<{path}>"
