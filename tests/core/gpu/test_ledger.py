"""The pure half of the GPU ledger: what a container's inspect says it asked for, who holds each GPU, which GPUs
`up` gets or is refused, and what `nvidia-smi` says."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.config import parse_config
from devagent.core.gpu.idle_rule import GpuUsage
from devagent.core.gpu.ledger import (
    GIB,
    MIB,
    ContainerGpus,
    Gpu,
    GpuProcess,
    Holder,
    HolderUsage,
    Inventory,
    Lease,
    choose,
    container_gpus,
    container_id_from_cgroup,
    describe_choice,
    envelope,
    holders_by_gpu,
    lease_name,
    parse_nvidia_smi,
    render_table,
    stand_in_inventory,
)
from devagent.core.spec import GpuRequest, parse_gpus
from devagent.errors import DevagentError, ExitStatus

A, B, C = "GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111", "GPU-cccccccc-2222"
INVENTORY = Inventory((Gpu(0, A, "H200", 70 * GIB, 80 * GIB, 90), Gpu(1, B, "H200", 2 * GIB, 80 * GIB, 0),
                       Gpu(2, C, "H200", 1 * GIB, 80 * GIB, 0)))


def inspect(host: dict[str, object], env: list[str] | None = None, state: str = "created") -> dict[str, object]:
    return {"Id": "c1", "Name": "/other", "State": {"Status": state}, "Config": {"Env": env or [], "Labels": {}},
            "HostConfig": host}


class TestWhatAContainerAskedFor:
    @pytest.mark.parametrize(("host", "env", "all_gpus", "ids", "how"), [
        ({"DeviceRequests": [{"DeviceIDs": ["1", "2"], "Capabilities": [["gpu"]]}]}, [], False, ("1", "2"),
         "--gpus device=1,2"),
        ({"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}, [], True, (), "--gpus all"),
        ({"DeviceRequests": [{"Count": 2, "Capabilities": [["gpu"]]}]}, [], False, ("0", "1"),
         "--gpus 2 (GPUs 0..1)"),
        ({"Runtime": "nvidia"}, ["NVIDIA_VISIBLE_DEVICES=all"], True, (),
         "nvidia runtime, NVIDIA_VISIBLE_DEVICES=all"),
        ({"Runtime": "nvidia"}, ["NVIDIA_VISIBLE_DEVICES=GPU-bbbbbbbb-1111"], False, (B,),
         f"nvidia runtime, NVIDIA_VISIBLE_DEVICES={B}"),
        ({"Runtime": "runc"}, ["NVIDIA_VISIBLE_DEVICES=all"], False, (), ""),  # without the runtime: nothing
        ({"Runtime": "nvidia"}, [], False, (), ""),  # the runtime without the variable: nothing either
        ({"Devices": [{"PathOnHost": "/dev/nvidia2"}, {"PathOnHost": "/dev/nvidiactl"}]}, [], False, ("2",),
         "/dev/nvidia2"),
        ({"Privileged": True}, [], True, (), "privileged"),
        ({"DeviceRequests": [{"Count": 1, "Capabilities": [["tpu"]]}]}, [], False, (), ""),
        ({}, [], False, (), ""),
    ])
    def test_every_way_a_container_can_hold_gpus_is_read(self, host: dict[str, object], env: list[str],
                                                          all_gpus: bool, ids: tuple[str, ...], how: str) -> None:
        c = container_gpus(inspect(host, env))
        assert (c.all_gpus, c.ids, c.how, c.name) == (all_gpus, ids, how, "other")


class TestWhoHoldsEachGpu:
    def test_leases_containers_and_processes_outside_containers_each_hold_their_gpus(self) -> None:
        lease = Lease("l1", A, "exp", "alice@gpu1", "2026-12-01T03:00:00+00:00")
        containers = [ContainerGpus("c1", "bob-train", "running", ids=("1",), how="--gpus device=1"),
                      ContainerGpus("c2", "old", "exited", all_gpus=True, how="--gpus all"),  # exited: holds none
                      ContainerGpus("c3", "exp", "running", ids=(A,), how="x",
                                    labels={"devagent.managed": "true", "devagent.name": "exp"})]  # = its lease
        inventory = Inventory(INVENTORY.gpus, (GpuProcess(C, 4242, "python", 3 * GIB, container=""),
                                               GpuProcess(B, 77, "python", None, container="c1")))
        held = holders_by_gpu(inventory, containers, [lease])
        assert {uuid: [h.describe() for h in hs] for uuid, hs in held.items()} == {
            A: ["environment exp (alice@gpu1, since 2026-12-01T03:00:00+00:00)"],
            B: ["container bob-train (running, --gpus device=1)"],  # its process is shown as the container
            C: ["pid 4242 (python, outside containers, 3.0 GiB)"],
        }

    def test_an_environment_being_replaced_does_not_hold_its_own_gpus(self) -> None:
        lease = Lease("l1", A, "exp", "alice@gpu1", "now")
        env = ContainerGpus("c3", "exp", "running", ids=(A,), labels={"devagent.managed": "true",
                                                                     "devagent.name": "exp"})
        assert holders_by_gpu(INVENTORY, [env], [lease], ignore_environment="exp")[A] == []

    def test_an_environment_whose_up_has_not_leased_yet_holds_through_its_device_request(self) -> None:
        env = ContainerGpus("c3", "exp-new-1a2b3c", "created", ids=(B,), labels={"devagent.managed": "true",
                                                                                 "devagent.name": "exp"})
        assert holders_by_gpu(INVENTORY, [env], [])[B] == [Holder("environment", "exp",
                                                                   "container exp-new-1a2b3c, created")]

    def test_an_environment_using_a_gpu_leased_by_another_environment_is_a_second_holder(self) -> None:
        # The double booking the ledger exists to prevent: exp leased A, but bob's environment asked Docker for
        # A too (made before the ledger, or by hand). Both hold A; hiding bob's container would let a third
        # environment believe A is exp's alone.
        lease = Lease("l1", A, "exp", "alice@gpu1", "now")
        bob = ContainerGpus("c4", "bob", "running", ids=("0",), labels={"devagent.managed": "true",
                                                                       "devagent.name": "bob"})
        held = holders_by_gpu(INVENTORY, [bob], [lease])
        assert held[A] == [Holder("environment", "exp", "alice@gpu1, since now"),
                           Holder("environment", "bob", "container bob, running")]
        assert held[B] == held[C] == []


class TestChoosing:
    free: ClassVar[dict[str, list[Holder]]] = {A: [], B: [], C: []}

    def test_any_n_takes_the_free_gpus_with_the_most_free_memory(self) -> None:
        assert choose(GpuRequest("any", count=2), INVENTORY, self.free, share=False) == (C, B)

    def test_any_n_skips_held_gpus_and_keeps_those_the_environment_had(self) -> None:
        held = {**self.free, C: [Holder("container", "x")]}
        assert choose(GpuRequest("any", count=1), INVENTORY, held, share=False) == (B,)
        assert choose(GpuRequest("any", count=1), INVENTORY, self.free, share=False, keep=(A,)) == (A,)

    def test_any_n_takes_exactly_the_n_free_gpus_when_no_more_are_free(self) -> None:
        held = {**self.free, A: [Holder("environment", "exp", "alice@gpu1")]}
        assert choose(GpuRequest("any", count=2), INVENTORY, held, share=False) == (C, B)
        assert choose(GpuRequest("any", count=3), INVENTORY, self.free, share=False) == (C, B, A)
        assert choose(GpuRequest("any", count=2), INVENTORY, held, share=False, keep=(A,)) == (A, C)

    def test_any_n_with_too_few_free_is_busy_and_names_the_holders(self) -> None:
        held = {A: [Holder("environment", "exp", "alice@gpu1")], B: [Holder("process", "42", "python")], C: []}
        with pytest.raises(DevagentError) as err:
            choose(GpuRequest("any", count=2), INVENTORY, held, share=False)
        assert (err.value.message, err.value.status) == (
            "--gpus any:2: only 1 of 3 GPUs are free; held: 0 (environment exp (alice@gpu1)); 1 (pid 42 (python))",
            ExitStatus.GPU_BUSY)
        assert "devagent gpus" in (err.value.hint or "")

    def test_a_listed_gpu_someone_holds_is_refused_naming_the_holder_unless_shared(self) -> None:
        held = {**self.free, B: [Holder("container", "bob-train", "running, --gpus all")]}
        with pytest.raises(DevagentError) as err:
            choose(parse_gpus("0,1"), INVENTORY, held, share=False)
        assert (err.value.message, err.value.status) == (
            f"GPU 1 ({B}) is held by container bob-train (running, --gpus all)", ExitStatus.GPU_BUSY)
        assert err.value.hint == ("`devagent gpus` shows who holds what; pick free GPUs (--gpus any:N), ask the "
                                  "holder, or share knowingly: --share-gpus")
        assert choose(parse_gpus("0,1"), INVENTORY, held, share=True) == (A, B)

    def test_indexes_become_uuids_and_all_is_every_gpu(self) -> None:
        assert choose(parse_gpus(f"{C},{A}"), INVENTORY, self.free, share=False) == (C, A)
        assert choose(parse_gpus("2,0"), INVENTORY, self.free, share=False) == (C, A)
        assert choose(parse_gpus("all"), INVENTORY, self.free, share=False) == (A, B, C)

    def test_all_is_refused_when_any_gpu_is_held(self) -> None:
        with pytest.raises(DevagentError) as err:
            choose(parse_gpus("all"), INVENTORY, {**self.free, C: [Holder("process", "9", "x")]}, share=False)
        assert err.value.status == ExitStatus.GPU_BUSY

    def test_a_gpu_the_server_lacks_or_no_inventory_is_unavailable(self) -> None:
        with pytest.raises(DevagentError) as err:
            choose(parse_gpus("3"), INVENTORY, self.free, share=False)
        assert (err.value.message, err.value.status) == (
            "--gpus 3: this server has no GPU 3", ExitStatus.GPU_UNAVAILABLE)
        with pytest.raises(DevagentError) as err:
            choose(parse_gpus("any:1"), Inventory(error="NVML: Driver Not Loaded"), {}, share=False)
        assert (err.value.message, err.value.status) == (
            "GPUs were requested but this server has none devagent can see (NVML: Driver Not Loaded)",
            ExitStatus.GPU_UNAVAILABLE)


class TestParsing:
    @pytest.mark.parametrize("text", ["any", "any:0", "any:x", "any:65", "anything"])
    def test_any_needs_a_count(self, text: str) -> None:
        with pytest.raises(DevagentError) as err:
            parse_gpus(text)
        assert err.value.message == f"--gpus: {text!r} is not any:N with N a number of GPUs from 1 to 64"

    def test_nvidia_smi_output_with_unknown_figures(self) -> None:
        inv = parse_nvidia_smi("1, GPU-b, NVIDIA H200, [N/A], 143771, [Not Supported]\n"
                               "0, GPU-a, NVIDIA H200, 10, 143771, 5\n", "GPU-a, 12, /usr/bin/python3, 8\n")
        assert inv.gpus == (Gpu(0, "GPU-a", "NVIDIA H200", 10 * MIB, 143771 * MIB, 5),
                            Gpu(1, "GPU-b", "NVIDIA H200", None, 143771 * MIB, None))
        assert inv.processes == (GpuProcess("GPU-a", 12, "/usr/bin/python3", 8 * MIB),)

    def test_lease_names_are_valid_container_names_one_per_gpu(self) -> None:
        assert lease_name(A) == f"devagent-gpu-{A}"
        assert lease_name("MIG-GPU-a/1/0") != lease_name("MIG-GPU-a/2/0")

    def test_the_table_says_free_and_lists_every_holder(self) -> None:
        held = {A: [Holder("environment", "exp", "alice"), Holder("process", "7", "python")], B: [], C: []}
        lines = render_table(INVENTORY, held)
        assert lines[1].endswith("  90%  environment exp (alice)")
        assert lines[2].strip() == "pid 7 (python)"
        assert lines[3].endswith("free") and lines[4].endswith("free")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=12)


class TestAnyInputIsReadWithoutRaising:
    @given(st.text(), st.text())
    def test_nvidia_smi_output_of_any_shape(self, gpus: str, processes: str) -> None:
        inventory = parse_nvidia_smi(gpus, processes)
        assert all(g.uuid == g.uuid.strip() for g in inventory.gpus)

    @given(st.dictionaries(st.sampled_from(["DeviceRequests", "Devices", "Privileged", "Runtime"]), json_values),
           st.dictionaries(st.sampled_from(["Env", "Labels"]), json_values))
    def test_an_inspect_of_any_shape_from_an_odd_engine(self, host: dict[str, object],
                                                        config: dict[str, object]) -> None:
        c = container_gpus({"Id": "c1", "Name": "/x", "HostConfig": host, "Config": config})
        assert c.name == "x"


class TestDevagentToml:
    def test_gpus_any_n_is_a_setting_and_share_gpus_is_not(self) -> None:
        assert parse_config('gpus = "any:2"\n').gpus == "any:2"
        with pytest.raises(DevagentError) as err:
            parse_config("share_gpus = true\n")
        assert err.value.status == ExitStatus.USAGE
        assert "pass --share-gpus on the command line" in str(err.value)


class TestShowing:
    """`devagent gpus` (table and --json) and the notebook's GPU line, word for word."""

    INVENTORY = Inventory((Gpu(0, A, "H200", 70 * GIB, 80 * GIB, 90), Gpu(1, B, "NVIDIA H200 NVL")))
    HELD: ClassVar[dict[str, list[Holder]]] = {
        A: [Holder("environment", "exp", "alice@gpu1, since now", shared=True), Holder("process", "42", "python")],
        B: []}
    OTHERS = (ContainerGpus("c9", "odd", "created", ids=("7",), how="--gpus device=7"),
              ContainerGpus("c8", "all", "running", all_gpus=True, how="privileged"))

    def test_the_table_pads_columns_to_the_longest_value_and_lists_what_it_cannot_place(self) -> None:
        assert render_table(self.INVENTORY, self.HELD, self.OTHERS) == [
            "GPU  UUID               NAME             MEMORY (GiB)  UTIL  HELD BY",
            "0    GPU-aaaaaaaa-0000  H200             70.0 / 80.0    90%  environment exp (alice@gpu1, since now)",
            "                                                             pid 42 (python)",
            "1    GPU-bbbbbbbb-1111  NVIDIA H200 NVL  ? / ?            ?  free",
            "container odd (created) asks for 7: --gpus device=7",
            "container all (running) asks for all GPUs: privileged",
        ]
        assert render_table(Inventory(error="no NVML"), {}, self.OTHERS[:1]) == [
            "no GPU inventory: no NVML", "container odd (created) asks for 7: --gpus device=7"]

    def test_the_json_envelope_has_every_figure_in_bytes_and_every_holder(self) -> None:
        assert envelope(self.INVENTORY, self.HELD, 1) == {"version": 1, "error": None, "gpus": [
            {"index": 0, "uuid": A, "name": "H200", "memory_used_bytes": 70 * GIB, "memory_total_bytes": 80 * GIB,
             "utilization_percent": 90, "holders": [
                 {"kind": "environment", "name": "exp", "detail": "alice@gpu1, since now", "shared": True},
                 {"kind": "process", "name": "42", "detail": "python", "shared": False}], "usage": None},
            {"index": 1, "uuid": B, "name": "NVIDIA H200 NVL", "memory_used_bytes": None,
             "memory_total_bytes": None, "utilization_percent": None, "holders": [], "usage": None}]}
        assert envelope(Inventory(error="no NVML"), {}, 2) == {"version": 2, "error": "no NVML", "gpus": []}

    def test_the_notebook_line_says_what_was_asked_and_what_was_got(self) -> None:
        gpus = self.INVENTORY.gpus
        assert describe_choice(parse_gpus("0,1"), [A, B], gpus, shared=True) == (
            f"0,1 → GPU 0 {A}, GPU 1 {B} · shared knowingly (--share-gpus)")
        assert describe_choice(parse_gpus("all"), [A, "GPU-zz"], gpus, shared=False) == f"all → GPU 0 {A}, GPU ? GPU-zz"
        assert describe_choice(GpuRequest("none"), [], gpus, shared=False) == "none"


