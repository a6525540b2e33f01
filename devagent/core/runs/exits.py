"""How a run ended, from its exit status and the end of its output: success, a failure and its exception,
an interruption, a kill (by the out-of-memory killer?), CUDA out of memory, a NaN loss.

>>> classify_exit(1, tail=["Traceback (most recent call last):", '  File "train.py", line 3', "ValueError: bad"])
ExitInfo(kind='failure', code=1, label='❌ exit 1 · ValueError: bad', detail='ValueError: bad')
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from devagent.core.runs.distributed import RankFailure, split_rank, torchrun_failure
from devagent.core.runs.output import shorten

EXIT_KINDS = ("success", "failure", "interrupted", "killed", "cuda-oom", "nan", "unknown")
NAN_RE: re.Pattern[str] = re.compile(
    r"(?i)(?<![\w./-])['\"]?[\w./-]*loss[\w./-]*['\"]?\s*[=:]\s*(?:tensor\(\s*)?[-+]?(?:nan|inf(?:inity)?)\b"
)
_CUDA_OOM_RE = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
_EXCEPTION_RE = re.compile(r"^\w[\w.]*(?:Error|Exception|Interrupt|Exit)\b.*")
_RAISED_RE = re.compile(r"^[A-Za-z_][\w.]*(?::(?:\s.*)?)?$")  # a traceback's last line: `pkg.Boom: it broke`
_USAGE_ERROR_RE = re.compile(r"^[\w./-]+: error: .+")  # argparse: "train.py: error: unrecognized arguments"
_RANK_PREFIX_RE = re.compile(r"^\[(?:rank|default)\d*\]:\s?")  # torchrun prefixes each worker's lines
_LABEL_DETAIL = 100
# A rank's error that says another rank went away first (gloo, NCCL): a consequence, not the cause.
_COLLATERAL_RE = re.compile(r"Connection (?:closed|reset) by peer|remote worker crash|remote process exited"
                            r"|communicator was aborted|DistNetworkError|Broken pipe")


@dataclass(frozen=True)
class ExitInfo:
    """How a run ended: KIND (one of EXIT_KINDS), the shell-style exit CODE, a short LABEL for the heading and
    a DETAIL (e.g. the exception line) where there is one."""

    kind: str
    code: int | None
    label: str
    detail: str | None


def classify_exit(  # noqa: PLR0911 - one return per kind of ending reads as the table it is
    code: int | None, *, tail: Sequence[str], oom_killed: bool = False, nan_seen: bool = False
) -> ExitInfo:
    """Classify how a run ended from its exit status and the end of its output.

    CODE is shell style: a process killed by signal N gives 128+N (a negative code, as ``subprocess`` reports a
    signal, is taken as 128+N too). None means unknown (a run that was only observed).

    >>> classify_exit(0, tail=[]).label, classify_exit(137, tail=[], oom_killed=True).label
    ('✅ exit 0', '💀 killed (137) · out of memory killer?')
    >>> classify_exit(143, tail=[]).label, classify_exit(None, tail=[]).kind
    ('💀 killed (143) · SIGTERM', 'unknown')
    """
    if code is not None and code < 0:
        code = 128 - code
    exception = last_exception(tail)
    if code is None:
        return ExitInfo("unknown", None, "exit status unknown", exception)
    if code == 0:
        if nan_seen:
            nan_line = next((line for line in reversed(tail) if NAN_RE.search(line)), None)
            return ExitInfo("nan", 0, "⚠️ NaN loss", nan_line)
        return ExitInfo("success", 0, "✅ exit 0", None)
    if any(_CUDA_OOM_RE.search(line) for line in tail):
        oom_line = exception if exception and _CUDA_OOM_RE.search(exception) else None
        if oom_line is None:
            oom_line = next(line for line in reversed(tail) if _CUDA_OOM_RE.search(line))
        return ExitInfo("cuda-oom", code, "❌ CUDA out of memory", _RANK_PREFIX_RE.sub("", oom_line))
    if code == 128 + signal.SIGINT:
        return ExitInfo("interrupted", code, f"⛔ interrupted ({code})", None)
    if code == 128 + signal.SIGKILL and oom_killed:
        return ExitInfo("killed", code, f"💀 killed ({code}) · out of memory killer?", None)
    name = signal_name(code - 128) if code > 128 else None
    if name is not None:
        return ExitInfo("killed", code, f"💀 killed ({code}) · {name}", None)
    label = f"❌ exit {code}"
    if exception is None:
        exception = next((line for line in reversed(tail) if _USAGE_ERROR_RE.match(line)), None)
    if exception:
        label += " · " + shorten(exception, _LABEL_DETAIL)
    return ExitInfo("failure", code, label, exception)


def signal_name(number: int) -> str | None:
    """The name of signal NUMBER on this platform, or None.

    >>> signal_name(9), signal_name(1000)
    ('SIGKILL', None)
    """
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def last_exception(tail: Sequence[str]) -> str | None:
    """The exception line at the end of a traceback in TAIL: the last traceback's first unindented line after
    its frames, else the last line that looks like ``SomeError: message``.

    >>> last_exception(["Traceback (most recent call last):", '  File "t.py", line 1, in <module>',
    ...                 "    main()", "mypkg.Boom: it broke", "cleanup done"])
    'mypkg.Boom: it broke'
    >>> last_exception(["loss=0.3", "RuntimeError: shape mismatch", "exiting"])
    'RuntimeError: shape mismatch'
    >>> last_exception(["Traceback (most recent call last):", "step=0 loss=0.32", '  File "t.py", line 9',
    ...                 "ValueError: rank 1 broke"])
    'ValueError: rank 1 broke'
    """
    lines = [_RANK_PREFIX_RE.sub("", line) for line in tail]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        for line in lines[starts[-1] + 1:]:
            # Shaped as `name.Error: message` (so unindented: no frame): another stream's lines (a rank's stdout
            # beside its stderr) can land between a traceback's frames.
            if not line.startswith("Traceback") and _RAISED_RE.match(line):
                return line
    return next((line for line in reversed(lines) if _EXCEPTION_RE.match(line)), None)


def distributed_exit(info: ExitInfo, lines: Sequence[str]) -> ExitInfo:
    """INFO for a distributed run whose output's last LINES hold torchrun's error report: which rank failed
    first and with what (its own exception, not torchrun's ``ChildFailedError``), the others as stopped by the
    launcher. INFO as it is when there is no report (a run that succeeded, or another launcher)."""

    failure = torchrun_failure(lines) if info.kind in ("failure", "killed") else None
    if failure is None:
        return info
    by_rank: dict[int, list[str]] = {}
    for rank, text in map(split_rank, lines):
        if rank is not None:
            by_rank.setdefault(rank, []).append(text)
    exception = last_exception(by_rank.get(failure.rank, []))
    if exception is not None and _COLLATERAL_RE.search(exception):
        # torchrun's "first observed" is whichever exit it saw first; a rank that only lost its peer can be
        # seen before the one that broke. Name the rank that failed on its own, where one did.
        for rank, code in failure.others:
            own = last_exception(by_rank.get(rank, []))
            # Its own exception is what counts: torchrun may have stopped it (SIGTERM) while it was still
            # on its way out after raising, so its exit code can be the launcher's signal.
            if own is not None and not _COLLATERAL_RE.search(own):
                others = ((failure.rank, failure.exitcode),
                          *((r, c) for r, c in failure.others if r != rank))
                failure = RankFailure(rank, code if code is not None and code >= 0 else None, others)
                exception = own
                break
    what = f"rank {failure.rank} failed first"
    if failure.exitcode is not None:
        first = failure.exitcode
        what += f" (exit {first})" if first >= 0 else f" ({signal_name(-first) or f'signal {-first}'})"
    detail = what + (f": {exception}" if exception else "")
    stopped = [str(rank) for rank, other in failure.others if other is None or other < 0]
    if stopped:
        detail += f"; rank{'s' if len(stopped) > 1 else ''} {', '.join(stopped)} stopped by the launcher"
    for rank, other in failure.others:
        if other is not None and other >= 0:
            detail += f"; rank {rank} exited too (exit {other})"
    label = f"❌ exit {info.code} · rank {failure.rank}" + (": " + shorten(exception, _LABEL_DETAIL)
                                                          if exception else " failed")
    return ExitInfo("failure", info.code, label, detail)
