"""A real two-node Slurm 22.05 cluster on this machine, for the Slurm tests. Real parts only, loopback only.

Started as root with its own config and state folder (nothing in /etc/slurm, /etc/munge or /run is used):
- munged, with its own key, socket, pid and seed file (munge runs here, so auth/munge, as on a real cluster);
- slurmctld, and two slurmd (`-N n1`, `-N n2`: Debian's slurmd is built with multiple-slurmd support), each with
  its own port, spool folder, pid and log file; every daemon listens on 127.0.0.1 only, on free ports;
- each node has two "GPUs": character devices made with mknod in the folder (major 195, as NVIDIA's; nothing
  opens them) and listed in gres.conf (GresTypes=gpu, SelectType=select/cons_tres, AutoDetect=off);
- no cgroup: proctrack/linuxproc and task/none (cgroup plugins need a cgroup tree slurmd may write; a job's
  processes are found through their parent chain instead). KillWait is short and OverTimeLimit 0, so a job at its
  time limit ends at once; EnforcePartLimits=ALL, so a time over the partition's limit is refused at submit.

Partitions: `gpu` (n1, n2; the default; MaxTime 1 hour), `restricted` (AllowAccounts=lab: the real "invalid account"
refusal without slurmdbd), `private` (AllowGroups=root).

The daemons run in the foreground as children of the test process (so they are reaped, not left as zombies) and
are stopped by pid: jobs are cancelled first (slurmd ignores SIGTERM while jobs run), then SIGTERM, then SIGKILL.
Each run records its pids in its folder and in /tmp/devagent-slurm-<pytest pid>/pids; the next run stops (by pid,
checking the start time) what a killed run left behind.

Use: the session fixture `slurm_cluster` and the per-test `cluster` (tests/integration/conftest.py), or
`python -m tests.integration.slurm_cluster` to start one by hand until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import Result, _unavailable

NODES = ("n1", "n2")
GPUS_PER_NODE = 2
KILL_WAIT_S = 5
_STATE_PREFIX = "devagent-slurm-"
_FOLDER_PREFIX = "devagent-slurm-cluster-"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _wait_for(condition: object, *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def slurm_conf(folder: Path, *, host: str, ports: dict[str, int]) -> str:
    nodes = "\n".join(
        f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports[node]} CPUs=2 RealMemory=32000 "
        f"Gres=gpu:{GPUS_PER_NODE} State=UNKNOWN" for node in NODES)
    return f"""\
