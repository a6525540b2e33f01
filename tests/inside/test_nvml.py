"""The one guard around NVML: without the library, without a driver, and for fields a GPU cannot give."""

from __future__ import annotations

import pytest

from devagent.inside import nvml


class StandIn:
    """The few pynvml names the guard touches."""

    class NVMLError(Exception):
        pass

    def __init__(self, *, init_error: Exception | None = None, shutdown_error: bool = False) -> None:
        self.init_error, self.shutdown_error = init_error, shutdown_error
        self.started = self.ended = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.started += 1

    def nvmlShutdown(self) -> None:
        self.ended += 1
        if self.shutdown_error:
            raise self.NVMLError("Uninitialized")


def test_without_nvidia_ml_py_nvml_is_not_installed() -> None:
    assert nvml.init(None) == "nvidia-ml-py (pynvml) is not installed"


def test_a_driver_that_does_not_load_gives_nvmls_own_text() -> None:
    lib = StandIn(init_error=StandIn.NVMLError("NVML Shared Library Not Found"))
    assert nvml.init(lib) == "NVML Shared Library Not Found"


def test_a_started_nvml_is_ended_and_an_error_at_the_end_is_swallowed() -> None:
    lib = StandIn(shutdown_error=True)
    assert nvml.init(lib) is None
    nvml.shutdown(lib)
    assert (lib.started, lib.ended) == (1, 1)


def test_a_field_nvml_cannot_give_is_none_and_other_errors_are_bugs() -> None:
    def not_supported() -> str:
        raise StandIn.NVMLError("Not Supported")

    def broken() -> str:
        raise KeyError("a bug")

    lib = StandIn()
    assert nvml.query(lib, not_supported) is None
    assert nvml.query(lib, lambda index: f"GPU {index}", 3) == "GPU 3"
    with pytest.raises(KeyError):
        nvml.query(lib, broken)
