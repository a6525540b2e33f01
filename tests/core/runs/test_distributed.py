"""A distributed run's shape, effective batch, rank prefixes and torchrun's error report
(devagent/core/runs/distributed.py), pure: argv, environment and text in, data out. Real two-process runs are
in tests/runs/test_distributed.py."""

from __future__ import annotations

import pytest

from devagent.core.runs.distributed import (
    EffectiveBatch,
    Launch,
    RankFailure,
    effective_batch,
    launcher_args,
    merge_rank_lines,
    parse_launch,
    split_rank,
    torchrun_failure,
)


@pytest.mark.parametrize(("argv", "environ", "shape"), [
    (["torchrun", "--nproc-per-node=2", "t.py"], {}, ("torchrun", 2, 1, 2)),
    (["torchrun", "--nproc_per_node", "4", "--nnodes", "1:2", "t.py", "--nnodes", "9"], {},
     ("torchrun", 4, 2, 8)),
    (["torchrun", "t.py"], {"PET_NPROC_PER_NODE": "3"}, ("torchrun", 3, 1, 3)),
    (["python3", "-m", "torch.distributed.run", "--nproc-per-node", "2", "t.py"], {}, ("torchrun", 2, 1, 2)),
    (["/venv/bin/python", "/venv/bin/torchrun", "--nproc-per-node", "2", "t.py"], {}, ("torchrun", 2, 1, 2)),
    (["accelerate", "launch", "--num_processes", "4", "--num_machines", "2", "t.py"], {},
     ("accelerate launch", None, 2, 4)),
    (["deepspeed", "--num_gpus", "2", "t.py"], {}, ("deepspeed", 2, 1, 2)),
    (["torchrun", "--rdzv-backend", "c10d", "--standalone", "--nproc-per-node", "2", "t.py"], {},
     ("torchrun", 2, 1, 2)),
    (["python", "t.py"], {"WORLD_SIZE": "2", "RANK": "0"}, ("environment", None, None, 2)),
])
def test_launch_shape(argv: list[str], environ: dict[str, str], shape: tuple[object, ...]) -> None:
    launch = parse_launch(argv, environ)
    assert launch is not None
    assert (launch.launcher, launch.nproc_per_node, launch.nnodes, launch.world_size) == shape


def test_not_distributed() -> None:
    assert parse_launch(["python", "t.py", "--nproc-per-node", "2"], {}) is None
    assert parse_launch(["python", "t.py"], {"WORLD_SIZE": "1"}) is None


def test_backend_from_arguments_or_source() -> None:
    argv = ["torchrun", "--nproc-per-node=2", "t.py"]
    assert parse_launch(argv, {}, script_args=["--backend", "nccl"]).backend == "nccl"  # type: ignore[union-attr]
    source = 'dist.init_process_group(backend="gloo")\n'
    assert parse_launch(argv, {}, script_source=source).backend == "gloo"  # type: ignore[union-attr]
    assert parse_launch(argv, {}).backend is None  # type: ignore[union-attr]


def test_effective_batch_with_accumulation_and_what_is_missing() -> None:
    assert effective_batch({"batch_size": "64", "gradient_accumulation_steps": "4"}, 2).describe() == (
        "64 per process × 2 processes × 4 accumulation steps = 512")
    assert effective_batch({"per_device_train_batch_size": "8"}, 8).total == 64
    assert effective_batch({"lr": "0.1"}, None).describe() == (
        "not known: no batch-size argument in the command (--batch-size, --per-device-train-batch-size, …); "
        "the launcher does not say how many processes")


