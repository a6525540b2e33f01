"""How a run ended: exit status, signals, exceptions, CUDA out of memory, NaN losses."""

from __future__ import annotations

import pytest

from devagent.core.runs.exits import NAN_RE, ExitInfo, classify_exit, distributed_exit, last_exception
from tests.core.runs.samples import TRACEBACK


class TestClassifyExit:
    def test_exit_0_is_a_success(self) -> None:
        assert classify_exit(0, tail=["done"]) == ExitInfo("success", 0, "✅ exit 0", None)

    def test_a_failure_shows_the_exception_line(self) -> None:
        info = classify_exit(1, tail=TRACEBACK)
        assert info == ExitInfo("failure", 1, "❌ exit 1 · ValueError: bad shape torch.Size([64, 3])",
                                "ValueError: bad shape torch.Size([64, 3])")

    def test_the_exception_line_of_the_last_traceback_wins_even_when_it_is_not_an_error_name(self) -> None:
        tail = ["Traceback (most recent call last):", "  File x", "KeyError: 'lr'", "",
                "During handling of the above exception, another exception occurred:", "",
                "Traceback (most recent call last):", "  File y", "mylib.Boom: config broken", "cleanup"]
        assert classify_exit(1, tail=tail).detail == "mylib.Boom: config broken"

    def test_without_a_traceback_the_last_error_looking_line_is_the_detail(self) -> None:
        tail = ["[rank0]: RuntimeError: NCCL timeout", "[rank0]: shutting down"]
        assert classify_exit(1, tail=tail).detail == "RuntimeError: NCCL timeout"

    def test_a_failure_without_an_exception_has_no_detail(self) -> None:
        assert classify_exit(3, tail=["some output"]) == ExitInfo("failure", 3, "❌ exit 3", None)

    def test_an_argparse_usage_error_is_the_detail(self) -> None:
        tail = ["usage: train.py [-h] [--lr LR]", "train.py: error: unrecognized arguments: --lrr 3"]
        assert classify_exit(2, tail=tail).detail == "train.py: error: unrecognized arguments: --lrr 3"

    def test_a_long_exception_is_shortened_in_the_label_and_whole_in_the_detail(self) -> None:
        line = "AssertionError: " + "x" * 300
        info = classify_exit(1, tail=[line])
        assert info.detail == line
        assert info.label == "❌ exit 1 · " + line[:99] + "…"

    def test_sigint_is_interrupted(self) -> None:
        tail = ["Traceback (most recent call last):", "  File x", "KeyboardInterrupt"]
        assert classify_exit(130, tail=tail) == ExitInfo("interrupted", 130, "⛔ interrupted (130)", None)

    def test_sigkill_with_the_oom_killer_says_so(self) -> None:
        info = classify_exit(137, tail=[], oom_killed=True)
        assert info == ExitInfo("killed", 137, "💀 killed (137) · out of memory killer?", None)

    def test_other_signals_are_named(self) -> None:
        assert classify_exit(137, tail=[]).label == "💀 killed (137) · SIGKILL"
        assert classify_exit(143, tail=[]) == ExitInfo("killed", 143, "💀 killed (143) · SIGTERM", None)
        assert classify_exit(129, tail=[]).label == "💀 killed (129) · SIGHUP"

    def test_a_negative_code_from_subprocess_is_taken_as_the_shell_would_report_it(self) -> None:
        assert classify_exit(-9, tail=[]) == ExitInfo("killed", 137, "💀 killed (137) · SIGKILL", None)

    def test_a_code_above_128_that_is_no_signal_is_a_failure(self) -> None:
        assert classify_exit(255, tail=[]).kind == "failure"

    @pytest.mark.parametrize("line", [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB",
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
        "RuntimeError: CUDA out of memory. Tried to allocate 1.50 GiB (GPU 0; 15.78 GiB total capacity)",
        "RuntimeError: CUDA error: out of memory",
    ])
    def test_cuda_out_of_memory_is_its_own_kind(self, line: str) -> None:
        info = classify_exit(1, tail=["Traceback (most recent call last):", "  File x", line])
        assert info == ExitInfo("cuda-oom", 1, "❌ CUDA out of memory", line)

    def test_a_cuda_oom_that_the_script_survived_is_still_a_success(self) -> None:
        assert classify_exit(0, tail=["CUDA out of memory; retrying with batch 32"]).kind == "success"

    def test_a_nan_loss_on_exit_0_is_a_warning(self) -> None:
        info = classify_exit(0, tail=["step 10 loss=0.3", "step 20 loss=nan", "done"], nan_seen=True)
        assert info == ExitInfo("nan", 0, "⚠️ NaN loss", "step 20 loss=nan")

    def test_a_nan_loss_with_a_failure_is_a_failure(self) -> None:
        assert classify_exit(1, tail=TRACEBACK, nan_seen=True).kind == "failure"

    def test_an_unknown_code_is_unknown(self) -> None:
        assert classify_exit(None, tail=[]) == ExitInfo("unknown", None, "exit status unknown", None)

    def test_an_unknown_code_still_names_the_exception_it_saw(self) -> None:
        assert classify_exit(None, tail=TRACEBACK) == ExitInfo(
            "unknown", None, "exit status unknown", "ValueError: bad shape torch.Size([64, 3])")

    def test_a_nan_seen_earlier_than_the_tail_is_a_nan_loss_without_its_line(self) -> None:
        assert classify_exit(0, tail=["step 90 loss=0.2", "done"], nan_seen=True) == (
            ExitInfo("nan", 0, "⚠️ NaN loss", None))

    def test_the_cuda_oom_exception_is_the_detail_even_with_a_later_line_about_it(self) -> None:
        oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
        tail = ["Traceback (most recent call last):", "  File x", oom,
                "hint: CUDA out of memory? try a smaller --batch-size"]
        assert classify_exit(1, tail=tail).detail == oom

    def test_a_cuda_oom_that_is_not_the_exception_is_the_last_line_about_it_without_its_rank(self) -> None:
        # torchrun's own exception ends the output; a rank's out-of-memory error came before it.
        tail = ["[rank1]: RuntimeError: CUDA error: out of memory (first)",
                "[rank1]: RuntimeError: CUDA error: out of memory",
                "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"]
        assert classify_exit(1, tail=tail) == ExitInfo(
            "cuda-oom", 1, "❌ CUDA out of memory", "RuntimeError: CUDA error: out of memory")
        tail = ["CUDA out of memory. Tried to allocate 20.00 MiB", "ValueError: retry failed"]
        assert classify_exit(1, tail=tail).detail == "CUDA out of memory. Tried to allocate 20.00 MiB"
        assert classify_exit(1, tail=["[default0]:CUDA out of memory."]).detail == "CUDA out of memory."

    @pytest.mark.parametrize("line", ["loss=nan", "loss: NaN", "train_loss = inf", "val/loss: -inf",
                                      "{'loss': nan}", "loss: tensor(nan, device='cuda:0')"])
    def test_nan_re_finds_a_loss_that_went_nan(self, line: str) -> None:
        assert NAN_RE.search(line)

    @pytest.mark.parametrize("line", ["loss=0.5", "nan_count=3", "loss: inference", "acc=nan", "accuracy: nan"])
    def test_nan_re_ignores_other_lines(self, line: str) -> None:
        assert NAN_RE.search(line) is None


