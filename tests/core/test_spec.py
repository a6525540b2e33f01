"""The pure core: names, sizes, GPU lists, limits, labels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.spec import (
    GPUS_HINT,
    AgentOptions,
    EnvSpec,
    GpuRequest,
    Limits,
    format_size,
    parse_cpus,
    parse_gpus,
    parse_pids,
    parse_size,
    suggest_name,
    validate_name,
    validate_new_name,
    validate_user,
)
from devagent.core.ssh.host_entry import HostEntry
from devagent.errors import DevagentError, ExitStatus


@pytest.mark.parametrize("name", ["a", "pytorch-dev", "exp_01.v2", "0day", "a" * 63])
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Dev", "-dev", ".dev", "a b", "a" * 64, "dev/x", "dév", "dev\n"])
def test_invalid_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(DevagentError) as err:
        validate_name(name)
    assert err.value.status == ExitStatus.USAGE
    assert err.value.message == f"invalid environment name {name!r}"
    assert err.value.hint and "lowercase letters" in err.value.hint


@pytest.mark.parametrize(("name", "kind", "suggestion"), [
    ("github.com", "a DNS name", "github-com"),
    ("my.server.org", "a DNS name", "my-server-org"),
    ("exp.final", "a DNS name", "exp-final"),  # any alphabetic last label may be a top-level domain
    ("shop.xn--p1ai", "a DNS name", "shop-xn--p1ai"),
    ("box.", "a fully qualified DNS name", "box"),
    ("github.com.", "a fully qualified DNS name", "github-com"),
    ("10.1.2.3", "an IPv4 address", "10-1-2-3"),
    ("127.1", "an IPv4 address", "127-1"),  # inet_aton, and so ssh, reads these as 127.0.0.1 ...
    ("2130706433", "an IPv4 address", "2130706433-dev"),
    ("0x7f000001", "an IPv4 address", "0x7f000001-dev"),
    ("0x7f.1", "an IPv4 address", "0x7f-1"),
    ("42", "an IPv4 address", "42-dev"),  # ... and this as 0.0.0.42
    ("localhost", "this machine (localhost)", "localhost-dev"),
    ("ip6-localhost", "this machine (ip6-localhost)", "ip6-localhost-dev"),
])
def test_a_name_that_already_means_a_host_is_refused_for_a_new_environment(name: str, kind: str,
                                                                          suggestion: str) -> None:
    assert validate_name(name) == name  # a valid name: an environment made before keeps working under it
    with pytest.raises(DevagentError) as err:
        validate_new_name(name)
    assert err.value.message == f"environment name {name!r} is {kind}: its ssh alias would take `ssh {name}` over"
    assert err.value.hint == f"pick a name ssh does not read as a host, e.g. {suggestion}"
    assert err.value.status == ExitStatus.USAGE


@pytest.mark.parametrize("name", ["pytorch-dev", "exp_01.v2", "run.1", "model.a", "a.b_c", "0day", "1.2.3.4.5",
                                  "v1.2", "localhost-dev", "10-1-2-3", "run.ab.1"])
def test_names_that_mean_no_host_are_free(name: str) -> None:
    assert validate_new_name(name) == name


def test_the_suggestion_for_the_longest_host_name_keeps_to_the_name_limit() -> None:
    name = "0x" + "f" * 61  # 63 characters, the longest valid name, and an IPv4 address to ssh
    assert suggest_name(name) == "0x" + "f" * 57 + "-dev"
    assert validate_new_name(suggest_name(name)) == "0x" + "f" * 57 + "-dev"


@given(st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,62}", fullmatch=True))
def test_every_suggestion_is_a_free_name(name: str) -> None:
    assert validate_new_name(suggest_name(name)) == suggest_name(name)


def test_root_is_never_the_login_user() -> None:
    with pytest.raises(DevagentError, match="invalid login user 'root'"):
        validate_user("root")
    assert validate_user("dev") == "dev"


@pytest.mark.parametrize("user", ["dev\n", "a.dev", "Dev", "-dev", "1dev", "a" * 33, ""])
def test_login_users_follow_the_portable_posix_rule(user: str) -> None:
    with pytest.raises(DevagentError) as err:
        validate_user(user)
    assert err.value.message == f"invalid login user {user!r}"
    assert err.value.status == ExitStatus.USAGE


@given(st.text(alphabet="ab.-_0\n ", max_size=6), st.text(alphabet="ab.-_0\n ", max_size=6))
def test_an_ssh_entry_takes_exactly_the_names_and_users_up_takes(name: str, user: str) -> None:
    def accepted(check: Callable[[], object]) -> bool:
        try:
            check()
        except DevagentError:
            return False
        return True

    def entry() -> HostEntry:
        return HostEntry(name, 2222, user, "/h/id", "/h/kh")

    expected = accepted(lambda: validate_name(name)) and accepted(lambda: validate_user(user))
    assert accepted(entry) == expected


@pytest.mark.parametrize(("text", "expected"), [("8g", 8 * 1024**3), ("512m", 512 * 1024**2), ("1024b", 1024),
                                                ("1.5g", int(1.5 * 1024**3)), ("64K", 64 * 1024)])
def test_sizes_read_like_docker(text: str, expected: int) -> None:
    assert parse_size(text, option="--memory") == expected


@pytest.mark.parametrize("text", ["", "lots", "8gb", "-1g", "0", "8 t"])
def test_unreadable_sizes_name_the_option_and_an_example(text: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_size(text, option="--shm-size")
    assert err.value.status == ExitStatus.USAGE
    assert err.value.message.startswith("--shm-size: ")
    assert err.value.hint and "--shm-size 8g" in err.value.hint


@given(st.integers(min_value=1, max_value=2**40))
def test_format_size_round_trips(n: int) -> None:
    assert parse_size(format_size(n), option="--memory") == n


def test_gpu_requests_by_keyword_index_and_uuid() -> None:
    assert parse_gpus("none") == GpuRequest("none")
    assert parse_gpus("all") == GpuRequest("all")
    assert parse_gpus("0, 1") == GpuRequest("list", ("0", "1"))
    uuid = "GPU-5c3f2a1b-1111-2222-3333-444455556666"
    assert parse_gpus(uuid).devices == (uuid,)
    assert parse_gpus("0,1").describe() == "0,1"


@pytest.mark.parametrize(("text", "problem"), [("0,GPU-5c3f2a1b-1111", "indexes and UUIDs mixed"),
                                               ("0,,1", "empty item"), ("gpu0", "not a GPU index or UUID: gpu0"),
                                               ("1,1", "a GPU is listed twice")])
def test_bad_gpu_lists_are_refused(text: str, problem: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_gpus(text)
    assert problem in err.value.message
    assert err.value.status == ExitStatus.USAGE


def test_cpus_and_pids_must_be_sensible() -> None:
    assert parse_cpus("0.5") == 0.5
    assert parse_pids("4096") == 4096
    for bad in ("0", "-2", "many"):
        with pytest.raises(DevagentError, match="--cpus"):
            parse_cpus(bad)
    for bad in ("10", "x", "-1"):
        with pytest.raises(DevagentError, match="--pids"):
            parse_pids(bad)


def test_limits_describe_themselves_for_the_notebook() -> None:
    assert Limits(memory=32 * 1024**3, cpus=8, shm_size=8 * 1024**3, pids=4096).describe() == (
        "memory 32g · 8 cpus · shm 8g · pids 4096")


def test_every_label_is_namespaced_and_names_the_environment() -> None:
    spec = EnvSpec(name="exp", base_image="img", workspace="/w")
    labels = spec.labels(version="0.1.0", image="devagent/env:abc")
    assert all(key.startswith("devagent.") for key in labels)
    assert labels["devagent.name"] == "exp" and labels["devagent.managed"] == "true"


@pytest.mark.parametrize(("text", "message"), [
    ("1", "--memory: size '1' has no unit (to Docker, a bare number is bytes)"),
    ("0.5", "--memory: size '0.5' has no unit (to Docker, a bare number is bytes)"),
    ("0", "--memory: size must be positive, not '0'"),
])
def test_a_size_without_a_unit_is_refused_exactly(text: str, message: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_size(text, option="--memory")
    assert err.value.message == message
    assert err.value.status == ExitStatus.USAGE


@pytest.mark.parametrize(("text", "expected"), [
    ("", GpuRequest("none")), ("  ", GpuRequest("none")), ("None", GpuRequest("none")),
    ("ALL", GpuRequest("all")), ("any:1", GpuRequest("any", count=1)), ("any:64", GpuRequest("any", count=64)),
    ("any: 3", GpuRequest("any", count=3)),
])
def test_gpu_keywords_and_any_counts(text: str, expected: GpuRequest) -> None:
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text", ["any", "any2", "any:0", "any:65", "any:two", "any:X1", "any:-1", "anything",
                                  "any::2", "any: :2", "any:2:"])
def test_any_takes_a_count_from_1_to_64(text: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_gpus(text)
    assert err.value.message == f"--gpus: {text!r} is not any:N with N a number of GPUs from 1 to 64"
    assert err.value.hint == GPUS_HINT
    assert err.value.status == ExitStatus.USAGE


@pytest.mark.parametrize(("text", "message"), [
    ("0,,1", "--gpus: empty item in '0,,1'"),
    ("gpu0,1,gpu2", "--gpus: not a GPU index or UUID: gpu0, gpu2"),
    ("0,GPU-5c3f2a1b-1111", "--gpus: indexes and UUIDs mixed"),
    ("1, 1", "--gpus: a GPU is listed twice in '1, 1'"),
])
def test_bad_gpu_lists_are_refused_exactly(text: str, message: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_gpus(text)
    assert err.value.message == message
    assert err.value.hint == GPUS_HINT
    assert err.value.status == ExitStatus.USAGE


@pytest.mark.parametrize(("request_", "described"), [
    (GpuRequest("none"), "none"), (GpuRequest("all"), "all"), (GpuRequest("any", count=2), "any:2"),
    (GpuRequest("list", ("0", "3")), "0,3"),
])
def test_gpu_requests_describe_themselves_as_gpus_takes_them(request_: GpuRequest, described: str) -> None:
    assert request_.describe() == described
    assert parse_gpus(described) == request_


def test_limits_without_a_cpu_limit_say_all_cpus() -> None:
    assert Limits().describe() == "memory 16g · all cpus · shm 2g · pids 4096"


def test_the_agent_command_carries_the_notebook_inside_the_workspace() -> None:
    options = AgentOptions(notebook="notes/nb.md", watch=("a.py", "b/*.py"))
    assert options.command(sshd_config="/c", inside_workspace="/home/dev/workspace") == [
        "devagent", "agent", "--sshd-config", "/c", "--notebook", "/home/dev/workspace/notes/nb.md",
        "--watch", "a.py", "--watch", "b/*.py"]
    assert AgentOptions().command(sshd_config="/c", inside_workspace="/w") == [
        "devagent", "agent", "--sshd-config", "/c"]


def test_up_args_and_agent_options_leave_out_what_is_not_set() -> None:
    spec = EnvSpec("exp", "debian:12", "/w", user="ann", gpus=GpuRequest("any", count=2))
    assert spec.up_args() == ("--gpus", "any:2", "--memory", "16g", "--shm-size", "2g", "--pids", "4096",
                              "--user", "ann")
    assert spec.idle_release_args() == []


@pytest.mark.parametrize(("share_gpus", "label"), [(False, "false"), (True, "true")])
def test_the_labels_of_an_environment(share_gpus: bool, label: str) -> None:
    spec = EnvSpec("exp", "debian:12", "/srv/w", user="ann", gpus=GpuRequest("list", ("1",)),
                   sshd_profile="compat", share_gpus=share_gpus)
    assert spec.labels(version="0.9.1", image="devagent/env:abc") == {
        "devagent.managed": "true", "devagent.name": "exp", "devagent.user": "ann",
        "devagent.workspace": "/srv/w", "devagent.gpus": "1",
        "devagent.share-gpus": label, "devagent.base-image": "debian:12",
        "devagent.image": "devagent/env:abc", "devagent.sshd-profile": "compat", "devagent.version": "0.9.1"}