class TestOddShapesAndWhereProcessesRun:
    def test_every_source_of_one_inspect_adds_its_gpus_once_and_says_how(self) -> None:
        c = container_gpus({
            "Id": "c1", "Name": "/t", "State": {"Status": "running"},
            "Config": {"Env": ["NVIDIA_VISIBLE_DEVICES= 0, 1 ,", "X=a=b"], "Labels": {"team": 1}},
            "HostConfig": {"Runtime": "nvidia", "DeviceRequests": [
                {"Driver": "nvidia", "DeviceIDs": [1, "GPU-x"]},  # the driver alone says GPU
                {"Count": "2", "Capabilities": [["gpu"]]}],  # a count that is no number asks for none
                "Devices": [{"PathOnHost": "/dev/nvidia1"}, {"PathOnHost": "/dev/nvidia12x"}]}})
        assert c == ContainerGpus(
            "c1", "t", "running", ids=("1", "GPU-x", "0"),
            how="--gpus device=1,GPU-x, nvidia runtime, NVIDIA_VISIBLE_DEVICES=0, 1 ,, /dev/nvidia1",
            labels={"team": "1"})

    @pytest.mark.parametrize("visible", ["none", "void", ""])
    def test_the_nvidia_runtime_with_no_visible_devices_asks_for_none(self, visible: str) -> None:
        c = container_gpus({"HostConfig": {"Runtime": "nvidia"},
                            "Config": {"Env": [f"NVIDIA_VISIBLE_DEVICES={visible}"]}})
        assert c == ContainerGpus("", "", "")

    def test_a_huge_count_names_at_most_1024_gpus(self) -> None:
        c = container_gpus({"HostConfig": {"DeviceRequests": [{"Count": 5000, "Capabilities": [["compute", "gpu"]]}]}})
        assert (len(c.ids), c.ids[-1], c.how) == (1024, "1023", "--gpus 5000 (GPUs 0..4999)")

    def test_a_process_says_where_it_runs_and_how_much_memory_it_uses(self) -> None:
        inventory = Inventory((Gpu(0, "GPU-a", "H"),), (
            GpuProcess("GPU-a", 1, "", None, None),  # a remote nvidia-smi cannot tell
            GpuProcess("GPU-a", 2, "py", 1536 * MIB, "0123456789abcdef"),  # a container not listed
            GpuProcess("GPU-z", 3)))  # a GPU not in the inventory
        assert [h.describe() for h in holders_by_gpu(inventory, [], [])["GPU-a"]] == [
            "pid 1 (?, host pid)", "pid 2 (py, in container 0123456789ab, 1.5 GiB)"]

    @pytest.mark.parametrize(("cgroup", "container"), [
        ("12:devices:/docker/" + "0f" * 32 + "\n", "0f" * 32),  # cgroup v1
        ("0::/system.slice/docker-" + "0f" * 32 + ".scope\n", "0f" * 32),  # v2, systemd driver
        ("0::/docker-" + "0f" * 31 + "0.scope", ""),  # 63 digits
        ("0::/docker-" + "AB" * 32, ""),
        ("0::/kubepods/" + "ab" * 32, ""),
    ])
    def test_the_container_of_a_process_is_read_from_its_cgroup(self, cgroup: str, container: str) -> None:
        assert container_id_from_cgroup(cgroup) == container

    def test_the_stand_in_inventory_reads_both_csvs(self) -> None:
        assert stand_in_inventory('{"gpus": "0, GPU-a, G, 1, 2, 3", "processes": "GPU-a, 9, py, 4"}') == Inventory(
            (Gpu(0, "GPU-a", "G", MIB, 2 * MIB, 3),), (GpuProcess("GPU-a", 9, "py", 4 * MIB),))
        assert stand_in_inventory("{}") == Inventory()

    def test_nvidia_smi_rows_too_short_or_without_a_number_are_skipped(self) -> None:
        inventory = parse_nvidia_smi("x, GPU-a, G, 1, 2, 3\n0, GPU-a, G, 1, 2\n 1 , GPU-b , G , 1.5 , 2 , 3\n",
                                     "GPU-a, x, py, 1\nGPU-a, 3, py\nGPU-a, 4 , py , [N/A]\n")
        assert inventory == Inventory((Gpu(1, "GPU-b", "G", MIB, 2 * MIB, 3),), (GpuProcess("GPU-a", 4, "py"),))