@pytest.mark.parametrize(("launch", "world_size", "multi_node", "rendezvous"), [
    (Launch("environment", world=6, nproc_per_node=2, nnodes=4), 6, True, None),  # given outright wins
    (Launch("torchrun", nproc_per_node=2), 2, False, None),
    (Launch("torchrun", nproc_per_node=2, nnodes=3, rdzv_id="j7", rdzv_endpoint="h:29400",
            master_addr_port=("10.0.0.1", "29500")), 6, True, "j7@h:29400"),
    (Launch("torchrun", nnodes=2, master_addr_port=("10.0.0.1", "29500")), None, True, "none@10.0.0.1:29500"),
    (Launch("torchrun", nnodes=2, master_addr_port=("10.0.0.1", None)), None, True, "none@10.0.0.1"),
    (Launch("torchrun", nnodes=2, rdzv_id="j7", master_addr_port=(None, "29500")), None, True, "j7@?"),
    (Launch("torchrun", nnodes=2), None, True, None),
    (Launch("torchrun", nnodes=1, rdzv_id="j7"), None, False, None),  # one node joins nobody
])
def test_a_launchs_world_size_and_rendezvous(launch: Launch, world_size: int | None, multi_node: bool,
                                             rendezvous: str | None) -> None:
    assert (launch.world_size, launch.multi_node, launch.rendezvous) == (world_size, multi_node, rendezvous)


def test_a_launch_as_json() -> None:
    launch = Launch("torchrun", nproc_per_node=2, nnodes=2, node_rank=1, rdzv_id="j7", rdzv_endpoint="h:1",
                    backend="nccl")
    assert launch.to_json() == {"launcher": "torchrun", "nproc_per_node": 2, "nnodes": 2, "node_rank": 1,
                                "world_size": 4, "rendezvous": "j7@h:1", "backend": "nccl"}


