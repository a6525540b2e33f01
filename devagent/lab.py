"""The helper a training script may import to put its metrics in the lab notebook; it never breaks the script.

Usage::

    from devagent import lab
    lab.hparams({"lr": 3e-4, "batch_size": 64})
    for step in range(steps):
        ...
        lab.log(step=step, loss=loss.item(), acc=acc)     # tensors and numpy scalars are fine too

Each call appends one JSON line to the file ``devagent run`` names in ``DEVAGENT_LAB_FILE``::

    {"_t": 1764252120.5, "_hparams": {"lr": 0.0003, "batch_size": 64}}
    {"_t": 1764252121.1, "step": 0, "loss": 2.302, "acc": 0.11}
    {"_t": 1764252190.9, "_torch": {"max_memory_allocated": 1234, "max_memory_reserved": 2048, "devices": 1}}

The last line is written at exit when the script used CUDA through torch. In a distributed run only rank 0
(``RANK``) records, unless ``DEVAGENT_LAB_ALL_RANKS=1`` (each line then carries ``"_rank"``).
Without ``devagent run`` the lines go to
``.devagent/lab/<pid>.jsonl`` in the nearest folder above the current directory that holds a ``.devagent/`` of
this user's own (a workspace the agent watches; never a shared one such as someone else's ``/tmp/.devagent``),
and nowhere when there is none: every function is then a no-op. No file is opened through a symbolic link. Any
failure (a disk that is full, a value that cannot be read) turns the helper off with one warning on stderr; the
script goes on. Importing this module imports nothing heavy: torch and numpy values are recognised by their
``.item()``. Apart from the standard library it imports only devagent.core.layout (pure, no imports of its own),
which the image copies beside it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import stat
import sys
import threading
import time

from devagent.core import layout

TYPE_CHECKING = False  # typing itself is not imported: importing this module must cost nothing
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["flush", "hparams", "log"]

ENV_FILE = "DEVAGENT_LAB_FILE"
# In a distributed run (torchrun sets RANK), only rank 0 records: every rank logs the same loss, and the curve
# must not count it N times. ALL_RANKS=1 records every rank, each line with its "_rank".
ALL_RANKS = "DEVAGENT_LAB_ALL_RANKS"


class _Recorder:
    """Where the lines go: decided at the first write, then kept; off for good after the first failure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.resolved = False
        self.disabled = False

    def write(self, record: dict[str, object]) -> None:
        if self.disabled:
            return
        rank = os.environ.get("RANK", "0").strip() or "0"
        if rank != "0":
            if os.environ.get(ALL_RANKS) != "1":
                return
            record["_rank"] = int(rank) if rank.isdigit() else rank
        line = (json.dumps(record, allow_nan=False) + "\n").encode()
        with self.lock:
            if not self.resolved:
                self.resolved = True  # decided once: a failure below turns the helper off, no retry per call
                self.fd = _open(_target())
            if self.fd is None:
                return
            view = memoryview(line)
            while view:  # one write for a line in practice; O_APPEND keeps the lines of writers apart
                view = view[os.write(self.fd, view):]

    def fail(self, exc: BaseException) -> None:
        if self.disabled:
            return
        self.disabled = True
        with contextlib.suppress(Exception):  # no stderr either: stay silent, as promised
            sys.stderr.write(f"devagent.lab: not recording metrics any more: {type(exc).__name__}: {exc}\n")


_recorder = _Recorder()


def log(metrics: Mapping[str, object] | None = None, /, *, step: object = None, **values: object) -> None:
    """Record numbers: ``log(step=3, loss=0.5)`` or ``log({"val/loss": 0.4}, step=3)``.

    Python numbers, numpy scalars and one-element tensors are kept; other values are dropped; NaN and
    infinities are written as the strings "nan", "inf" and "-inf". Names starting with "_" are reserved.
    """
    try:
        named = {str(name): value for name, value in [*(metrics or {}).items(), *values.items()]}
        if step is not None:
            named["step"] = step
        record: dict[str, object] = {"_t": time.time()}
        if "step" in named:  # first after the time, for people reading the file
            named = {"step": named.pop("step"), **named}
        for key, value in named.items():
            number = _number(value) if not key.startswith("_") else None
            if number is not None:
                record[key] = number
        _recorder.write(record)
    except Exception as exc:
        _recorder.fail(exc)


def hparams(params: Mapping[str, object] | None = None, /, **values: object) -> None:
    """Record the run's hyperparameters: ``hparams({"lr": 3e-4}, batch_size=64)``. Values JSON cannot hold are
    written as text."""
    try:
        found = {str(name): _param(value) for name, value in [*(params or {}).items(), *values.items()]}
        _recorder.write({"_t": time.time(), "_hparams": found})
    except Exception as exc:
        _recorder.fail(exc)


def flush() -> None:
    """Nothing left to write: every line is written when it is logged. Kept so scripts may call it."""


def _number(value: object) -> int | float | str | None:
    """VALUE as a JSON number ("nan", "inf", "-inf" for the non-finite), or None when it is not one number."""
    if isinstance(value, (str, bytes, bytearray)):
        return None
    try:
        if hasattr(value, "item"):  # numpy scalars and arrays, torch tensors: one element or an error
            value = value.item()
        if isinstance(value, int):  # bool too: True is written as 1
            return int(value)
        number = float(value)  # type: ignore[arg-type]  # anything else float() takes: Decimal, Fraction
    except Exception:
        return None
    if math.isfinite(number):
        return number
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def _param(value: object) -> object:
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float) or hasattr(value, "item"):
        number = _number(value)
        if number is not None:
            return number
    try:
        json.dumps(value, allow_nan=False)
    except Exception:
        return str(value)
    return value


def _open(path: str | None) -> int | None:
    if path is None:
        return None
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        if os.environ.get(ENV_FILE) != path and not _own_folder(folder, private=False):  # .devagent/lab
            raise OSError(f"{folder} is not a folder of this user's own: nothing is written through it")
    # O_NOFOLLOW: a link planted at the file's name must not make this process append to what it points at.
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)


def _own_folder(path: str, *, private: bool = True) -> bool:
    """Whether PATH is a real folder (not a link) of this user's and, when PRIVATE, one nobody else may write to:
    the only kind of state folder the helper writes into (devagent/inside/workspace_state.py's rule)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    writable_by_others = private and info.st_mode & 0o022
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not writable_by_others


def _target() -> str | None:
    named = os.environ.get(ENV_FILE)
    if named:
        return named
    folder = os.getcwd()
    while True:
        if _own_folder(os.path.join(folder, layout.WORKSPACE_STATE)):  # never someone else's /tmp/.devagent
            return os.path.join(folder, layout.observed_lab_path(os.getpid()))
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


@atexit.register
def _record_torch_memory() -> None:
    """At exit, torch's own peak memory figures, when the script imported torch and used CUDA."""
    try:
        torch = sys.modules.get("torch")  # never imported here: only when the script did
        if torch is None or not torch.cuda.is_initialized() or not torch.cuda.is_available():
            return
        devices = int(torch.cuda.device_count())
        allocated = sum(int(torch.cuda.max_memory_allocated(i)) for i in range(devices))
        reserved = sum(int(torch.cuda.max_memory_reserved(i)) for i in range(devices))
        memory = {"max_memory_allocated": allocated, "max_memory_reserved": reserved, "devices": devices}
        _recorder.write({"_t": time.time(), "_torch": memory})
    except Exception as exc:
        _recorder.fail(exc)
