"""What `devagent up --vscode` and `devagent code` put in front of VS Code: project snippets, tasks, the remote URI.

Pure: text in, text out. The caller reads ``.vscode/tasks.json`` and ``.vscode/devagent.code-snippets``, hands their
text (or ``None`` when missing) to ``merge_tasks`` / ``merge_snippets``, writes ``MergeResult.text`` when it is not
``None`` and prints ``MergeResult.reason`` when there is one. Nothing here raises on what a user wrote.

>>> merge_tasks(None, DEVAGENT_TASKS).added
['devagent: run current file', 'devagent: GPU check']
>>> code_command("pytorch-dev", "/home/dev/workspace")
['code', '--remote', 'ssh-remote+pytorch-dev', '/home/dev/workspace']
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from devagent.core.spec import validate_name

SNIPPET_FILES = ("python.json", "markdown.json")
SNIPPET_PREFIX = "devagent: "  # every snippet name in devagent.code-snippets starts with it: that is how we know ours
SNIPPETS_PATH = ".vscode/devagent.code-snippets"  # relative to the workspace
TASKS_PATH = ".vscode/tasks.json"
TASKS_VERSION = "2.0.0"


def _task(label: str, args: list[str], group: str | None) -> dict[str, Any]:
    task: dict[str, Any] = {
        "label": label,
        "type": "shell",
        "command": "devagent",
        "args": args,
        "options": {"cwd": "${workspaceFolder}"},
        "problemMatcher": [],
    }
    if group:
        task["group"] = group
    task["presentation"] = {"reveal": "always", "panel": "dedicated"}
    return task


# The tasks run where the VS Code window is: inside the environment (Remote-SSH), where `devagent` is installed.
DEVAGENT_TASKS: list[dict[str, Any]] = [
    _task("devagent: run current file", ["run", "--", "python", "${file}"], "test"),
    _task("devagent: GPU check", ["gpu-check"], None),
]


@dataclass(frozen=True)
class MergeResult:
    """What to do with one file.

    ``text``: the new content to write, or ``None`` to leave the file as it is (already up to date, or not ours to
    rewrite: then ``reason`` says why and what to do instead). ``added``: names/labels this text adds. ``kept``: our
    task labels the file already has (the user's version is kept untouched).
    """

    text: str | None
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reason: str | None = None


def project_snippets(files: Mapping[str, str]) -> str:
    """Combine the snippet files (file name → its JSON text) into one ``.code-snippets`` file.

    Names gain the ``"devagent: "`` prefix (unique in the workspace, and how ``merge_snippets`` recognises the
    file as ours); a snippet without ``"scope"`` gets the language its file is named after. Our own files are
    trusted: malformed ones raise (a bug, not user input).

    >>> text = project_snippets({"python.json": '{"GPU check": {"prefix": "da-gpucheck", "body": ["import torch"]}}'})
    >>> json.loads(text)["devagent: GPU check"]["scope"]
    'python'
    """
    combined: dict[str, Any] = {}
    ordered = [n for n in SNIPPET_FILES if n in files] + sorted(n for n in files if n not in SNIPPET_FILES)
    for file_name in ordered:
        language = file_name.rsplit(".", 1)[0]
        snippets = json.loads(files[file_name])
        if not isinstance(snippets, dict):
            raise ValueError(f"{file_name}: expected a JSON object of snippets")
        for name, snippet in snippets.items():
            key = name if name.startswith(SNIPPET_PREFIX) else SNIPPET_PREFIX + name
            if key in combined:
                raise ValueError(f"{file_name}: snippet {name!r} is defined twice")
            combined[key] = {"scope": language, **snippet} if "scope" not in snippet else dict(snippet)
    return _dump(combined, indent=2)


def merge_tasks(existing: str | None, tasks: list[dict[str, Any]]) -> MergeResult:
    """Add TASKS to the text of a tasks.json, keeping everything the user has.

    A task whose label the file already has is kept as the user wrote it (its label goes to ``kept``). The file
    is rewritten only when it is plain JSON: VS Code allows comments and trailing commas (JSONC), and rewriting
    would drop them, so then ``text`` is ``None`` and ``reason`` holds the tasks to paste by hand.

    >>> r = merge_tasks('{"version": "2.0.0", "tasks": [{"label": "devagent: GPU check"}]}', DEVAGENT_TASKS)
    >>> r.added, r.kept
    (['devagent: run current file'], ['devagent: GPU check'])
    >>> merge_tasks(r.text, DEVAGENT_TASKS)
    MergeResult(text=None, added=[], kept=['devagent: run current file', 'devagent: GPU check'], reason=None)
    """
    if existing is None or not existing.strip():
        doc = {"version": TASKS_VERSION, "tasks": copy.deepcopy(tasks)}
        return MergeResult(_dump(doc, indent=2), added=[str(t["label"]) for t in tasks])
    bom = "\ufeff" if existing.startswith("\ufeff") else ""
    text = existing[len(bom):]
    doc, obstacle, problem = _read_jsonc(text)
    present, problem = _task_list(doc) if problem is None else ([], problem)
    if problem is not None:
        return MergeResult(None, reason=f"{TASKS_PATH} {problem}")
    labels = {t["label"] for t in present if isinstance(t, dict) and isinstance(t.get("label"), str)}
    missing = [t for t in tasks if t["label"] not in labels]
    kept = [str(t["label"]) for t in tasks if t["label"] in labels]
    if not missing:
        return MergeResult(None, kept=kept)
    version = doc.get("version")
    if obstacle is None and version not in (None, TASKS_VERSION):
        obstacle = f"has version {json.dumps(version)} (devagent's tasks are version {TASKS_VERSION})"
    if obstacle is not None:
        return MergeResult(None, kept=kept, reason=f'{TASKS_PATH} {obstacle}; add these tasks by hand to its "tasks" '
                           f"list:\n{_paste(missing)}")
    if version is None:  # without a version VS Code reads the file in the old 0.1.0 format
        doc = {"version": TASKS_VERSION, **doc}
    doc["tasks"] = [*present, *copy.deepcopy(missing)]
    return MergeResult(bom + _dump(doc, indent=_indent_of(text)), added=[str(t["label"]) for t in missing],
                       kept=kept)


def merge_keys(existing: str | None, path: str, wanted: Mapping[str, Any], *, list_key: str | None = None
               ) -> MergeResult:
    """Add a devcontainer.json's editor customizations to a workspace file at PATH, keeping what the user has.

    Without LIST_KEY (settings.json): each key of WANTED the file lacks is added; a key the file has keeps the
    user's value (in ``kept``). With LIST_KEY (extensions.json, ``recommendations``): the values of WANTED are
    added to that list when missing. A file with comments is not rewritten (``reason`` says what to add by hand).

    >>> merge_keys('{"a": 1}', ".vscode/settings.json", {"a": 2, "b": 3}).text
    '{\\n  "a": 1,\\n  "b": 3\\n}\\n'
    >>> merge_keys(None, ".vscode/extensions.json", {"x.y": "x.y"}, list_key="recommendations").added
    ['x.y']
    """
    doc: Any = {}
    bom = ""
    indent: int | str = 2
    if existing is not None and existing.strip():
        bom = "\ufeff" if existing.startswith("\ufeff") else ""
        text = existing[len(bom):]
        doc, obstacle, problem = _read_jsonc(text)
        if problem is None and not isinstance(doc, dict):
            problem = "is not a JSON object; left as is"
        if problem is not None:
            return MergeResult(None, reason=f"{path} {problem}")
        indent = _indent_of(text)
    else:
        obstacle = None
    if list_key is not None:
        present = doc.get(list_key, [])
        if not isinstance(present, list):
            return MergeResult(None, reason=f'{path} "{list_key}" is not a list; left as is')
        missing = [v for v in wanted.values() if v not in present]
        kept = [str(v) for v in wanted.values() if v in present]
        update = {list_key: [*present, *missing]}
    else:
        missing = [k for k in wanted if k not in doc]
        kept = [k for k in wanted if k in doc]
        update = {k: copy.deepcopy(wanted[k]) for k in missing}
    if not missing:
        return MergeResult(None, kept=kept)
    if obstacle is not None:
        return MergeResult(None, kept=kept, reason=f"{path} {obstacle}; add by hand: "
                           f"{json.dumps(update, ensure_ascii=False)}")
    return MergeResult(bom + _dump({**doc, **update}, indent=indent), added=[str(m) for m in missing], kept=kept)


def merge_snippets(existing: str | None, new: str) -> MergeResult:
    """Decide what to do with ``.vscode/devagent.code-snippets``, given its text (or None) and ours (``new``).

    The file is devagent's: missing → write it; same snippets → leave it; every name ours (an older devagent wrote
    it) → replace it. Anything else means someone edited it (added a snippet, or comments): it is left as is.

    >>> merge_snippets('{"my snippet": {}}', '{"devagent: GPU check": {}}').reason
    '.vscode/devagent.code-snippets was edited; left as is (delete it to get the current snippets)'
    """
    names = list(_object_or_none(new) or {})
    if existing is None or not existing.strip():
        return MergeResult(new, added=names)
    if existing == new:
        return MergeResult(None, kept=names)
    old = _object_or_none(existing.removeprefix("\ufeff"))
    if old is not None and old == _object_or_none(new):
        return MergeResult(None, kept=names)
    if old is None or not all(name.startswith(SNIPPET_PREFIX) for name in old):
        return MergeResult(None, reason=f"{SNIPPETS_PATH} was edited; left as is (delete it to get the current "
                           "snippets)")
    return MergeResult(new, added=[n for n in names if n not in old], kept=[n for n in names if n in old])


def remote_uri(name: str, path: str) -> str:
    """The URI that opens PATH of environment NAME in VS Code over Remote-SSH (the ssh alias is NAME).

    >>> remote_uri("pytorch-dev", "/home/dev/workspace")
    'vscode://vscode-remote/ssh-remote+pytorch-dev/home/dev/workspace'
    """
    return f"vscode://vscode-remote/ssh-remote+{validate_name(name)}/{quote(path.lstrip('/'), safe='/')}"


def code_command(name: str, path: str) -> list[str]:
    """The `code` command line that opens PATH of environment NAME in a Remote-SSH window."""
    return ["code", "--remote", f"ssh-remote+{validate_name(name)}", path]


# -- helpers ------------------------------------------------------------------------------------------------------


def _dump(doc: object, *, indent: int | str) -> str:
    text = json.dumps(doc, indent=indent, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape ("\\ud800") in the user's file: keep it escaped
        text = json.dumps(doc, indent=indent) + "\n"
    return text


def _paste(tasks: list[dict[str, Any]]) -> str:
    """The tasks as JSON array elements, ready to paste into a "tasks" list."""
    return ",\n".join(json.dumps(t, indent=2, ensure_ascii=False) for t in tasks)


def _task_list(doc: object) -> tuple[list[Any], str | None]:
    """The "tasks" list of a parsed tasks.json, or why there is none to add to."""
    if not isinstance(doc, dict):
        return [], "is not a JSON object; left as is"
    present = doc.get("tasks", [])
    if not isinstance(present, list):
        return [], '"tasks" is not a list; left as is'
    return present, None


def _read_jsonc(text: str) -> tuple[Any, str | None, str | None]:
    """Parse the text of a JSONC file into (document, why it must not be rewritten, why it cannot be read);
    the last two are None when there is no such reason."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    duplicates.append(key)
                seen.add(key)
        return obj

    obstacle = None
    try:
        try:
            doc = json.loads(text, object_pairs_hook=pairs)
        except json.JSONDecodeError:
            doc = json.loads(jsonc_to_json(text), object_pairs_hook=pairs)
            obstacle = "has comments (devagent does not rewrite it: they would be lost)"
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return None, None, f"is not valid JSON ({where}: {exc.msg}); fix it, then run again"
    except RecursionError:
        return None, None, "is nested too deeply to read; left as is"
    except ValueError as exc:  # JSON that Python cannot hold: an integer of more than 4300 digits
        return None, None, f"cannot be read ({exc}); left as is"
    if duplicates and obstacle is None:  # json keeps the last of them: a rewrite would drop the others
        obstacle = f"has the key {json.dumps(duplicates[0], ensure_ascii=False)} twice (a rewrite would drop one)"
    return doc, obstacle, None


