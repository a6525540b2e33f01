"""The batch script of the job that holds an environment's allocation: the text, nothing run here.

The job is the environment's lease. It starts on the node Slurm chose, prints one line with its job id, node and
GPUs (from SLURM_JOB_GPUS, else CUDA_VISIBLE_DEVICES, else `scontrol -d show job`'s GRES indexes) into the job's
output file, and waits. devagent then makes the environment's container on that node's Docker Engine, named NAME
and labelled ``devagent.slurm-job=<job id>``, with exactly those GPUs.

When the job ends for any reason Slurm signals the batch shell: `scancel` from anywhere (SIGCONT, SIGTERM to every
process of the job, SIGKILL after KillWait), the time limit (the same, at the limit; with ``--signal=B:TERM@N``
also a warning N seconds before, to the batch shell only), preemption (as scancel). The trap then asks Slurm why
the job ended, has the still-running container's own devagent append a line saying when and why to the notebook
(`devagent job-ended LINE`, as the login user, at most 2 s), force-removes the container by name and by label
(`docker rm -f`: its GPUs go back before Slurm gives them to the next job), and appends the same line to
ENDED_LOG (ending in NOTED when the notebook has it; otherwise devagent takes it in at the next `down` or `up`).
Every step before the removal is bounded (`timeout`: 2 s, 1 s, 2 s), so the container goes within about 5 s
even when Slurm or the container does not answer; it takes about half a second. A node that fails takes the
container's processes with it; the line is then never written (devagent reads NODE_FAIL from Slurm instead).

The values are put in quoted (shlex.quote) after validation, so the text can go to `sbatch` on its stdin: no file
on the login node, and nothing of the user's reaches a shell unquoted.

>>> script = holder_script(name="exp", ended_log="/home/ada/.devagent/slurm/exp.ended")
>>> script.splitlines()[0], "docker rm -f \\"$name\\"" in script
('#!/bin/bash', True)
"""

from __future__ import annotations

import re
import shlex

from devagent.errors import DevagentError, ExitStatus

JOB_LABEL = "devagent.slurm-job"  # the container's label: the job that holds it
HOLDER_TAG = "devagent-holder:"  # the first word of the line the job prints with its node and GPUs
NOTED = " [noted]"  # an end line's tail when the environment's own devagent put it in the notebook
# The holder's end line: when, then what (one line of plain text, bounded: it becomes a notebook entry).
END_LINE_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})Z "
                         r"(job [0-9]+ on [^\x00-\x1f\x7f]{1,1000})")
CONTAINER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# An absolute path of plain characters: it is quoted anyway, but a newline or a control character in a path the
# notebook names is a mistake to report, not to carry.
PATH_RE = re.compile(r"/[A-Za-z0-9_.,+@%/~-]*")

