"""The reproduce block of a run section: the exact commands that re-create a run — its environment, its code, its
command — and the same facts as data, which `devagent reproduce` reads back from the notebook.

Pure: the facts come in as arguments. The data rides in an HTML comment inside the block (the preview hides it):
the notebook stays the one record of a run, and a notebook copied elsewhere can still be reproduced.

What makes it exact, and what it says when something is missing: the image by its registry digest (a tag can
move; an image only on the engine that built it exists nowhere else), the code by its commit and the run's patch of
uncommitted changes, the command with the environment variables that shape training (seeds, CUDA, NCCL, threads).
Secrets were never recorded: they stay ``‹redacted›`` here too.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from devagent.core import spec
from devagent.core.markdown import code, details, escape_heading, fence, one_line
from devagent.core.notebook import entry, heading
from devagent.core.runs.secrets import REDACTED
from devagent.core.slurm.request import SlurmRequest, slurm_cpus, slurm_memory, slurm_request
from devagent.errors import DevagentError, ExitStatus

DATA_PREFIX = "<!-- devagent-reproduce "
DATA_SUFFIX = " -->"
_DATA_RE = re.compile(re.escape(DATA_PREFIX) + r"(?P<json>\{.*?\})" + re.escape(DATA_SUFFIX))
# Variables a container's runtime sets on its own: repeating them before the command changes nothing.
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d"  # an entry heading's time (core/notebook.py: format_timestamp)
_SET_BY_THE_RUNTIME = frozenset({"NVIDIA_VISIBLE_DEVICES",
                                  # where the run ran (a Slurm job's environment), not what it ran with
                                  "SLURM_JOB_ID", "SLURMD_NODENAME", "SLURM_JOB_PARTITION"})


@dataclass(frozen=True)
class ReproduceFacts:
    """What re-creates run NUMBER. ENV_NAME is the environment it ran in (empty when unknown: a run outside
    devagent's container); IMAGE the image it was started from, PINNED that image by registry digest (None when it
    exists only on the engine that built it), BASE_IMAGE the image it was derived from, UP_ARGS the options of
    `devagent up` for its GPUs, limits and user. COMMIT and PATCH (its path relative to the workspace) recreate
    the code; ARGV, CWD and ENV the command; METRICS are the run's final values, for the comparison."""

    number: int
    env_name: str
    image: str | None
    pinned: str | None
    base_image: str | None
    up_args: tuple[str, ...]
    commit: str | None
    patch: str | None
    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    dirty: bool = False  # the tree had uncommitted changes (an observed run's are not saved as a patch)
    # The run's environment lived in a Slurm job: `up`'s options of that job (--slurm P --time T [--account A]
    # [--qos Q] [--constraint C]); () elsewhere. Its --gpus (in UP_ARGS) are then the job's GPUs on its node.
    slurm: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        if not self.slurm:  # a run outside a Slurm job is recorded as before
            del data["slurm"]
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReproduceFacts:
        data = json.loads(text)
        return cls(number=int(data["number"]), env_name=str(data["env_name"]), image=data.get("image"),
                   pinned=data.get("pinned"), base_image=data.get("base_image"),
                   up_args=tuple(str(a) for a in data.get("up_args") or ()), commit=data.get("commit"),
                   patch=data.get("patch"), argv=tuple(str(a) for a in data["argv"]), cwd=str(data["cwd"]),
                   env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
                   metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()
                            if isinstance(v, (int, float))}, dirty=bool(data.get("dirty")),
                   slurm=tuple(str(a) for a in data.get("slurm") or ()))

    @property
    def redacted(self) -> bool:
        """Whether a secret was taken out of the command or its environment (the command cannot run as recorded)."""
        return any(REDACTED in word for word in self.argv) or any(REDACTED in v for v in self.env.values())

    def new_env_name(self) -> str:
        """The name `devagent reproduce` gives the new environment by default.

        >>> ReproduceFacts(3, "pytorch-dev", None, None, None, (), None, None, ("python",), "/w").new_env_name()
        'pytorch-dev-run3'
        """
        return f"{(self.env_name or 'repro')[:52]}-run{self.number}"

    def missing(self) -> list[str]:
        """What an exact reproduction lacks, in words (empty: nothing; a patch that no longer applies is found
        only when it is applied).

        >>> ReproduceFacts(3, "dev", None, None, None, (), None, None, ("python",), "/w").missing()
        ['the image the run started from (no launch record: the run was not in a devagent environment)', \
'the code (no git commit recorded)']
        """
        gaps = []
        if not self.image:
            gaps.append("the image the run started from (no launch record: the run was not in a devagent "
                        "environment)")
        if not self.commit:
            gaps.append("the code (no git commit recorded)")
        elif self.dirty and not self.patch:
            gaps.append("the uncommitted changes (the tree was dirty and no patch was saved)")
        return gaps

    def command_line(self) -> str:
        """The run's command as `devagent run` runs it in its folder, with the recorded environment.

        >>> ReproduceFacts(3, "dev", None, None, None, (), None, None, ("python", "t.py", "--lr", "3e-4"),
        ...                "/home/dev/workspace", {"SEED": "1"}).command_line()
        'cd /home/dev/workspace && SEED=1 devagent run -- python t.py --lr 3e-4'
        """
        assigns = [f"{name}={_word(value)}" for name, value in self.env.items() if name not in _SET_BY_THE_RUNTIME]
        return " ".join([f"cd {shlex.quote(self.cwd)} &&", *assigns, "devagent run --", *map(_word, self.argv)])


