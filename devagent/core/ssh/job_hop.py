"""The last hop of an alias to an environment in a Slurm job: a ProxyCommand that asks Slurm beside the hop.

`ProxyJump login,node` alone fails, once the job has ended, with ssh's own words (the node refuses, or nothing
listens). The ProxyCommand below starts the hop at once, exactly as `ProxyJump login,node` makes it (`ssh -J
login -W 127.0.0.1:PORT node`, on the connecting ssh's stream), and beside it asks the login node `squeue -h -t
all -j JOB -o %T` over the user's own ssh (`-n`: it must not read the connecting ssh's stream; `-t all`: without
it squeue 22.05 prints nothing for a job that has ended, as for one it no longer knows). When Slurm says the job
has ended it ends the hop, prints why and what to do on stderr and exits 1 (the connecting ssh then exits 255);
a hop that failed first still gets that message after its own words. Otherwise, and when the login node cannot
be asked at all (ssh's exit 255: the hop then says why in ssh's words), it exits with the hop's status. The
environment's host key is still checked by the connecting ssh against the pinned HostKeyAlias: the command only
carries bytes. While `up` proves the login, mux_env's variables put the check and the hop on `up`'s own ssh
masters; the command written is the same.

Pure: text only. The script is fixed; the values go in as sh's positional parameters, each checked first (the
job id digits, the name an environment name, the hops ProxyJump values, the partition a Slurm name, the config
an absolute path) and quoted for sh, and none may hold `%` (ssh expands %-tokens in a ProxyCommand: the
script's own `%` are doubled). The inner ssh gets `-F CONFIG` (ProxyJump passes the connecting ssh's `-F` on; a
ProxyCommand cannot see it, so the user's ssh config devagent includes itself into is named). A ProxyCommand is
a command line run on the laptop: `share --export` never passes one on (core/people.py writes a ProxyJump value
or none).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

ARG0 = "devagent-slurm-hop"
JOB_RE = re.compile(r"[1-9][0-9]{0,15}")
PARTITION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # core/slurm/request.py's NAME_RE
PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
# squeue's %T for a job that will not run again (COMPLETING: its holder is removing the container).
_WHY = (
    ('0:|*"Invalid job id"*', "Slurm no longer knows it"),
    ("0:COMPLETING", "it is ending"),
    ("0:CANCELLED*", "it was cancelled"),
    ("0:TIMEOUT", "it reached its time limit"),
    ("0:PREEMPTED", "it was preempted"),
    ("0:NODE_FAIL", "its node failed"),
    ("0:COMPLETED|0:FAILED|0:BOOT_FAIL|0:DEADLINE|0:OUT_OF_MEMORY", "Slurm says $s"),
)
# Where `up` holds its own ssh masters while it proves the login (control/link/link.py's control_path: a 0700
# folder of devagent's): the login node's for the check, the node's for the hop. Set only in the environment of
# `up`'s own proof (mux_env); unset, as in every later login, the inner ssh's get no option more than before.
LOGIN_MUX = "DEVAGENT_SLURM_LOGIN_MUX"
NODE_MUX = "DEVAGENT_SLURM_NODE_MUX"
_PLAIN_PATH_RE = re.compile(r"/[A-Za-z0-9/._-]{1,200}")  # one sh word after field splitting, no glob, no %
# $1 config, $2 login hop, $3 node hop, $4 job, $5 name, $6 port, $7 partition. `\047` is ', `\140` is `.
# The hop starts at once, on the connecting ssh's stream (fd 3: sh gives a background command /dev/null as its
# stdin before its own redirections); the check runs beside it. An ended job ends the hop (when it is still
# there) and says why; otherwise the hop's exit status is the command's.
SCRIPT = (
    f'exec 3<&0; ssh ${{{NODE_MUX}:+-oControlPath=${NODE_MUX} -oControlMaster=no}} -F "$1" -J "$2"'
    ' -W "127.0.0.1:$6" "ssh://$3" <&3 3<&- & h=$!; exec 3<&- </dev/null;'
    f' s=$(ssh -n ${{{LOGIN_MUX}:+-oControlPath=${LOGIN_MUX} -oControlMaster=no}} -F "$1" -o BatchMode=yes'
    ' -o ConnectTimeout=15 "ssh://$2" "squeue -h -t all -j $4 -o %%T 2>&1" 2>/dev/null); r=$?; w=;'
    ' case "$r:$s" in '
    + " ".join(f'{pattern}) w="{why}";;' for pattern, why in _WHY)
    + ' esac; if [ -n "$w" ]; then kill $h 2>/dev/null; wait $h 2>/dev/null;'
    ' printf "devagent: environment %%s\\047s Slurm job %%s has ended (%%s);'
    ' \\140devagent up %%s --host %%s --slurm %%s\\140 asks for a new allocation\\n"'
    ' "$5" "$4" "$w" "$5" "$2" "$7" >&2; exit 1; fi; wait $h'
)
PREFIX = f"sh -c {shlex.quote(SCRIPT)} {ARG0} "


@dataclass(frozen=True)
class JobCheck:
    """What the alias of an environment in Slurm job JOB_ID (of PARTITION) asks before each connection; CONFIG:
    the user's ssh config, which the inner ssh reads (`-F`)."""

    job_id: str
    partition: str
    config: str

    def valid(self) -> bool:
        """Whether every value may go into the command (the config path is checked as any path, by the caller).

        >>> JobCheck("12", "gpu", "/h/.ssh/config").valid(), JobCheck("1;x", "gpu", "/c").valid()
        (True, False)
        """
        return bool(isinstance(self.job_id, str) and JOB_RE.fullmatch(self.job_id)
                    and isinstance(self.partition, str) and PARTITION_RE.fullmatch(self.partition))


