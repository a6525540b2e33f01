"""The notebook's pure core: header, entries, edit summaries."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.notebook import (
    LaunchContext,
    SaveRecord,
    entry,
    format_timestamp,
    heading,
    is_entry,
    render_edits_since,
    render_header,
    short_digest,
)


def make_context(**changes: object) -> LaunchContext:
    values: dict[str, object] = {
        "name": "pytorch-dev",
        "user": "dev",
        "image": "devagent/pytorch-dev:3f2a9c1",
        "base_image": "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
        "base_digest": "sha256:" + "ab" * 32,
        "launch_command": "devagent up pytorch-dev --gpus 0,1 --memory 32g --cpus 8 --workspace ./code",
        "mounts": (("/home/ana/code", "/workspace", "rw"), ("/data/imagenet", "/data", "ro")),
        "limits": "memory 32g · 8 cpus · shm 8g · pids 4096",
        "gpus": "0,1",
        "ssh_alias": "pytorch-dev",
        "devagent_version": "0.1.0",
        "created": "2026-11-27T14:00:00+00:00",
    }
    values.update(changes)
    return LaunchContext(**values)  # type: ignore[arg-type]


def table_rows(header: str) -> list[str]:
    return [line for line in header.splitlines() if line.startswith("|")]


def cells(row: str) -> list[str]:
    """Split a GFM table row the way GFM does: on pipes not escaped with a backslash."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


class TestHeader:
    def test_digests_are_shortened_so_that_a_600_px_preview_does_not_scroll_sideways(self) -> None:
        """A table cell cannot wrap inside a word: a whole sha256 digest (71 characters of code) is wider than a
        600 px preview. The text shows 12 hex digits, as `docker images` does; launch.json keeps it whole."""
        header = render_header(make_context())
        words = [word for row in table_rows(header) for word in row.replace("`", " ").split()]
        assert "ab" * 32 not in header and "@sha256:abababababab…" in words
        assert max(len(word) for word in words) <= 48
        assert short_digest("sha256:" + "ab" * 32) == "sha256:abababababab…"
        assert short_digest("sha256:abc") == "sha256:abc"

    def test_the_header_starts_with_the_title_and_records_how_the_environment_was_made(self) -> None:
        header = render_header(make_context())
        assert header.startswith("# Lab notebook — pytorch-dev\n\n| environment | pytorch-dev |\n|---|---|\n")
        rows = {cells(r)[0]: cells(r)[1] for r in table_rows(header)[2:]}
        assert rows == {
            "image": "`devagent/pytorch-dev:3f2a9c1` · base "
            "`pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime` `@sha256:abababababab…`",
            "launched": "`devagent up pytorch-dev --gpus 0,1 --memory 32g --cpus 8 --workspace ./code`",
            "mounts": "`/home/ana/code` → `/workspace` (rw)<br>`/data/imagenet` → `/data` (ro)",
            "limits": "memory 32g · 8 cpus · shm 8g · pids 4096",
            "GPUs": "0,1",
            "login": "`ssh pytorch-dev` as dev",
            "devagent": "0.1.0",
            "created": "2026-11-27T14:00:00+00:00",
        }

    def test_the_header_ends_with_an_italic_line_saying_devagent_only_appends(self) -> None:
        header = render_header(make_context())
        assert header.endswith(
            "\n\n_devagent only appends below this line and never changes what is already here; "
            "write your own notes anywhere._\n"
        )

    def test_a_local_base_image_without_a_digest_says_so(self) -> None:
        header = render_header(make_context(base_image="devagent-base:bookworm", base_digest=None))
        assert "base `devagent-base:bookworm` (local image, no registry digest) |" in header

    def test_pipes_and_backticks_in_the_launch_command_cannot_break_the_table(self) -> None:
        header = render_header(make_context(launch_command="devagent up x --env A=`id -u` | tee log"))
        launched = next(r for r in table_rows(header) if r.startswith("| launched |"))
        assert launched == "| launched | ``devagent up x --env A=`id -u` \\| tee log`` |"
        assert len(cells(launched)) == 2

    def test_markdown_in_plain_values_is_shown_literally(self) -> None:
        header = render_header(make_context(limits="*fast* | [x](y) <b>"))
        limits = next(r for r in table_rows(header) if r.startswith("| limits |"))
        assert limits == r"| limits | \*fast\* \| \[x\](y) \<b\> |"

    def test_a_newline_in_a_value_cannot_end_the_table(self) -> None:
        header = render_header(make_context(gpus="0\n| evil | row |"))
        assert len(table_rows(header)) == 10
        assert all(len(cells(r)) == 2 for r in table_rows(header))

    def test_every_table_row_has_exactly_two_cells_for_any_values(self) -> None:
        @given(st.text(), st.text(), st.text())
        def check(command: str, limits: str, host_path: str) -> None:
            header = render_header(
                make_context(launch_command=command, limits=limits, mounts=((host_path, "/workspace", "rw"),))
            )
            rows = table_rows(header)
            assert len(rows) == 10
            assert all(len(cells(r)) == 2 for r in rows)

        check()