ClusterName=devagenttest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
AuthType=auth/munge
AuthInfo=socket={folder}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd-%n.log
PlugStackConfig={folder}/plugstack.conf
# The nodes' RealMemory is slurm.conf's, whatever this machine has (a job's --mem is checked against it).
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
EnforcePartLimits=ALL
ReturnToService=2
KillWait={KILL_WAIT_S}
OverTimeLimit=0
InactiveLimit=0
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
{nodes}
PartitionName=gpu Nodes={",".join(NODES)} Default=YES MaxTime=01:00:00 State=UP
PartitionName=restricted Nodes={",".join(NODES)} MaxTime=01:00:00 AllowAccounts=lab State=UP
PartitionName=private Nodes={",".join(NODES)} MaxTime=01:00:00 AllowGroups=root State=UP
"""


@dataclass
class SlurmCluster:
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    started_s: float = 0.0  # how long start() took, to the nodes idle

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    @property
    def shared(self) -> Path:
        """A folder every test user may write (sticky, as /tmp): the cluster's stand-in for a shared home, where
        the jobs' output and the ended logs go."""
        return self.folder / "shared"

    def gpu_device(self, node: str, index: int) -> Path:
        return self.folder / "dev" / f"{node}-gpu{index}"

    def run(self, *argv: str, user: str | None = None, input: str | None = None, timeout: float = 60) -> Result:
        """ARGV with SLURM_CONF set, as USER (runuser keeps the environment) or as root."""
        command = ["runuser", "-u", user, "--", *argv] if user else list(argv)
        proc = subprocess.run(command, capture_output=True, text=True, env=self.environ, input=input,
                              timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def job_ids(self) -> list[str]:
        result = self.run("squeue", "-h", "-o", "%i")
        return result.stdout.split()

    def cancel_all(self, *, timeout: float = 60) -> None:
        """Cancel every job and wait until none is left running or completing on a node."""
        ids = self.job_ids()
        if ids:
            self.run("scancel", *ids)
        _wait_for(lambda: not self.run("squeue", "-h", "-t", "PD,R,CG,S", "-o", "%i").stdout.split(),
                  timeout=timeout, message="every job to end")

    def start(self) -> None:
        begin = time.monotonic()
        folder = self.folder
        for sub in ("state", "dev", *(f"spool/{n}" for n in NODES)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # the users' jobs read slurm.conf; munged checks its folders are not world-writable
        self.shared.mkdir()
        self.shared.chmod(0o1777)
        ports = {"slurmctld": _free_port(), **{node: _free_port() for node in NODES}}
        host = socket.gethostname().split(".")[0]
        gres = ["AutoDetect=off"]
        minor = 0
        for node in NODES:
            for index in range(GPUS_PER_NODE):
                os.mknod(self.gpu_device(node, index), 0o666 | 0o020000, os.makedev(195, minor))
                minor += 1
            gres.append(f"NodeName={node} Name=gpu File={folder}/dev/{node}-gpu[0-{GPUS_PER_NODE - 1}]")
        (folder / "gres.conf").write_text("\n".join(gres) + "\n")
        (folder / "plugstack.conf").write_text("")
        self.conf.write_text(slurm_conf(folder, host=host, ports=ports))
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={folder}/munge.sock",
                               f"--key-file={key}", f"--pid-file={folder}/munged.pid",
                               f"--log-file={folder}/munged.log", f"--seed-file={folder}/munge.seed"])
        _wait_for((folder / "munge.sock").exists, timeout=30, message="munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        for node in NODES:
            self._spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)])
        _wait_for(self._nodes_idle, timeout=60, message="both slurmd to register idle")
        self.started_s = time.monotonic() - begin

    def _nodes_idle(self) -> bool:
        self._check_alive()
        out = self.run("sinfo", "-h", "-N", "-p", "gpu", "-o", "%N %t").stdout.split("\n")
        return sorted(line for line in out if line) == [f"{node} idle" for node in NODES]

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited with {process.returncode}:\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for log in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out")):
            parts.append(f"== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(parts)

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.folder / f"{name}.out", "ab") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=self.environ, start_new_session=True)
        self.processes.append(process)
        record = f"{process.pid} {_start_time(process.pid)}\n"
        for pids in (self.folder / "pids", _state_dir() / "pids"):
            with open(pids, "a") as f:
                f.write(record)

    def stop(self) -> None:
        """Cancel the jobs, then stop the daemons (slurmd first, munged last) by pid; remove the folder."""
        try:
            if all(p.poll() is None for p in self.processes):
                self.cancel_all()
        except (AssertionError, OSError, subprocess.SubprocessError):
            pass  # stop the daemons anyway: a job left running dies with its slurmstepd below
        for process in reversed(self.processes):
            _stop(process.pid, lambda p=process: p.poll() is not None)  # type: ignore[misc]
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(_state_dir(), ignore_errors=True)


def _stop(pid: int, gone: object, *, grace: float = 10) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            _wait_for(gone, timeout=grace, message=f"pid {pid} to exit")
            return
        except AssertionError:
            continue


def _state_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"{_STATE_PREFIX}{os.getpid()}"


def sweep_leftovers() -> None:
    """Stop what a killed earlier run left (pids whose start time still matches) and remove its folders."""
    for state in Path(tempfile.gettempdir()).glob(f"{_STATE_PREFIX}*"):
        if state == _state_dir() or not state.name.removeprefix(_STATE_PREFIX).isdigit():
            continue
        if Path(f"/proc/{state.name.removeprefix(_STATE_PREFIX)}").exists():
            continue  # that pytest still runs
        pids = state / "pids"
        lines = pids.read_text().splitlines() if pids.exists() else []
        recorded = state / "folder"
        folder = Path(recorded.read_text().strip()) if recorded.exists() else None
        if folder is not None and (folder / "slurm.conf").exists():
            # Its jobs first, while its slurmctld may still answer: slurmd ignores SIGTERM while jobs run.
            leftover = SlurmCluster(folder)
            with contextlib.suppress(AssertionError, OSError, subprocess.SubprocessError):
                leftover.cancel_all(timeout=15)
        for line in reversed(lines):
            pid_text, _, started = line.partition(" ")
            pid = int(pid_text)
            if started and _start_time(pid) == started:
                _stop(pid, lambda p=pid, s=started: _start_time(p) != s)  # type: ignore[misc]
        if folder is not None and folder.name.startswith(_FOLDER_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def missing_tools() -> list[str]:
    return [tool for tool in DAEMONS if shutil.which(tool) is None]


def open_cluster() -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        _unavailable("the Slurm tests start munged, slurmctld and slurmd as root")
    missing = missing_tools()
    if missing:
        _unavailable(f"Slurm is not installed (no {', '.join(missing)}): run `make deps`")
    sweep_leftovers()
    _state_dir().mkdir(exist_ok=True)
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix=_FOLDER_PREFIX)))
    (_state_dir() / "folder").write_text(f"{cluster.folder}\n")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Stop the cluster on `kill PID` too, and on SIGINT also where a non-interactive shell started this in the
    # background (it then inherits SIGINT ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for running in open_cluster():
        print(f"export SLURM_CONF={running.conf}   # started in {running.started_s:.2f} s; Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