def _word(text: str) -> str:
    """One shell word; ``‹redacted›`` stays bare where a secret was: it is a placeholder, not a value."""
    return REDACTED.join(shlex.quote(piece) if piece else "" for piece in text.split(REDACTED)) \
        if REDACTED in text else shlex.quote(text)


def render_reproduce(facts: ReproduceFacts, *, notebook: str) -> str:
    """The collapsed block at the end of a run section (NOTEBOOK: the notebook's name, for the one-line form)."""
    name = facts.new_env_name()
    folder = f"../{name}"
    lines: list[str] = ["# from the workspace (the folder of the notebook), on the machine that has it"]
    notes: list[str] = []
    if facts.commit:
        lines += ["# 1. the code: a clone of this repository at the run's commit, as the new workspace",
                  f"git clone --no-checkout . {folder} && git -C {folder} checkout --detach {facts.commit}"]
        if facts.patch:
            lines.append(f"git -C {folder} apply \"$PWD\"/{shlex.quote(facts.patch)}  # the uncommitted changes")
        elif facts.dirty:
            notes.append("⚠️ The tree had uncommitted changes and no patch was saved (a run devagent observed rather "
                         "than wrapped): the commit alone is not the code this run ran.")
    else:
        notes.append("⚠️ No git commit was recorded: the code this run ran cannot be recreated exactly.")
        lines += ["# 1. the code: no commit was recorded; copy it by hand", f"mkdir {folder}"]
    if facts.image:
        image = facts.pinned or facts.image
        lines += ["# 2. the environment, from the same image" + ("" if facts.pinned else " (on this engine only)"),
                  shlex.join(["devagent", "up", name, "--image", image, *environment_args(facts),
                              "--workspace", folder])]
        if not facts.pinned:
            notes.append(f"⚠️ The image {code(facts.image)} exists only on the engine that built it (no registry "
                         "digest): these commands are exact there and nowhere else. Push it — `devagent image build "
                         "--tag REGISTRY/REPO:VERSION --push` — and start environments from that to make runs "
                         "reproducible on any server.")
    else:
        notes.append("⚠️ No launch record: this run was not in a devagent environment, so its image is unknown.")
        lines += ["# 2. an environment (the run's own image is unknown)", f"devagent up {name} --workspace {folder}"]
    if facts.slurm:
        lines.insert(-1, "#    in a new Slurm job like the run's (same partition, time limit, GPU count): give "
                     "--host the cluster's login node")
    lines += ["# 3. the command, through the new environment's alias",
              f"ssh {name} {shlex.quote(facts.command_line())}"]
    if facts.redacted:
        notes.append(f"{REDACTED} marks a secret devagent never recorded: put your own in before you run it.")
    one = f"All at once: {code(f'devagent reproduce {notebook}#run-{facts.number}')}" + (
        " (it compares the metrics with this run's)" if facts.metrics else "")
    body = "\n\n".join([*notes, fence(lines, "sh"), one, DATA_PREFIX + _safe_json(facts.to_json()) + DATA_SUFFIX])
    return details("reproduce this run", body)