class TestLaunchContextJson:
    def test_it_round_trips_through_json(self) -> None:
        ctx = make_context()
        assert LaunchContext.from_json(ctx.to_json()) == ctx

    def test_a_missing_field_is_named(self) -> None:
        with pytest.raises(ValueError, match="launch context: missing gpus, ssh_alias"):
            LaunchContext.from_json(
                make_context().to_json().replace('"gpus"', '"x1"').replace('"ssh_alias"', '"x2"')
            )

    def test_a_context_from_before_invitations_reads_with_nobody_listed(self) -> None:
        text = make_context(people="me (owner), alice").to_json().replace(', "people": "me (owner), alice"', "")
        assert LaunchContext.from_json(text) == make_context()
        assert "| people |" not in render_header(make_context())
        assert "| people | me (owner), alice |" in render_header(make_context(people="me (owner), alice"))

    def test_unknown_fields_from_a_newer_devagent_are_ignored(self) -> None:
        text = make_context().to_json()[:-1] + ', "future": 1}'
        assert LaunchContext.from_json(text) == make_context()


class TestEntries:
    def test_an_entry_starts_with_a_level_two_heading_after_a_blank_line_and_ends_with_one_newline(
        self,
    ) -> None:
        text = entry("2026-11-27 14:02 · GPU check · ✅ 2 × A100", "\n\ndriver 550.54\n\n\n")
        assert text == "\n## 2026-11-27 14:02 · GPU check · ✅ 2 × A100\ndriver 550.54\n"
        assert is_entry(text)

    def test_a_heading_is_kept_to_one_line(self) -> None:
        assert entry("run 3\ntrain.py", "") == "\n## run 3 train.py\n"

    def test_the_heading_joins_the_minute_and_the_parts_with_middle_dots(self) -> None:
        when = datetime(2026, 11, 27, 14, 2, 59, tzinfo=timezone(timedelta(hours=1)))
        assert heading(when, "GPU check", "", "✅ ok") == "2026-11-27 14:02 · GPU check · ✅ ok"
        assert format_timestamp(when) == "2026-11-27 14:02"

    @given(st.text(), st.text())
    def test_any_heading_and_body_make_a_well_formed_entry(self, title: str, body: str) -> None:
        text = entry(title, body)
        assert is_entry(text)
        assert text.count("\n## ") >= 1 and text.index("\n## ") == 0

    @given(st.lists(st.tuples(st.text(), st.text()), min_size=1))
    def test_entries_appended_after_a_header_keep_every_heading_on_its_own_line(
        self, items: list[tuple[str, str]]
    ) -> None:
        text = render_header(make_context()) + "".join(
            entry(f"h{i} {t}", b) for i, (t, b) in enumerate(items)
        )
        for i in range(len(items)):
            assert re.search(rf"\n\n## h{i}[ \n]", text)


class TestEditsSummary:
    def test_saves_are_counted_per_file_in_order_of_first_save_with_lines_summed(self) -> None:
        saves = [
            SaveRecord("2026-11-27T14:00:00", "train.py", "a", 2, 1),
            SaveRecord("2026-11-27T14:01:00", "model.py", "b", 1, 0),
            SaveRecord("2026-11-27T14:02:00", "train.py", "c", 1, 1),
            SaveRecord("2026-11-27T14:03:00", "train.py", "d", 1, 0),
        ]
        assert render_edits_since(saves) == "train.py saved 3× (+4/−2), model.py saved 1× (+1/−0)"

    def test_no_saves_says_so(self) -> None:
        assert render_edits_since([]) == "no saves"

    def test_a_save_record_round_trips_through_one_json_line(self) -> None:
        record = SaveRecord("2026-11-27T14:00:00.000+00:00", "src/train.py", "f" * 64, 3, 0)
        line = record.to_json()
        assert "\n" not in line
        assert SaveRecord.from_json(line) == record


