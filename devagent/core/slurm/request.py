"""What an environment asks Slurm for, validated, and the `sbatch` command line that asks it.

Pure: values in, an argument list out (never a shell string; the ssh layer quotes each word for the login node's
shell). Every value is checked before anything runs: a partition, account, QOS or GPU type is a plain Slurm name,
a constraint is feature names joined by Slurm's `&` and `|`, a time is one of Slurm's time formats. A value that
starts with '-' (an option), holds a space, a newline, a quote or another shell character is refused with
DevagentError(status=USAGE) naming the fix.

`sbatch`'s refusals (the real texts of Slurm 22.05, tests/core/slurm/fixtures/sbatch-errors.txt) are put in
devagent's words by `sbatch_error`.

>>> r = slurm_request(partition="gpu", gpus=2, cpus=8, memory="32G", time="8:00:00")
>>> sbatch_argv(r, job_name="devagent-exp", output="/home/ada/.devagent/slurm/%j.out")[1:7]
['--parsable', '--job-name=devagent-exp', '--partition=gpu', '--time=0-08:00:00', '--no-requeue', '--gres=gpu:2']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devagent.errors import DevagentError, ExitStatus

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a partition, account, QOS, GPU type or job name
_FEATURE = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
CONSTRAINT_RE = re.compile(rf"{_FEATURE}(?:[&|]{_FEATURE}){{0,15}}")
MEMORY_RE = re.compile(r"([1-9][0-9]{0,8})([KMGT]?)", re.IGNORECASE)
MAX_GPUS = 64
MAX_CPUS = 4096
DEFAULT_WARNING_S = 60  # --signal=B:TERM@60: the holder hears of the time limit a minute early

# Slurm's time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME_FORMATS = (
    (re.compile(r"([0-9]{1,7})"), ("m",)),
    (re.compile(r"([0-9]{1,7}):([0-9]{1,2})"), ("m", "s")),
    (re.compile(r"([0-9]{1,5}):([0-9]{1,2}):([0-9]{1,2})"), ("h", "m", "s")),
    (re.compile(r"([0-9]{1,3})-([0-9]{1,2})"), ("d", "h")),
    (re.compile(r"([0-9]{1,3})-([0-9]{1,2}):([0-9]{1,2})"), ("d", "h", "m")),
    (re.compile(r"([0-9]{1,3})-([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})"), ("d", "h", "m", "s")),
)
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_TIME_HINT = ("give a Slurm time: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, "
              "DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS (e.g. 8:00:00 or 1-00:00:00)")
MAX_TIME_S = 365 * 86400


@dataclass(frozen=True)
class SlurmRequest:
    """One environment's allocation: a node of PARTITION with GPUS GPUs (0: a CPU job) for TIME_S seconds."""

    partition: str
    gpus: int
    time_s: int
    cpus: int | None = None  # --cpus-per-task; None: the partition's default
    memory: str | None = None  # --mem in Slurm's units (e.g. 32G); None: the partition's default
    gpu_type: str | None = None  # --gres=gpu:TYPE:N
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_option: bool = False  # ask with --gpus=N (sites that configure --gpus) instead of --gres=gpu:N
    warning_s: int | None = DEFAULT_WARNING_S  # --signal=B:TERM@N; None: no early warning


def _usage(message: str, hint: str) -> DevagentError:
    return DevagentError(message, hint=hint, status=ExitStatus.USAGE)


def check_name(value: str, *, what: str, option: str) -> str:
    """VALUE as a plain Slurm name (partition, account, QOS, GPU type), or DevagentError(USAGE).

    >>> check_name("gpu-a100", what="partition", option="--slurm")
    'gpu-a100'
    >>> check_name("--uid=0", what="partition", option="--slurm")
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: invalid Slurm partition '--uid=0': it must not start with '-'
      hint: give --slurm the partition's name as `sinfo` or `sacctmgr` shows it
    """
    if value.startswith("-"):
        raise _usage(f"invalid Slurm {what} {value!r}: it must not start with '-'",
                     f"give {option} the {what}'s name as `sinfo` or `sacctmgr` shows it")
    if not NAME_RE.fullmatch(value):
        raise _usage(f"invalid Slurm {what} {value!r}",
                     f"{option} takes 1-64 letters, digits, '_', '.', '-' (no spaces, quotes or shell characters)")
    return value