def proxy_command(check: JobCheck, *, name: str, login: str, node: str, port: int) -> str:
    """The ProxyCommand's value as written in the config file (and as `ssh -G` prints it: unexpanded). The
    caller has checked every value (core/ssh/host_entry.py's validate).

    >>> cmd = proxy_command(JobCheck("12", "gpu", "/h/a b/config"), name="exp", login="hpc", node="n1", port=2222)
    >>> cmd.startswith("sh -c 'exec 3<&0; ssh "), cmd.split("' ", 1)[1]
    (True, "devagent-slurm-hop '/h/a b/config' hpc n1 12 exp 2222 gpu")
    """
    args = (check.config, login, node, check.job_id, name, str(port), check.partition)
    return PREFIX + " ".join(shlex.quote(arg) for arg in args)


def parse(value: str) -> tuple[str, int, str, JobCheck] | None:
    """What a ProxyCommand devagent wrote holds (name, port, the ProxyJump `login,node`, the check), or None
    when VALUE is not one of devagent's (the caller then says the block is not devagent's).

    >>> parse(proxy_command(JobCheck("12", "gpu", "/c"), name="exp", login="hpc", node="n1", port=2222))
    ('exp', 2222, 'hpc,n1', JobCheck(job_id='12', partition='gpu', config='/c'))
    >>> parse("nc %h %p") is None
    True
    """
    if not value.startswith(PREFIX):
        return None
    try:
        args = shlex.split(value[len(PREFIX):])
    except ValueError:
        return None
    if len(args) != 7 or not PORT_RE.fullmatch(args[5]):
        return None
    config, login, node, job, name, port, partition = args
    check = JobCheck(job, partition, config)
    if not check.valid() or proxy_command(check, name=name, login=login, node=node, port=int(port)) != value:
        return None
    return name, int(port), f"{login},{node}", check


def mux_env(login_control: str, node_control: str) -> dict[str, str]:
    """The environment under which the alias's check and hop go through `up`'s own masters (their control
    sockets, LOGIN_CONTROL and NODE_CONTROL), or none when either path is not one plain word (then both connect
    as any later login does: nothing is lost but the time).

    >>> mux_env("/run/user/1000/devagent-link-x/ctl", "/tmp/devagent-link-y/ctl")[NODE_MUX]
    '/tmp/devagent-link-y/ctl'
    >>> mux_env("/tmp/a b/ctl", "/tmp/c/ctl")
    {}
    """
    if not (_PLAIN_PATH_RE.fullmatch(login_control) and _PLAIN_PATH_RE.fullmatch(node_control)):
        return {}
    return {LOGIN_MUX: login_control, NODE_MUX: node_control}
