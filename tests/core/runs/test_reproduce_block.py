"""The reproduce block at the end of a run section: exact commands, what is missing said plainly, secrets kept
out, and the facts readable back from the notebook."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from devagent.core.runs.reproduce_block import (
    ReproduceFacts,
    compare_metrics,
    environment_args,
    find_run_section,
    gpu_count,
    job_request,
    read_facts,
    render_reproduce,
    reproduction_entries,
    up_option_values,
)
from devagent.core.slurm.request import SlurmRequest, slurm_request
from devagent.errors import DevagentError, ExitStatus

DIGEST = "sha256:" + "ab" * 32
FACTS = ReproduceFacts(
    number=3, env_name="pytorch-dev", image="lab.example:5000/pytorch-cuda:v2.8",
    pinned=f"lab.example:5000/pytorch-cuda:v2.8@{DIGEST}", base_image="pytorch/pytorch:2.8.0",
    up_args=("--gpus", "0,1", "--memory", "32g", "--cpus", "8", "--shm-size", "8g", "--pids", "4096", "--user",
             "dev"),
    commit="3f2a9c1b0d4e", patch="lab-notebook.assets/run-3.patch",
    argv=("python", "train.py", "--lr", "3e-4", "--seed", "1"), cwd="/home/dev/workspace",
    env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "SEED": "1"}, metrics={"loss": 0.2831},
)


def commands(block: str) -> list[str]:
    fenced = block.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [line for line in fenced.splitlines() if not line.startswith("#")]


def test_the_block_is_collapsed_and_gives_the_code_the_pinned_environment_and_the_command() -> None:
    block = render_reproduce(FACTS, notebook="lab-notebook.md")
    assert block.startswith("<details><summary>reproduce this run</summary>\n\n")
    assert block.endswith("\n\n</details>")
    assert commands(block) == [
        "git clone --no-checkout . ../pytorch-dev-run3 && git -C ../pytorch-dev-run3 checkout --detach 3f2a9c1b0d4e",
        'git -C ../pytorch-dev-run3 apply "$PWD"/lab-notebook.assets/run-3.patch  # the uncommitted changes',
        f"devagent up pytorch-dev-run3 --image lab.example:5000/pytorch-cuda:v2.8@{DIGEST} --gpus 0,1 --memory 32g "
        "--cpus 8 --shm-size 8g --pids 4096 --user dev --workspace ../pytorch-dev-run3",
        "ssh pytorch-dev-run3 'cd /home/dev/workspace && CUBLAS_WORKSPACE_CONFIG=:4096:8 SEED=1 devagent run -- "
        "python train.py --lr 3e-4 --seed 1'",
    ]
    assert "All at once: `devagent reproduce lab-notebook.md#run-3`" in block
    assert "⚠️" not in block


def test_an_image_with_no_registry_digest_is_said_to_be_exact_only_where_it_was_built() -> None:
    block = render_reproduce(replace(FACTS, image="devagent/env:3f2a9c1b0d4e", pinned=None), notebook="nb.md")
    assert ("⚠️ The image `devagent/env:3f2a9c1b0d4e` exists only on the engine that built it (no registry "
            "digest): these commands are exact there and nowhere else.") in block
    assert "--image devagent/env:3f2a9c1b0d4e " in block


def test_a_run_without_commit_or_launch_record_says_what_cannot_be_recreated() -> None:
    block = render_reproduce(replace(FACTS, image=None, pinned=None, commit=None, patch=None), notebook="nb.md")
    assert "⚠️ No git commit was recorded: the code this run ran cannot be recreated exactly." in block
    assert "⚠️ No launch record: this run was not in a devagent environment, so its image is unknown." in block
    assert FACTS.missing() == []
    assert [gap.split(" (")[0] for gap in replace(FACTS, image=None, commit=None).missing()] == [
        "the image the run started from", "the code"]


def test_secrets_stay_redacted_and_are_named_as_placeholders() -> None:
    facts = replace(FACTS, argv=("python", "train.py", "--token=‹redacted›"), env={"HF_SEED": "‹redacted›"})
    block = render_reproduce(facts, notebook="nb.md")
    assert "--token=‹redacted›" in block and "HF_SEED=‹redacted›" in block
    assert "‹redacted› marks a secret devagent never recorded: put your own in before you run it." in block
    assert facts.redacted and not FACTS.redacted


def test_the_facts_read_back_from_the_section_in_a_notebook() -> None:
    tricky = replace(FACTS, argv=("python", "t.py", "--note", "a --> b <i>"))
    block = render_reproduce(tricky, notebook="nb.md")
    assert "--> b" not in block.split("<!-- devagent-reproduce ", 1)[1].rsplit(" -->", 1)[0]
    notebook = (f"# Lab notebook\n\n## 2026-11-27 14:05 · run 3 · t.py · ✅ exit 0\n{block}\n\n"
                "## 2026-11-27 14:06 · run 4 · t.py · ✅ exit 0\nno block\n")
    section = find_run_section(notebook, 3)
    assert section is not None and read_facts(section) == tricky
    assert read_facts(find_run_section(notebook, 4) or "") is None
    assert find_run_section(notebook, 5) is None


def test_metrics_are_compared_within_the_tolerance() -> None:
    assert compare_metrics({"loss": 0.2831}, {"loss": 0.2831}, tolerance=0.0) == (True, ["loss 0.2831 vs 0.2831 ✓"])
    assert compare_metrics({"loss": 0.2831}, {"loss": 0.2832}, tolerance=1e-3)[0]
    assert compare_metrics({"loss": 0.2831}, {"loss": 0.2832}, tolerance=1e-6) == (
        False, ["loss 0.2831 vs 0.2832 ✗ differs"])


def test_a_dirty_tree_without_a_patch_is_named_as_missing() -> None:
    facts = replace(FACTS, patch=None, dirty=True)
    assert facts.missing() == ["the uncommitted changes (the tree was dirty and no patch was saved)"]
    assert ("⚠️ The tree had uncommitted changes and no patch was saved (a run devagent observed rather than "
            "wrapped): the commit alone is not the code this run ran.") in render_reproduce(facts, notebook="nb.md")
    assert replace(FACTS, dirty=True).missing() == []  # its patch has them
    assert read_facts(render_reproduce(facts, notebook="nb.md")) == facts


def test_the_comparison_shows_a_notebooks_metric_names_and_warnings_literally() -> None:
    # A crafted notebook names its metrics; a server's words reach the warnings: neither may drive the terminal
    # that shows the notebook (OSC 52 writes the clipboard) nor add Markdown (a heading, a link, an image).
    hostile = "acc\x1b]52;c;ZXZpbA==\x07\r\n## forged [x](http://e) ![i](x)"
    facts = ReproduceFacts(3, "dev", "img", None, None, (), "abc", None, ("python",), "/w", metrics={hostile: 0.5})
    ok, lines = compare_metrics(facts.metrics, {hostile: 0.5}, tolerance=0)
    new, old = reproduction_entries(facts, when=datetime(2026, 11, 27, 15, 0), ok=ok, lines=lines, exit_code=0,
                                    original="/a/lab-notebook.md", new="/b/lab-notebook.md", env_name="dev-run3",
                                    new_run=1, warnings=[f"the image {hostile} exists only on this engine"])
    shown = "acc␛\\]52;c;ZXZpbA==␇ \\#\\# forged \\[x\\](http://e) !\\[i\\](x)"
    assert old.splitlines()[1] == f"## 2026-11-27 15:00 · run 3 reproduced · ✅ {shown} 0.5 vs 0.5 ✓"
    assert new.splitlines()[4:] == [f"- {shown} 0.5 vs 0.5 ✓", f"- ⚠️ the image {shown} exists only on this engine"]
    assert not any(c in new + old for c in "\x1b\x07\r")


def test_the_slurm_job_a_run_ran_in_is_recorded_but_not_set_again_by_its_reproduction() -> None:
    from devagent.core.runs.reproduce_block import ReproduceFacts

    facts = ReproduceFacts(3, "dev", None, None, None, (), None, None, ("python", "t.py"), "/w",
                           {"SEED": "1", "SLURM_JOB_ID": "4812", "SLURMD_NODENAME": "gpu07",
                            "SLURM_JOB_PARTITION": "gpu"})
    assert facts.command_line() == "cd /w && SEED=1 devagent run -- python t.py"


def block_lines(facts: ReproduceFacts, notebook: str = "nb.md") -> list[str]:
    return render_reproduce(facts, notebook=notebook).splitlines()


UP = "--gpus 0,1 --memory 32g --cpus 8 --shm-size 8g --pids 4096 --user dev --workspace ../pytorch-dev-run3"
UP_ARGS_JSON = json.dumps(list(FACTS.up_args))
CLONE = ["# 1. the code: a clone of this repository at the run's commit, as the new workspace",
         "git clone --no-checkout . ../pytorch-dev-run3 && git -C ../pytorch-dev-run3 checkout --detach 3f2a9c1b0d4e"]
SSH = "ssh pytorch-dev-run3 'cd /home/dev/workspace && CUBLAS_WORKSPACE_CONFIG=:4096:8 SEED=1 devagent run -- "


def test_the_whole_block_of_a_pinned_run_with_its_patch_and_metrics() -> None:
    facts = replace(FACTS, argv=("python", "t.py", "--note", "a --> b <i> π", ""))
    assert block_lines(facts, "lab-notebook.md") == [
        "<details><summary>reproduce this run</summary>", "",
        "```sh",
        "# from the workspace (the folder of the notebook), on the machine that has it",
        *CLONE,
        'git -C ../pytorch-dev-run3 apply "$PWD"/lab-notebook.assets/run-3.patch  # the uncommitted changes',
        "# 2. the environment, from the same image",
        f"devagent up pytorch-dev-run3 --image lab.example:5000/pytorch-cuda:v2.8@{DIGEST} {UP}",
        "# 3. the command, through the new environment's alias",
        SSH + "python t.py --note '\"'\"'a --> b <i> π'\"'\"' '\"'\"''\"'\"''",  # the empty word stays a word
        "```", "",
        "All at once: `devagent reproduce lab-notebook.md#run-3` (it compares the metrics with this run's)", "",
        '<!-- devagent-reproduce {"argv": ["python", "t.py", "--note", "a --\\u003e b \\u003ci\\u003e π", ""], '
        '"base_image": "pytorch/pytorch:2.8.0", "commit": "3f2a9c1b0d4e", "cwd": "/home/dev/workspace", '
        '"dirty": false, "env": {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "SEED": "1"}, "env_name": "pytorch-dev", '
        '"image": "lab.example:5000/pytorch-cuda:v2.8", "metrics": {"loss": 0.2831}, "number": 3, '
        '"patch": "lab-notebook.assets/run-3.patch", '
        f'"pinned": "lab.example:5000/pytorch-cuda:v2.8@{DIGEST}", "up_args": {UP_ARGS_JSON}}} -->', "",
        "</details>"]


def test_the_whole_block_of_an_unpinned_run_from_a_dirty_tree_without_metrics() -> None:
    facts = replace(FACTS, image="devagent/env:3f2a", pinned=None, patch=None, dirty=True, metrics={})
    assert block_lines(facts)[:17] == [
        "<details><summary>reproduce this run</summary>", "",
        "⚠️ The tree had uncommitted changes and no patch was saved (a run devagent observed rather than wrapped): "
        "the commit alone is not the code this run ran.", "",
        "⚠️ The image `devagent/env:3f2a` exists only on the engine that built it (no registry digest): these "
        "commands are exact there and nowhere else. Push it — `devagent image build --tag REGISTRY/REPO:VERSION "
        "--push` — and start environments from that to make runs reproducible on any server.", "",
        "```sh",
        "# from the workspace (the folder of the notebook), on the machine that has it",
        *CLONE,
        "# 2. the environment, from the same image (on this engine only)",
        f"devagent up pytorch-dev-run3 --image devagent/env:3f2a {UP}",
        "# 3. the command, through the new environment's alias",
        SSH + "python train.py --lr 3e-4 --seed 1'",
        "```", "",
        "All at once: `devagent reproduce nb.md#run-3`"]


def test_the_whole_block_of_a_run_with_no_commit_no_launch_record_and_a_secret() -> None:
    facts = replace(FACTS, env_name="", image=None, pinned=None, commit=None, patch=None, up_args=(),
                    argv=("python", "t.py", "--auth", "Bearer ‹redacted›"), env={"HF_TOKEN": "‹redacted›"},
                    metrics={})
    assert block_lines(facts)[:19] == [
        "<details><summary>reproduce this run</summary>", "",
        "⚠️ No git commit was recorded: the code this run ran cannot be recreated exactly.", "",
        "⚠️ No launch record: this run was not in a devagent environment, so its image is unknown.", "",
        "‹redacted› marks a secret devagent never recorded: put your own in before you run it.", "",
        "```sh",
        "# from the workspace (the folder of the notebook), on the machine that has it",
        "# 1. the code: no commit was recorded; copy it by hand",
        "mkdir ../repro-run3",
        "# 2. an environment (the run's own image is unknown)",
        "devagent up repro-run3 --workspace ../repro-run3",
        "# 3. the command, through the new environment's alias",
        # the placeholder stays bare, the words around it quoted
        "ssh repro-run3 'cd /home/dev/workspace && HF_TOKEN=‹redacted› devagent run -- python t.py --auth "
        "'\"'\"'Bearer '\"'\"'‹redacted›'",
        "```", "",
        "All at once: `devagent reproduce nb.md#run-3`"]


def test_the_new_environments_name_is_the_old_one_cut_to_52_characters_or_repro() -> None:
    assert replace(FACTS, env_name="e" * 60).new_env_name() == "e" * 52 + "-run3"
    assert replace(FACTS, env_name="").new_env_name() == "repro-run3"


def test_the_facts_are_json_with_sorted_keys_and_text_as_it_is() -> None:
    facts = replace(FACTS, argv=("python", "π.py"))
    data = facts.to_json()
    assert list(json.loads(data)) == sorted(json.loads(data)) and '"π.py"' in data
    assert ReproduceFacts.from_json(data) == facts


def test_facts_of_an_older_notebook_without_the_dirty_field_were_clean() -> None:
    data = json.loads(FACTS.to_json())
    del data["dirty"]
    assert ReproduceFacts.from_json(json.dumps(data)).dirty is False


def test_a_section_keeps_its_last_lines_trailing_spaces_and_characters() -> None:
    notebook = ("## 2026-11-27 14:05 · run 3 · t.py · ✅ exit 0\nline break  \n\n\n"
                "## 2026-11-27 14:06 · run 4 · t.py · ✅ exit 0\nends in X\n\n")
    assert find_run_section(notebook, 3) == "## 2026-11-27 14:05 · run 3 · t.py · ✅ exit 0\nline break  \n"
    assert find_run_section(notebook, 4) == "## 2026-11-27 14:06 · run 4 · t.py · ✅ exit 0\nends in X\n"


@pytest.mark.parametrize(("value", "got", "tolerance", "same"), [
    (2.0, 3.0, 0.5, True),  # exactly the tolerance, relative to the value: still the same
    (2.0, 3.01, 0.5, False),
    (0.5, 0.6, 0.1, True),  # near zero the tolerance is absolute
    (0.5, 0.65, 0.1, False),
    (-4.0, -3.0, 0.25, True),
])
def test_metrics_are_the_same_within_the_tolerance_relative_to_the_value(value: float, got: float,
                                                                          tolerance: float, same: bool) -> None:
    assert compare_metrics({"m": value}, {"m": got}, tolerance=tolerance)[0] is same


def test_a_metric_not_logged_does_not_stop_the_comparison_of_the_others() -> None:
    assert compare_metrics({"acc": 0.9, "loss": 0.25}, {"loss": 0.25}, tolerance=0) == (
        False, ["acc 0.9 vs — ✗ not logged", "loss 0.25 vs 0.25 ✓"])


HINT = ("a notebook cannot choose it: fix the run's reproduce block, or pass what you mean to `devagent up` "
        "yourself")


@pytest.mark.parametrize(("up_args", "message"), [
    (["--vscode", "yes"], "nb.md, run 7: the recorded `up` option '--vscode' is not one devagent records "
                          "(--gpus, --memory, --cpus, --shm-size, --pids, --user)"),
    (["--gpus", "0", "--memory"], "nb.md, run 7: the recorded `up` option '--memory' has no value"),
    (["--gpus", "0", "--gpus", "1"], "nb.md, run 7: the recorded `up` option '--gpus' is recorded twice"),
    (["--cpus", "2", "--memory", "lots"], "nb.md, run 7: the recorded `up` option --memory 'lots' is refused: "
                                           "--memory: cannot read size 'lots'"),
])
def test_a_recorded_up_option_devagent_would_not_record_is_refused(up_args: list[str], message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        up_option_values(up_args, notebook="nb.md", run=7)
    assert (caught.value.message, caught.value.status, caught.value.hint) == (message, ExitStatus.USAGE, HINT)


def test_the_recorded_up_options_become_ups_keys() -> None:
    assert up_option_values(list(FACTS.up_args), notebook="nb.md", run=3) == {
        "gpus": "0,1", "memory": "32g", "cpus": "8", "shm_size": "8g", "pids": "4096", "user": "dev"}
    assert up_option_values([], notebook="nb.md", run=3) == {}


def entries(facts: ReproduceFacts = FACTS, *, ok: bool = True, lines: tuple[str, ...] = (), exit_code: int = 0,
            new_run: int | None = 4) -> tuple[str, str]:
    return reproduction_entries(facts, when=datetime(2026, 11, 27, 15, 0), ok=ok, lines=lines, exit_code=exit_code,
                                original="/a/lab-notebook.md", new="/b/lab-notebook.md", env_name="pytorch-dev-run3",
                                new_run=new_run)


SAME, DIFFERS, NOT_LOGGED = "loss 0.2831 vs 0.2831 ✓", "loss 0.2831 vs 0.3 ✗ differs", "acc 0.9 vs — ✗ not logged"


@pytest.mark.parametrize(("ok", "lines", "exit_code", "verdict"), [
    (True, (SAME,), 0, f"✅ {SAME}"),
    (False, (DIFFERS, NOT_LOGGED), 0, f"❌ {DIFFERS}; {NOT_LOGGED}"),
    (True, (SAME, SAME), 2, f"❌ exit 2 · {SAME}; {SAME}"),  # the metrics matched, the command failed
    (True, (), 137, "❌ exit 137"),
    (True, (), 0, "✅ no metrics to compare"),
    (False, (), 0, "❌ no metrics to compare"),
])
def test_the_verdict_heads_the_entry_in_both_notebooks(ok: bool, lines: tuple[str, ...], exit_code: int,
                                                      verdict: str) -> None:
    new, old = entries(ok=ok, lines=lines, exit_code=exit_code)
    assert new.splitlines()[1] == f"## 2026-11-27 15:00 · reproduction of run 3 · {verdict}"
    assert old.splitlines()[1] == f"## 2026-11-27 15:00 · run 3 reproduced · {verdict}"
    assert new.splitlines()[3:] == (["", *(f"- {line}" for line in lines)] if lines else [])


@pytest.mark.parametrize(("changes", "made_from"), [
    ({}, f" at `3f2a9c1b0d4e` from `lab.example:5000/pytorch-cuda:v2.8@{DIGEST}`"),
    ({"pinned": None, "commit": None}, " from `lab.example:5000/pytorch-cuda:v2.8`"),
    ({"image": None, "pinned": None}, " at `3f2a9c1b0d4e` from `a base image`"),
])
def test_the_new_notebook_says_what_the_run_was_made_from(changes: dict[str, object], made_from: str) -> None:
    new, old = entries(replace(FACTS, **changes), lines=(SAME,))  # type: ignore[arg-type]
    assert new == (f"\n## 2026-11-27 15:00 · reproduction of run 3 · ✅ {SAME}\n"
                   f"run 4 re-created run 3 of `/a/lab-notebook.md`{made_from}\n\n- {SAME}\n")
    assert old == (f"\n## 2026-11-27 15:00 · run 3 reproduced · ✅ {SAME}\n"
                   "as run 4 in `/b/lab-notebook.md` (environment `pytorch-dev-run3`)\n")


def test_a_reproduction_that_left_no_run_record_says_so_in_both_notebooks() -> None:
    new, old = entries(exit_code=1, new_run=None)
    assert new.splitlines()[2].startswith("a run that left no record re-created run 3 of `/a/lab-notebook.md` at ")
    assert old.splitlines()[2] == ("as a run that left no record in `/b/lab-notebook.md` "
                                   "(environment `pytorch-dev-run3`)")


JOB = replace(FACTS, slurm=("--slurm", "gpu", "--time", "0-08:00:00", "--account", "lab"))


def test_a_run_in_a_slurm_job_asks_for_a_job_like_it_with_the_count_of_its_gpus() -> None:
    """Its --gpus are its job's GPU indexes on its node ('0,1'), which `up --slurm` refuses: Slurm picks which."""
    assert job_request(JOB, notebook="nb.md") == slurm_request(
        partition="gpu", gpus=2, time="8:00:00", account="lab", memory="32G", cpus=8)
    assert job_request(FACTS, notebook="nb.md") is None  # not in a job
    assert environment_args(JOB) == ("--gpus", "2", *FACTS.up_args[2:], *JOB.slurm)
    assert environment_args(FACTS) == FACTS.up_args
    assert commands(render_reproduce(JOB, notebook="nb.md"))[2] == (
        f"devagent up pytorch-dev-run3 --image lab.example:5000/pytorch-cuda:v2.8@{DIGEST} --gpus 2 --memory 32g "
        "--cpus 8 --shm-size 8g --pids 4096 --user dev --slurm gpu --time 0-08:00:00 --account lab --workspace "
        "../pytorch-dev-run3")
    assert "#    in a new Slurm job like the run's (same partition, time limit, GPU count): give --host the " \
           "cluster's login node" in render_reproduce(JOB, notebook="nb.md")
    assert read_facts(render_reproduce(JOB, notebook="nb.md")) == JOB
    assert '"slurm"' not in FACTS.to_json()  # a run outside a job is recorded as before


