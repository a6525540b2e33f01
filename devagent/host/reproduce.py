"""`devagent reproduce NOTEBOOK#run-N`: re-create a run from its reproduce block and compare the results.

The steps: read the run's facts from its section (core/runs/reproduce.py); refuse, naming what is missing, when an
exact reproduction cannot be had (no image, no commit, a patch that no longer applies) unless asked to go on
anyway; clone the repository at the run's commit into a new workspace and apply the run's patch; `up` a new
environment from the same image (the CLI does that, with `Provisioner.up`); run the same command through the new
alias; compare the new run's final metrics with the original's and record the comparison in both notebooks.

Everything up to the environment is checked first, and a refusal leaves nothing behind: the new workspace is
made only once the checks pass, and removed again when a later check fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devagent.core import layout
from devagent.core.runs.record import RunRecord
from devagent.core.runs.reproduce import ReproduceFacts, find_run_section, read_facts
from devagent.core.spec import validate_new_name
from devagent.errors import DevagentError, ExitStatus
from devagent.host.engine import Engine

Report = Callable[[str], None]
_TARGET_RE = re.compile(r"(?P<path>.+)#run-(?P<number>[1-9][0-9]*)")
_GIT_TIMEOUT = 300.0


@dataclass
class Reproduction:
    """A checked plan: where the code was cloned, which image to start, what was said about it."""

    facts: ReproduceFacts
    notebook: Path  # the original notebook
    workspace: Path  # the original workspace (the folder that holds the runs journal)
    name: str
    new_root: Path  # the clone (or copy) made for the new environment
    new_workspace: Path  # the folder of it that is mounted (the clone's counterpart of the original workspace)
    image: str | None  # --image for up; None: build from BASE_IMAGE (--anyway without an image)
    base_image: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def new_notebook(self) -> Path:
        return self.new_workspace / self.notebook.relative_to(self.workspace)

    def discard(self) -> None:
        """Remove the new workspace again (before any environment mounts it)."""
        shutil.rmtree(self.new_root, ignore_errors=True)


def parse_target(text: str) -> tuple[Path, int]:
    """NOTEBOOK#run-N as (notebook path, N).

    >>> parse_target("lab-notebook.md#run-3")
    (PosixPath('lab-notebook.md'), 3)
    """
    match = _TARGET_RE.fullmatch(text)
    if match is None:
        raise DevagentError(f"{text!r} does not name a run", status=ExitStatus.USAGE,
                            hint="name the notebook and the run: devagent reproduce lab-notebook.md#run-3")
    return Path(match["path"]), int(match["number"])


def load_facts(notebook: Path, number: int) -> ReproduceFacts:
    try:
        text = notebook.read_text(encoding="utf-8")
    except OSError as exc:
        raise DevagentError(f"cannot read the notebook {notebook}: {exc.strerror or exc}", status=ExitStatus.USAGE,
                            hint="give the path of a lab notebook: devagent reproduce lab-notebook.md#run-3") from None
    section = find_run_section(text, number)
    if section is None:
        raise DevagentError(f"{notebook} has no run {number}", status=ExitStatus.USAGE,
                            hint="the run numbers are in the section headings (## … · run N · …)")
    facts = read_facts(section)
    if facts is None:
        raise DevagentError(f"run {number} in {notebook} has no reproduce block (it was recorded by an older "
                            "devagent)", status=ExitStatus.NOT_REPRODUCIBLE,
                            hint="its section still lists the image, commit and command: re-create it by hand")
    return facts


def find_workspace(notebook: Path) -> Path:
    """The workspace of NOTEBOOK: the nearest folder above it that holds devagent's state, else its own folder."""
    folder = notebook.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / layout.WORKSPACE_STATE).is_dir():
            return candidate
    return folder


def prepare(target: str, *, name: str | None, into: Path | None, anyway: bool, engine: Engine,
            report: Report) -> Reproduction:
    """Check that run TARGET can be reproduced and make its new workspace. Refuses with NOT_REPRODUCIBLE (naming
    every gap) unless ANYWAY; a refusal leaves nothing behind."""
    notebook_path, number = parse_target(target)
    facts = load_facts(notebook_path, number)
    notebook = notebook_path.resolve()
    workspace = find_workspace(notebook)
    new_name = validate_new_name(name or facts.new_env_name())
    new_root = (into or workspace.parent / new_name).absolute()
    if new_root.exists():
        raise DevagentError(f"{new_root} exists", status=ExitStatus.USAGE,
                            hint="the reproduction gets a new workspace: pass --workspace a folder that does not "
                            "exist yet, or --name another name")
    if facts.redacted:
        raise DevagentError(f"run {number} had secrets in its command or environment, which devagent never "
                            "records", status=ExitStatus.NOT_REPRODUCIBLE,
                            hint="run the commands of its reproduce block by hand, with your own secret where it "
                            "says ‹redacted›")
    gaps = facts.missing()
    image, warnings = facts.pinned or facts.image, []
    if facts.image and not facts.pinned:
        if engine.image_id(facts.image) is None:
            gaps.append(f"the image {facts.image}, which has no registry digest and is not on this engine")
            image = None
        else:
            warnings.append(f"the image {facts.image} exists only on this engine (no registry digest): the "
                            "reproduction is exact here and nowhere else")
    repo = _repository(workspace) if facts.commit else None
    if facts.commit and repo is None:
        gaps.append(f"the code: {workspace} is not in a git repository any more")
    if gaps and not anyway:
        raise DevagentError(f"run {number} cannot be reproduced exactly: it lacks " + "; ".join(gaps),
                            status=ExitStatus.NOT_REPRODUCIBLE,
                            hint="add --anyway to go on with what exists (" + _anyway_means(facts, image) + ")")
    warnings += [f"going on without {gap}" for gap in gaps]
    plan = Reproduction(facts=facts, notebook=notebook, workspace=workspace, name=new_name, new_root=new_root,
                        new_workspace=new_root, image=image, base_image=facts.base_image, warnings=warnings)
    try:
        if repo is not None and facts.commit:
            plan.new_workspace = new_root / workspace.relative_to(repo)
            _clone(repo, new_root, facts.commit, report)
            if facts.patch:
                _apply_patch(plan, workspace / facts.patch, repo=repo, anyway=anyway, report=report)
        else:
            report(f"copying {workspace} as it is now (no commit to clone)")
            shutil.copytree(workspace, new_root, symlinks=True,
                            ignore=shutil.ignore_patterns(*layout.WORKSPACE_FILES))
        _give_to_login_user(new_root)
    except BaseException:
        plan.discard()
        raise
    return plan