@pytest.mark.parametrize(("argv", "found"), [
    (["/opt/venv/bin/torchrun", "--nnodes", "2", "t.py"], ("torchrun", ["--nnodes", "2", "t.py"])),
    (["deepspeed", "t.py"], ("deepspeed", ["t.py"])),
    (["accelerate", "launch"], ("accelerate launch", [])),
    (["python3.11", "-u", "-m", "torch.distributed.launch", "t.py"], ("torchrun", ["t.py"])),
    (["python", "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "t.py"],
     ("deepspeed", ["--num_gpus", "2", "t.py"])),
    (["python", "/venv/bin/deepspeed", "t.py"], ("deepspeed", ["t.py"])),
    (["python", "-m", "torch.distributed.run"], ("torchrun", [])),
    (["python", "-m", "deepspeed.launcher.runner"], ("deepspeed", [])),
    ([], None), (["accelerate"], None), (["accelerate", "config"], None), (["python", "-m"], None),
    (["python", "-m", "torch.utils.bottleneck", "t.py"], None), (["python", "-u"], None),
    (["python", "-m", "t"], None), (["bash", "-m", "torch.distributed.run"], None),
])
def test_which_launcher_a_command_line_starts_with(argv: list[str],
                                                   found: tuple[str, list[str]] | None) -> None:
    assert launcher_args(argv) == found


def test_a_run_launched_by_its_environment_takes_its_shape_from_there() -> None:
    launch = parse_launch(["python", "t.py"], {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_WORLD_SIZE": "2"},
                          script_args=["--backend", "gloo"])
    assert launch == Launch("environment", world=4, rank=3, nproc_per_node=2, backend="gloo")
    assert parse_launch(["python", "t.py"], {"WORLD_SIZE": "four"}) is None
    assert parse_launch(["python", "t.py"], {"WORLD_SIZE": "2", "RANK": "x"}) == Launch("environment", world=2)


def test_torchrun_reads_pet_variables_for_the_options_not_given() -> None:
    environ = {"PET_NNODES": "2", "PET_NODE_RANK": "1", "PET_RDZV_ID": "j7", "PET_RDZV_ENDPOINT": "h:29400",
               "PET_MASTER_ADDR": "10.0.0.1", "PET_MASTER_PORT": "29500", "PET_NPROC_PER_NODE": "8"}
    assert parse_launch(["torchrun", "--nproc-per-node", "2", "t.py"], environ) == Launch(
        "torchrun", nproc_per_node=2, nnodes=2, node_rank=1, rdzv_id="j7", rdzv_endpoint="h:29400",
        master_addr_port=("10.0.0.1", "29500"))


@pytest.mark.parametrize("nproc", ["auto", "gpu", "cpu"])
def test_one_process_per_gpu_or_cpu_is_known_only_on_the_node(nproc: str) -> None:
    launch = parse_launch(["torchrun", f"--nproc-per-node={nproc}", "t.py"], {})
    assert launch is not None and (launch.nproc_per_node, launch.world_size) == (None, None)


def test_accelerate_and_deepspeed_options_name_the_shape() -> None:
    assert parse_launch(["accelerate", "launch", "--num_processes=8", "--num-machines", "2", "--machine_rank", "1",
                         "--main_process_ip", "10.0.0.1", "--main_process_port", "29500", "t.py"], {}) == Launch(
        "accelerate launch", nnodes=2, node_rank=1, world=8, master_addr_port=("10.0.0.1", "29500"))
    assert parse_launch(["deepspeed", "--num_gpus", "4", "--num_nodes", "2", "--node_rank", "0", "--master_addr",
                         "h", "--master_port", "1", "t.py"], {}) == Launch(
        "deepspeed", nproc_per_node=4, nnodes=2, node_rank=0, master_addr_port=("h", "1"))


@pytest.mark.parametrize(("argv", "nproc", "nnodes"), [
    (["torchrun", "--nnodes", "", "t.py"], None, 1),  # an empty count: one node
    (["torchrun", "--nnodes=1:4", "t.py"], None, 4),  # elastic: at most 4
    (["torchrun", "--nproc-per-node"], None, 1),  # the option is the last word: no value
    (["torchrun", "--no-python", "--nproc-per-node", "2", "t.py"], 2, 1),  # a flag takes no value
    (["torchrun", "--log-dir", "/tmp/l", "--nproc-per-node", "2", "t.py"], 2, 1),  # another option's value
    (["torchrun", "--log-dir=/tmp/l", "--nproc-per-node", "2", "t.py"], 2, 1),
    (["torchrun", "--log-dir", "--nproc-per-node", "2", "t.py"], 2, 1),  # an option is no value
    (["torchrun", "t.py", "--nproc-per-node", "2"], None, 1),  # the script's own options
])
def test_the_launchers_own_options_end_at_the_script(argv: list[str], nproc: int | None, nnodes: int) -> None:
    launch = parse_launch(argv, {})
    assert launch is not None and (launch.nproc_per_node, launch.nnodes) == (nproc, nnodes)


@pytest.mark.parametrize(("script_args", "source", "backend"), [
    (["--dist-backend", "nccl"], None, "nccl"),
    (["--ddp_backend=gloo", "--backend", "nccl"], None, "nccl"),  # the first name of the list that is given
    (["--distributed-backend", "mpi"], "init_process_group('gloo')", "mpi"),  # the arguments win
    (["--backend="], "init_process_group('gloo')", "gloo"),  # an empty one says nothing
    ([], 'dist.init_process_group(\n    backend="nccl", init_method="env://")', "nccl"),
    ([], "init_process_group(backend=backend)", None),
])
def test_the_backend_from_the_scripts_arguments_or_its_source(script_args: list[str], source: str | None,
                                                               backend: str | None) -> None:
    launch = parse_launch(["torchrun", "t.py"], {}, script_args=script_args, script_source=source)
    assert launch is not None and launch.backend == backend


@pytest.mark.parametrize(("hparams", "world", "text"), [
    ({"batch_size": "16", "grad_accum": "1"}, 4, "16 per process × 4 processes × 1 accumulation step = 64"),
    ({"batch-size": " 32 ", "accum_steps": "2"}, 2, "32 per process × 2 processes × 2 accumulation steps = 128"),
    ({"batch_size": "0", "bs": "8"}, 1,
     "8 per process × 1 processes = 8 (no gradient accumulation argument: 1 step assumed)"),
    ({"batch_size": "-4", "micro_batch_size": "x", "train_batch_size": "12"}, 2,
     "12 per process × 2 processes = 24 (no gradient accumulation argument: 1 step assumed)"),
    ({"batch_size": "8", "gradient_accumulation_steps": "0"}, 2,
     "8 per process × 2 processes = 16 (no gradient accumulation argument: 1 step assumed)"),
    ({"batch_size": "8"}, None, "not known: the launcher does not say how many processes"),
])
def test_the_effective_batch_in_words(hparams: dict[str, str], world: int | None, text: str) -> None:
    assert effective_batch(hparams, world).describe() == text


def test_the_effective_batch_in_numbers() -> None:
    batch = effective_batch({"batch_size": "8", "accumulate_grad_batches": "4"}, 2)
    assert batch == EffectiveBatch(8, 2, 4, True, ())
    assert (batch.total, EffectiveBatch(None, 2, 1, False, ()).total, EffectiveBatch(8, None, 1, False, ()).total) == (
        64, None, None)


@pytest.mark.parametrize(("line", "split"), [
    ("[rank0]: x", (0, "x")), ("[default12]:x", (12, "x")), ("[rank1]:[rank1]:  y", (1, " y")),
    ("[rank2]:[default0]: z", (0, "z")), ("no rank", (None, "no rank")), (" [rank0]: x", (None, " [rank0]: x")),
    ("[worker0]: x", (None, "[worker0]: x")),
])
def test_the_rank_prefix_of_a_line(line: str, split: tuple[int | None, str]) -> None:
    assert split_rank(line) == split


def test_merged_lines_show_each_line_once_with_the_ranks_that_printed_it() -> None:
    assert merge_rank_lines(["[rank0]:a", "[rank1]:b", "[rank2]:b", "[rank1]:a", "[rank2]:a", "launcher",
                             "[rank0]:a"]) == ["a", "[rank 1, 2] b", "launcher", "[rank 0] a"]
    assert merge_rank_lines(["[rank2]:x", "[rank0]:x", "[rank1]:y"]) == ["[rank 0, 2] x", "[rank 1] y"]
    assert merge_rank_lines(["plain"]) == ["plain"]


REPORT_LINES = ["Failures:", "[1]:", "  rank      : 0 (local_rank: 0)", "  exitcode  : -15 (pid: 9)",
                "[2]:", "  rank      : 2 (local_rank: 0)", "  exitcode  : 1 (pid: 10)",
                "Root Cause (first observed failure):", "[0]:", "  rank      : 1 (local_rank: 1)",
                "  exitcode  : 1 (pid: 8)"]


def test_torchrun_reports_the_first_failure_and_the_others() -> None:
    assert torchrun_failure(REPORT_LINES) == RankFailure(1, 1, ((0, -15), (2, 1)))
    # a rank listed under Failures and as the root cause is not another failure
    assert torchrun_failure(["Failures:", "  rank      : 2 (x)", "  exitcode  : 1 (y)", "  rank      : 1 (x)",
                             "  exitcode  : -15 (y)", "Root Cause (first observed failure):",
                             "  rank      : 2 (x)", "  exitcode  : 1 (y)"]) == RankFailure(2, 1, ((1, -15),))


@pytest.mark.parametrize("lines", [
    [],
    REPORT_LINES[:7],  # no root cause
    ["Root Cause (first observed failure):", "  exitcode  : 1 (pid: 8)", "  rank      : 1 (local_rank: 1)"],
    ["Root Cause (first observed failure):", "  rank      : 1 (x)", "Failures:", "  exitcode  : 1 (y)"],
    ["  rank      : 1 (x)", "  exitcode  : 1 (y)"],  # before any heading: not the root cause
])
def test_no_failure_without_a_root_cause_with_its_rank_then_exit_code(lines: list[str]) -> None:
    assert torchrun_failure(lines) is None
