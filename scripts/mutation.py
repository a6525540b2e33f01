"""`make mutation`: mutation testing of the pure core with mutmut, one module at a time.

Each module gets its own folder under build/mutation/ with a mutmut configuration that mutates only that module
and runs only the unit test files that import it (mutmut then runs, per mutant, only the tests that reached the
mutated function). The run is niced and uses one worker: the machine is shared. Results are cached by mutmut, so a
second run only tests what changed. Then it prints, per module, the score and every surviving mutant as a diff;
survivors listed in scripts/mutation-equivalent.txt (a mutant that behaves exactly as the code) count as
equivalent, not as survivors.

    python scripts/mutation.py                         # every module of MODULES
    python scripts/mutation.py devagent/core/globs.py  # one module
    python scripts/mutation.py --report                # print the last results without running

Score = (killed + timed out) / (mutants - equivalent). The tests counted are the unit test files and the module's
own doctests (its examples are a spec too); mutmut keeps a copy of each function, docstring included, per mutant,
and those copies' doctests (the same examples again) are deselected by name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mutation"
EQUIVALENT = ROOT / "scripts" / "mutation-equivalent.txt"

# The pure core, then the pure parts of the rest (no I/O of their own).
MODULES = [*sorted(str(p.relative_to(ROOT)) for p in (ROOT / "devagent" / "core").rglob("*.py")
                  if p.name != "__init__.py")]

ALSO_COPY = ["scripts", "vscode-snippets"]  # beside devagent/ and tests/ in each module's folder and mutmut's copy
KILLED = {1, 3}
TIMEOUT = {-24, 24, 152, 255, 36}
CONFIG = """
[tool.mutmut]
source_paths = ["devagent"]
only_mutate = [{module}]
pytest_add_cli_args_test_selection = [{tests}]
# The same examples for every mutant (tests/conftest.py's profile), no pytest cache. Doctests are collected
# from the module named (addopts has --doctest-modules); its mutants' copies (x_name__mutmut_3, each with the
# original's docstring) would repeat them once per mutant: "not mutmut" keeps only the original's.
pytest_add_cli_args = ["-p", "no:cacheprovider", "--hypothesis-profile=mutation",
                       "-m", "not docker", "-k", "not mutmut"]
# A mutant that loops forever is stopped after this much CPU time: (tests' time + 0.5 s) x 3 x 2.
timeout_constant = 0.5
timeout_multiplier = 3.0
use_git_change_detection = false
# Tests that read the project's own files find them beside tests/: test_doctor reads scripts/build-base-image.sh,
# test_vscode the snippet files in vscode-snippets/ (mutmut's copy of devagent/ has no snippets/: it walks the
# package without following links, and snippets/ is a link to vscode-snippets/).
also_copy = {copied}
"""


def dotted(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def tests_of(module: str) -> list[str]:
    """The test files of MODULE: its own (devagent/core/x.py: tests/core/test_x.py) and the others beside it that
    import it. Tests elsewhere that reach it (the agent's, the CLI's) are slower and not about it: left out."""
    name = dotted(module)
    package, _, leaf = name.rpartition(".")
    imports = re.compile(rf"\b{re.escape(name)}\b|from {re.escape(package)} import [^\n]*\b{leaf}\b")
    folder = ROOT / "tests" / Path(module).parent.relative_to("devagent")
    own = folder / f"test_{Path(module).stem}.py"
    found = [own] if own.exists() else []
    found += [p for p in sorted(folder.glob("test_*.py")) if p != own and imports.search(p.read_text())]
    return [str(p.relative_to(ROOT)) for p in found]


def prepare(module: str, tests: list[str], timeout_multiplier: float = 3.0) -> Path:
    work = BUILD / dotted(module)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("devagent", "tests", *ALSO_COPY):
        link = work / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    pyproject = (ROOT / "pyproject.toml").read_text()
    config = CONFIG.format(module=json.dumps(module), copied=json.dumps(ALSO_COPY),
                           tests=", ".join(json.dumps(t) for t in [*tests, module]))
    config = config.replace("timeout_multiplier = 3.0", f"timeout_multiplier = {timeout_multiplier}")
    (work / "pyproject.toml").write_text(pyproject + config)
    return work


def retest_survivors(work: Path, module: str) -> None:
    """mutmut keeps every verdict until the function changes; a new test may kill a survivor, so survivors (and
    mutants without a verdict) are tested again. Killed ones stay killed: a test added kills no fewer."""
    meta = work / "mutants" / (module + ".meta")
    if meta.exists():
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        data["exit_code_by_key"] = {k: c if c in KILLED or c in TIMEOUT else None for k, c in codes.items()}
        meta.write_text(json.dumps(data, indent=4))


def timed_out(work: Path, module: str) -> list[str]:
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return []
    return sorted(k for k, c in json.loads(meta.read_text())["exit_code_by_key"].items() if c in TIMEOUT)


def run(module: str, tests: list[str]) -> None:
    work = prepare(module, tests)
    retest_survivors(work, module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutants, not the checkout
    mutmut = [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", "1"]
    print(f"== {module}: mutmut over {len(tests)} test file(s), log in {work / 'run.log'}", flush=True)
    with (work / "run.log").open("w") as log:
        subprocess.run(["nice", "-n", "10", *mutmut], cwd=work, env=env,
                       stdout=log, stderr=subprocess.STDOUT, check=False)
        # On a loaded machine a mutant's tests can run out of their CPU time without looping: a timeout counts as
        # killed, so each one is run again, alone, with ten times the time. What still times out loops.
        again = timed_out(work, module)
        if again:
            print(f"   {len(again)} timed out: run again with ten times the time", flush=True)
            prepare(module, tests, timeout_multiplier=30.0)
            try:
                subprocess.run(["nice", "-n", "10", *mutmut, *again], cwd=work, env=env,
                               stdout=log, stderr=subprocess.STDOUT, check=False)
            finally:
                prepare(module, tests)


def equivalents() -> dict[str, tuple[str, str]]:
    """mutant name -> (the mutated line as recorded, why it is equivalent)."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, mutated, why = (part.strip() for part in line.split(" | ", 2))
            found[name] = (mutated, why)
    return found


