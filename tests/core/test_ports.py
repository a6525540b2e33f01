"""DEVAGENT_PORTS: the range a new environment's fixed host port comes from."""

from __future__ import annotations

import pytest

from devagent.core.ports import DEFAULT_PORTS, candidates, describe, parse_ports
from devagent.errors import DevagentError, ExitStatus


@pytest.mark.parametrize(("text", "ports"), [("24000-24999", range(24000, 25000)), (" 2222 ", range(2222, 2223)),
                                             ("1024-65535", range(1024, 65536)), ("1024", range(1024, 1025)),
                                             ("65535", range(65535, 65536)), ("3000-3000", range(3000, 3001)),
                                             ("3000 - 3001", range(3000, 3002))])
def test_a_range_or_one_port_is_read(text: str, ports: range) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["", "ssh", "24000-", "-24000", "24999-24000", "80-90", "60000-70000", "1e4",
                                  "24000:24999", "1023", "1023-2000", "65536", "60000-65536", "0", "-1"])
def test_anything_else_is_refused_with_the_form_to_write(text: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_ports(text)
    assert (err.value.message, err.value.status) == (f"DEVAGENT_PORTS={text!r} is not a port range", ExitStatus.USAGE)
    assert err.value.hint == ("write FIRST-LAST, ports from 1024 to 65535, e.g. DEVAGENT_PORTS=24000-24999, "
                              "or unset it")


def test_the_default_lies_below_linuxs_ephemeral_ports_and_kubernetes_node_ports() -> None:
    assert describe(DEFAULT_PORTS) == "24000-24999"
    assert DEFAULT_PORTS.stop <= 30000


@pytest.mark.parametrize(("ports", "text"), [(range(2222, 2223), "2222"), (range(2222, 2224), "2222-2223")])
def test_a_range_is_described_as_it_is_written(ports: range, text: str) -> None:
    assert describe(ports) == text
    assert parse_ports(text) == ports


def test_candidates_are_the_ports_neither_bound_nor_tried_lowest_first() -> None:
    assert list(candidates(range(10, 16), bound={10, 13}, tried=[11])) == [12, 14, 15]
    assert list(candidates(range(10, 12), bound={10}, tried=[11])) == []
