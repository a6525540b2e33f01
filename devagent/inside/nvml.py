"""The one guard around NVML (nvidia-ml-py's ``pynvml``): its import, start and end, its calls and its error text.

nvidia-ml-py is a declared dependency, yet the GPU check and the GPU memory sampler must work without it, without
a driver (a container started without ``--gpus``) and without a GPU: nothing here raises for any of them. Callers
take the library as an argument (``pynvml`` here, a stand-in in tests).

Usage::

    lib = nvml.pynvml
    error = nvml.init(lib)
    if error is None:
        try:
            name = nvml.query(lib, lib.nvmlDeviceGetName, handle)   # None where NVML cannot answer
        finally:
            nvml.shutdown(lib)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import pynvml  # nvidia-ml-py ships no type information (mypy: ignore_missing_imports)
except ImportError:  # a declared dependency; without it GPU figures are simply unknown
    pynvml = None

__all__ = ["NOT_INSTALLED", "error_text", "init", "pynvml", "query", "shutdown"]

T = TypeVar("T")

NOT_INSTALLED = "nvidia-ml-py (pynvml) is not installed"


def init(lib: Any) -> str | None:
    """Start NVML through LIB; None when it is ready (call ``shutdown`` when done), else why it is not."""
    if lib is None:
        return NOT_INSTALLED
    try:
        lib.nvmlInit()
    except Exception as exc:  # NVMLError: no driver, no GPU in this container, a library that does not load
        return error_text(exc)
    return None


def shutdown(lib: Any) -> None:
    """End what ``init`` started; best effort (what was read is already complete)."""
    with contextlib.suppress(Exception):
        lib.nvmlShutdown()


def query(lib: Any, call: Callable[..., T], *args: Any) -> T | None:
    """CALL(*ARGS), or None where NVML cannot answer (not supported, no permission, an older driver)."""
    try:
        return call(*args)
    except lib.NVMLError:
        return None


def error_text(error: BaseException) -> str:
    """NVML's message for ERROR. NVMLError.__str__ needs the library for codes it does not know: the text itself
    never fails.

    >>> class Odd(Exception):
    ...     value = 999
    ...     def __str__(self): raise RuntimeError("library gone")
    >>> error_text(Odd())
    'NVML error 999'
    """
    try:
        return str(error)
    except Exception:
        return f"NVML error {getattr(error, 'value', '?')}"
