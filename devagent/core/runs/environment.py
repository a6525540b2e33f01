"""The environment a run saw, as a section may show it: an allow-list of names that shape training (CUDA, NCCL,
torch, seeds, ranks), with any value that looks like a secret redacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase

ENV_ALLOW: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_ORDER", "CUDA_MODULE_LOADING",
    "NVIDIA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
    "NCCL_*", "TORCH_*", "PYTORCH_*", "CUDNN_*", "TORCHINDUCTOR_*", "TORCHELASTIC_*",
    "SEED", "*_SEED",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
    "MASTER_PORT",
    "WANDB_MODE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
)
"""Names a run section may show; ``*`` matches any run of characters (``NCCL_*``, ``*_SEED``)."""

REDACTED = "‹redacted›"
_SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "KEY", "KEYS",
    "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "AUTHORIZATION", "COOKIE", "COOKIES", "PRIVATE",
})
_KNOWN_TOKEN_RE = re.compile(r"(?i)(?:ghp_|gho_|ghs_|ghu_|github_pat_|hf_|sk-|xox[abp]-)[A-Za-z0-9_-]{16,}")
_LONG_TOKEN_RE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


def looks_secret(name: str, value: str) -> bool:
    """Whether an environment variable looks like it holds a secret, by its name or its value.

    >>> looks_secret("HF_TOKEN", "x"), looks_secret("MONKEY_COUNT", "3"), looks_secret("SEED", "hf_" + "a1" * 10)
    (True, False, True)
    >>> looks_secret("TORCH_HOME", "/home/Ana/Projects2024/MyModelCheckpoints/v1")
    False
    """
    if _SECRET_WORDS.intersection(name.upper().split("_")):
        return True
    return bool(_KNOWN_TOKEN_RE.search(value)) or any(
        _random_looking(m.group()) for m in _LONG_TOKEN_RE.finditer(value)
    )


def _random_looking(token: str) -> bool:
    """A long run of letters and digits that mixes upper case, lower case and digits (or is long hex): how API
    keys look. A path's pieces are judged one by one."""
    if token.startswith("/"):
        return any(len(piece) >= 32 and _random_looking(piece) for piece in token.split("/"))
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    has_digit = any(c.isdigit() for c in token)
    hexadecimal = re.fullmatch(r"[0-9a-fA-F]+", token) is not None and has_digit
    return (has_upper and has_lower and has_digit) or hexadecimal


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