def parse_time(text: str) -> int:
    """Seconds in a Slurm time limit, refusing zero, 'UNLIMITED' and malformed values.

    >>> parse_time("90"), parse_time("1:30:00"), parse_time("2-12"), parse_time("0:30")
    (5400, 5400, 216000, 30)
    """
    value = text
    for pattern, units in _TIME_FORMATS:
        found = pattern.fullmatch(value)
        if found is None:
            continue
        parts = dict(zip(units, (int(g) for g in found.groups()), strict=True))
        # Past the first field, each field is bounded by the next larger unit (Slurm accepts 0:90, which hides
        # a typo; devagent does not). The first field (a format's only one too) is bounded by the year alone.
        for unit, limit in (("h", 24), ("m", 60), ("s", 60)):
            if unit in parts and unit != units[0] and parts[unit] >= limit:
                raise _usage(f"invalid Slurm time {text!r}: {unit} field {parts[unit]} is over {limit - 1}",
                             _TIME_HINT)
        seconds = sum(_UNIT_S[u] * n for u, n in parts.items())
        if seconds <= 0:
            raise _usage(f"invalid Slurm time {text!r}: the environment needs a time limit above zero", _TIME_HINT)
        if seconds > MAX_TIME_S:
            raise _usage(f"invalid Slurm time {text!r}: over a year", _TIME_HINT)
        return seconds
    if value.strip().upper() in {"UNLIMITED", "INFINITE"}:
        raise _usage(f"invalid Slurm time {text!r}: devagent asks for a finite time limit",
                     "the environment lives as long as the job; give the longest time the partition allows")
    raise _usage(f"invalid Slurm time {text!r}", _TIME_HINT)


def format_time(seconds: int) -> str:
    """SECONDS as Slurm's D-HH:MM:SS.

    >>> format_time(5400), format_time(90061)
    ('0-01:30:00', '1-01:01:01')
    """
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def slurm_request(*, partition: str, gpus: int | str, time: str, cpus: int | str | None = None,
                  memory: str | None = None, gpu_type: str | None = None, account: str | None = None,
                  qos: str | None = None, constraint: str | None = None, gpus_option: bool = False,
                  warning_s: int | None = DEFAULT_WARNING_S) -> SlurmRequest:
    """A validated SlurmRequest from the values a user typed or devagent.toml holds."""
    check_name(partition, what="partition", option="--slurm")
    n_gpus = _count(gpus, what="GPU count", option="--gpus", low=0, high=MAX_GPUS)
    n_cpus = None if cpus is None else _count(cpus, what="CPU count", option="--cpus", low=1, high=MAX_CPUS)
    if memory is not None:
        found = MEMORY_RE.fullmatch(memory)
        if found is None:
            raise _usage(f"invalid Slurm memory {memory!r}",
                         "give a whole number with an optional unit K, M, G or T (e.g. 32G; Slurm's default is M)")
        memory = found.group(1) + found.group(2).upper()
    if gpu_type is not None:
        check_name(gpu_type, what="GPU type", option="--gpu-type")
        if n_gpus == 0:
            raise _usage(f"a GPU type ({gpu_type}) without GPUs", "ask for at least one GPU with --gpus")
    if account is not None:
        check_name(account, what="account", option="--account")
    if qos is not None:
        check_name(qos, what="QOS", option="--qos")
    if constraint is not None and not CONSTRAINT_RE.fullmatch(constraint):
        raise _usage(f"invalid Slurm constraint {constraint!r}",
                     "give feature names joined by '&' (all) or '|' (any), e.g. a100&nvlink (no spaces or '-' first)")
    time_s = parse_time(time)
    if warning_s is not None and not 0 < warning_s < 65536:
        raise _usage(f"invalid warning time {warning_s}", "give 1-65535 seconds")
    return SlurmRequest(partition=partition, gpus=n_gpus, time_s=time_s, cpus=n_cpus, memory=memory,
                        gpu_type=gpu_type, account=account, qos=qos, constraint=constraint,
                        gpus_option=gpus_option, warning_s=warning_s)