class TestRefusalsWordForWord:
    UNKNOWN_MEMORY = Inventory((Gpu(0, "GPU-a", "H"), Gpu(1, "GPU-b", "H", 80, 80), Gpu(2, "GPU-c", "H")))

    @pytest.mark.parametrize(("request_text", "inventory", "message", "hint", "status"), [
        ("all", Inventory(), "GPUs were requested but this server has none devagent can see",
         "check the NVIDIA driver (nvidia-smi, `devagent gpus`), or run without GPUs: --gpus none",
         ExitStatus.GPU_UNAVAILABLE),
        ("all", Inventory(error="no NVML"), "GPUs were requested but this server has none devagent can see (no NVML)",
         "check the NVIDIA driver (nvidia-smi, `devagent gpus`), or run without GPUs: --gpus none",
         ExitStatus.GPU_UNAVAILABLE),
        ("0,7,9", UNKNOWN_MEMORY, "--gpus 0,7,9: this server has no GPU 7, 9",
         "`devagent gpus` lists its GPUs by index and UUID", ExitStatus.GPU_UNAVAILABLE),
        ("any:4", UNKNOWN_MEMORY, "--gpus any:4: only 3 of 3 GPUs are free",
         "see who holds what with `devagent gpus`; ask for fewer, or wait for a GPU to be released",
         ExitStatus.GPU_BUSY),
    ])
    def test_each_refusal(self, request_text: str, inventory: Inventory, message: str, hint: str,
                          status: ExitStatus) -> None:
        with pytest.raises(DevagentError) as caught:
            choose(parse_gpus(request_text), inventory, {}, share=False)
        assert (caught.value.message, caught.value.hint, caught.value.status) == (message, hint, status)

    def test_no_gpus_asked_needs_no_inventory(self) -> None:
        assert choose(GpuRequest("none"), Inventory(), {}, share=False) == ()

    def test_gpus_of_unknown_memory_come_after_those_with_some_free(self) -> None:
        assert choose(parse_gpus("any:2"), self.UNKNOWN_MEMORY, {}, share=False) == ("GPU-b", "GPU-a")