_TEMPLATE = r"""#!/bin/bash
# devagent: this job holds the allocation of the environment {name_comment}. When it ends, for any reason, the
# trap below removes the environment's container on this node first (so its GPUs go back with the allocation)
# and then appends a line saying when and why to the ended log. `scancel` this job to end the environment.
set -u
name={name}
ended_log={ended_log}
label={label}="$SLURM_JOB_ID"
node="${{SLURMD_NODENAME:-$(hostname -s)}}"
ended() {{
  trap '' TERM INT HUP USR1 USR2
  signal=$1
  # The waiting sleep too (Slurm's proctrack kills it anyway; a signal just after its fork finds it unwaited).
  kill $(jobs -p) 2>/dev/null
  # While the trap runs the job is COMPLETING; the reason tells a time limit from a cancel (scontrol 22.05).
  set -- $(timeout 2 scontrol show job "$SLURM_JOB_ID" 2>/dev/null \
    | sed -n 's/.*JobState=\([A-Z_]*\) Reason=\([^ ]*\).*/\1 \2/p')
  state=${{1:-}} reason=${{2:-}}
  case "$state:$reason" in
    TIMEOUT:*|*:TimeLimit) why="the job reached its time limit" ;;
    PREEMPTED:*|*:Preempt*) why="the job was preempted by a job of higher priority" ;;
    NODE_FAIL:*|*:NodeDown) why="the node failed" ;;
    CANCELLED:*|COMPLETING:None) why="the job was cancelled (devagent down or scancel)" ;;
    RUNNING:*|:) why="Slurm sent SIG$signal (the time limit is near, or the job is being ended)" ;;
    *) why="the job ended ($state, $reason)" ;;
  esac
  line=$(printf '%s job %s on %s: environment %s ended: %s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$SLURM_JOB_ID" "$node" "$name" "$why")
  # The notebook hears it now, while the container still runs: its own devagent appends the line through the
  # notebook writer (flock, no link followed, one write), as the login user its label names, bounded in time so
  # that the container still goes at once. Otherwise devagent takes the line in at the next down or up.
  noted=
  user=$(timeout 1 docker inspect -f '{{{{index .Config.Labels "devagent.user"}}}}' "$name" 2>/dev/null)
  case "$user" in
    ''|*[!a-z0-9_-]*) ;;
    *) timeout 2 docker exec -u "$user" "$name" devagent job-ended "$line" >/dev/null 2>&1 && noted=" {noted}" ;;
  esac
  # Then the container: its GPUs must go back before Slurm hands them to the next job (SIGKILL follows
  # after KillWait).
  docker rm -f "$name" >/dev/null 2>&1
  left=$(docker ps -aq --filter "label=$label" 2>/dev/null)
  [ -z "$left" ] || docker rm -f $left >/dev/null 2>&1
  # Say so when the container is still there (no engine, no docker group): its GPUs were not given back.
  still=$({{ docker ps -aq --filter "name=^/$name\$"; docker ps -aq --filter "label=$label"; }} 2>&1)
  if [ -n "$still" ]; then
    line="$line; the container could NOT be removed, remove it: docker rm -f $name"
  fi
  printf '%s%s\n' "$line" "$noted" >>"$ended_log"
  exit 0
}}
# The traps come before the line that tells devagent the job runs: no signal may find the script without them.
trap 'ended TERM' TERM
trap 'ended INT' INT
trap 'ended HUP' HUP
trap 'ended USR1' USR1
trap 'ended USR2' USR2
gpus="${{SLURM_JOB_GPUS:-${{CUDA_VISIBLE_DEVICES:-}}}}"
if [ -z "$gpus" ]; then
  gpus=$(scontrol -d show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/.*GRES=[^ ]*(IDX:\([^)]*\)).*/\1/p' | head -n 1)
fi
echo "{tag} job=$SLURM_JOB_ID node=$node gpus=${{gpus:-none}} started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# A signal interrupts `wait` (not a foreground sleep), so the trap runs at once.
while :; do
  sleep 3600 &
  wait $!
done
"""


def holder_script(*, name: str, ended_log: str) -> str:
    """The batch script for the environment NAME (its container's name) that appends its end to ENDED_LOG."""
    if not CONTAINER_NAME_RE.fullmatch(name):
        raise DevagentError(f"invalid container name for the Slurm job: {name!r}",
                            hint="use letters, digits, '_', '.', '-', starting with a letter or digit",
                            status=ExitStatus.USAGE)
    if not PATH_RE.fullmatch(ended_log) or "/../" in f"{ended_log}/":
        raise DevagentError(f"invalid path for the Slurm job's ended log: {ended_log!r}",
                            hint="give an absolute path of letters, digits and _.,+@%/~- (no '..')",
                            status=ExitStatus.USAGE)
    return _TEMPLATE.format(name=shlex.quote(name), name_comment=name, ended_log=shlex.quote(ended_log),
                            label=JOB_LABEL, tag=HOLDER_TAG, noted=NOTED.strip())


def end_entry(line: str) -> str | None:
    """The notebook entry for the holder's end LINE (when and why the job ended), or None when LINE is not one
    (a control character, over 1,000 characters, another shape: the holder writes none of these).

    >>> print(end_entry("2026-12-07T19:00:00Z job 12 on n1: environment exp ended: the node failed [noted]"), end="")
    <BLANKLINE>
    ## 2026-12-07 19:00:00 UTC · environment ended
    job 12 on n1: environment exp ended: the node failed
    >>> end_entry("2026-12-07T19:00:00Z job 12 on n1: x\\n## forged") is None, end_entry("job 12 on n1") is None
    (True, True)
    """
    from devagent.core.notebook import entry

    found = END_LINE_RE.fullmatch(line.removesuffix(NOTED))
    if found is None:
        return None
    day, time, said = found.groups()
    return entry(f"{day} {time} UTC · environment ended", said)


def parse_holder_line(output: str) -> dict[str, str] | None:
    """The fields of the holder's first line in the job's output (job, node, gpus, started), or None before it.

    >>> parse_holder_line("devagent-holder: job=12 node=n1 gpus=0,1 started=2026-12-07T19:00:00Z\\n")
    {'job': '12', 'node': 'n1', 'gpus': '0,1', 'started': '2026-12-07T19:00:00Z'}
    """
    for line in output.splitlines():
        if line.startswith(HOLDER_TAG):
            return dict(part.split("=", 1) for part in line[len(HOLDER_TAG):].split() if "=" in part)
    return None