def changed_lines(diff: str) -> str:
    return " / ".join(line[1:].strip() for line in diff.splitlines()
                      if line.startswith("+") and not line.startswith("+++"))


def report(module: str, known: dict[str, tuple[str, str]]) -> tuple[int, int] | None:
    work = BUILD / dotted(module)
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        print(f"{module}: not run yet")
        return None
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    codes = json.loads(meta.read_text())["exit_code_by_key"]
    killed = sum(1 for c in codes.values() if c in KILLED or c in TIMEOUT)
    unchecked = sum(1 for c in codes.values() if c is None)
    survivors, equivalent = [], 0
    here = Path.cwd()
    os.chdir(work)
    try:
        for name, code in sorted(codes.items()):
            if code in KILLED or code in TIMEOUT or code is None:
                continue
            diff = get_diff_for_mutant(name, path=module)
            mutated = changed_lines(diff)
            if name in known and known[name][0] == mutated:
                equivalent += 1
                continue
            stale = " (scripts/mutation-equivalent.txt names it with another line: stale)" if name in known else ""
            survivors.append(f"  {name} ({'survived' if code == 0 else f'exit {code}'}){stale}\n"
                             + "\n".join("    " + line for line in diff.splitlines()[2:]))
    finally:
        os.chdir(here)
    counted = len(codes) - equivalent - unchecked
    score = 100 * killed / counted if counted else 100.0
    loops = sum(1 for c in codes.values() if c in TIMEOUT)
    note = f", {unchecked} not run" if unchecked else ""
    note += f", {loops} of the killed by a timeout" if loops else ""
    print(f"{module}: {score:.1f} % ({killed} of {counted} killed, {equivalent} equivalent{note})")
    for text in survivors:
        print(text)
    return killed, counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="devagent/... paths (default: all of MODULES)")
    parser.add_argument("--report", action="store_true", help="print the last results, run nothing")
    args = parser.parse_args()
    modules = args.modules or MODULES
    if not args.report:
        for module in modules:
            tests = tests_of(module)
            if tests:
                run(module, tests)
            else:
                print(f"== {module}: no unit test file imports it")
    known = equivalents()
    print("\nScores (killed or timed out / mutants less equivalent ones), survivors as diffs:")
    totals = [r for m in modules if (r := report(m, known))]
    if totals and sum(c for _, c in totals):
        killed, counted = sum(k for k, _ in totals), sum(c for _, c in totals)
        print(f"\nall: {100 * killed / counted:.1f} % ({killed} of {counted})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
