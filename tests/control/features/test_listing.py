"""`ls` across this machine's engine and every server in devagent's records: asked in parallel, one that does not
answer listed from the records and failing none of the others; records written atomically and read back."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from devagent.control.features.listing import Row, list_all
from devagent.control.paths import Paths
from devagent.control.sites.records import Record, Records
from devagent.errors import DevagentError, ExitStatus


def row(name: str, host: str | None = None) -> Row:
    return Row(name=name, state="running", health=None, port=40000, user="dev", image=None, gpus="none",
               workspace="/w", ssh_alias=None, created=None, host=host)


class Lister:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def ls(self) -> list[Row]:
        return self.rows


RECORDS = [Record("a1", "gpu-a", "dev", "/home/x/devagent/a1", 40001),
           Record("b1", "gpu-b", "dev", "/home/x/devagent/b1", 40002)]


class TestEveryServerIsAsked:
    def test_servers_are_asked_at_once_and_the_rows_come_back_by_name(self) -> None:
        inside = threading.Barrier(3, timeout=5)  # the local engine and both servers at the same time, or a timeout

        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            inside.wait()
            # The server's engine also lists environments this laptop did not make: they stay out.
            yield Lister([row(f"{server[-1]}1", server), row("colleague", server)])

        def local() -> Lister:
            inside.wait()
            return Lister([row("here"), row("a1")])  # a1 on the local engine is the server's (one engine in tests)

        rows = list_all(RECORDS, host=None, local=local, open_server=open_server)
        assert [(r.name, r.host) for r in rows] == [("a1", "gpu-a"), ("b1", "gpu-b"), ("here", None)]

    def test_a_server_that_does_not_answer_is_listed_from_the_records_and_fails_none_of_the_others(self) -> None:
        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            if server == "gpu-b":
                raise DevagentError("ssh gpu-b: connect to host gpu-b port 22: Connection refused",
                                    status=ExitStatus.SERVER_UNREACHABLE)
            yield Lister([row("a1", server)])

        rows = list_all(RECORDS, host=None, local=None, open_server=open_server)
        assert rows[0] == row("a1", "gpu-a")
        # `ls --json`'s keys, in their order: an unreachable server's rows have no owner fields.
        assert list(rows[1].to_json(with_host=True).items()) == [
            ("name", "b1"), ("state", "unreachable"), ("health", None), ("port", 40002), ("user", "dev"),
            ("image", None), ("gpus", None), ("workspace", "/home/x/devagent/b1"), ("ssh_alias", "b1"),
            ("created", None), ("host", "gpu-b"),
            ("error", "ssh gpu-b: connect to host gpu-b port 22: Connection refused")]

    def test_a_laptop_without_an_engine_of_its_own_lists_its_servers(self) -> None:
        def local() -> Lister:
            raise DevagentError("no Docker Engine answers", status=ExitStatus.DOCKER_UNAVAILABLE)

        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            yield Lister([row(f"{server[-1]}1", server)])

        assert [r.name for r in list_all(RECORDS, host=None, local=local, open_server=open_server)] == ["a1", "b1"]

    def test_host_filters_to_one_server_and_asks_only_it(self) -> None:
        asked: list[str] = []

        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            asked.append(server)
            yield Lister([row("b1", server)])

        def local() -> Lister:
            raise AssertionError("the local engine is not asked with --host")

        rows = list_all(RECORDS, host="gpu-b", local=local, open_server=open_server)
        assert (asked, [r.name for r in rows]) == (["gpu-b"], ["b1"])

    def test_a_host_without_records_that_does_not_answer_is_an_error(self) -> None:
        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            raise DevagentError("unreachable", status=ExitStatus.SERVER_UNREACHABLE)
            yield Lister([])

        with pytest.raises(DevagentError) as err:
            list_all([], host="gpu-c", local=None, open_server=open_server)
        assert err.value.status == ExitStatus.SERVER_UNREACHABLE

    def test_a_laptop_that_used_servers_and_has_no_engine_lists_nothing_without_an_error(self) -> None:
        def local() -> Lister:
            raise DevagentError("no Docker Engine answers", status=ExitStatus.DOCKER_UNAVAILABLE)

        @contextlib.contextmanager
        def open_server(server: str) -> Iterator[Lister]:
            raise AssertionError("no server to ask")
            yield Lister([])

        assert list_all([], host=None, local=local, open_server=open_server, used_servers=True) == []
        with pytest.raises(DevagentError) as err:  # a machine that never used a server: as before --host
            list_all([], host=None, local=local, open_server=open_server)
        assert err.value.status == ExitStatus.DOCKER_UNAVAILABLE


class TestRecords:
    def test_a_record_reads_back_as_written_with_a_private_mode_and_goes_on_remove(self) -> None:
        records = Records(Paths.from_environ())
        record = Record("exp", "alice@gpu:2222", "dev", "/home/alice/devagent/exp", 40001)
        records.put(record)
        assert records.get("exp") == record and records.all() == [record]
        assert (records.folder / "exp.json").stat().st_mode & 0o777 == 0o600
        assert records.remove("exp") and records.get("exp") is None and not records.remove("exp")

    def test_a_file_that_is_not_a_record_is_skipped_by_all(self) -> None:
        records = Records(Paths.from_environ())
        records.put(Record("exp", "gpu", "dev", "/w"))
        (records.folder / "junk.json").write_text("{")
        (records.folder / "notes.txt").write_text("x")
        assert [r.name for r in records.all()] == ["exp"]