def _anyway_means(facts: ReproduceFacts, image: str | None) -> str:
    parts = []
    if not image:
        parts.append(f"an image built from {facts.base_image or 'the default base image'}")
    parts.append("the code at its commit" if facts.commit else "the workspace's code as it is now")
    return ", ".join(parts)


def _repository(workspace: Path) -> Path | None:
    for candidate in (workspace, *workspace.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


# Nothing a repository's configuration names runs (see docs/explanation/security-model.md).
_GIT_PINS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=")


def _git(*args: str, cwd: Path | None = None, trust: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run git. TRUST: the repository the user named, which another uid may own (the container's login user,
    when devagent runs as root): git may read it for this one call, through a throw-away global config that
    includes the user's own; nothing is written to the user's files."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="devagent-git-") as tmp:
        if trust is not None and _owner(trust) != os.geteuid():
            config = Path(tmp) / "gitconfig"
            own = Path(env.get("GIT_CONFIG_GLOBAL") or Path.home() / ".gitconfig")
            config.write_text(f"[include]\n\tpath = {own}\n[safe]\n\tdirectory = {trust}\n"
                              f"\tdirectory = {trust}/.git\n")
            env["GIT_CONFIG_GLOBAL"] = str(config)
        try:
            return subprocess.run(["git", *_GIT_PINS, *args], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT, check=False)
        except FileNotFoundError:
            raise DevagentError("git is not installed", status=ExitStatus.USAGE,
                                hint="install it (apt-get install git): the code is re-created with it") from None


def _owner(path: Path) -> int:
    try:
        return (path / ".git").stat().st_uid
    except OSError:
        return os.geteuid()


def _clone(repo: Path, into: Path, commit: str, report: Report) -> None:
    """A clone that shares no file with REPO (no hard links: the clone is given to the login user after)."""
    report(f"cloning {repo} at {commit} into {into}")
    cloned = _git("clone", "--quiet", "--no-checkout", "--no-hardlinks", str(repo), str(into), trust=repo)
    if cloned.returncode != 0:
        raise DevagentError(f"cloning {repo} failed", status=ExitStatus.NOT_REPRODUCIBLE,
                            details=cloned.stderr.strip() or None, hint="check that the repository is readable")
    checkout = _git("-C", str(into), "checkout", "--quiet", "--detach", commit)
    if checkout.returncode != 0:
        raise DevagentError(f"the run's commit {commit} is not in {repo}", status=ExitStatus.NOT_REPRODUCIBLE,
                            details=checkout.stderr.strip() or None,
                            hint="fetch it (git fetch) or restore the branch that had it, then try again")


def _apply_patch(plan: Reproduction, patch: Path, *, repo: Path, anyway: bool, report: Report) -> None:
    check = _git("-C", str(plan.new_root), "apply", "--check", str(patch))
    if check.returncode != 0:
        why = check.stderr.strip() or "git apply --check failed"
        if not anyway:
            raise DevagentError(f"run {plan.facts.number}'s patch {patch} does not apply to commit "
                                f"{plan.facts.commit}", status=ExitStatus.NOT_REPRODUCIBLE, details=why,
                                hint="add --anyway to go on with the code at its commit, without the run's "
                                "uncommitted changes")
        plan.warnings.append(f"going on without the run's uncommitted changes: {patch.name} does not apply")
        return
    report(f"applying {patch.name}")
    applied = _git("-C", str(plan.new_root), "apply", str(patch))
    if applied.returncode != 0:
        raise DevagentError(f"applying {patch} failed", status=ExitStatus.NOT_REPRODUCIBLE,
                            details=applied.stderr.strip() or None, hint="apply it by hand to see why")


def _give_to_login_user(root: Path) -> None:
    """Run as root, devagent makes the container's login user uid 1000 (as `up` does): the workspace made here
    becomes that user's, as a workspace `up` makes does. Links are changed themselves, never followed."""
    if os.geteuid() != 0:
        return
    for folder, dirs, files in os.walk(root):
        for entry in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.lchown(entry, 1000, 1000)


def run_through_alias(ssh_config: Path, facts: ReproduceFacts, name: str) -> int:
    """The run's command in the new environment, through its alias, its output passed through."""
    return subprocess.run(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", name, facts.command_line()],
                          check=False).returncode


def last_run(workspace: Path) -> RunRecord | None:
    """The newest run in WORKSPACE's runs journal."""
    try:
        lines = layout.runs_journal(workspace).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return RunRecord.from_json(line)
        except (ValueError, KeyError):
            continue
    return None
