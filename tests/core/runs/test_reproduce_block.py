"""The reproduce block at the end of a run section: exact commands, what is missing said plainly, secrets kept
out, and the facts readable back from the notebook."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from devagent.core.runs.reproduce_block import (
    ReproduceFacts,
    compare_metrics,
    find_run_section,
    read_facts,
    render_reproduce,
    reproduction_entries,
)

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
