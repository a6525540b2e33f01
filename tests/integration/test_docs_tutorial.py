"""The tutorial (docs/tutorial/first-environment.md), run: each console block that can run on this machine is run,
in the tutorial's order, in one environment, and its output compared with what the page shows; the notebook's
header and the run section it shows are compared with the real notebook. What varies legitimately (ports, hashes,
times, numbers) is masked, and `…` on the page stands for any text (tests/docs_console.py).

The commands run as the page types them, in a folder laid out as the repository (build/demo, examples/), with the
demo's DEVAGENT_HOME and DEVAGENT_SSH_CONFIG; `/…/` in a command is that folder. Only the environment's name
differs (a per-run prefix, so parallel sessions do not collide): it is put back as `demo` in what is compared.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs_console import Block, blocks, mismatch
from tests.integration.conftest import RUN_PREFIX, container_names, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial" / "first-environment.md"
DOC_NAME = "demo"
INSIDE = "dev@demo:~/workspace$ "


@dataclass
class Demo:
    """The repository-like folder the tutorial's commands run in, and the environment they make."""

    root: Path
    name: str

    @property
    def environ(self) -> dict[str, str]:
        demo = self.root / "build" / "demo"
        return {**os.environ, "HOME": str(self.root / "home"), "DEVAGENT_HOME": str(demo / "home"),
                "DEVAGENT_SSH_CONFIG": str(demo / "ssh_config"), "PYTHONUNBUFFERED": "1",
                "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}

    @property
    def workspace(self) -> Path:
        return self.root / "build" / "demo" / "workspace"

    def command(self, typed: str) -> str:
        """The command as the page types it, for this folder and this environment's name."""
        typed = typed.replace("/…/", f"{self.root}/")
        return re.sub(r"(?<![\w/.@-])demo(?![\w/.-])", self.name, typed)

    def shell(self, typed: str, *, timeout: float = 600) -> list[str]:
        """Run TYPED in bash here; stdout and stderr as one stream of lines, the name put back as `demo`."""
        done = subprocess.run(["bash", "-c", self.command(typed)], cwd=self.root, env=self.environ, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        assert done.returncode == 0, f"{typed!r} exited {done.returncode}:\n{done.stdout}"
        return done.stdout.replace(self.name, DOC_NAME).splitlines()

    def inside(self, typed: str) -> list[str]:
        """TYPED at the environment's prompt in ~/workspace: through the alias, as the page's ssh commands are."""
        return self.shell(f"ssh -F build/demo/ssh_config demo {shlex.quote(f'exec 2>&1; cd ~/workspace && {typed}')}")


@pytest.fixture(scope="module")
def demo(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("repository")
    (root / "build" / "demo").mkdir(parents=True)
    (root / "home" / ".ssh").mkdir(parents=True, mode=0o700)
    (root / "examples").symlink_to(ROOT / "examples")
    (root / "bin").mkdir()
    shim = root / "bin" / "devagent"  # this checkout's devagent, as the repository's .venv/bin/devagent would be
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m devagent "$@"\n')
    shim.chmod(0o755)
    made = Demo(root, f"{RUN_PREFIX}demo")
    yield made
    subprocess.run([sys.executable, "-m", "devagent", "down", made.name], env=made.environ, capture_output=True,
                   check=False)


def _journal(demo: Demo) -> str:
    journal = demo.workspace / ".devagent" / "saves.jsonl"
    return journal.read_text() if journal.exists() else ""


def _journal_ends_with_the_lr_edit(demo: Demo) -> bool:
    lines = _journal(demo).splitlines()
    last = json.loads(lines[-1]) if lines else {}
    return last.get("path") == "train.py" and last.get("lines_removed") == 1


def save_train_py(demo: Demo) -> None:
    """What `make demo` and step 3 do before the journal is read: train.py written, then its lr changed."""
    demo.inside("printf 'import torch\\nlr = 3e-4\\nmodel = torch.nn.Linear(4, 1)\\n"
                "print(\"ok\", sum(p.numel() for p in model.parameters()))\\n' > train.py")  # as scripts/demo.sh
    wait_for(lambda: '"path":"train.py"' in _journal(demo), timeout=60, message="the first save's journal line")
    demo.inside("sed -i s/3e-4/1e-3/ train.py")
    wait_for(lambda: _journal_ends_with_the_lr_edit(demo), timeout=60, message="the edit's journal line")


def notebook_section(demo: Demo, heading: re.Pattern[str]) -> list[str]:
    """The lines of the notebook's last section whose heading matches HEADING, up to the next `## ` heading."""
    lines = (demo.workspace / "lab-notebook.md").read_text().replace(demo.name, DOC_NAME).splitlines()
    starts = [i for i, line in enumerate(lines) if heading.match(line)]
    assert starts, "\n".join(lines)
    end = next((i for i in range(starts[-1] + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[starts[-1]:end]


# What the test does with each block of the page, by its first line: compare (a function of the block giving the
# real lines), run it and compare nothing, or leave it (the reason says why). A block not listed fails
# test_every_block_of_the_tutorial_is_run_or_said_why_not (tests/test_docs.py), so a new one is never unchecked.
Action = Callable[[Demo, Block], "list[str] | None"]


def _typed(demo: Demo, block: Block) -> list[str]:
    typed = block.prompt.removeprefix("$ ").removeprefix("# ")
    if typed.startswith("ssh ") and " '" in typed:  # one stream inside, so the lines keep their order
        typed = typed.replace(" '", " 'exec 2>&1; ", 1)
    return as_first_run(demo.shell(typed))


def as_first_run(lines: list[str]) -> list[str]:
    """The pages show the first run, which builds the derived image; here it may be cached already (other tests
    build the same one): what a cached image's lines say instead is put back as the first run says it (the build's
    own lines are `…` on the pages)."""
    out: list[str] = []
    building = False
    for line in lines:
        if m := re.fullmatch(r"image (\S+) \(cached\)", line):  # `up`'s progress line
            out.append(f"building image {m.group(1)} from devagent-base:bookworm")
            building = True
        elif m := re.fullmatch(r"✔ image (\S+) \(cached\)", line):
            if not building:  # `image build` says it on the ✔ line alone
                out.append(f"building image {m.group(1)} from devagent-base:bookworm")
            out.append(f"✔ image {m.group(1)} (built)")
        else:
            out.append(line)
    return out


def _at_prompt(demo: Demo, block: Block) -> list[str]:
    if "saves.jsonl" in block.prompt:
        save_train_py(demo)
    return demo.inside(block.prompt.removeprefix(INSIDE))


def _run_only(demo: Demo, block: Block) -> None:
    _typed(demo, block)
    if "train_simplenet.py" in block.prompt:  # the copy: journaled before the run (a reader takes seconds too)
        wait_for(lambda: '"path":"train_simplenet.py"' in _journal(demo), timeout=60, message="the copy's save")


def _include_line(demo: Demo, block: Block) -> list[str]:
    config = (demo.root / "build" / "demo" / "ssh_config").read_text().splitlines()
    return [line for line in config if line.startswith("Include ")][:1]


def _header(demo: Demo, block: Block) -> list[str]:
    notebook = demo.workspace / "lab-notebook.md"
    # The agent writes the header with its first entry, the GPU check, once `up` has proven the login.
    wait_for(lambda: notebook.exists() and "GPU check" in notebook.read_text(), timeout=60, message="the notebook")
    return (demo.workspace / "lab-notebook.md").read_text().replace(demo.name, DOC_NAME).splitlines()


def _run_section(demo: Demo, block: Block) -> list[str]:
    section = notebook_section(demo, re.compile(r"^## .* · run \d+ · train_simplenet\.py · "))
    # The owner is whoever runs the tutorial: root, as the page asks, on the machines that run this test.
    return [re.sub(r"^\| started by \| \S+ \(owner\) \|$", "| started by | root (owner) |", line)
            for line in section]


def _demo_clean(demo: Demo, block: Block) -> list[str]:
    return demo.shell("devagent down demo")  # what `make demo-clean` runs, with the demo's settings


NOT_RUN = {
    "# make demo": "installs Debian packages and the base image; the blocks below run what it then runs",
    f"{INSIDE}python train.py": "the page shows no output",
    f"{INSIDE}devagent gpu-check": "the page shows no output (the entry is the machine's)",
    "from devagent import lab": "Python, not a command",
}
ACTIONS: dict[str, Action] = {
    "$ devagent up demo": _typed,
    "Include /…/build/demo/home/ssh_config": _include_line,
    f"{INSIDE}tail -n 1 .devagent/saves.jsonl": _at_prompt,
    "# Lab notebook — demo": _header,
    "# ssh -F build/demo/ssh_config demo 'cat > ": _run_only,
    "# ssh -F build/demo/ssh_config demo 'cd ~/workspace && devagent run": _typed,
    "## ": _run_section,
    "# make demo-clean": _demo_clean,
}


def action(block: Block, page: Path = TUTORIAL) -> Action | str:
    """What the test does with BLOCK of PAGE: an action, or the reason it is not run."""
    actions, not_run = (ACTIONS, NOT_RUN) if page == TUTORIAL else (HOW_TO_ACTIONS, HOW_TO_NOT_RUN)
    for start, act in actions.items():  # first: `# make demo-clean` starts as `# make demo` does
        if block.prompt.startswith(start):
            return act
    for start, reason in not_run.items():
        if block.prompt.startswith(start):
            return reason
    raise AssertionError(f"{page.name} line {block.line}: a block the test neither runs nor leaves out: "
                         f"{block.prompt!r}; add it to the actions or the reasons in {Path(__file__).name}")


# The how-tos' console blocks. Most need what this machine has not (GPUs, a server, a team's image) or are
# Docker's and make's own commands; the reason says which.
HOW_TOS = sorted((ROOT / "docs" / "how-to").glob("*.md"))
HOW_TO_ACTIONS: dict[str, Action] = {
    "$ devagent image build --base-image devagent-base:bookworm": _typed,
}
HOW_TO_NOT_RUN = {
    "# make ": "the repository's make targets (they install packages or run the suite itself)",
    "$ make ": "the repository's make targets (they run the suite itself)",
    "$ .venv/bin/python tests/test_docs.py --write": "rewrites the docs; test_docs.py checks its result",
    "$ docker ": "Docker's own commands (a prune would remove images other tests use)",
    "$ devagent gpus": "needs GPUs",
    "dev@pytorch-dev:~/workspace$ devagent gpu-check": "needs GPUs",
    "laptop$ devagent up pytorch-dev --host": "needs a server",
    "laptop$ devagent up exp --host hpc-login --slurm": "needs a Slurm cluster with GPUs (tests/integration/"
    "test_slurm_up.py runs up --slurm on the test cluster and checks what it prints)",
    "laptop$ devagent gpus --host hpc-login --slurm": "needs a Slurm cluster with GPUs (tests/integration/"
    "test_slurm_queue.py checks what it prints on the test cluster)",
    "laptop$ devagent reproduce devagent/exp/lab-notebook.md#run-3 --host hpc-login": "needs a run made in a "
    "Slurm job (tests/integration/test_slurm_reproduce.py reproduces one on the test cluster)",
    "laptop$ ssh exp": "needs an environment whose Slurm job has ended (tests/integration/"
    "test_slurm_up.py checks these words after scancel on the test cluster)",
    "$ devagent up pytorch-dev --gpus": "needs GPUs",
    "$ devagent up exp-ana --gpus": "needs GPUs",
    "$ devagent up debug-bob --gpus": "needs GPUs",
    "$ devagent up exp --gpus any:2 --idle-release": "needs GPUs (test_idle_release.py: a stand-in NVML)",
    "$ devagent up pytorch-dev --base-image my-team/": "needs a team's image this machine does not have",
    "$ devagent image build --base-image my-team/": "needs a team's image this machine does not have",
    "$ devagent up exp --workspace ./code --watch": "the page shows no output",
    "$ devagent up exp --workspace /mnt/nfs/code": "needs a network mount; the page shows no output",
    "$ devagent unshare pytorch-dev alice": "needs a teammate's open ssh session (tests/integration/test_share.py "
    "checks what it prints)",
}


def test_the_tutorial_shows_what_its_commands_print(demo: Demo, docker_client: object) -> None:
    for block in blocks(TUTORIAL):
        act = action(block)
        if isinstance(act, str):
            continue
        real = act(demo, block)
        if real is None:
            continue
        shown = list(block.output if block.kind == "console" else block.lines)
        while shown and not shown[-1].strip():
            shown.pop()
        while real and not real[-1].strip():
            real.pop()
        problem = mismatch(shown, real)
        assert problem is None, f"{TUTORIAL.name} line {block.line} ({block.prompt!r}): {problem}\n" \
            "real output:\n" + "\n".join(real)
    assert container_names(docker_client, demo.name) == []  # `make demo-clean` removed it


def test_the_how_tos_show_what_their_commands_print(demo: Demo) -> None:
    for page in HOW_TOS:
        for block in blocks(page, "console"):
            act = action(block, page)
            if isinstance(act, str):
                continue
            real = act(demo, block)
            problem = mismatch(list(block.output), real or [])
            assert problem is None, f"{page.name} line {block.line} ({block.prompt!r}): {problem}\n" \
                "real output:\n" + "\n".join(real or [])
