"""Distributed runs: what a launcher's command line (``torchrun``, ``python -m torch.distributed.run``,
``accelerate launch``, ``deepspeed``) or a rank's environment (``WORLD_SIZE``) says about the run's shape, the
effective batch size, and the rank each output line came from. Pure: argv, environment and text in, data out.

>>> launch = parse_launch(["torchrun", "--nproc-per-node=2", "train.py", "--batch-size", "64"], {})
>>> launch.launcher, launch.nproc_per_node, launch.nnodes, launch.world_size
('torchrun', 2, 1, 2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# torch.distributed.launch is the old name of torchrun; elastic_launch users call it through these too.
_TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")
# Launcher options (both spellings) → Launch field. accelerate's --num_processes is the world size, not per node.
_TORCHRUN_OPTIONS = {
    "nproc_per_node": "nproc_per_node", "nnodes": "nnodes", "node_rank": "node_rank", "rdzv_id": "rdzv_id",
    "rdzv_endpoint": "rdzv_endpoint", "master_addr": "master_addr", "master_port": "master_port",
}
_ACCELERATE_OPTIONS = {
    "num_processes": "world", "num_machines": "nnodes", "machine_rank": "node_rank",
    "main_process_ip": "master_addr", "main_process_port": "master_port",
}
_DEEPSPEED_OPTIONS = {"num_gpus": "nproc_per_node", "num_nodes": "nnodes", "node_rank": "node_rank",
                      "master_addr": "master_addr", "master_port": "master_port"}
# Launcher options that take no value: the word after them is the script.
_FLAGS = frozenset({"standalone", "no_python", "module", "m", "run_path", "use_env", "multi_gpu", "cpu",
                    "use_deepspeed", "use_fsdp", "debug", "no_local_rank", "autotuning"})
_BACKEND_OPTIONS = ("backend", "dist_backend", "ddp_backend", "distributed_backend")
_BACKEND_IN_SOURCE = re.compile(r"init_process_group\(\s*(?:backend\s*=\s*)?[\"'](\w+)[\"']")
BATCH_NAMES = ("batch_size", "per_device_train_batch_size", "train_batch_size", "micro_batch_size", "bs")
ACCUMULATION_NAMES = ("gradient_accumulation_steps", "grad_accum_steps", "grad_accum", "accumulate_grad_batches",
                      "accum_steps", "accumulation_steps")
# A worker's prefix ``[rank3]:``, which devagent writes for a one-node torchrun (runs/rank_logs.py) and has
# torchrun's ``--tee`` write elsewhere (TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE; torch's own excepthook adds a
# second one), or torchrun's default ``[default3]:`` (role and local rank).
RANK_PREFIX_RE = re.compile(r"^\[(rank|default)(\d+)\]:\s?")
# Lines of torchrun's error report ("rank : 1 (local_rank: 1)", "exitcode : 1 (pid: …)"): never metrics.
REPORT_LINE_RE = re.compile(r"^\s*(?:time|host|rank|exitcode|error_file|traceback)\s+:\s")
RANK_TEMPLATE = "[rank${rank}]:"


@dataclass(frozen=True)
class Launch:
    """The shape of a distributed run as its launcher or environment gives it; None where it does not say."""

    launcher: str  # "torchrun", "accelerate launch", "deepspeed", or "environment" (WORLD_SIZE set by someone)
    nproc_per_node: int | None = None
    nnodes: int | None = None
    node_rank: int | None = None
    world: int | None = None  # given outright (accelerate's --num_processes, WORLD_SIZE)
    rank: int | None = None  # the process's own rank, for a run launched by the environment
    rdzv_id: str | None = None
    rdzv_endpoint: str | None = None
    backend: str | None = None
    master_addr_port: tuple[str | None, str | None] = (None, None)

    @property
    def world_size(self) -> int | None:
        if self.world is not None:
            return self.world
        if self.nproc_per_node is not None:
            return self.nproc_per_node * (self.nnodes or 1)
        return None

    @property
    def multi_node(self) -> bool:
        return (self.nnodes or 1) > 1

    @property
    def rendezvous(self) -> str | None:
        """What names the job all nodes join: the rendezvous id and endpoint (or master address)."""
        if not self.multi_node:
            return None
        endpoint = self.rdzv_endpoint or _join(self.master_addr_port)
        if self.rdzv_id is None and endpoint is None:
            return None
        return f"{self.rdzv_id or 'none'}@{endpoint or '?'}"

    def to_json(self) -> dict[str, object]:
        return {"launcher": self.launcher, "nproc_per_node": self.nproc_per_node, "nnodes": self.nnodes,
                "node_rank": self.node_rank, "world_size": self.world_size, "rendezvous": self.rendezvous,
                "backend": self.backend}


def _join(pair: tuple[str | None, str | None]) -> str | None:
    addr, port = pair
    if addr is None:
        return None
    return f"{addr}:{port}" if port else addr


def launcher_args(argv: Sequence[str]) -> tuple[str, list[str]] | None:  # noqa: PLR0911 - one per launcher
    """The launcher ARGV starts with and the words after its name, or None when it is not a known launcher.

    >>> launcher_args(["python", "-m", "torch.distributed.run", "--nnodes", "2", "t.py"])
    ('torchrun', ['--nnodes', '2', 't.py'])
    >>> launcher_args(["accelerate", "launch", "t.py"]), launcher_args(["python", "t.py"])
    (('accelerate launch', ['t.py']), None)
    """
    if not argv:
        return None
    name = argv[0].rsplit("/", 1)[-1]
    if name == "torchrun":
        return "torchrun", list(argv[1:])
    if name == "deepspeed":
        return "deepspeed", list(argv[1:])
    if name == "accelerate" and len(argv) > 1 and argv[1] == "launch":
        return "accelerate launch", list(argv[2:])
    if name.startswith("python"):
        words = list(argv[1:])
        while words and words[0].startswith("-") and words[0] != "-m":
            words.pop(0)
        if len(words) > 1 and words[0] == "-m" and words[1] in _TORCHRUN_MODULES:
            return "torchrun", words[2:]
        if len(words) > 1 and words[0] == "-m" and words[1] == "deepspeed.launcher.runner":
            return "deepspeed", words[2:]
        if words and words[0].rsplit("/", 1)[-1] in ("torchrun", "deepspeed"):  # python /venv/bin/torchrun
            return launcher_args(words)
    return None


def parse_launch(argv: Sequence[str], environ: Mapping[str, str], *, script_args: Sequence[str] = (),
                 script_source: str | None = None) -> Launch | None:
    """The distributed shape of the command ARGV run with ENVIRON, or None when it is not a distributed run.

    SCRIPT_ARGS (the words after the script) and SCRIPT_SOURCE name the backend where the launcher does not.

    >>> parse_launch(["python", "t.py"], {"WORLD_SIZE": "4", "RANK": "0"}).world_size
    4
    >>> parse_launch(["python", "t.py"], {}) is None, parse_launch(["python", "t.py"], {"WORLD_SIZE": "1"}) is None
    (True, True)
    >>> parse_launch(["torchrun", "--nnodes", "2", "--nproc_per_node", "2", "--node-rank=1", "--rdzv-id", "j7",
    ...               "--rdzv-endpoint", "127.0.0.1:29400", "t.py"], {}).rendezvous
    'j7@127.0.0.1:29400'
    """
    found = launcher_args(argv)
    backend = _backend(script_args, script_source)
    if found is None:
        world = _int(environ.get("WORLD_SIZE"))
        if world is None or world < 2:
            return None
        return Launch("environment", world=world, rank=_int(environ.get("RANK")),
                      nproc_per_node=_int(environ.get("LOCAL_WORLD_SIZE")), backend=backend)
    launcher, words = found
    table = {"torchrun": _TORCHRUN_OPTIONS, "accelerate launch": _ACCELERATE_OPTIONS,
             "deepspeed": _DEEPSPEED_OPTIONS}[launcher]
    values = _options(words, table)
    if launcher == "torchrun":  # torchrun reads PET_<OPTION> for an option not given
        for option, target in table.items():
            values.setdefault(target, environ.get(f"PET_{option.upper()}"))
    return Launch(  # torchrun's --nproc-per-node auto, gpu or cpu (one per GPU or CPU, known only on the node): None
        launcher, nproc_per_node=_int(values.get("nproc_per_node")),
        nnodes=_int((values.get("nnodes") or "").split(":")[-1] or None) or 1,
        node_rank=_int(values.get("node_rank")), world=_int(values.get("world")),
        rdzv_id=values.get("rdzv_id"), rdzv_endpoint=values.get("rdzv_endpoint"), backend=backend,
        master_addr_port=(values.get("master_addr"), values.get("master_port")),
    )


def _options(words: Sequence[str], table: Mapping[str, str]) -> dict[str, str | None]:
    """The launcher's own options in WORDS (up to the script), ``--a-b`` and ``--a_b`` alike."""
    values: dict[str, str | None] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            break  # the script: what follows is its own
        name, eq, inline = word.lstrip("-").partition("=")
        key = name.replace("-", "_")
        if key in table:
            if eq:
                values[table[key]] = inline
            elif i + 1 < len(words):
                values[table[key]] = words[i + 1]
                i += 1
        elif not eq and key not in _FLAGS and i + 1 < len(words) and not words[i + 1].startswith("-"):
            i += 1  # another option's value (--rdzv-backend c10d): not the script
        i += 1
    return values