# --- a distributed run: torchrun's error report names the rank that failed first ---------------------------------


def report(root: tuple[int, int], *others: tuple[int, int]) -> list[str]:
    """torchrun's error report (as ChildFailedError prints it): ROOT first observed, OTHERS under Failures."""
    lines = ["torch.distributed.elastic.multiprocessing.errors.ChildFailedError:", "=" * 20, "t.py FAILED",
             "-" * 20, "Failures:"]
    for i, (rank, code) in enumerate(others, 1):
        lines += [f"[{i}]:", f"  rank      : {rank} (local_rank: {rank})", f"  exitcode  : {code} (pid: 10{i})"]
    lines += ["-" * 20, "Root Cause (first observed failure):", "[0]:",
              f"  rank      : {root[0]} (local_rank: {root[0]})", f"  exitcode  : {root[1]} (pid: 100)", "=" * 20]
    return lines


def raised(rank: int, exception: str) -> list[str]:
    """A traceback in rank RANK's output, with torchrun's per-line prefix."""
    return [f"[rank{rank}]:Traceback (most recent call last):", f'[rank{rank}]:  File "t.py", line 9, in <module>',
            f"[rank{rank}]:{exception}"]


FAILED = ExitInfo("failure", 1, "❌ exit 1 · ChildFailedError:", "ChildFailedError:")
PEER_GONE = "RuntimeError: Connection closed by peer"