@pytest.mark.parametrize(("slurm", "message"), [
    (("--slurm", "gpu", "--time", "10", "--uid", "0"),
     "nb.md, run 3: the recorded Slurm option '--uid' is not one devagent records once with a value (--slurm, "
     "--time, --account, --qos, --constraint)"),
    (("--slurm", "gpu"), "nb.md, run 3: the recorded Slurm job has no partition or no time limit"),
    (("--slurm", "gpu;id", "--time", "10"),
     "nb.md, run 3: the recorded Slurm job is refused: invalid Slurm partition 'gpu;id'"),
    (("--slurm", "gpu", "--time", "UNLIMITED"),
     "nb.md, run 3: the recorded Slurm job is refused: invalid Slurm time 'UNLIMITED': devagent asks for a "
     "finite time limit"),
])
def test_a_recorded_slurm_job_passes_ups_checks(slurm: tuple[str, ...], message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        job_request(replace(FACTS, slurm=slurm), notebook="nb.md")
    assert (caught.value.message, caught.value.status) == (message, ExitStatus.USAGE)


JOB_HINT = "fix the run's reproduce block, or up the environment yourself with --slurm PARTITION"


@pytest.mark.parametrize(("up_args", "slurm", "expected"), [
    # every job option, in any order; no recorded --memory: `up`'s default 16g; no --cpus: the partition's own
    ((), ("--constraint", "a100&ib", "--qos", "high", "--account", "lab", "--time", "10", "--slurm", "gpu"),
     SlurmRequest(partition="gpu", gpus=0, time_s=600, memory="16G", account="lab", qos="high",
                  constraint="a100&ib")),
    # a fraction of a CPU is a whole CPU of the job; any:N GPUs are N; the memory in Slurm's units
    (("--user", "dev", "--gpus", "any:3", "--cpus", "0.5", "--memory", "1536m"), ("--slurm", "gpu", "--time", "1:00"),
     SlurmRequest(partition="gpu", gpus=3, time_s=60, cpus=1, memory="1536M")),
    (("--gpus", "none", "--cpus", "2.25"), ("--slurm", "cpu", "--time", "0-01:00:00"),
     SlurmRequest(partition="cpu", gpus=0, time_s=3600, cpus=3, memory="16G")),
])
def test_the_job_asked_for_again_has_the_recorded_options_and_the_containers_limits(
        up_args: tuple[str, ...], slurm: tuple[str, ...], expected: SlurmRequest) -> None:
    assert job_request(replace(FACTS, up_args=up_args, slurm=slurm), notebook="nb.md") == expected


@pytest.mark.parametrize(("up_args", "slurm", "message"), [
    (FACTS.up_args, ("--slurm", "gpu", "--time"),
     "nb.md, run 3: the recorded Slurm option '--time' is not one devagent records once with a value (--slurm, "
     "--time, --account, --qos, --constraint)"),
    (FACTS.up_args, ("--slurm", "gpu", "--slurm", "cpu", "--time", "10"),
     "nb.md, run 3: the recorded Slurm option '--slurm' is not one devagent records once with a value (--slurm, "
     "--time, --account, --qos, --constraint)"),
    (FACTS.up_args, ("--time", "10"), "nb.md, run 3: the recorded Slurm job has no partition or no time limit"),
    (FACTS.up_args, ("--slurm", "gpu", "--time", "10", "--account", "lab;id"),
     "nb.md, run 3: the recorded Slurm job is refused: invalid Slurm account 'lab;id'"),
    (FACTS.up_args, ("--slurm", "gpu", "--time", "10", "--qos", "-x"),
     "nb.md, run 3: the recorded Slurm job is refused: invalid Slurm QOS '-x': it must not start with '-'"),
    (FACTS.up_args, ("--slurm", "gpu", "--time", "10", "--constraint", "a b"),
     "nb.md, run 3: the recorded Slurm job is refused: invalid Slurm constraint 'a b'"),
    (("--gpus", "all"), JOB.slurm,
     "nb.md, run 3: the recorded Slurm job is refused: run 3 recorded --gpus all: not how many GPUs its Slurm "
     "job had"),
])
def test_a_recorded_slurm_job_is_refused_with_the_way_out(up_args: tuple[str, ...], slurm: tuple[str, ...],
                                                          message: str) -> None:
    with pytest.raises(DevagentError) as caught:
        job_request(replace(FACTS, up_args=up_args, slurm=slurm), notebook="nb.md")
    assert (caught.value.message, caught.value.hint, caught.value.status) == (message, JOB_HINT, ExitStatus.USAGE)


def test_the_up_options_of_a_run_in_a_job_pass_ups_checks_too() -> None:
    with pytest.raises(DevagentError) as caught:
        job_request(replace(JOB, up_args=("--share-gpus", "yes")), notebook="nb.md")
    assert (caught.value.message, caught.value.status) == (
        "nb.md, run 3: the recorded `up` option '--share-gpus' is not one devagent records (--gpus, --memory, "
        "--cpus, --shm-size, --pids, --user)", ExitStatus.USAGE)


@pytest.mark.parametrize(("up_args", "count"), [
    ((), 0),
    (("--gpus", "none"), 0),
    (("--gpus", "1"), 1),
    (("--user", "dev", "--gpus", "0,2,3"), 3),
    (("--gpus", "GPU-" + "0" * 8 + "-0000-0000-0000-" + "0" * 12, "--memory", "8g"), 1),
    (("--gpus", "any:4"), 4),
    (("--memory", "8g", "--gpus"), 0),  # an option without a value records no GPUs
    (("--user", "--gpus", "--memory", "2"), 0),  # a value that reads "--gpus" is no option
])
def test_the_gpu_count_of_a_job_is_the_number_of_its_recorded_gpus(up_args: tuple[str, ...], count: int) -> None:
    assert gpu_count(replace(JOB, up_args=up_args)) == count


def test_a_run_that_recorded_all_gpus_has_no_gpu_count() -> None:
    with pytest.raises(DevagentError) as caught:
        gpu_count(replace(JOB, up_args=("--gpus", "all")))
    assert (caught.value.message, caught.value.hint, caught.value.status) == (
        "run 3 recorded --gpus all: not how many GPUs its Slurm job had",
        "fix the run's reproduce block, or up the environment yourself with --slurm PARTITION --gpus N",
        ExitStatus.USAGE)


@pytest.mark.parametrize(("up_args", "expected"), [
    (("--user", "dev", "--gpus", "3,5"), ("--user", "dev", "--gpus", "2")),
    (("--user", "--gpus", "--memory", "2g"), ("--user", "--gpus", "--memory", "2g")),  # a value, not the option
    (("--user", "dev", "--gpus"), ("--user", "dev", "--gpus")),  # no value: `up` refuses it, as recorded
    ((), ()),
])
def test_a_job_runs_environment_asks_for_the_count_of_its_gpus(up_args: tuple[str, ...],
                                                              expected: tuple[str, ...]) -> None:
    assert environment_args(replace(JOB, up_args=up_args)) == (*expected, *JOB.slurm)
    assert environment_args(replace(FACTS, up_args=up_args)) == up_args  # outside a job: as recorded


def test_the_whole_block_of_a_run_in_a_slurm_job() -> None:
    block = render_reproduce(JOB, notebook="nb.md")
    fenced = block.split("```sh\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert fenced[4:7] == [
        "# 2. the environment, from the same image",
        "#    in a new Slurm job like the run's (same partition, time limit, GPU count): give --host the cluster's "
        "login node",
        f"devagent up pytorch-dev-run3 --image lab.example:5000/pytorch-cuda:v2.8@{DIGEST} --gpus 2 --memory 32g "
        "--cpus 8 --shm-size 8g --pids 4096 --user dev --slurm gpu --time 0-08:00:00 --account lab --workspace "
        "../pytorch-dev-run3"]
    assert ', "slurm": ["--slurm", "gpu", "--time", "0-08:00:00", "--account", "lab"], ' in block
