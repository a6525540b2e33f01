"""`devagent reproduce NOTEBOOK#run-N`: re-create a run from its reproduce block and compare the results.

The steps: read the run's facts from its section (core/runs/reproduce_block.py); refuse, naming what is missing, when an
exact reproduction cannot be had (no image, no commit, a patch that no longer applies) unless asked to go on
anyway; clone the repository at the run's commit into a new workspace and apply the run's patch; `up` a new
environment from the same image (the CLI does that, with `Provisioner.up`); run the same command through the new
alias; compare the new run's final metrics with the original's and record the comparison in both notebooks.

Everything up to the environment is checked first, and a refusal leaves nothing behind: the new workspace is
made only once the checks pass, and removed again when a later check fails.

The files live where the environments do: on this machine (LocalFiles), or on the server of `--host` (ServerFiles:
each step a command over the command's one ssh login, as the server user; the notebook path is the server's).
There, the folders are made, filled, given away and removed through control/sites/server_workspace.py's WALK (never
acted on twice by their path), and the comparison is appended by that same ssh login, as the server user, with only the
appended bytes sent (`append_on_server`). No image runs for it: the image a notebook names is the notebook's
choice, and a crafted notebook could name one that would get the original workspace (code, `.env`,
checkpoints); `devagent.*` labels prove nothing (anyone can write them), an image devagent builds here is built
from the base the notebook names, and the original environment, which could do it with `docker exec`, is often
down by then. Everything in an environment can change its workspace, so the append opens nothing through a link
(which is why a throw-away container that saw only the workspace did it before): each folder is entered and
checked as WALK does, and the notebook itself is opened with O_NOFOLLOW.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Protocol

from devagent.control.engine.engine_api import EngineApi
from devagent.control.sites.server_workspace import WALK, absolute, run_script
from devagent.control.sites.site import Link
from devagent.core import layout
from devagent.core.runs.record import RunRecord
from devagent.core.runs.reproduce_block import ReproduceFacts, find_run_section, read_facts
from devagent.core.spec import validate_new_name
from devagent.core.ssh.command_line import ssh_argv
from devagent.errors import DevagentError, ExitStatus
from devagent.nofollow.folder import copy_tree, give_tree
from devagent.nofollow.walk import PathRefused, open_below, open_regular, read_limited, read_tail

Report = Callable[[str], None]
_TARGET_RE = re.compile(r"(?P<path>.+)#run-(?P<number>[1-9][0-9]*)")
_GIT_TIMEOUT = 300.0


class Files(Protocol):
    """The folders of the original run and of its reproduction: on this machine, or on a server."""

    where: str  # "" here, " on SERVER" for a server: for messages

    def path(self, text: str) -> PurePath: ...
    def read_text(self, path: PurePath) -> str: ...
    def read_tail(self, root: PurePath, rel: str, limit: int) -> str: ...
    def exists(self, path: PurePath) -> bool: ...
    def find_workspace(self, notebook: PurePath) -> PurePath: ...
    def repository(self, workspace: PurePath) -> PurePath | None: ...
    def git(self, *args: str, trust: PurePath | None = None) -> subprocess.CompletedProcess[str]: ...
    def copy_code(self, workspace: PurePath, into: PurePath) -> None: ...
    def give_to_login_user(self, root: PurePath) -> None: ...
    def discard(self, root: PurePath) -> None: ...


@dataclass
class Reproduction:
    """A checked plan: where the code was cloned, which image to start, what was said about it."""

    facts: ReproduceFacts
    files: Files
    notebook: PurePath  # the original notebook
    workspace: PurePath  # the original workspace (the folder that holds the runs journal)
    name: str
    new_root: PurePath  # the clone (or copy) made for the new environment
    new_workspace: PurePath  # the folder of it that is mounted (the clone's counterpart of the original)
    image: str | None  # --image for up; None: build from BASE_IMAGE (--anyway without an image)
    base_image: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def new_notebook(self) -> PurePath:
        return self.new_workspace / self.notebook.relative_to(self.workspace)

    def discard(self) -> None:
        """Remove the new workspace again (before any environment mounts it)."""
        self.files.discard(self.new_root)


def parse_target(text: str) -> tuple[str, int]:
    """NOTEBOOK#run-N as (notebook path, N).

    >>> parse_target("lab-notebook.md#run-3")
    ('lab-notebook.md', 3)
    """
    match = _TARGET_RE.fullmatch(text)
    if match is None:
        raise DevagentError(f"{text!r} does not name a run", status=ExitStatus.USAGE,
                            hint="name the notebook and the run: devagent reproduce lab-notebook.md#run-3")
    return match["path"], int(match["number"])


def load_facts(files: Files, notebook: PurePath, number: int) -> ReproduceFacts:
    try:
        text = files.read_text(notebook)
    except OSError as exc:
        raise DevagentError(f"cannot read the notebook {notebook}{files.where}: {exc.strerror or exc}",
                            status=ExitStatus.USAGE,
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


def prepare(target: str, *, name: str | None, into: str | None, anyway: bool, engine: EngineApi, files: Files,
            report: Report, facts: ReproduceFacts | None = None) -> Reproduction:
    """Check that run TARGET can be reproduced and make its new workspace (INTO, else beside the original's).
    Refuses with NOT_REPRODUCIBLE (naming every gap) unless ANYWAY; a refusal leaves nothing behind. FACTS: the
    run's, when the caller read them from the notebook already (`reproduce --host`: one read over ssh, not two)."""
    notebook_text, number = parse_target(target)
    notebook = files.path(notebook_text)
    if facts is None:
        facts = load_facts(files, notebook, number)
    workspace = files.find_workspace(notebook)
    new_name = validate_new_name(name or facts.new_env_name())
    new_root = files.path(into) if into else workspace.parent / new_name
    if files.exists(new_root):
        raise DevagentError(f"{new_root}{files.where} exists", status=ExitStatus.USAGE,
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
    repo = files.repository(workspace) if facts.commit else None
    if facts.commit and repo is None:
        gaps.append(f"the code: {workspace}{files.where} is not in a git repository any more")
    if gaps and not anyway:
        raise DevagentError(f"run {number} cannot be reproduced exactly: it lacks " + "; ".join(gaps),
                            status=ExitStatus.NOT_REPRODUCIBLE,
                            hint="add --anyway to go on with what exists (" + _anyway_means(facts, image) + ")")
    warnings += [f"going on without {gap}" for gap in gaps]
    plan = Reproduction(facts=facts, files=files, notebook=notebook, workspace=workspace, name=new_name,
                        new_root=new_root, new_workspace=new_root, image=image, base_image=facts.base_image,
                        warnings=warnings)
    try:
        if repo is not None and facts.commit:
            plan.new_workspace = new_root / workspace.relative_to(repo)
            _clone(files, repo, new_root, facts.commit, report)
            if facts.patch:
                _apply_patch(plan, workspace / facts.patch, anyway=anyway, report=report)
        else:
            report(f"copying {workspace} as it is now (no commit to clone)")
            files.copy_code(workspace, new_root)
        files.give_to_login_user(new_root)
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


# Nothing a repository's configuration names runs (see docs/explanation/security-model.md).
_GIT_PINS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=")


def _clone(files: Files, repo: PurePath, into: PurePath, commit: str, report: Report) -> None:
    """A clone that shares no file with REPO (no hard links: the clone is given to the login user after)."""
    report(f"cloning {repo} at {commit} into {into}{files.where}")
    cloned = files.git("clone", "--quiet", "--no-checkout", "--no-hardlinks", str(repo), str(into), trust=repo)
    if cloned.returncode != 0:
        raise DevagentError(f"cloning {repo}{files.where} failed", status=ExitStatus.NOT_REPRODUCIBLE,
                            details=cloned.stderr.strip() or None, hint="check that the repository is readable")
    checkout = files.git("-C", str(into), "checkout", "--quiet", "--detach", commit)
    if checkout.returncode != 0:
        raise DevagentError(f"the run's commit {commit} is not in {repo}{files.where}",
                            status=ExitStatus.NOT_REPRODUCIBLE, details=checkout.stderr.strip() or None,
                            hint="fetch it (git fetch) or restore the branch that had it, then try again")


def _apply_patch(plan: Reproduction, patch: PurePath, *, anyway: bool, report: Report) -> None:
    files = plan.files
    check = files.git("-C", str(plan.new_root), "apply", "--check", str(patch))
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
    applied = files.git("-C", str(plan.new_root), "apply", str(patch))
    if applied.returncode != 0:
        raise DevagentError(f"applying {patch} failed", status=ExitStatus.NOT_REPRODUCIBLE,
                            details=applied.stderr.strip() or None, hint="apply it by hand to see why")


def _git_not_installed(where: str) -> DevagentError:
    return DevagentError(f"git is not installed{where}", status=ExitStatus.USAGE,
                         hint="install it (apt-get install git): the code is re-created with it")


_NOTEBOOK_LIMIT = 64 << 20  # a notebook (or devagent.toml) larger than this is not one: not read
_RUNS_TAIL = 4 << 20  # what is read of the new runs journal, from its end: its last record is all that counts
_LOGIN_USER = (1000, 1000)  # run as root, devagent makes the container's login user uid 1000 (as `up` does)


class LocalFiles:
    """The run and its reproduction on this machine.

    Files in a workspace are anyone's who can write there (run as root, the workspace may be uid 1000's, and
    the code run in the new environment writes its runs journal): they are read and copied through
    devagent/nofollow, never through a link, never waiting on a FIFO, at a bounded cost."""

    where = ""

    def __init__(self) -> None:
        self._given: set[Path] = set()  # copies made here already given to the login user, file by file
        self._theirs: set[Path] = set()  # folders someone else made where a copy was to go: never removed

    def path(self, text: str) -> PurePath:
        """TEXT as an absolute path, links resolved (in the part that exists)."""
        return Path(text).resolve()

    def read_text(self, path: PurePath) -> str:
        """PATH's text: a regular file (a link at its name, a FIFO, a device: ``PathRefused``), at most
        _NOTEBOOK_LIMIT bytes (more: ``PathRefused``, kind "too-large")."""
        fd = open_regular(Path(path), follow_links=False)
        try:
            return read_limited(fd, _NOTEBOOK_LIMIT, str(path)).decode("utf-8", errors="replace")
        finally:
            os.close(fd)

    def read_tail(self, root: PurePath, rel: str, limit: int) -> str:
        """The last LIMIT bytes (whole lines) of the regular file REL below ROOT, no link followed below ROOT."""
        fd = open_below(Path(root), rel)
        try:
            return read_tail(fd, limit).decode("utf-8", errors="replace")
        finally:
            os.close(fd)

    def exists(self, path: PurePath) -> bool:
        return Path(path).exists() or Path(path).is_symlink()

    def find_workspace(self, notebook: PurePath) -> PurePath:
        """The nearest folder above NOTEBOOK that holds devagent's state, else its own folder."""
        folder = Path(notebook).resolve().parent
        for candidate in (folder, *folder.parents):
            if (candidate / layout.WORKSPACE_STATE).is_dir():
                return candidate
        return folder

    def repository(self, workspace: PurePath) -> PurePath | None:
        for candidate in (Path(workspace), *Path(workspace).parents):
            if (candidate / ".git").exists():
                return candidate
        return None

    def git(self, *args: str, trust: PurePath | None = None) -> subprocess.CompletedProcess[str]:
        """Run git. TRUST: the repository the user named, which another uid may own (the container's login user,
        when devagent runs as root): git may read it for this one call, through a throw-away global config that
        includes the user's own; nothing is written to the user's files."""
        env = dict(os.environ)
        with tempfile.TemporaryDirectory(prefix="devagent-git-") as tmp:
            if trust is not None and _owner(Path(trust)) != os.geteuid():
                config = Path(tmp) / "gitconfig"
                own = Path(env.get("GIT_CONFIG_GLOBAL") or Path.home() / ".gitconfig")
                config.write_text(f"[include]\n\tpath = {own}\n[safe]\n\tdirectory = {trust}\n"
                                  f"\tdirectory = {trust}/.git\n")
                env["GIT_CONFIG_GLOBAL"] = str(config)
            try:
                return subprocess.run(["git", *_GIT_PINS, *args], env=env, capture_output=True, text=True,
                                      timeout=_GIT_TIMEOUT, check=False)
            except FileNotFoundError:
                raise _git_not_installed("") from None

    def copy_code(self, workspace: PurePath, into: PurePath) -> None:
        """Copy WORKSPACE (without devagent's files) to the new folder INTO, never through a link (links are
        copied as links), refusing FIFOs and devices; run as root, each file is the login user's before it has
        content and no copy is ever set-uid or set-gid (devagent/nofollow/folder.py's ``copy_tree``). Nothing is
        left of INTO when it fails."""
        owner = _LOGIN_USER if os.geteuid() == 0 else None
        try:
            copy_tree(Path(workspace), Path(into), skip=layout.WORKSPACE_FILES, owner=owner)
        except FileExistsError:  # made by someone else since prepare looked: theirs, not ours to remove
            self._theirs.add(Path(into))
            raise DevagentError(f"{into} exists", status=ExitStatus.USAGE,
                                hint="the reproduction gets a new workspace: pass --workspace a folder that does "
                                "not exist yet, or --name another name") from None
        except PathRefused as exc:
            raise DevagentError(f"cannot copy {workspace}: {exc}", status=ExitStatus.USAGE,
                                hint=exc.hint or None) from None
        if owner is not None:
            self._given.add(Path(into))

    def give_to_login_user(self, root: PurePath) -> None:
        """Run as root, devagent makes the container's login user uid 1000 (as `up` does): the workspace made
        here (a clone) becomes that user's, as a workspace `up` makes does. Through descriptors, never a link:
        ROOT must still be the folder this process made (``give_tree``)."""
        if os.geteuid() != 0 or Path(root) in self._given:
            return
        try:
            give_tree(Path(root), _LOGIN_USER)
        except PathRefused as exc:
            raise exc.as_error() from None

    def discard(self, root: PurePath) -> None:
        if Path(root) not in self._theirs:
            shutil.rmtree(root, ignore_errors=True)  # by descriptors, no link followed (rmtree.avoids_symlink_attacks)


def _owner(path: Path) -> int:
    try:
        return (path / ".git").stat().st_uid
    except OSError:
        return os.geteuid()


class ServerFiles:
    """The run and its reproduction on the server of `--host`: each step is a command over the command's one ssh
    login (SITE.run), as the server user. Paths are the server's; relative ones are below the server user's home."""

    def __init__(self, site: Link) -> None:
        self.site = site
        self.where = f" on {site.server}"

    def _sh(self, script: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return self.site.run(["sh", "-c", script, "sh", *args], timeout=timeout)

    def _out(self, script: str, *args: str) -> str:
        return run_script(self.site, str(self.site.server), script, *args, about="the run's files")

    def path(self, text: str) -> PurePath:
        """TEXT as the server sees it: absolute (relative to the server user's home), links resolved."""
        return PurePosixPath(self._out('realpath -m -- "$1"', absolute(text, self.site.facts.home)).strip())

    def read_text(self, path: PurePath) -> str:
        done = self._sh(f'[ -f "$1" ] || {{ echo "No such file" >&2; exit 1; }}; head -c {_NOTEBOOK_LIMIT} -- "$1"',
                        str(path))
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise OSError(said[-1] if said else f"exit {done.returncode}")
        return done.stdout.decode("utf-8", errors="replace")

    def read_tail(self, root: PurePath, rel: str, limit: int) -> str:
        done = self._sh(f'[ -f "$1" ] && [ ! -L "$1" ] || {{ echo "No such file" >&2; exit 1; }}; '
                        f'tail -c {limit} -- "$1"', str(root / rel))
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise OSError(said[-1] if said else f"exit {done.returncode}")
        text = done.stdout.decode("utf-8", errors="replace")
        return text if len(done.stdout) < limit else text.partition("\n")[2]

    def exists(self, path: PurePath) -> bool:
        return self._sh('[ -e "$1" ] || [ -L "$1" ]', str(path)).returncode == 0

    def find_workspace(self, notebook: PurePath) -> PurePath:
        found = self._out('d=$(dirname -- "$1"); w=$d; '
                          f'while :; do if [ -d "$w/{layout.WORKSPACE_STATE}" ]; then echo "$w"; exit 0; fi; '
                          '[ "$w" = / ] && break; w=$(dirname -- "$w"); done; echo "$d"', str(notebook))
        return PurePosixPath(found.strip())

    def repository(self, workspace: PurePath) -> PurePath | None:
        found = self._out('w=$1; while :; do if [ -e "$w/.git" ]; then echo "$w"; exit 0; fi; '
                          '[ "$w" = / ] && exit 0; w=$(dirname -- "$w"); done', str(workspace)).strip()
        return PurePosixPath(found) if found else None

    def git(self, *args: str, trust: PurePath | None = None) -> subprocess.CompletedProcess[str]:
        # The server user runs git in their own folders: nothing to trust beyond what their git already does.
        done = self.site.run(["git", *_GIT_PINS, *args], timeout=_GIT_TIMEOUT)
        stderr = done.stderr.decode(errors="replace")
        if done.returncode == 127 and "git" in stderr and "not found" in stderr:
            raise _git_not_installed(self.where)
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"), stderr)

    def copy_code(self, workspace: PurePath, into: PurePath) -> None:
        """INTO made (it must not exist) and filled with WORKSPACE's files, each side entered through WALK: a link
        swapped in for either, or for a folder above, is refused. Extracted without the files' owners and set-id
        bits (the server user may be root); the status of the reading side is reported on fd 3."""
        excluded = " ".join(f"--exclude={shlex.quote(name)}" for name in sorted(layout.WORKSPACE_FILES))
        self._out('enter_new "$2"; s=$?; [ $s = 4 ] && { echo "$2 exists" >&2; exit 1; }; [ $s = 0 ] || exit $s; '
                  f'r=$( {{ {{ enter "$1" && tar -cf - {excluded} .; echo $? >&3; }} | '
                  'tar -xf - --no-same-owner --no-same-permissions >&2; } 3>&1 ); t=$?; '
                  '[ "$r" = 0 ] || exit "${r:-1}"; exit $t',
                  str(workspace), str(into))

    def give_to_login_user(self, root: PurePath) -> None:
        """As on this machine: a server user who is root gives the new workspace to uid 1000 (as `up` does),
        through WALK (links inside are changed themselves: -h, and -R never follows one)."""
        if self.site.facts.uid == 0:
            self._out('enter "$1" || exit; chown -hR 1000:1000 .', str(root))

    def discard(self, root: PurePath) -> None:
        self._sh(WALK + 'enter "$(dirname -- "$1")" 2>/dev/null || exit 0; rm -rf -- "./$(basename -- "$1")"',
                 str(root))


def run_through_alias(ssh_config: Path, facts: ReproduceFacts, name: str) -> int:
    """The run's command in the new environment, through its alias, its output passed through."""
    return subprocess.run(ssh_argv(ssh_config, name, facts.command_line()),
                          check=False).returncode


def last_run(files: Files, workspace: PurePath) -> RunRecord | None:
    """The newest run in WORKSPACE's runs journal (None when there is none), read from its end (_RUNS_TAIL
    bytes at most). The code run in the new environment can write there: a link, a FIFO or a device in its
    place is refused with NOT_REPRODUCIBLE, never followed, waited on or read without end."""
    try:
        lines = files.read_tail(workspace, layout.RUNS_JOURNAL, _RUNS_TAIL).splitlines()
    except PathRefused as exc:
        journal = workspace / layout.RUNS_JOURNAL
        raise DevagentError(f"the new runs journal {journal}{files.where} is not read: "
                            f"{workspace / str(exc.filename)} is {exc.strerror}", status=ExitStatus.NOT_REPRODUCIBLE,
                            hint="something in the new environment put it there: look into the workspace "
                            f"{workspace} (the environment is kept; devagent down removes it)") from None
    except (OSError, DevagentError):
        return None
    for line in reversed(lines):
        try:
            return RunRecord.from_json(line)
        except (ValueError, KeyError):
            continue
    return None


def append_on_server(site: Link, *, workspace: PurePath, notebook: PurePath, text: str) -> None:
    """Append TEXT to NOTEBOOK (inside WORKSPACE, on the server) as the server user, in one write, then fsync;
    raises OSError when it could not (see the module's docstring for why no image does it).

    The notebook's folder is entered through WALK (a link in its place, or above it, is refused) and the notebook
    opened there by `dd` with O_NOFOLLOW (a link in its place is refused) and O_NONBLOCK (a FIFO without a reader
    is refused rather than waited on); a write that fails is cut back to the size before it. A newline goes first
    when the notebook does not end with one, as locked_append does. Not under the notebook's flock (no coreutils
    tool takes one): a run that ends in the original environment at the same moment is one O_APPEND write of its
    own, which the kernel does not interleave with this one."""
    folder, name = notebook.parent, notebook.name
    if not (folder == workspace or workspace in folder.parents):
        raise OSError(f"{notebook} is not inside the workspace {workspace}")
    data = text.encode()
    done = site.run(["sh", "-c", WALK + _APPEND, "sh", str(folder), name, str(len(data) + 1)], input=data,
                    timeout=60.0)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(said[-1].replace("devagent-swapped ", "replaced by a link or another folder: ")
                      if said else f"exit {done.returncode}")


_APPEND = ('enter "$1" || exit; n=./$2; '
           '[ -f "$n" ] && [ ! -L "$n" ] || { echo "$2 is not a regular file" >&2; exit 1; }; '
           'size=$(stat -c %s -- "$n") || exit; p=; '
           '[ "$size" -gt 0 ] && [ "$(dd if="$n" iflag=nofollow,nonblock bs=1 skip=$((size - 1)) count=1 '
           'status=none | wc -l)" = 0 ] && p=1; '
           '{ [ -z "$p" ] || echo; cat; } | dd of="$n" oflag=append,nofollow,nonblock conv=notrunc,fsync '
           'bs="$3" count=1 iflag=fullblock status=none && exit 0; '
           'dd if=/dev/null of="$n" oflag=nofollow,nonblock seek="$size" bs=1 count=0 status=none; exit 1')
