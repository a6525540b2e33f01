"""The run record — one JSON line per run in the runs journal, for run numbering and the previous-run comparison —
and the facts gathered about a run beside it: the code's git state, the GPU memory it used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class GitState:
    """The code as it was run: COMMIT and BRANCH (None when unknown or detached), whether the tree was DIRTY,
    the uncommitted FILES as (path, added, removed), and where the uncommitted diff was saved (relative to the
    notebook's folder). Files in WITHHELD look like secrets and are not in the patch; files in LEFT_OUT did not
    fit in it; OMITTED untracked files were neither listed nor diffed. SKIPPED says why a repository that was
    found was not read (all else is then empty)."""

    commit: str | None
    branch: str | None
    dirty: bool
    files: tuple[tuple[str, int, int], ...]
    patch_asset: str | None
    withheld: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    omitted: int = 0
    skipped: str | None = None


@dataclass(frozen=True)
class GpuMemory:
    """GPU memory over a run, in bytes: NVML's peak over the run's processes and the GPUs' total, torch's own
    peaks (from the helper), and how many GPUs the run saw (0: a CPU run). DEVICES are the NVML indices of the
    GPUs its processes were seen on (empty where NVML did not tell)."""

    nvml_peak: int | None
    nvml_total: int | None
    torch_allocated: int | None
    torch_reserved: int | None
    gpus: int
    devices: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """What the runs journal keeps per run (one JSON line each) — used for run numbering and the previous-run
    comparison. Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` so that
    each line is standard JSON."""

    number: int
    observed: bool
    script: str | None
    argv: tuple[str, ...]
    cwd: str
    started: str
    duration_s: float | None
    exit_code: int | None
    exit_kind: str
    hparams: dict[str, str]
    metrics: dict[str, float]
    # A distributed run's shape (core.runs.distributed.Launch.to_json); absent from older records.
    distributed: dict[str, Any] | None = None

    def to_json(self) -> str:
        """One line of JSON, no newline; ``RunRecord.from_json(r.to_json()) == r`` (NaN aside, NaN != NaN)."""
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["duration_s"] = _float_out(self.duration_s) if self.duration_s is not None else None
        data["metrics"] = {name: _float_out(value) for name, value in self.metrics.items()}
        if self.distributed is None:
            del data["distributed"]  # a run's line stays as it was before distributed runs were recorded
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Read what ``to_json`` wrote; unknown keys are ignored, anything missing or mistyped raises ValueError."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("run record: expected a JSON object")
        missing = [f.name for f in fields(cls) if f.name not in data and f.name != "distributed"]
        if missing:
            raise ValueError(f"run record: missing {', '.join(missing)}")
        argv, hparams, metrics = data["argv"], data["hparams"], data["metrics"]
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise ValueError("run record: argv must be a list of strings")
        if not (isinstance(hparams, dict) and all(isinstance(v, str) for v in hparams.values())):
            raise ValueError("run record: hparams must map names to strings")
        if not isinstance(metrics, dict):
            raise ValueError("run record: metrics must be an object")
        return cls(
            number=_typed(data, "number", int),
            observed=_typed(data, "observed", bool),
            script=_typed(data, "script", str, optional=True),
            argv=tuple(argv),
            cwd=_typed(data, "cwd", str),
            started=_typed(data, "started", str),
            duration_s=_float_in(data["duration_s"], "duration_s") if data["duration_s"] is not None else None,
            exit_code=_typed(data, "exit_code", int, optional=True),
            exit_kind=_typed(data, "exit_kind", str),
            hparams=dict(hparams),
            metrics={str(name): _float_in(value, f"metrics.{name}") for name, value in metrics.items()},
            distributed=data.get("distributed") if isinstance(data.get("distributed"), dict) else None,
        )


def _typed(data: Mapping[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    value = data[key]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"run record: {key} must be {kind.__name__}")
    return value


_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float_out(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _float_in(value: object, key: str) -> float:
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"run record: {key} must be a number")