def slurm_memory(size: int) -> str:
    """A container's memory limit (bytes) as sbatch's --mem: the largest of Slurm's binary units that holds it
    whole, rounded up to a whole MiB (Slurm's smallest unit that every site accepts).

    >>> slurm_memory(16 * 1024**3), slurm_memory(1536 * 1024**2), slurm_memory(100 * 1024**2 + 1)
    ('16G', '1536M', '101M')
    """
    mib = -(-size // 1024**2)
    for unit, per in (("T", 1024**2), ("G", 1024)):
        if mib % per == 0:
            return f"{mib // per}{unit}"
    return f"{mib}M"


def slurm_cpus(cpus: float) -> int:
    """A container's CPU limit (Docker's --cpus, fractions allowed) as sbatch's --cpus-per-task: whole CPUs,
    rounded up, so the job holds at least what the container may use.

    >>> slurm_cpus(0.5), slurm_cpus(8.0), slurm_cpus(2.25)
    (1, 8, 3)
    """
    return max(1, -int(-cpus // 1))


def _count(value: int | str, *, what: str, option: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise _usage(f"invalid {what} for Slurm: {value!r}", f"give {option} a whole number from {low} to {high}")
    return int(text)


def sbatch_argv(request: SlurmRequest, *, job_name: str, output: str) -> list[str]:
    """The `sbatch` command line for REQUEST; the batch script (holder.py) goes on its stdin.

    `--no-requeue`: a requeued job would start again on another node without its environment. `--parsable` makes
    the answer the job id alone.
    """
    check_name(job_name, what="job name", option="the environment's name")
    if "\n" in output or not output.startswith("/"):
        raise _usage(f"invalid path for the job's output: {output!r}", "give an absolute path on one line")
    argv = ["sbatch", "--parsable", f"--job-name={job_name}", f"--partition={request.partition}",
            f"--time={format_time(request.time_s)}", "--no-requeue"]
    if request.gpus:
        kind = f"gpu:{request.gpu_type}" if request.gpu_type else "gpu"
        if request.gpus_option:
            argv.append(f"--gpus={request.gpu_type + ':' if request.gpu_type else ''}{request.gpus}")
        else:
            argv.append(f"--gres={kind}:{request.gpus}")
    if request.cpus is not None:
        argv.append(f"--cpus-per-task={request.cpus}")
    if request.memory is not None:
        argv.append(f"--mem={request.memory}")
    for option, value in (("--account", request.account), ("--qos", request.qos),
                          ("--constraint", request.constraint)):
        if value is not None:
            argv.append(f"{option}={value}")
    if request.warning_s is not None:
        argv.append(f"--signal=B:TERM@{request.warning_s}")
    argv += [f"--output={output}", "--open-mode=append"]
    return argv


def parse_job_id(stdout: str) -> str:
    """The job id in `sbatch --parsable`'s answer ('JOBID' or 'JOBID;CLUSTER').

    >>> parse_job_id("4812\\n"), parse_job_id("4812;hpc\\n")
    ('4812', '4812')
    """
    first = stdout.strip().split(";", 1)[0]
    if not first.isdigit():
        raise DevagentError(f"sbatch answered no job id: {stdout.strip()[:200]!r}",
                            hint="run the same sbatch on the login node to see what it says")
    return first


# sbatch's refusals, the first matching text of stderr wins: (what Slurm 22.05 says, devagent's words, the fix,
# the exit status). The texts are libslurm's error strings; the fixture holds the whole lines as captured.
_REFUSALS: tuple[tuple[str, str, str, ExitStatus], ...] = (
    ("Invalid partition name specified", "Slurm has no partition {partition!r}",
     "list the partitions you may use: sinfo -s", ExitStatus.USAGE),
    ("User's group not permitted to use this partition", "you may not use Slurm partition {partition!r}",
     "ask the cluster's admins for access, or choose another partition (sinfo -s)", ExitStatus.USAGE),
    ("Requested node configuration is not available",
     "no node of partition {partition!r} can ever give {what}: the request can never start",
     "ask for fewer GPUs, CPUs or less memory (what a node has: sinfo -p {partition} -o '%N %G %c %m')",
     ExitStatus.GPU_UNAVAILABLE),
    ("More processors requested than permitted", "partition {partition!r} has no node with {cpus} CPUs",
     "ask for fewer CPUs (what a node has: sinfo -p {partition} -o '%N %c')", ExitStatus.USAGE),
    ("Requested time limit is invalid", "the time limit {time} is over what partition {partition!r} allows",
     "ask for less time (the partition's limit: sinfo -p {partition} -o %l)", ExitStatus.USAGE),
    ("Invalid account or account/partition combination specified",
     "Slurm refused the account {account!r} for partition {partition!r}",
     "give the account you may charge with --account (yours: sacctmgr show assoc user=$USER format=account)",
     ExitStatus.USAGE),
    ("Invalid qos specification", "Slurm refused the QOS {qos!r}",
     "give a QOS you may use with --qos (yours: sacctmgr show assoc user=$USER format=qos)", ExitStatus.USAGE),
    ("Job violates accounting/QOS policy", "the request is over a limit of your account or QOS",
     "ask for fewer GPUs or less time, or wait until your other jobs end (squeue --me)", ExitStatus.GPU_BUSY),
    ("Invalid feature specification", "no node of partition {partition!r} has the features {constraint!r}",
     "give features the nodes have (sinfo -p {partition} -o '%N %f')", ExitStatus.USAGE),
    ("Invalid generic resource (gres) specification", "the cluster has no such GPU resource ({gres})",
     "check the GPU type's name (sinfo -p {partition} -o '%N %G')", ExitStatus.USAGE),
)


def sbatch_error(request: SlurmRequest, stderr: str) -> DevagentError:
    """sbatch's refusal of REQUEST (its stderr) in devagent's words, with Slurm's own lines as details."""
    what = " and ".join(filter(None, (
        f"{request.gpus} GPU{'s' if request.gpus != 1 else ''}" + (f" of type {request.gpu_type}"
                                                                   if request.gpu_type else "")
        if request.gpus else "",
        f"{request.cpus} CPUs" if request.cpus else "",
        f"{request.memory} of memory" if request.memory else "",
    ))) or "this request"
    values = {"partition": request.partition, "what": what, "cpus": request.cpus, "time": format_time(request.time_s),
              "account": request.account or "(your default)", "qos": request.qos or "(your default)",
              "constraint": request.constraint, "gres": f"gpu:{request.gpu_type}" if request.gpu_type else "gpu"}
    details = "\n".join(line.strip() for line in stderr.strip().splitlines()[-5:]) or None
    for text, message, hint, status in _REFUSALS:
        if text in stderr:
            return DevagentError(message.format(**values), hint=hint.format(**values), status=status,
                                 details=details)
    return DevagentError("Slurm refused the job", status=ExitStatus.USAGE, details=details,
                         hint="Slurm's words are above; change the request, or ask the cluster's admins")