def test_the_header_shows_a_team_image_by_its_name_and_shortened_registry_digest() -> None:
    pinned = "reg.local:5000/team/env:v1@sha256:" + "cd" * 32
    header = render_header(make_context(image="reg.local:5000/team/env:v1", pinned_image=pinned))
    row = next(r for r in table_rows(header) if r.startswith("| image |"))
    assert cells(row)[1].startswith("`reg.local:5000/team/env:v1` `@sha256:cdcdcdcdcdcd…` · base ")
    assert LaunchContext.from_json(make_context(pinned_image=pinned, up_args=("--gpus", "0")).to_json()) == \
        make_context(pinned_image=pinned, up_args=("--gpus", "0"))


def test_a_launch_record_from_before_team_images_still_reads() -> None:
    import json

    data = json.loads(make_context().to_json())
    del data["pinned_image"], data["up_args"]
    assert LaunchContext.from_json(json.dumps(data)) == make_context()


def test_the_header_of_an_environment_on_a_slurm_cluster_records_its_allocation() -> None:
    slurm = "cluster hpc-login · job 4812 · partition gpu · node gpu07 · GPUs 2,3 · time limit 8 h"
    header = render_header(make_context(slurm=slurm))
    assert f"| Slurm | {slurm} |" in header
    assert "| Slurm |" not in render_header(make_context())
    assert LaunchContext.from_json(make_context(slurm=slurm).to_json()) == make_context(slurm=slurm)


# -- the edges: digests, entries, the journal's lines ------------------------------------------------------------


@pytest.mark.parametrize(("digest", "shown"), [
    ("sha256:0123456789ab", "sha256:0123456789ab"),  # 12 digits: whole
    ("sha256:0123456789abc", "sha256:0123456789ab…"),
    ("0123456789abcdef", "0123456789ab…"),  # no algorithm, none added
    ("localhost:5000/debian@sha256:0123456789abcdef", "localhost:5000/debian@sha256:0123456789ab…"),
])
def test_a_digest_keeps_what_comes_before_its_last_colon_and_12_digits_after(digest: str, shown: str) -> None:
    assert short_digest(digest) == shown


def test_an_environment_without_mounts_says_none() -> None:
    row = next(r for r in table_rows(render_header(make_context(mounts=()))) if r.startswith("| mounts |"))
    assert cells(row) == ["mounts", "none"]


@pytest.mark.parametrize(("text", "shaped"), [
    ("\n## a\n", True),
    ("\n## a\nbody\n", True),
    ("## a\n", False),
    ("\n## a", False),
    ("\n## a\n\n", False),
    ("x\n", False),
    ("x", False),
])
def test_an_entry_starts_with_its_heading_and_ends_with_one_newline(text: str, shaped: bool) -> None:
    assert is_entry(text) is shaped


def test_only_blank_lines_around_a_body_are_dropped_not_its_indentation_or_letters() -> None:
    assert entry("h", "\n\nX marks\n  code X  \n\n") == "\n## h\nX marks\n  code X  \n"


def test_files_saved_partly_too_large_say_how_many_of_their_saves_were() -> None:
    saves = [SaveRecord("t1", "data.py", "a", 2, 1), SaveRecord("t2", "data.py", "b", 0, 0, size=1 << 30),
             SaveRecord("t3", "data.py", "c", 0, 0, size=1 << 30), SaveRecord("t4", "data.py", "d", 1, 0)]
    assert render_edits_since(saves) == "data.py saved 4× (+3/−1; 2 of them too large to count lines)"


def test_a_launch_context_that_is_no_object_is_refused_and_non_ascii_stays_readable() -> None:
    with pytest.raises(ValueError, match=r"^launch context: expected a JSON object$"):
        LaunchContext.from_json("[]")
    assert '"name": "müller-dev"' in make_context(name="müller-dev").to_json()


@pytest.mark.parametrize(("record", "line"), [
    (SaveRecord("t", "src/é.py", "f", 3, 1), '{"time":"t","path":"src/é.py","sha256":"f","lines_added":3,'
                                            '"lines_removed":1}'),
    (SaveRecord("t", "big.bin", "f", 0, 0, size=7), '{"time":"t","path":"big.bin","sha256":"f","lines_added":0,'
                                                   '"lines_removed":0,"size":7}'),
])
def test_a_save_is_one_compact_json_line_with_its_size_only_when_set(record: SaveRecord, line: str) -> None:
    assert record.to_json() == line
    assert SaveRecord.from_json(line) == record
    assert SaveRecord.from_json(line.replace('"size":7', '"size":"7"')) == record
