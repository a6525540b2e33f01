"""The environment a run saw, as a section may show it: an allow-list of names that shape training (CUDA, NCCL,
torch, seeds, ranks), with any value that looks like a secret redacted (``secrets.looks_secret``: the same
judgement as for the command line and the hyperparameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from devagent.core.runs.secrets import REDACTED, looks_secret

ENV_ALLOW: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_ORDER", "CUDA_MODULE_LOADING",
    "NVIDIA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
    "NCCL_*", "TORCH_*", "PYTORCH_*", "CUDNN_*", "TORCHINDUCTOR_*", "TORCHELASTIC_*",
    "SEED", "*_SEED",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
    "MASTER_PORT",
    "WANDB_MODE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
    "SLURM_JOB_ID", "SLURMD_NODENAME", "SLURM_JOB_PARTITION",  # an environment in a Slurm job: which, where
)
"""Names a run section may show; ``*`` matches any run of characters (``NCCL_*``, ``*_SEED``)."""


def allowed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ENVIRON, sorted by name, with secret-looking values replaced by ``‹redacted›``.

    >>> allowed_env({"HOME": "/root", "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_AUTH_TOKEN": "x", "SEED": "3"})
    {'CUDA_VISIBLE_DEVICES': '0,1', 'NCCL_AUTH_TOKEN': '‹redacted›', 'SEED': '3'}
    """
    return {
        name: REDACTED if looks_secret(name, value) else value
        for name, value in sorted(environ.items())
        if any(fnmatchcase(name, pattern) for pattern in ENV_ALLOW)
    }
