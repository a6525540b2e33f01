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


VALID: dict[str, object] = {"number": 1, "observed": False, "script": None, "argv": [], "cwd": "/w", "started": "s",
                            "duration_s": None, "exit_code": None, "exit_kind": "unknown", "hparams": {}, "metrics": {}}


def test_a_record_is_one_compact_line_in_field_order_with_its_text_as_written() -> None:
    record = RunRecord(3, True, "entraîner.py", ("python", "entraîner.py", "--lr", "0.1"), "/w",
                       "2026-11-27T14:00:00+00:00", 12.5, 1, "failure", {"lr": "0.1"},
                       {"loss": 0.25, "acc": math.inf, "low": -math.inf, "n": math.nan}, {"nodes": 2})
    assert record.to_json() == (
        '{"number":3,"observed":true,"script":"entraîner.py","argv":["python","entraîner.py","--lr","0.1"],'
        '"cwd":"/w","started":"2026-11-27T14:00:00+00:00","duration_s":12.5,"exit_code":1,"exit_kind":"failure",'
        '"hparams":{"lr":"0.1"},"metrics":{"loss":0.25,"acc":"Infinity","low":"-Infinity","n":"NaN"},'
        '"distributed":{"nodes":2}}')
    assert RunRecord.from_json(record.to_json()).distributed == {"nodes": 2}


@pytest.mark.parametrize(("duration", "written"), [(math.inf, '"Infinity"'), (-math.inf, '"-Infinity"'),
                                                   (math.nan, '"NaN"'), (0.0, "0.0"), (None, "null")])
def test_a_duration_is_written_as_standard_json(duration: float | None, written: str) -> None:
    record = RunRecord(1, False, None, (), "/w", "s", duration, None, "unknown", {}, {})
    assert f'"duration_s":{written},' in record.to_json()
    assert same_float(RunRecord.from_json(record.to_json()).duration_s, duration)


def test_a_record_of_a_run_that_was_not_distributed_has_no_distributed_key() -> None:
    record = RunRecord.from_json(json.dumps(VALID))
    assert record.distributed is None
    assert "distributed" not in record.to_json()
    assert RunRecord.from_json(json.dumps(VALID | {"distributed": [1]})).distributed is None


def test_numbers_in_a_record_may_be_whole_and_are_read_as_floats() -> None:
    record = RunRecord.from_json(json.dumps(VALID | {"duration_s": 3, "metrics": {"epoch": 2, "n": "NaN"}}))
    assert record.duration_s == 3.0 and isinstance(record.duration_s, float)
    assert record.metrics["epoch"] == 2.0 and isinstance(record.metrics["epoch"], float)
    assert math.isnan(record.metrics["n"])


@pytest.mark.parametrize(("changes", "message"), [
    ({"number": "1"}, "run record: number must be int"),
    ({"number": True}, "run record: number must be int"),
    ({"number": None}, "run record: number must be int"),
    ({"observed": 0}, "run record: observed must be bool"),
    ({"script": 1}, "run record: script must be str"),
    ({"cwd": None}, "run record: cwd must be str"),
    ({"started": 1}, "run record: started must be str"),
    ({"exit_code": 1.0}, "run record: exit_code must be int"),
    ({"exit_code": False}, "run record: exit_code must be int"),
    ({"exit_kind": None}, "run record: exit_kind must be str"),
    ({"argv": "python"}, "run record: argv must be a list of strings"),
    ({"argv": ["python", 1]}, "run record: argv must be a list of strings"),
    ({"hparams": []}, "run record: hparams must map names to strings"),
    ({"hparams": {"a": 1}}, "run record: hparams must map names to strings"),
    ({"metrics": []}, "run record: metrics must be an object"),
    ({"metrics": {"loss": "x"}}, "run record: metrics.loss must be a number"),
    ({"metrics": {"loss": True}}, "run record: metrics.loss must be a number"),
    ({"metrics": {"loss": None}}, "run record: metrics.loss must be a number"),
    ({"duration_s": "Inf"}, "run record: duration_s must be a number"),
    ({"duration_s": False}, "run record: duration_s must be a number"),
])
def test_a_mistyped_field_is_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        RunRecord.from_json(json.dumps(VALID | changes))
    assert str(err.value) == message


def test_missing_fields_are_named_in_field_order_and_a_line_must_be_an_object() -> None:
    data = {k: v for k, v in VALID.items() if k not in ("observed", "metrics")}
    with pytest.raises(ValueError) as err:
        RunRecord.from_json(json.dumps(data))
    assert str(err.value) == "run record: missing observed, metrics"
    with pytest.raises(ValueError) as err:
        RunRecord.from_json("[]")
    assert str(err.value) == "run record: expected a JSON object"


def test_a_line_is_never_written_with_a_non_standard_number() -> None:
    """Only the duration and metrics are converted; anything else not finite is refused, not written as NaN."""
    record = RunRecord(1, False, None, (), "/w", "s", None, None, "unknown", {}, {}, {"share": math.nan})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        record.to_json()
