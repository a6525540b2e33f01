"""The run record: one JSON line per run in the runs journal."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.runs.record import RunRecord

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
