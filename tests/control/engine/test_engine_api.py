"""The engine Protocol, the real Engine and the tests' FakeEngine say the same thing: code typed by `EngineApi`
takes either, and a fake cannot drift from the adapter it stands in for. (mypy proves the same for the types:
engine_api.py for Engine, `make lint` for tests/control/fakes.py; this test holds the names and parameters.)"""

from __future__ import annotations

import inspect

import pytest

from devagent.control.engine.docker_engine import Engine
from devagent.control.engine.engine_api import EngineApi
from tests.control.fakes import FakeEngine


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items()
            if not name.startswith("_") and callable(value) and not isinstance(value, classmethod)}


def test_the_protocol_is_the_real_engines_whole_public_interface() -> None:
    assert public_methods(EngineApi) == public_methods(Engine)


@pytest.mark.parametrize("method", sorted(public_methods(EngineApi)))
def test_the_real_engine_and_the_fake_take_what_the_protocol_names(method: str) -> None:
    wanted = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(EngineApi, method)).parameters.values()]
    for cls in (Engine, FakeEngine):
        got = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(cls, method)).parameters.values()]
        assert got == wanted, f"{cls.__name__}.{method}"


def test_the_fake_says_which_machine_its_engine_is_on_as_the_real_one_does() -> None:
    assert FakeEngine().server is None
