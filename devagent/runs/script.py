"""Which training script a command line runs, and the arguments after it: the run's name, and where its
hyperparameters' defaults are read from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devagent.core.runs.distributed import launcher_args

# Python's own options that take a value (python -W error -X dev script.py): the value is not the script.
_PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def find_script(argv: Sequence[str], cwd: Path) -> tuple[Path | None, list[str]]:
    """The training script in ARGV and the arguments after it.

    For ``python [options] SCRIPT.py args`` and ``python [options] -m pkg.mod args`` it is what Python itself runs
    (the module's file when it is under CWD: ``pkg/mod.py`` or ``pkg/mod/__main__.py``); a console script such as
    ``python /venv/bin/pytest tests/test_x.py`` has none. For any other launcher (torchrun, accelerate launch) it is
    the first ``*.py`` argument that is a file.

    >>> find_script(["python", "-u", "devagent/__main__.py", "--lr", "3e-4"], Path("."))
    (PosixPath('devagent/__main__.py'), ['--lr', '3e-4'])
    >>> find_script(["python", "-m", "devagent.lab", "--lr", "3e-4"], Path("."))
    (PosixPath('devagent/lab.py'), ['--lr', '3e-4'])
    >>> find_script(["python3", "/usr/bin/pytest", "devagent/lab.py"], Path("."))
    (None, [])
    >>> find_script(["torchrun", "--nproc-per-node", "2", "devagent/lab.py", "--lr", "1"], Path("."))
    (PosixPath('devagent/lab.py'), ['--lr', '1'])
    >>> find_script(["python", "-m", "torch.distributed.run", "devagent/lab.py", "--lr", "1"], Path("."))
    (PosixPath('devagent/lab.py'), ['--lr', '1'])
    >>> find_script(["make", "train"], Path("."))
    (None, [])
    """
    if argv and Path(argv[0]).name.startswith("python") and launcher_args(argv) is None:
        return _python_target(list(argv[1:]), cwd)
    for i, arg in enumerate(argv):
        if arg.endswith(".py") and (cwd / arg).is_file():
            return Path(arg), list(argv[i + 1:])
    return None, []


def _python_target(args: list[str], cwd: Path) -> tuple[Path | None, list[str]]:
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "-m", "-c"):
        i += 2 if args[i] in _PYTHON_OPTIONS_WITH_VALUE else 1
    if i >= len(args) or args[i] in ("-", "-c"):
        return None, []
    if args[i] == "-m":
        if i + 1 >= len(args):
            return None, []
        module = Path(*args[i + 1].split("."))
        for candidate in (module.with_suffix(".py"), module / "__main__.py"):
            if (cwd / candidate).is_file():
                return candidate, args[i + 2:]
        return None, []
    script = args[i]
    if script.endswith(".py") and (cwd / script).is_file():
        return Path(script), args[i + 1:]
    return None, []
