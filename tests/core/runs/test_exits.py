"""How a run ended: exit status, signals, exceptions, CUDA out of memory, NaN losses."""

from __future__ import annotations

import pytest

from devagent.core.runs.exits import NAN_RE, ExitInfo, classify_exit
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

    @pytest.mark.parametrize("line", ["loss=nan", "loss: NaN", "train_loss = inf", "val/loss: -inf",
                                      "{'loss': nan}", "loss: tensor(nan, device='cuda:0')"])
    def test_nan_re_finds_a_loss_that_went_nan(self, line: str) -> None:
        assert NAN_RE.search(line)

    @pytest.mark.parametrize("line", ["loss=0.5", "nan_count=3", "loss: inference", "acc=nan", "accuracy: nan"])
    def test_nan_re_ignores_other_lines(self, line: str) -> None:
        assert NAN_RE.search(line) is None