def _safe_json(text: str) -> str:
    """JSON that cannot end the HTML comment it sits in (``-->``) or open a tag."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def read_facts(section: str) -> ReproduceFacts | None:
    """The facts of the reproduce block in SECTION (a run section's text); None when it has none.

    >>> facts = ReproduceFacts(2, "dev", "img", None, None, (), "abc", None, ("python", "a-->b.py"), "/w")
    >>> read_facts(render_reproduce(facts, notebook="lab-notebook.md")) == facts
    True
    """
    match = _DATA_RE.search(section)
    if match is None:
        return None
    try:
        return ReproduceFacts.from_json(match["json"])
    except (ValueError, KeyError, TypeError):
        return None


def find_run_section(notebook_text: str, number: int) -> str | None:
    """The section of run NUMBER in a notebook's text (wrapped or observed); None when there is none.

    The section ends where the next entry's heading (``## YYYY-MM-DD HH:MM · ``) starts: a ``## `` line printed by
    the command, inside the output block, does not end it.

    >>> find_run_section("# nb\\n\\n## 2026-11-27 14:05 · run 3 · t.py · ✅ exit 0\\nbody\\n## out\\n\\n"
    ...                  "## 2026-11-27 14:09 · note\\n", 3)
    '## 2026-11-27 14:05 · run 3 · t.py · ✅ exit 0\\nbody\\n## out\\n'
    """
    heading = re.compile(rf"^## {_TIME} · run {number}(?: \(observed\))? · ", re.M)
    match = heading.search(notebook_text)
    if match is None:
        return None
    following = re.compile(rf"^## {_TIME} · ", re.M).search(notebook_text, match.end())
    return notebook_text[match.start():following.start() if following else len(notebook_text)].rstrip("\n") + "\n"


def compare_metrics(original: Mapping[str, float], new: Mapping[str, float], *,
                    tolerance: float) -> tuple[bool, list[str]]:
    """Each of the original run's final metrics against the new run's: ``loss 0.2831 vs 0.2831 ✓``, or ``differs``
    beyond TOLERANCE (relative to the original value, at least absolute TOLERANCE near zero). Returns (all match,
    the lines).

    >>> compare_metrics({"loss": 0.2831, "acc": 0.9}, {"loss": 0.2831, "acc": 0.85}, tolerance=1e-6)
    (False, ['loss 0.2831 vs 0.2831 ✓', 'acc 0.9 vs 0.85 ✗ differs'])
    >>> compare_metrics({"loss": 1.0}, {}, tolerance=0.01)
    (False, ['loss 1 vs — ✗ not logged'])
    """
    lines, ok = [], True
    for name, value in original.items():
        got = new.get(name)
        if got is None:
            lines.append(f"{name} {value:.6g} vs — ✗ not logged")
            ok = False
            continue
        same = abs(got - value) <= tolerance * max(1.0, abs(value)) or got == value
        ok = ok and same
        lines.append(f"{name} {value:.6g} vs {got:.6g} " + ("✓" if same else "✗ differs"))
    return ok, lines


def gpu_count(facts: ReproduceFacts) -> int:
    """How many GPUs the run's Slurm job had: its recorded --gpus are that job's GPUs on its node.

    >>> gpu_count(ReproduceFacts(3, "dev", None, None, None, ("--gpus", "2,3"), None, None, ("python",), "/w"))
    2
    """
    recorded = dict(zip(facts.up_args[::2], facts.up_args[1::2], strict=False)).get("--gpus", "none")
    gpus = spec.parse_gpus(recorded)
    if gpus.mode == "all":
        raise DevagentError(f"run {facts.number} recorded --gpus all: not how many GPUs its Slurm job had",
                            status=ExitStatus.USAGE, hint="fix the run's reproduce block, or up the environment "
                            "yourself with --slurm PARTITION --gpus N")
    return len(gpus.devices) if gpus.mode == "list" else gpus.count


def environment_args(facts: ReproduceFacts) -> tuple[str, ...]:
    """`up`'s options for an environment like the run's: its UP_ARGS; for a run in a Slurm job its job's options
    too, and the COUNT of its GPUs (Slurm picks which: the job's indexes mean nothing in another job).

    >>> environment_args(ReproduceFacts(3, "dev", None, None, None, ("--gpus", "0,1", "--user", "dev"), None, None,
    ...                  ("python",), "/w", slurm=("--slurm", "gpu", "--time", "0-01:00:00")))
    ('--gpus', '2', '--user', 'dev', '--slurm', 'gpu', '--time', '0-01:00:00')
    """
    if not facts.slurm:
        return facts.up_args
    args = list(facts.up_args)
    for i in range(0, len(args) - 1, 2):
        if args[i] == "--gpus":
            args[i + 1] = str(gpu_count(facts))
    return (*args, *facts.slurm)


_JOB_OPTIONS = ("--slurm", "--time", "--account", "--qos", "--constraint")


def job_request(facts: ReproduceFacts, *, notebook: str) -> SlurmRequest | None:
    """The Slurm job that run FACTS's environment lived in, asked for again: the same partition, time limit,
    account, QOS and constraint, the same number of GPUs, and the container's memory and CPU limits (as `up
    --slurm` asks); None for a run outside a Slurm job. Each value passes `up --slurm`'s checks (a notebook is
    text anyone may have written): DevagentError(USAGE) otherwise.

    >>> job_request(ReproduceFacts(3, "dev", None, None, None, ("--gpus", "2,3", "--memory", "2g"), None, None,
    ...             ("python",), "/w", slurm=("--slurm", "gpu", "--time", "10")), notebook="nb.md")
    SlurmRequest(partition='gpu', gpus=2, time_s=600, cpus=None, memory='2G', gpu_type=None, account=None, \
qos=None, constraint=None, gpus_option=False, warning_s=60)
    """
    if not facts.slurm:
        return None
    where = f"{notebook}, run {facts.number}"
    hint = "fix the run's reproduce block, or up the environment yourself with --slurm PARTITION"
    values: dict[str, str] = {}
    words = facts.slurm
    for i in range(0, len(words), 2):
        option = words[i]
        if option not in _JOB_OPTIONS or i + 1 >= len(words) or option in values:
            raise DevagentError(f"{where}: the recorded Slurm option {option!r} is not one devagent records once "
                                f"with a value ({', '.join(_JOB_OPTIONS)})", status=ExitStatus.USAGE, hint=hint)
        values[option] = words[i + 1]
    if "--slurm" not in values or "--time" not in values:
        raise DevagentError(f"{where}: the recorded Slurm job has no partition or no time limit",
                            status=ExitStatus.USAGE, hint=hint)
    recorded = up_option_values(facts.up_args, notebook=notebook, run=facts.number)
    cpus = recorded.get("cpus")
    try:
        return slurm_request(partition=values["--slurm"], gpus=gpu_count(facts), time=values["--time"],
                             account=values.get("--account"), qos=values.get("--qos"),
                             constraint=values.get("--constraint"),
                             memory=slurm_memory(spec.parse_size(recorded.get("memory", "16g"), option="--memory")),
                             cpus=slurm_cpus(spec.parse_cpus(cpus)) if cpus else None)
    except DevagentError as exc:
        raise DevagentError(f"{where}: the recorded Slurm job is refused: {exc.message}", status=ExitStatus.USAGE,
                            hint=hint) from None


# The options a notebook may hand to `up` (EnvSpec.up_args writes exactly these), each with the check the command
# line gives it. Anything else — --share-gpus, --host, --identity, --vscode — is a decision the person running
# `reproduce` makes, never a notebook: a notebook is text anyone may have written.
_RECORDED_OPTIONS: Mapping[str, Callable[[str], object]] = {
    "--gpus": spec.parse_gpus,
    "--memory": lambda v: spec.parse_size(v, option="--memory"),
    "--cpus": spec.parse_cpus,
    "--shm-size": lambda v: spec.parse_size(v, option="--shm-size"),
    "--pids": spec.parse_pids,
    "--user": spec.validate_user,
}


def up_option_values(up_args: Sequence[str], *, notebook: str, run: int) -> dict[str, str]:
    """UP_ARGS (``--memory 16g …``, as run RUN of NOTEBOOK recorded them) as `up`'s option keys, each option one
    of those devagent records, once, with a value `up` accepts for it; DevagentError(USAGE) otherwise.

    >>> up_option_values(["--gpus", "none", "--shm-size", "2g"], notebook="lab-notebook.md", run=3)
    {'gpus': 'none', 'shm_size': '2g'}
    >>> up_option_values(["--share-gpus", "no"], notebook="lab-notebook.md", run=3)
    Traceback (most recent call last):
    ...
    devagent.errors.DevagentError: lab-notebook.md, run 3: the recorded `up` option '--share-gpus' is not one \
devagent records (--gpus, --memory, --cpus, --shm-size, --pids, --user)
      hint: a notebook cannot choose it: fix the run's reproduce block, or pass what you mean to `devagent up` \
yourself
    """
    values: dict[str, str] = {}
    where = f"{notebook}, run {run}"
    hint = ("a notebook cannot choose it: fix the run's reproduce block, or pass what you mean to `devagent up` "
            "yourself")
    for i in range(0, len(up_args), 2):
        option = up_args[i]
        check = _RECORDED_OPTIONS.get(option)
        if check is None:
            raise DevagentError(f"{where}: the recorded `up` option {option!r} is not one devagent records "
                                f"({', '.join(_RECORDED_OPTIONS)})", status=ExitStatus.USAGE, hint=hint)
        key = option[2:].replace("-", "_")
        if i + 1 >= len(up_args) or key in values:
            why = "has no value" if i + 1 >= len(up_args) else "is recorded twice"
            raise DevagentError(f"{where}: the recorded `up` option {option!r} {why}",
                                status=ExitStatus.USAGE, hint=hint)
        try:
            check(up_args[i + 1])
        except DevagentError as exc:
            raise DevagentError(f"{where}: the recorded `up` option {option} {up_args[i + 1]!r} is refused: "
                                f"{exc.message}", status=ExitStatus.USAGE, hint=hint) from None
        values[key] = up_args[i + 1]
    return values


def reproduction_entries(facts: ReproduceFacts, *, when: datetime, ok: bool, lines: Sequence[str],
                         exit_code: int, original: str, new: str, env_name: str,
                         new_run: int | None, warnings: Sequence[str] = ()) -> tuple[str, str]:
    """(the entry for the new workspace's notebook, the entry for the original's): the comparison, both ways.
    ORIGINAL and NEW name the notebooks as the user knows them.

    >>> new, old = reproduction_entries(ReproduceFacts(3, "dev", None, None, None, (), None, None, ("python",),
    ...     "/w", metrics={"loss": 0.25}), when=datetime(2026, 11, 27, 15, 0), ok=True, lines=["loss 0.25 vs 0.25 ✓"],
    ...     exit_code=0, original="/a/lab-notebook.md", new="/b/lab-notebook.md", env_name="dev-run3", new_run=1)
    >>> print(old, end="")
    <BLANKLINE>
    ## 2026-11-27 15:00 · run 3 reproduced · ✅ loss 0.25 vs 0.25 ✓
    as run 1 in `/b/lab-notebook.md` (environment `dev-run3`)
    """
    # Metric names and warnings are the notebooks' words (and a server's): shown literally, never as markup or as
    # an instruction to the terminal that shows the file.
    lines = [_inline(line) for line in lines]
    verdict = ("✅ " if ok and exit_code == 0 else "❌ ") + (
        "; ".join(lines) if lines else "no metrics to compare")
    if exit_code != 0:
        verdict = f"❌ exit {exit_code}" + (f" · {'; '.join(lines)}" if lines else "")
    run = f"run {new_run}" if new_run is not None else "a run that left no record"
    notes = [f"- ⚠️ {_inline(w)}" for w in warnings]
    new_body = "\n".join([f"{run} re-created run {facts.number} of {code(original)}"
                          f"{' at ' + code(facts.commit) if facts.commit else ''} from "
                          f"{code(facts.pinned or facts.image or 'a base image')}", "",
                          *(f"- {line}" for line in lines), *notes])
    old_body = f"as {run} in {code(new)} (environment {code(env_name)})"
    return (entry(heading(when, f"reproduction of run {facts.number}", verdict), new_body),
            entry(heading(when, f"run {facts.number} reproduced", verdict), old_body))


def _inline(text: str) -> str:
    r"""TEXT on one line, shown literally in a heading or a list item: markup escaped, control characters visible.

    >>> _inline("acc\x1b]52;c;ZXZpbA==\x07 *1* vs 2")
    'acc␛\\]52;c;ZXZpbA==␇ \\*1\\* vs 2'
    """
    return escape_heading(one_line(text))