def _object_or_none(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is an integer too long for Python
        return None
    return doc if isinstance(doc, dict) else None


_INDENT_RE = re.compile(r"\n([ \t]+)\S")


def _indent_of(text: str) -> int | str:
    """The indentation unit the user's file uses (the first indented line's), so a rewrite keeps its look."""
    m = _INDENT_RE.search(text)
    if not m:
        return 2
    unit = m.group(1)
    if unit.startswith("\t"):
        return "\t"
    return len(unit) if len(unit) <= 8 else 2


def jsonc_to_json(text: str) -> str:
    """Blank out comments and trailing commas, keeping every other character where it was (so a JSON error's
    line and column still point into the user's file).

    >>> jsonc_to_json('{"a": "//x", // note\\n "b": [1,],}')
    '{"a": "//x",        \\n "b": [1 ] }'
    """
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _string_end(text, i)
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:  # unterminated: leave it for the JSON parser to report
                return "".join(out)
            for j in range(i, end + 2):
                if out[j] != "\n":
                    out[j] = " "
            i = end + 2
            continue
        i += 1
    stripped = "".join(out)
    i = 0
    while i < n:
        c = stripped[i]
        if c == '"':
            i = _string_end(stripped, i)
            continue
        if c == ",":
            j = i + 1
            while j < n and stripped[j] in " \t\r\n":
                j += 1
            if j < n and stripped[j] in "}]":
                out[i] = " "
        i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string that starts at START (or the end of the text when unterminated)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        elif text[i] == "\n":  # JSON strings cannot span lines: stop, let the parser report it
            return i
        else:
            i += 1
    return len(text)