class TestDistributedExit:
    def test_the_rank_that_failed_first_is_named_with_its_own_exception_and_the_others_stopped(self) -> None:
        lines = ["[rank0]:step=0 loss=0.79", *raised(1, "ValueError: rank 1 broke"), *report((1, 1), (0, -15))]
        assert distributed_exit(FAILED, lines) == ExitInfo(
            "failure", 1, "❌ exit 1 · rank 1: ValueError: rank 1 broke",
            "rank 1 failed first (exit 1): ValueError: rank 1 broke; rank 0 stopped by the launcher")

    def test_a_run_killed_by_a_signal_is_read_the_same_way(self) -> None:
        killed = ExitInfo("killed", 143, "💀 killed (143) · SIGTERM", None)
        assert distributed_exit(killed, [*raised(0, "KeyError: 'lr'"), *report((0, 1))]) == ExitInfo(
            "failure", 143, "❌ exit 143 · rank 0: KeyError: 'lr'", "rank 0 failed first (exit 1): KeyError: 'lr'")

    @pytest.mark.parametrize("kind", ["success", "interrupted", "cuda-oom", "nan", "unknown"])
    def test_other_endings_are_left_as_they_are_even_beside_a_report(self, kind: str) -> None:
        info = ExitInfo(kind, 0, "label", "detail")
        assert distributed_exit(info, [*raised(1, "ValueError: x"), *report((1, 1))]) is info

    def test_a_failure_without_torchruns_report_is_left_as_it_is(self) -> None:
        assert distributed_exit(FAILED, [*raised(1, "ValueError: x"), "Failures:", "  rank : 1"]) is FAILED

    def test_a_rank_without_an_exception_failed_and_the_launchers_own_lines_are_not_its_output(self) -> None:
        # The launcher's traceback (no rank prefix) is not rank 1's; rank 0's exception is not rank 1's either.
        lines = ["Traceback (most recent call last):", "SystemExit: 1", *raised(0, "KeyError: 'x'"),
                 "[rank1]:step=3", *report((1, 1))]
        assert distributed_exit(FAILED, lines) == ExitInfo(
            "failure", 1, "❌ exit 1 · rank 1 failed", "rank 1 failed first (exit 1)")

    @pytest.mark.parametrize(("code", "said"), [(0, "(exit 0)"), (-9, "(SIGKILL)"), (-99, "(signal 99)")])
    def test_the_first_ranks_exit_code_or_signal(self, code: int, said: str) -> None:
        info = distributed_exit(FAILED, [*raised(2, "ValueError: x"), *report((2, code))])
        assert info.detail == f"rank 2 failed first {said}: ValueError: x"

    def test_every_stopped_rank_is_listed_and_every_rank_that_exited_by_itself(self) -> None:
        lines = [*raised(0, "ValueError: x"), *report((0, 1), (3, -15), (1, 0), (2, -15), (4, 2))]
        assert distributed_exit(FAILED, lines).detail == (
            "rank 0 failed first (exit 1): ValueError: x; ranks 3, 2 stopped by the launcher; "
            "rank 1 exited too (exit 0); rank 4 exited too (exit 2)")

    def test_a_long_exception_is_shortened_in_the_label_and_whole_in_the_detail(self) -> None:
        exception = "ValueError: " + "x" * 200
        info = distributed_exit(FAILED, [*raised(0, exception), *report((0, 1))])
        assert info.label == "❌ exit 1 · rank 0: " + exception[:99] + "…"
        assert info.detail == f"rank 0 failed first (exit 1): {exception}"

    def test_a_rank_that_only_lost_its_peer_gives_way_to_the_one_that_broke(self) -> None:
        # torchrun saw rank 0 go first, but rank 0 only lost rank 1, which raised on its own.
        lines = [*raised(0, PEER_GONE), *raised(1, "ValueError: rank 1 broke"), *report((0, 1), (1, 1))]
        assert distributed_exit(FAILED, lines) == ExitInfo(
            "failure", 1, "❌ exit 1 · rank 1: ValueError: rank 1 broke",
            "rank 1 failed first (exit 1): ValueError: rank 1 broke; rank 0 exited too (exit 1)")

    @pytest.mark.parametrize(("code", "first"), [(0, "rank 1 failed first (exit 0)"), (-15, "rank 1 failed first")])
    def test_the_rank_that_broke_keeps_its_exit_code_but_not_the_launchers_signal(self, code: int,
                                                                                  first: str) -> None:
        lines = [*raised(0, PEER_GONE), *raised(1, "ValueError: x"), *report((0, -15), (1, code))]
        assert distributed_exit(FAILED, lines).detail == (
            f"{first}: ValueError: x; rank 0 stopped by the launcher")

    def test_the_others_are_searched_in_order_past_those_that_also_only_lost_a_peer(self) -> None:
        lines = [*raised(0, "DistNetworkError: remote worker crash"), *raised(1, "RuntimeError: Broken pipe"),
                 *raised(2, "ValueError: rank 2 broke"), *raised(3, "ValueError: rank 3 broke"),
                 *report((0, 1), (1, 1), (2, 1), (3, 1))]
        assert distributed_exit(FAILED, lines).detail == (
            "rank 2 failed first (exit 1): ValueError: rank 2 broke; rank 0 exited too (exit 1); "
            "rank 1 exited too (exit 1); rank 3 exited too (exit 1)")

    def test_when_every_rank_only_lost_a_peer_the_first_observed_stays(self) -> None:
        lines = [*raised(0, PEER_GONE), *raised(1, "RuntimeError: NCCL communicator was aborted"),
                 "[rank2]:step=1", *report((0, 1), (1, 1), (2, -15))]
        assert distributed_exit(FAILED, lines).detail == (
            f"rank 0 failed first (exit 1): {PEER_GONE}; rank 2 stopped by the launcher; rank 1 exited too (exit 1)")

    def test_ranks_that_printed_nothing_have_no_exception(self) -> None:
        # rank 1 was killed before it printed a line; rank 2, which torchrun saw go, printed nothing either.
        assert distributed_exit(FAILED, ["[rank0]:step=1", *report((1, -9), (2, -15))]) == ExitInfo(
            "failure", 1, "❌ exit 1 · rank 1 failed", "rank 1 failed first (SIGKILL); rank 2 stopped by the launcher")
        lines = [*raised(0, PEER_GONE), *report((0, 1), (2, -15))]
        assert distributed_exit(FAILED, lines).detail == (
            f"rank 0 failed first (exit 1): {PEER_GONE}; rank 2 stopped by the launcher")


class TestLastException:
    def test_the_exception_right_after_the_traceback_line_counts_when_the_frames_were_cut(self) -> None:
        assert last_exception(["Traceback (most recent call last):", "mypkg.Boom: it broke"]) == "mypkg.Boom: it broke"

    def test_a_line_starting_with_traceback_is_never_the_exception(self) -> None:
        tail = ["Traceback (most recent call last):", '  File "t.py", line 3', "Traceback: printed by the script",
                "mypkg.Boom: it broke"]
        assert last_exception(tail) == "mypkg.Boom: it broke"

    def test_rank_prefixes_are_left_out(self) -> None:
        tail = ["[rank0]:Traceback (most recent call last):", '[rank0]:  File "t.py", line 3', "[rank0]:mypkg.Boom: x"]
        assert last_exception(tail) == "mypkg.Boom: x"
        assert last_exception(["[rank3]: KeyError: 'lr'", "[rank3]: exiting"]) == "KeyError: 'lr'"

    def test_without_a_traceback_or_an_error_shaped_line_there_is_none(self) -> None:
        assert last_exception(["mypkg.Boom: it broke", "done"]) is None
        assert last_exception([]) is None