def test_holders_that_share_knowingly_say_so() -> None:
    lease = Lease("l1", A, "exp", "alice@gpu1", "now", shared=True)
    sharing = {"devagent.share-gpus": "true"}
    containers = [ContainerGpus("c1", "bob-train", "running", ids=("1",), how="--gpus device=1", labels=sharing),
                  ContainerGpus("c2", "bob", "created", ids=("2",),
                                labels={"devagent.managed": "true", "devagent.name": "bob", **sharing})]
    held = holders_by_gpu(INVENTORY, containers, [lease])
    assert [held[A], held[B], held[C]] == [
        [Holder("environment", "exp", "alice@gpu1, since now, shared", shared=True)],
        [Holder("container", "bob-train", "running, --gpus device=1", shared=True)],
        [Holder("environment", "bob", "container bob, created", shared=True)]]


def test_the_last_hour_is_said_after_the_environment_that_recorded_it_and_in_the_json() -> None:
    inventory = Inventory((Gpu(0, "GPU-a", "H200", GIB, 2 * GIB, 3),))
    usage = {"GPU-a": HolderUsage("exp", GpuUsage(2.4, 2700.0, "2026-12-01T10:00:00+00:00"))}
    held = {"GPU-a": [Holder("environment", "exp", "alice"), Holder("environment", "old", "bob"),
                      Holder("container", "exp")]}
    assert render_table(inventory, held, usage=usage) == [
        "GPU  UUID      NAME  MEMORY (GiB)  UTIL  HELD BY",
        "0    GPU-a     H200  1.0 / 2.0       3%  environment exp (alice) · last hour 2%, idle 45m",
        "                                         environment old (bob)",
        "                                         container exp"]
    assert envelope(inventory, {}, 1, usage=usage)["gpus"] == [{
        "index": 0, "uuid": "GPU-a", "name": "H200", "memory_used_bytes": GIB, "memory_total_bytes": 2 * GIB,
        "utilization_percent": 3, "holders": [], "usage": {
            "environment": "exp", "mean_utilization_percent_last_hour": 2.4, "idle_seconds": 2700.0,
            "recorded_at": "2026-12-01T10:00:00+00:00"}}]


