"""The node's engine of an environment whose Slurm job has ended (control/sites/ended_job.py): nothing of the
environment is there, and anything that would act there says the job ended."""

from __future__ import annotations

import inspect

import pytest

from devagent.control.engine.engine_api import EngineApi
from devagent.control.sites.ended_job import EndedJobEngine
from devagent.errors import DevagentError, ExitStatus

GONE = DevagentError("environment exp's Slurm job 12 has ended: the job was cancelled (devagent down or scancel)",
                     status=ExitStatus.NOT_FOUND)
NOTHING = {"server", "close", "get", "list_managed", "container_rows", "leases", "volume_labels"}


def members(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_it_has_every_member_of_the_engine_protocol_and_no_other() -> None:
    assert members(EndedJobEngine) == members(EngineApi)  # mypy proves the signatures (ended_job.py's last lines)


def test_what_is_there_is_nothing_of_the_environment() -> None:
    engine = EndedJobEngine("gpu07", GONE)
    assert (engine.server, engine.get("exp"), engine.list_managed(name="exp"), engine.container_rows(),
            engine.leases(), engine.volume_labels("exp-home"), engine.close()) == ("gpu07", None, [], [], [], None,
                                                                                   None)


@pytest.mark.parametrize("name", sorted(members(EngineApi) - NOTHING))
def test_anything_that_would_act_on_the_node_says_the_job_ended(name: str) -> None:
    method = getattr(EndedJobEngine("gpu07", GONE), name)
    params = inspect.signature(method).parameters.values()
    args = [None for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
    kwargs = {p.name: None for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    with pytest.raises(DevagentError) as info:
        method(*args, **kwargs)
    assert info.value is GONE
