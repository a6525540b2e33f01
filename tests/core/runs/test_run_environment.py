"""The environment a run saw: the allow-list and secret redaction."""

from __future__ import annotations

import pytest

from devagent.core.runs.run_environment import allowed_env


class TestAllowedEnv:
    def test_only_allow_listed_names_sorted(self) -> None:
        env = {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "0,1",
               "NCCL_DEBUG": "INFO", "TORCH_HOME": "/home/Ana/.cache/torch", "DATA_SEED": "7", "SEED": "1",
               "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "WANDB_API_KEY": "abc", "LOCAL_RANK": "0"}
        assert allowed_env(env) == {
            "CUDA_VISIBLE_DEVICES": "0,1", "DATA_SEED": "7", "LOCAL_RANK": "0", "NCCL_DEBUG": "INFO",
            "OMP_NUM_THREADS": "8", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "SEED": "1",
            "TORCH_HOME": "/home/Ana/.cache/torch",
        }

    @pytest.mark.parametrize("name", ["TORCH_AUTH_TOKEN", "NCCL_SECRET", "TORCH_HUB_PASSWORD", "PYTORCH_API_KEY",
                                      "TORCH_CREDENTIALS", "NCCL_PRIVATE_KEYS", "TORCH_COOKIE"])
    def test_values_under_secret_looking_names_are_redacted(self, name: str) -> None:
        assert allowed_env({name: "hunter2"}) == {name: "‹redacted›"}

    def test_key_inside_a_word_is_not_a_secret_name(self) -> None:
        assert allowed_env({"TORCH_MONKEY_PATCH": "1", "NCCL_KEYRING_MODE": "2"}) == {
            "TORCH_MONKEY_PATCH": "1", "NCCL_KEYRING_MODE": "2"}

    @pytest.mark.parametrize("value", [
        "ghp_" + "A1b2C3d4E5f6G7h8I9j0", "hf_abcdefghijklmnopqrstuvwxyz", "sk-proj1234567890abcdefXYZ",
        "Bearer eyJhbGciOiJIUzI1NiJ9aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", "3f2a9c1e" * 5,
    ])
    def test_secret_looking_values_are_redacted_even_under_allowed_names(self, value: str) -> None:
        assert allowed_env({"SEED": value, "NCCL_DEBUG": "WARN"}) == {"NCCL_DEBUG": "WARN", "SEED": "‹redacted›"}

    @pytest.mark.parametrize("value", [
        "/workspace/outputs/2024-11-27_14-02-59/checkpoints", "/home/Ana/Projects2024/MyModelCheckpoints/v1",
        "b1ee1ba9-58fe-44f5-a572-4966b6e83c38", "expandable_segments_true_max_split_size_mb",
    ])
    def test_paths_run_ids_and_settings_are_not_secrets(self, value: str) -> None:
        assert allowed_env({"TORCH_X": value}) == {"TORCH_X": value}