def test_every_gpu_request_of_an_inspect_adds_to_the_others() -> None:
    c = container_gpus(inspect({"DeviceRequests": [
        {"Count": 1, "Capabilities": [["tpu"]]}, {"DeviceIDs": ["3"], "Capabilities": [["gpu"]]},
        {"Count": 1, "Capabilities": [["gpu"]]}, {"DeviceIDs": ["5"], "Capabilities": [["gpu"]]}]}))
    assert (c.ids, c.how) == (("3", "0", "5"), "--gpus device=3, --gpus 1 (GPUs 0..0), --gpus device=5")


def test_the_replaced_environment_an_exited_container_and_an_unmanaged_label_each_in_their_place() -> None:
    leases = [Lease("l0", B, "old", "alice@gpu1", "then"), Lease("l1", A, "exp", "alice@gpu1", "now")]
    containers = [ContainerGpus("c0", "gone", "exited", all_gpus=True),
                  ContainerGpus("c9", "old", "running", ids=("1",),
                                labels={"devagent.managed": "true", "devagent.name": "old"}),
                  ContainerGpus("c1", "unmanaged", "running", ids=("2",), how="h", labels={"devagent.name": "x"})]
    held = holders_by_gpu(INVENTORY, containers, leases, ignore_environment="old")
    assert [held[A], held[B], held[C]] == [[Holder("environment", "exp", "alice@gpu1, since now")], [],
                                           [Holder("container", "unmanaged", "running, h")]]