def _backend(script_args: Sequence[str], source: str | None) -> str | None:
    values = _options(script_args, {n: n for n in _BACKEND_OPTIONS})
    for name in _BACKEND_OPTIONS:
        if values.get(name):
            return values[name]
    match = _BACKEND_IN_SOURCE.search(source or "")
    return match.group(1) if match else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class EffectiveBatch:
    """Per-process batch × world size × accumulation steps; MISSING names what was not found."""

    batch: int | None
    world: int | None
    accumulation: int
    accumulation_named: bool
    missing: tuple[str, ...]

    @property
    def total(self) -> int | None:
        if self.batch is None or self.world is None:
            return None
        return self.batch * self.world * self.accumulation

    def describe(self) -> str:
        """``64 per process × 2 processes × 4 accumulation steps = 512``, or what is missing.

        >>> effective_batch({"batch_size": "64"}, 2).describe()
        '64 per process × 2 processes = 128 (no gradient accumulation argument: 1 step assumed)'
        >>> effective_batch({"lr": "1"}, 2).describe()
        'not known: no batch-size argument in the command (--batch-size, --per-device-train-batch-size, …)'
        """
        if self.total is None:
            return "not known: " + "; ".join(self.missing)
        text = f"{self.batch} per process × {self.world} processes"
        if self.accumulation_named:
            text += f" × {self.accumulation} accumulation step{'s' if self.accumulation != 1 else ''}"
        text += f" = {self.total}"
        if not self.accumulation_named:
            text += " (no gradient accumulation argument: 1 step assumed)"
        return text


