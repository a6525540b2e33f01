"""How fast the watch globs match, hostile ones included, against a plain glob measured in the same run.

    .venv/bin/python benchmarks/glob_bench.py

Figures (target in brackets): the time of one match, best of several rounds, for each glob on a path 30 folders
deep and on a one-folder path [every match < 1 ms]; the ratio to ``**/*.py`` on the same path [≤ 5×]; and the
first (regex) watcher on the same globs, stopped after 2 s, to show what the linear matcher replaced.

It reports, it does not gate: the exit status is always 0.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devagent.core.globs import compile_glob  # noqa: E402

DEEP = "/".join(f"d{i}" for i in range(30)) + "/y.py"
SHALLOW = "src/model.py"
PLAIN = "**/*.py"
GLOBS = {  # label -> glob
    "src/**/*.py": "src/**/*.py",
    "'**/' × 4 + '*.py'": "**/" * 4 + "*.py",
    "'**/' × 10 + 'z.py'": "**/" * 10 + "z.py",  # the review's example: 38 s a match with the regex
    "'**/' × 12 + 'z.py'": "**/" * 12 + "z.py",  # over 60 s with the regex
    "'*a' × 12 + 'b'": "*a" * 12 + "b",  # no `**` at all: backtracking within one name
}


def old_regex(pattern: str) -> re.Pattern[str]:
    """The first watcher's translation (backtracking)."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] in "*?":
            parts.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def regex_once(glob: str, path: str, *, limit: float = 2.0) -> str:
    """One match by the old regex, in a child process that is stopped after LIMIT seconds."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[3]); from benchmarks.glob_bench import old_regex; "
            "rx = old_regex(sys.argv[1]); t = time.perf_counter(); rx.match(sys.argv[2]); "
            "print(time.perf_counter() - t)")
    try:
        out = subprocess.run([sys.executable, "-c", code, glob, path, str(REPO)], capture_output=True, text=True,
                             timeout=limit, check=True)
    except subprocess.TimeoutExpired:
        return f"> {limit:g} s (stopped)"
    return f"{float(out.stdout) * 1e3:.3f} ms"


def per_match(match: Callable[[str], object], path: str, *, number: int = 200, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            match(path)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> int:
    for path, shown in ((DEEP, "30 folders deep"), (SHALLOW, SHALLOW), ("a" * 60, "a" * 8 + "… (60 a's)")):
        floor = per_match(compile_glob(PLAIN).match, path)
        print(f"\npath {shown} ({len(path)} characters); floor: {PLAIN!r} {floor * 1e6:.1f} µs a match, the regex "
              f"{per_match(old_regex(PLAIN).match, path) * 1e6:.1f} µs")
        for label, glob in GLOBS.items():
            took = per_match(compile_glob(glob).match, path)
            # A fresh glob each time: its first match builds its memo, the cost a new watcher pays once.
            cold = per_match(lambda p, g=glob: compile_glob(g).match(p), path, number=20)
            ok = "met" if max(took, cold) < 1e-3 and took <= 5 * floor else "NOT met"
            print(f"  {label:22} {took * 1e6:7.1f} µs ({took / floor:4.1f}× floor), first match "
                  f"{cold * 1e6:7.1f} µs [< 1 ms, ≤ 5×: {ok}]; regex: {regex_once(glob, path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
