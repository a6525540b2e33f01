"""VS Code: the snippet files, the project snippets file, merging our tasks into tasks.json, the remote URI."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.vscode import (
    DEVAGENT_TASKS,
    SNIPPET_FILES,
    MergeResult,
    code_command,
    jsonc_to_json,
    merge_keys,
    merge_snippets,
    merge_tasks,
    project_snippets,
    remote_uri,
)
from devagent.errors import DevagentError

SNIPPETS_DIR = Path(__file__).resolve().parents[2] / "vscode-snippets"
LABELS = ["devagent: run current file", "devagent: GPU check"]


def snippet_files() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(SNIPPETS_DIR.glob("*.json"))}


def all_snippets() -> list[tuple[str, str, dict[str, Any]]]:
    return [(file, name, snippet) for file, snippets in snippet_files().items() for name, snippet in snippets.items()]


def by_prefix(prefix: str) -> dict[str, Any]:
    return next(s for _, _, s in all_snippets() if s["prefix"] == prefix)


# VS Code's snippet grammar, as much of it as the test needs: escapes, placeholders with a default, choices,
# tabstops, variables. Anything else with a `$` would be inserted literally by VS Code, which is never meant here.
SNIPPET_TOKEN = re.compile(r"\\([$}\\])|\$\{(\d+):([^${}]*)\}|\$\{(\d+)\|([^|]*)\|\}|\$\{?(\d+)\}?|\$\{?([A-Z_]+)\}?")
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # the CPU path, also on a machine with a GPU (checked on an H100 by hand)
VARIABLES = {"CURRENT_YEAR": "2026", "CURRENT_MONTH": "11", "CURRENT_DATE": "27"}


def expand(body: list[str]) -> str:
    """The text VS Code inserts when every placeholder keeps its default."""
    text = "\n".join(body)
    assert "$" not in SNIPPET_TOKEN.sub("", text), f"a $ that is not a placeholder: {text!r}"

    def one(m: re.Match[str]) -> str:
        escaped, _, default, _, choices, _, variable = m.groups()
        if escaped is not None:
            return escaped
        if default is not None:
            return default
        if choices is not None:
            return choices.split(",")[0]
        if variable is not None:
            return VARIABLES[variable]
        return ""

    return SNIPPET_TOKEN.sub(one, text)


class TestSnippetFiles:
    def test_there_is_one_file_per_language(self) -> None:
        assert sorted(snippet_files()) == sorted(SNIPPET_FILES)

    @pytest.mark.parametrize(("file", "name", "snippet"), all_snippets(), ids=lambda v: v if isinstance(v, str) else "")
    def test_every_snippet_has_a_da_prefix_a_body_a_description_and_its_files_scope(
            self, file: str, name: str, snippet: dict[str, Any]) -> None:
        assert set(snippet) == {"prefix", "body", "description", "scope"}
        assert isinstance(snippet["prefix"], str) and snippet["prefix"].startswith("da-")
        assert isinstance(snippet["body"], list) and snippet["body"]
        assert all(isinstance(line, str) for line in snippet["body"])
        assert isinstance(snippet["description"], str) and snippet["description"]
        assert snippet["scope"] == file.removesuffix(".json")

    def test_prefixes_are_unique_across_files(self) -> None:
        prefixes = [s["prefix"] for _, _, s in all_snippets()]
        assert len(prefixes) == len(set(prefixes))
        assert sorted(prefixes) == ["da-entry", "da-gpucheck", "da-hparams", "da-lab", "da-train"]

    @pytest.mark.parametrize("prefix", ["da-gpucheck", "da-lab", "da-train"])
    def test_python_snippets_compile_with_their_defaults(self, prefix: str) -> None:
        # compile() raises SyntaxError on a snippet that does not compile; a code object means it does.
        assert compile(expand(by_prefix(prefix)["body"]), prefix, "exec").co_filename == prefix

    @pytest.mark.torch
    def test_the_gpu_check_warns_plainly_on_the_cpu(self, tmp_path: Path) -> None:
        script = tmp_path / "gpucheck.py"
        script.write_text(expand(by_prefix("da-gpucheck")["body"]), encoding="utf-8")
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, check=False, env={**os.environ, **NO_GPU})
        assert run.returncode == 0, run.stderr
        assert run.stdout == ("CUDA available: False\nGPU count: 0\n"
                              "WARNING: no GPU visible — training will run on the CPU\n")

    @pytest.mark.slow
    @pytest.mark.torch
    def test_the_training_loop_trains_one_epoch_on_the_cpu_and_logs_to_the_lab_notebook(self, tmp_path: Path) -> None:
        script, lab_file = tmp_path / "train.py", tmp_path / "lab.jsonl"
        script.write_text(expand(by_prefix("da-train")["body"]), encoding="utf-8")
        run = subprocess.run([sys.executable, str(script), "--epochs", "1", "--batch-size", "256", "--lr", "1e-2"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
                             env={**os.environ, **NO_GPU, "DEVAGENT_LAB_FILE": str(lab_file)})
        assert run.returncode == 0, run.stderr
        assert re.fullmatch(r"device: cpu\nepoch=0 loss=\d+\.\d{4}\n", run.stdout), run.stdout
        records = [json.loads(line) for line in lab_file.read_text(encoding="utf-8").splitlines()]
        assert [r["_hparams"] for r in records if "_hparams" in r] == [{"lr": 0.01, "batch_size": 256, "epochs": 1}]
        logged = [r for r in records if "loss" in r]
        assert len(logged) == 1 and logged[0]["step"] == 4  # 1024 samples / 256 per batch
        assert f"loss={logged[0]['loss']:.4f}" in run.stdout

    def test_the_training_loop_has_the_documented_options(self) -> None:
        text = expand(by_prefix("da-train")["body"])
        for needle in ('"--lr", type=float, default=1e-3', '"--batch-size", type=int, default=64', '"--epochs"',
                       "nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)", "torch.optim.Adam",
                       "nn.CrossEntropyLoss()", 'print(f"epoch={epoch} loss={loss.item():.4f}")', "lab.log(",
                       'torch.device("cuda" if torch.cuda.is_available() else "cpu")'):
            assert needle in text

    def test_the_lab_snippet_logs_hyperparameters_and_the_loss(self) -> None:
        assert expand(by_prefix("da-lab")["body"]) == (
            "from devagent import lab\n\n"
            'lab.hparams({"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs})\n'
            "lab.log(step=step, loss=loss.item())")

    def test_the_entry_snippet_has_the_seeds_log_fields(self) -> None:
        assert expand(by_prefix("da-entry")["body"]) == (
            "## 2026-11-27 — experiment\n\n"
            "- **Model:** SimpleNet\n"
            "- **Optimizer:** Adam, lr 1e-3\n"
            "- **Batch size:** 64 × 1 GPUs = 64 effective batch\n"
            "- **Observations:** …\n"
            "- **Next step:** …\n")

    def test_the_hparams_snippet_is_a_markdown_table(self) -> None:
        rows = expand(by_prefix("da-hparams")["body"]).strip().splitlines()
        assert rows[:2] == ["| hyperparameter | value |", "|---|---|"]
        assert [r.split("|")[1].strip() for r in rows[2:]] == ["lr", "batch size", "epochs", "optimizer", "seed"]


class TestProjectSnippets:
    def texts(self) -> dict[str, str]:
        return {name: (SNIPPETS_DIR / name).read_text(encoding="utf-8") for name in SNIPPET_FILES}

    def test_one_file_holds_every_snippet_under_a_devagent_name(self) -> None:
        combined = json.loads(project_snippets(self.texts()))
        assert list(combined) == [
            "devagent: GPU check", "devagent: lab notebook logging", "devagent: training loop",
            "devagent: experiment log entry", "devagent: hyperparameter table"]
        originals = {s["prefix"]: s for _, _, s in all_snippets()}
        assert all(s == originals[s["prefix"]] for s in combined.values())

    def test_a_snippet_without_a_scope_gets_its_files_language(self) -> None:
        text = project_snippets({"markdown.json": '{"x": {"prefix": "da-x", "body": ["x"]}}'})
        assert json.loads(text) == {"devagent: x": {"scope": "markdown", "prefix": "da-x", "body": ["x"]}}

    def test_a_name_twice_is_refused(self) -> None:
        with pytest.raises(ValueError, match=re.escape("markdown.json: snippet 'devagent: x' is defined twice")):
            project_snippets({"python.json": '{"x": {}}', "markdown.json": '{"devagent: x": {}}'})


class TestMergeSnippets:
    NEW = project_snippets({"python.json": '{"GPU check": {"prefix": "da-gpucheck", "body": ["import torch"]}}'})

    def test_a_missing_file_is_written(self) -> None:
        assert merge_snippets(None, self.NEW) == MergeResult(self.NEW, added=["devagent: GPU check"])

    def test_the_same_snippets_are_left_alone_even_formatted_differently(self) -> None:
        assert merge_snippets(self.NEW, self.NEW) == MergeResult(None, kept=["devagent: GPU check"])
        compact = json.dumps(json.loads(self.NEW))
        assert merge_snippets(compact, self.NEW) == MergeResult(None, kept=["devagent: GPU check"])

    def test_an_older_devagent_version_is_replaced(self) -> None:
        old = '{"devagent: GPU check": {"prefix": "da-gpu", "body": []}, "devagent: gone": {}}'
        assert merge_snippets(old, self.NEW) == MergeResult(self.NEW, kept=["devagent: GPU check"])

    @pytest.mark.parametrize("edited", [
        '{"devagent: GPU check": {}, "my own": {}}',
        '// mine\n{"devagent: GPU check": {}}',
        "[]",
        "{",
    ])
    def test_a_file_someone_edited_is_left_as_is(self, edited: str) -> None:
        assert merge_snippets(edited, self.NEW) == MergeResult(
            None, reason=".vscode/devagent.code-snippets was edited; left as is (delete it to get the current "
            "snippets)")


# -- tasks.json ----------------------------------------------------------------------------------------------------

USER_TASKS = {
    "version": "2.0.0",
    "tasks": [
        {"label": "build", "type": "shell", "command": "make", "group": {"kind": "build", "isDefault": True}},
        {"label": "lint", "type": "shell", "command": "ruff check ."},
    ],
    "inputs": [{"id": "lr", "type": "promptString", "description": "learning rate"}],
}


def pasted_tasks(reason: str) -> list[dict[str, Any]]:
    """The tasks a reason asks the user to paste: everything after its first line, as array elements."""
    parsed: list[dict[str, Any]] = json.loads("[" + reason.split("\n", 1)[1] + "]")
    return parsed


class TestMergeTasks:
    def test_the_tasks_are_exactly_the_documented_ones(self) -> None:
        assert DEVAGENT_TASKS == [
            {"label": "devagent: run current file", "type": "shell", "command": "devagent",
             "args": ["run", "--", "python", "${file}"], "options": {"cwd": "${workspaceFolder}"},
             "problemMatcher": [], "group": "test", "presentation": {"reveal": "always", "panel": "dedicated"}},
            {"label": "devagent: GPU check", "type": "shell", "command": "devagent", "args": ["gpu-check"],
             "options": {"cwd": "${workspaceFolder}"}, "problemMatcher": [],
             "presentation": {"reveal": "always", "panel": "dedicated"}},
        ]

    @pytest.mark.parametrize("existing", [None, "", "  \n"])
    def test_without_a_tasks_json_a_new_one_is_written(self, existing: str | None) -> None:
        result = merge_tasks(existing, DEVAGENT_TASKS)
        assert result.text == json.dumps({"version": "2.0.0", "tasks": DEVAGENT_TASKS}, indent=2) + "\n"
        assert (result.added, result.kept, result.reason) == (LABELS, [], None)

    def test_the_users_tasks_and_keys_stay_in_their_order_and_ours_come_after(self) -> None:
        result = merge_tasks(json.dumps(USER_TASKS, indent=2), DEVAGENT_TASKS)
        assert result.text is not None
        merged = json.loads(result.text)
        assert list(merged) == ["version", "tasks", "inputs"]
        assert merged["tasks"] == [*USER_TASKS["tasks"], *DEVAGENT_TASKS]
        assert merged["inputs"] == USER_TASKS["inputs"]
        assert (result.added, result.kept, result.reason) == (LABELS, [], None)

    def test_a_task_with_our_label_is_kept_as_the_user_wrote_it(self) -> None:
        mine = {"label": "devagent: GPU check", "type": "shell", "command": "devagent gpu-check --no-notebook"}
        result = merge_tasks(json.dumps({"version": "2.0.0", "tasks": [mine]}), DEVAGENT_TASKS)
        assert result.text is not None
        assert json.loads(result.text)["tasks"] == [mine, DEVAGENT_TASKS[0]]
        assert (result.added, result.kept) == (["devagent: run current file"], ["devagent: GPU check"])

    def test_merging_twice_changes_nothing_the_second_time(self) -> None:
        first = merge_tasks(json.dumps(USER_TASKS), DEVAGENT_TASKS)
        assert first.text is not None
        assert merge_tasks(first.text, DEVAGENT_TASKS) == MergeResult(None, kept=LABELS)

    def test_the_files_indentation_and_byte_order_mark_are_kept(self) -> None:
        result = merge_tasks("\ufeff" + json.dumps(USER_TASKS, indent=4), DEVAGENT_TASKS)
        assert result.text is not None and result.text.startswith('\ufeff{\n    "version"')
        tabbed = merge_tasks(json.dumps(USER_TASKS, indent="\t"), DEVAGENT_TASKS).text
        assert tabbed is not None and tabbed.startswith('{\n\t"version"')

    def test_a_file_without_tasks_or_version_gains_both(self) -> None:
        result = merge_tasks('{"inputs": []}', DEVAGENT_TASKS)
        assert result.text is not None
        assert json.loads(result.text) == {"version": "2.0.0", "inputs": [], "tasks": DEVAGENT_TASKS}
        assert list(json.loads(result.text)) == ["version", "inputs", "tasks"]

    @pytest.mark.parametrize("jsonc", [
        '{\n  // my tasks\n  "version": "2.0.0",\n  "tasks": [{"label": "build", "command": "make"}]\n}\n',
        '{"version": "2.0.0", /* block */ "tasks": [{"label": "build", "command": "make"}]}',
        '{"version": "2.0.0", "tasks": [{"label": "build", "command": "make"},],}',
    ])
    def test_a_file_with_comments_or_trailing_commas_is_not_rewritten_and_the_tasks_are_printed(
            self, jsonc: str) -> None:
        result = merge_tasks(jsonc, DEVAGENT_TASKS)
        assert (result.text, result.added, result.kept) == (None, [], [])
        assert result.reason is not None
        assert result.reason.split("\n")[0] == (
            '.vscode/tasks.json has comments (devagent does not rewrite it: they would be lost); add these tasks '
            'by hand to its "tasks" list:')
        assert pasted_tasks(result.reason) == DEVAGENT_TASKS

    def test_a_commented_file_that_has_one_of_ours_asks_only_for_the_other(self) -> None:
        jsonc = '{"version": "2.0.0", "tasks": [\n  // ours\n  {"label": "devagent: GPU check"},\n]}'
        result = merge_tasks(jsonc, DEVAGENT_TASKS)
        assert (result.text, result.kept) == (None, ["devagent: GPU check"])
        assert result.reason is not None and pasted_tasks(result.reason) == [DEVAGENT_TASKS[0]]

    def test_a_commented_file_that_has_both_needs_nothing(self) -> None:
        jsonc = '// mine\n{"version": "2.0.0", "tasks": [{"label": "devagent: GPU check"}, ' \
            '{"label": "devagent: run current file"}]}'
        assert merge_tasks(jsonc, DEVAGENT_TASKS) == MergeResult(None, kept=LABELS)

    def test_comment_markers_inside_strings_are_not_comments(self) -> None:
        text = json.dumps({"version": "2.0.0", "tasks": [{"label": "x", "command": "curl http://a/* // b */"}]})
        result = merge_tasks(text, DEVAGENT_TASKS)
        assert result.text is not None and json.loads(result.text)["tasks"][0]["command"] == "curl http://a/* // b */"

    @pytest.mark.parametrize(("existing", "reason"), [
        ("{not json", ".vscode/tasks.json is not valid JSON (line 1, column 2: Expecting property name enclosed in "
         "double quotes); fix it, then run again"),
        ('{\n  // c\n  "tasks": [\n}', ".vscode/tasks.json is not valid JSON (line 4, column 1: Expecting value); "
         "fix it, then run again"),
        ("[]", ".vscode/tasks.json is not a JSON object; left as is"),
        ('{"version": "2.0.0", "tasks": {}}', '.vscode/tasks.json "tasks" is not a list; left as is'),
        ('{"tasks": [' * 100_000, ".vscode/tasks.json is nested too deeply to read; left as is"),
    ])
    def test_a_file_devagent_cannot_use_is_left_as_is_with_the_reason(self, existing: str, reason: str) -> None:
        assert merge_tasks(existing, DEVAGENT_TASKS) == MergeResult(None, reason=reason)

    def test_a_number_python_cannot_hold_is_a_reason_not_a_crash(self) -> None:
        reason = merge_tasks('{"tasks": [' + "9" * 5000 + "]}", DEVAGENT_TASKS).reason
        assert reason is not None and reason.startswith(".vscode/tasks.json cannot be read (Exceeds the limit")

    def test_an_old_format_file_is_left_as_is_and_the_tasks_are_printed(self) -> None:
        result = merge_tasks('{"version": "0.1.0", "command": "make"}', DEVAGENT_TASKS)
        assert result.text is None and result.reason is not None
        assert result.reason.split("\n")[0] == (
            '.vscode/tasks.json has version "0.1.0" (devagent\'s tasks are version 2.0.0); add these tasks by hand to '
            'its "tasks" list:')
        assert pasted_tasks(result.reason) == DEVAGENT_TASKS

    def test_a_file_with_a_key_twice_is_not_rewritten(self) -> None:
        result = merge_tasks('{"version": "2.0.0", "tasks": [], "tasks": []}', DEVAGENT_TASKS)
        assert result.text is None and result.reason is not None
        assert result.reason.startswith('.vscode/tasks.json has the key "tasks" twice (a rewrite would drop one)')

    def test_merging_never_changes_devagents_own_task_list(self) -> None:
        before = copy.deepcopy(DEVAGENT_TASKS)
        for existing in (None, json.dumps(USER_TASKS)):
            text = merge_tasks(existing, DEVAGENT_TASKS).text
            assert text is not None
            json.loads(text)["tasks"][-1]["args"].append("x")
        assert before == DEVAGENT_TASKS


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)
USER_TASK = st.fixed_dictionaries({"label": st.sampled_from([*LABELS, "build", "lint", "test", ""]) | st.text()},
                                  optional={"command": st.text(max_size=10), "extra": JSON_VALUES})


@given(st.lists(USER_TASK | JSON_VALUES, max_size=6), st.sampled_from([0, 2, 4, "\t"]))
def test_merging_keeps_every_user_task_and_adds_each_missing_label_once(user: list[Any], indent: int | str) -> None:
    existing = json.dumps({"version": "2.0.0", "tasks": user}, indent=indent or None)
    result = merge_tasks(existing, DEVAGENT_TASKS)
    present = {t.get("label") for t in user if isinstance(t, dict) and isinstance(t.get("label"), str)}
    assert result.added == [label for label in LABELS if label not in present]
    assert result.kept == [label for label in LABELS if label in present]
    if result.text is None:
        assert result.added == [] and result.reason is None
        return
    merged = json.loads(result.text)["tasks"]
    assert merged[:len(user)] == user
    assert merged[len(user):] == [t for t in DEVAGENT_TASKS if t["label"] in result.added]
    assert merge_tasks(result.text, DEVAGENT_TASKS) == MergeResult(None, kept=LABELS)


@given(st.text() | st.builds(json.dumps, JSON_VALUES))
def test_no_text_makes_merging_raise(existing: str) -> None:
    result = merge_tasks(existing, DEVAGENT_TASKS)
    assert isinstance(result, MergeResult)
    if result.text is not None:
        assert {t.get("label") for t in json.loads(result.text)["tasks"] if isinstance(t, dict)} >= set(LABELS)
    snippets = merge_snippets(existing, '{"devagent: x": {}}')
    assert snippets.text in (None, '{"devagent: x": {}}')


# -- opening the environment -----------------------------------------------------------------------------------------


class TestOpening:
    def test_the_remote_uri_names_the_ssh_alias_and_the_folder(self) -> None:
        assert remote_uri("pytorch-dev", "/home/dev/workspace") == (
            "vscode://vscode-remote/ssh-remote+pytorch-dev/home/dev/workspace")
        assert remote_uri("a", "/home/dev/my work") == "vscode://vscode-remote/ssh-remote+a/home/dev/my%20work"

    def test_the_code_command_opens_a_remote_window(self) -> None:
        assert code_command("pytorch-dev", "/home/dev/workspace") == [
            "code", "--remote", "ssh-remote+pytorch-dev", "/home/dev/workspace"]

    @pytest.mark.parametrize("name", ["a+b", "A", "x/y"])
    def test_a_name_that_is_not_an_environment_name_is_refused(self, name: str) -> None:
        with pytest.raises(DevagentError, match="invalid environment name"):
            remote_uri(name, "/w")
        with pytest.raises(DevagentError, match="invalid environment name"):
            code_command(name, "/w")


def test_a_devcontainer_json_s_customizations_merge_into_the_user_s_files() -> None:
    settings = merge_keys('{\n    "a": 1\n}\n', ".vscode/settings.json", {"a": 2, "b": [1]})
    assert (settings.text, settings.added, settings.kept) == ('{\n    "a": 1,\n    "b": [\n        1\n    ]\n}\n',
                                                              ["b"], ["a"])
    recommended = merge_keys('{"recommendations": ["x.y"]}', ".vscode/extensions.json", {"x.y": "x.y", "p.q": "p.q"},
                             list_key="recommendations")
    assert recommended.text == '{\n  "recommendations": [\n    "x.y",\n    "p.q"\n  ]\n}\n'
    commented = merge_keys('{"a": 1, // mine\n}', ".vscode/settings.json", {"b": 2})
    assert commented.text is None
    assert commented.reason == ('.vscode/settings.json has comments (devagent does not rewrite it: they would be '
                                'lost); add by hand: {"b": 2}')
    assert merge_keys("[1]", ".vscode/settings.json", {"b": 2}).reason == (
        ".vscode/settings.json is not a JSON object; left as is")
    assert merge_keys('{"b": 2}', ".vscode/settings.json", {"b": 2}).text is None


# -- the edges: JSONC read back, non-ASCII text, indentation, byte order marks -------------------------------------


def test_each_task_is_built_the_one_way_key_order_included() -> None:
    from devagent.core.vscode import _task

    # DEVAGENT_TASKS is built once, at import: built again here, so a change to how a task is built shows.
    built = [_task(t["label"], t["args"], t.get("group")) for t in DEVAGENT_TASKS]
    assert json.dumps(built) == json.dumps(DEVAGENT_TASKS)
    assert list(DEVAGENT_TASKS[0]) == ["label", "type", "command", "args", "options", "problemMatcher", "group",
                                       "presentation"]
    assert "group" not in _task("x", [], "")


@pytest.mark.parametrize(("jsonc", "json_text"), [
    ('"a\\"// b" // c', '"a\\"// b"     '),  # an escaped quote does not end the string
    ('"a\\\\" // c', '"a\\\\"     '),  # an escaped backslash does not escape the quote after it
    ('{"": 1, // c\n}', '{"": 1      \n}'),  # the empty string
    ('"a\n// c', '"a\n    '),  # a string ends at the end of its line
    ('{} // c', "{}     "),  # a line comment at the end of the text
    ("[1, // a\n2 // b\n]", "[1,     \n2     \n]"),
    ("1 /*/ x */ 2", "1          2"),  # the end of a block comment is looked for after its start
    ("/* a */ 1 /* b */", "        1        "),
    ("[1 /**/]", "[1     ]"),
    ("[/*x*/1]", "[     1]"),
    ("/*a\nb*/1", "   \n   1"),  # a block comment's lines stay lines
    ('/*"*/"a // b"', '     "a // b"'),
    ('/**/"//"', '    "//"'),
    ("/**/ 1 // c", "     1     "),
    ("[1, // x\n /* open", "[1,     \n /* open"),  # unterminated: left for the parser, trailing commas too
    ('["a",]', '["a" ]'),
    (",]", " ]"),
    ('["a,]"]', '["a,]"]'),  # a comma in a string is no trailing comma
    ("[1,\t\r\n ]", "[1 \t\r\n ]"),
    ("[1,X]", "[1,X]"),
])
def test_comments_and_trailing_commas_are_blanked_and_nothing_else(jsonc: str, json_text: str) -> None:
    assert jsonc_to_json(jsonc) == json_text


def test_a_lone_surrogate_in_the_users_file_stays_escaped_in_its_indentation() -> None:
    result = merge_tasks('{\n    "version": "2.0.0",\n    "tasks": ["\\ud800", "é"]\n}', DEVAGENT_TASKS[1:])
    assert result.text == json.dumps({"version": "2.0.0", "tasks": ["\ud800", "é", DEVAGENT_TASKS[1]]}, indent=4) + "\n"


@pytest.mark.parametrize(("indent", "kept"), [("        ", 8), ("         ", 2), (" ", 1)])
def test_an_indentation_of_up_to_eight_spaces_is_kept_a_wider_one_becomes_two(indent: str, kept: int) -> None:
    result = merge_tasks(f'{{\n{indent}"tasks": []\n}}', DEVAGENT_TASKS[1:])
    assert result.text == json.dumps({"version": "2.0.0", "tasks": DEVAGENT_TASKS[1:]}, indent=kept) + "\n"


def test_tasks_to_paste_keep_their_non_ascii_text_two_spaces_deep() -> None:
    result = merge_tasks('// c\n{"tasks": []}', [{"label": "é", "args": ["ü"]}, {"label": "b"}])
    assert result == MergeResult(None, reason=(
        '.vscode/tasks.json has comments (devagent does not rewrite it: they would be lost); add these tasks by '
        'hand to its "tasks" list:\n{\n  "label": "é",\n  "args": [\n    "ü"\n  ]\n},\n{\n  "label": "b"\n}'))


def test_a_key_twice_is_named_as_written() -> None:
    reason = merge_tasks('{"tasks": [], "é": 1, "é": 2}', [{"label": "x"}]).reason
    assert reason is not None
    assert reason.split("\n")[0] == ('.vscode/tasks.json has the key "é" twice (a rewrite would drop one); add these '
                                     'tasks by hand to its "tasks" list:')


class TestMergeKeys:
    def test_a_new_file_is_two_spaces_deep_and_keeps_non_ascii_text(self) -> None:
        assert merge_keys(None, "s.json", {"é": "ü"}) == MergeResult('{\n  "é": "ü"\n}\n', added=["é"])

    def test_a_byte_order_mark_is_kept_and_none_is_added(self) -> None:
        assert merge_keys("\ufeff{}", "s.json", {"a": 1}).text == '\ufeff{\n  "a": 1\n}\n'
        assert merge_keys("{}", "s.json", {"a": 1}).text == '{\n  "a": 1\n}\n'

    def test_nothing_missing_keeps_the_file_and_says_what_it_has(self) -> None:
        assert merge_keys('{"a": 1, "b": 2}', "s.json", {"a": 0, "b": 0}) == MergeResult(None, kept=["a", "b"])
        assert merge_keys('{"recommendations": ["x.y"]}', "e.json", {"x.y": "x.y"}, list_key="recommendations") == (
            MergeResult(None, kept=["x.y"]))

    def test_recommendations_add_what_is_missing_and_keep_what_is_there(self) -> None:
        result = merge_keys('{"recommendations": ["x.y"]}', "e.json", {"x.y": "x.y", "p.q": "p.q"},
                            list_key="recommendations")
        assert (result.added, result.kept) == (["p.q"], ["x.y"])

    def test_recommendations_that_are_no_list_are_left_as_is(self) -> None:
        assert merge_keys('{"recommendations": "x.y"}', ".vscode/extensions.json", {"p.q": "p.q"},
                          list_key="recommendations") == MergeResult(
            None, reason='.vscode/extensions.json "recommendations" is not a list; left as is')

    def test_a_commented_file_asks_for_the_missing_keys_by_hand_as_written(self) -> None:
        assert merge_keys('// c\n{"a": 1}', ".vscode/settings.json", {"a": 0, "é": "ü"}) == MergeResult(
            None, kept=["a"], reason='.vscode/settings.json has comments (devagent does not rewrite it: they would be '
            'lost); add by hand: {"é": "ü"}')


class TestSnippetEdges:
    def test_a_snippet_file_that_is_no_object_is_a_bug_named_by_its_file(self) -> None:
        with pytest.raises(ValueError, match=r"^python\.json: expected a JSON object of snippets$"):
            project_snippets({"python.json": "[]"})

    def test_a_snippets_own_scope_is_kept_and_a_language_is_the_name_before_json(self) -> None:
        # Its keys stay in its own order (a scope added by devagent comes first).
        assert project_snippets({"a.b.json": '{"x": {"body": []}}',
                                 "markdown.json": '{"y": {"body": [], "scope": "python,markdown"}}'}) == (
            '{\n  "devagent: y": {\n    "body": [],\n    "scope": "python,markdown"\n  },\n'
            '  "devagent: x": {\n    "scope": "a.b",\n    "body": []\n  }\n}\n')

    def test_the_same_snippets_behind_a_byte_order_mark_are_left_alone(self) -> None:
        new = TestMergeSnippets.NEW
        assert merge_snippets("\ufeff" + json.dumps(json.loads(new)), new) == MergeResult(
            None, kept=["devagent: GPU check"])

    def test_an_older_devagents_file_is_replaced_and_the_new_names_are_said(self) -> None:
        new = TestMergeSnippets.NEW
        assert merge_snippets('{"devagent: gone": {}}', new) == MergeResult(new, added=["devagent: GPU check"])

    def test_the_remote_uri_strips_only_the_leading_slashes(self) -> None:
        assert remote_uri("a", "/Xy/w") == "vscode://vscode-remote/ssh-remote+a/Xy/w"