def effective_batch(hparams: Mapping[str, str], world: int | None) -> EffectiveBatch:
    """The effective batch from the script's arguments (HPARAMS, by argparse dest) and the world size."""
    missing = []
    batch = _first_positive(hparams, BATCH_NAMES)
    if batch is None:
        missing.append("no batch-size argument in the command (--batch-size, --per-device-train-batch-size, …)")
    if world is None:
        missing.append("the launcher does not say how many processes")
    accumulation = _first_positive(hparams, ACCUMULATION_NAMES)
    return EffectiveBatch(batch, world, accumulation or 1, accumulation is not None, tuple(missing))


def _first_positive(hparams: Mapping[str, str], names: Sequence[str]) -> int | None:
    for name in names:
        value = _int((hparams.get(name) or hparams.get(name.replace("_", "-")) or "").strip() or None)
        if value is not None and value > 0:
            return value
    return None


def split_rank(line: str) -> tuple[int | None, str]:
    """The rank a worker's output LINE came from (its prefix, repeated or not) and the line without it.

    >>> split_rank("[rank1]:[rank1]: ValueError: boom"), split_rank("W1207 torchrun note")
    ((1, 'ValueError: boom'), (None, 'W1207 torchrun note'))
    """
    rank = None
    while True:
        match = RANK_PREFIX_RE.match(line)
        if match is None:
            return rank, line
        rank = int(match.group(2))
        line = line[match.end():]


def merge_rank_lines(lines: Sequence[str]) -> list[str]:
    """LINES as the section's tail shows them: a line every rank printed alike once, without a prefix; a line
    some ranks printed with theirs (``[rank 1] ValueError: …``); lines without a rank (the launcher's) as they are.

    >>> merge_rank_lines(["[rank0]:step 0", "[rank1]:step 0", "[rank1]:boom", "torchrun: failed"])
    ['step 0', '[rank 1] boom', 'torchrun: failed']
    """
    parsed = [split_rank(line) for line in lines]
    ranks = {rank for rank, _ in parsed if rank is not None}
    seen: dict[tuple[str, int], list[int]] = {}  # (text, k-th time) → ranks that printed it k times, in order
    counts: dict[tuple[int, str], int] = {}
    for rank, text in parsed:
        if rank is None:
            continue
        k = counts[(rank, text)] = counts.get((rank, text), 0) + 1
        seen.setdefault((text, k), []).append(rank)
    out = []
    counts.clear()
    for line, (rank, text) in zip(lines, parsed, strict=True):
        if rank is None:
            out.append(line)
            continue
        k = counts[(rank, text)] = counts.get((rank, text), 0) + 1
        printed_by = seen[(text, k)]
        if printed_by[0] != rank:
            continue  # shown already, with the first rank that printed it
        if set(printed_by) == ranks:
            out.append(text)
        else:
            out.append(f"[rank {', '.join(str(r) for r in sorted(printed_by))}] {text}")
    return out


@dataclass(frozen=True)
class RankFailure:
    """From torchrun's error report: the rank that failed first, its exit code, the other ranks and theirs."""

    rank: int
    exitcode: int | None
    others: tuple[tuple[int, int | None], ...]


_ROOT_CAUSE = "Root Cause (first observed failure):"
_FIELD_RE = re.compile(r"^\s*(rank|exitcode)\s+:\s+(-?\d+)")


def torchrun_failure(lines: Sequence[str]) -> RankFailure | None:
    """The first failure torchrun's error report names, and the other failures it lists.

    >>> torchrun_failure(["ChildFailedError:", "Failures:", "[1]:", "  rank      : 0 (local_rank: 0)",
    ...   "  exitcode  : -15 (pid: 9)", "Root Cause (first observed failure):", "[0]:",
    ...   "  rank      : 1 (local_rank: 1)", "  exitcode  : 1 (pid: 8)"])
    RankFailure(rank=1, exitcode=1, others=((0, -15),))
    """
    entries: list[tuple[bool, int, int | None]] = []  # (root cause?, rank, exitcode)
    root = False
    current: dict[str, int] = {}
    for line in lines:
        if line.strip() == "Failures:":
            root, current = False, {}
        elif line.strip() == _ROOT_CAUSE:
            root, current = True, {}
        match = _FIELD_RE.match(line)
        if match:
            current[match.group(1)] = int(match.group(2))
            if match.group(1) == "exitcode" and "rank" in current:
                entries.append((root, current["rank"], current["exitcode"]))
                current = {}
    first = next((e for e in entries if e[0]), None)
    if first is None:
        return None
    others = tuple((rank, code) for is_root, rank, code in entries if not is_root and rank != first[1])
    return RankFailure(first[1], first[2], others)
