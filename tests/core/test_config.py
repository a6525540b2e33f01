"""devagent.toml: the workspace's committed `up` options, checked as `up` checks them, errors naming the line."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devagent.core.config import INIT_TEMPLATE, SlurmSettings, UpConfig, merge, parse_config
from devagent.core.spec import DEFAULT_BASE_IMAGE
from devagent.errors import DevagentError, ExitStatus

FULL_EXAMPLE = """\
# devagent.toml — committed with the code; `devagent up` reads it from the workspace (flags override it)
name = "resnet-dev"          # the environment/ssh alias name
base_image = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
user = "dev"
gpus = "all"                 # none | all | 0,1 | GPU-UUID,...
memory = "32g"
cpus = 8
shm_size = "8g"
pids = 4096
sshd_profile = "compat"
vscode = true

[agent]
notebook = "notes/lab-notebook.md"
watch = ["**/*.py", "configs/*.yaml"]
poll_saves = false
"""


def usage_error(text: str, **kwargs: str) -> DevagentError:
    with pytest.raises(DevagentError) as err:
        parse_config(text, **kwargs)
    assert err.value.status == ExitStatus.USAGE
    return err.value


class TestAFileThatIsRight:
    def test_the_full_example_gives_every_setting_in_the_form_up_takes_it(self) -> None:
        assert parse_config(FULL_EXAMPLE) == UpConfig(
            name="resnet-dev", base_image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", user="dev", gpus="all",
            memory="32g", cpus="8", shm_size="8g", pids="4096", sshd_profile="compat", vscode=True,
            notebook="notes/lab-notebook.md", watch=("**/*.py", "configs/*.yaml"), poll_saves=False)

    def test_an_empty_file_sets_nothing(self) -> None:
        assert parse_config("") == UpConfig()
        assert parse_config("# only a comment\n\n[agent]\n") == UpConfig()

    @pytest.mark.parametrize(("line", "gpus"), [
        ('gpus = "0,1"', "0,1"), ("gpus = [0, 1]", "0,1"), ("gpus = 3", "3"), ('gpus = "none"', "none"),
        ("gpus = []", "none"),
        ('gpus = ["GPU-5c3f1a2b-aaaa", "GPU-77aa0c1d-bbbb"]', "GPU-5c3f1a2b-aaaa,GPU-77aa0c1d-bbbb"),
        ('gpus = " ALL "', "all"),
    ])
    def test_gpus_may_be_a_string_an_index_or_an_array(self, line: str, gpus: str) -> None:
        assert parse_config(line).gpus == gpus

    def test_numbers_are_kept_as_the_command_line_would_spell_them(self) -> None:
        config = parse_config("cpus = 0.5\nmemory = \"1073741824b\"\nshm_size = \"512m\"\npids = 64\n")
        assert (config.cpus, config.memory, config.shm_size, config.pids) == ("0.5", "1073741824b", "512m", "64")

    def test_agent_settings_may_be_written_as_dotted_keys_or_an_inline_table(self) -> None:
        assert parse_config('agent.watch = ["a.py"]\n').watch == ("a.py",)
        assert parse_config('agent = { notebook = "nb.md", poll_saves = true }\n') == UpConfig(
            notebook="nb.md", poll_saves=True)


class TestErrorsNameTheLine:
    @pytest.mark.parametrize(("text", "message", "hint"), [
        ('name = "x"\n\nmemroy = "32g"\n', 'devagent.toml line 3: unknown key "memroy"',
         'did you mean "memory"? The keys are: name, host, base_image, image, user, gpus, memory, cpus, '
         'shm_size, pids, '
         "sshd_profile, vscode, idle_release, and the [agent] and [slurm] tables"),
        ("shm-size = 1\n", 'devagent.toml line 1: unknown key "shm-size"',
         'did you mean "shm_size"? The keys are: name, host, base_image, image, user, gpus, memory, cpus, '
         'shm_size, pids, '
         "sshd_profile, vscode, idle_release, and the [agent] and [slurm] tables"),
        ('cpus = 8\n[agent]\nnotbook = "nb.md"\n', 'devagent.toml line 3: unknown key "notbook" in [agent]',
         'did you mean "notebook"? The [agent] keys are: notebook, watch, poll_saves'),
        ("[agnet]\n", 'devagent.toml line 1: unknown key "agnet"',
         'did you mean "agent"? The keys are: name, host, base_image, image, user, gpus, memory, cpus, '
         'shm_size, pids, '
         "sshd_profile, vscode, idle_release, and the [agent] and [slurm] tables"),
        ("[agent]\nwatch = []\nvscode = true\n", 'devagent.toml line 3: unknown key "vscode" in [agent]',
         '"vscode" is not an [agent] setting: move it above the [agent] line (every key after a [table] line '
         "belongs to that table)"),
        ('cpus = 2\nnotebook = "nb.md"\n', 'devagent.toml line 2: unknown key "notebook"',
         '"notebook" belongs in the [agent] table: move it below the [agent] line'),
        ('identity = "~/.ssh/id_ed25519"\n', 'devagent.toml line 1: unknown key "identity"',
         "your key is yours, not the team's: pass --identity on the command line"),
        ("recreate = true\n", 'devagent.toml line 1: unknown key "recreate"',
         "replacing the container is a one-off: pass --recreate on the command line"),
        ('workspace = "."\n', 'devagent.toml line 1: unknown key "workspace"',
         "the workspace is the folder this file is in"),
    ])
    def test_an_unknown_key_is_named_with_its_line_and_the_likely_fix(self, text: str, message: str,
                                                                       hint: str) -> None:
        err = usage_error(text)
        assert (err.message, err.hint) == (message, hint)

    @pytest.mark.parametrize(("text", "message", "hint"), [
        ('user = "dev"\n\n\n\n\n\nmemory = "32x"\n', 'devagent.toml line 7: memory = "32x": cannot read size \'32x\'',
         'write a number and a unit b, k, m or g, e.g. memory = "8g"'),
        ("shm_size = 0\n", "devagent.toml line 1: shm_size = 0: size must be positive, not '0'",
         'e.g. shm_size = "8g"'),
        ("cpus = 0\n", "devagent.toml line 1: cpus = 0: '0' is not a positive number", "e.g. cpus = 8 or cpus = 0.5"),
        ("pids = 10\n", "devagent.toml line 1: pids = 10: '10' is not a whole number of at least 64",
         "DataLoader workers need room: e.g. pids = 4096"),
        ('gpus = "0,GPU-5c3f1a2b-aaaa"\n', 'devagent.toml line 1: gpus = "0,GPU-5c3f1a2b-aaaa": indexes and UUIDs '
         "mixed", "use none, all, any:N (N free GPUs), indexes like 0,1 or UUIDs from `devagent gpus` like GPU-5c3f…"),
        ('name = "Pytorch Dev"\n', "devagent.toml line 1: name = \"Pytorch Dev\": invalid environment name "
         "'Pytorch Dev'", "use 1-63 characters: lowercase letters, digits, '_', '.', '-', starting with a letter or "
         "digit"),
        ('user = "root"\n', "devagent.toml line 1: user = \"root\": invalid login user 'root'",
         'use a lowercase POSIX user name other than root, e.g. user = "dev"'),
        ('sshd_profile = "lax"\n', "devagent.toml line 1: sshd_profile = \"lax\": unknown sshd profile 'lax'",
         "use one of: strict, compat"),
        ('base_image = " "\n', 'devagent.toml line 1: base_image = " ": the base image must not be empty',
         f'e.g. base_image = "{DEFAULT_BASE_IMAGE}"'),
        ('[agent]\nnotebook = "../notes.md"\n', 'devagent.toml line 2: notebook = "../notes.md": \'../notes.md\' '
         "must be a path inside the workspace", 'e.g. notebook = "notes/lab-notebook.md"'),
        ('[agent]\nwatch = ["**/*.py", ""]\n', 'devagent.toml line 2: watch = ["**/*.py", ""]: a glob is empty',
         'e.g. watch = ["**/*.py"]'),
    ])
    def test_a_value_up_would_refuse_is_refused_with_the_line_and_the_validators_reason(
            self, text: str, message: str, hint: str) -> None:
        err = usage_error(text)
        assert (err.message, err.hint) == (message, hint)

    @pytest.mark.parametrize(("text", "message", "hint"), [
        ('cpus = "eight"\n', 'devagent.toml line 1: cpus = "eight": expected a number, not a string', "e.g. cpus = 8"),
        ("cpus = true\n", "devagent.toml line 1: cpus = true: expected a number, not a boolean", "e.g. cpus = 8"),
        ("pids = 4096.0\n", "devagent.toml line 1: pids = 4096.0: expected a whole number, not a float",
         "e.g. pids = 4096"),
        ("memory = 1.5\n", 'devagent.toml line 1: memory = 1.5: expected a size such as "8g", not a float',
         'e.g. memory = "32g"'),
        ('vscode = "yes"\n', 'devagent.toml line 1: vscode = "yes": expected true or false, not a string',
         "e.g. vscode = true"),
        ("user = 1000\n", "devagent.toml line 1: user = 1000: expected a string, not an integer", 'e.g. user = "dev"'),
        ("gpus = 1.5\n", 'devagent.toml line 1: gpus = 1.5: expected a string such as "all" or "0,1", or an array '
         "such as [0, 1], not a float", 'e.g. gpus = "all"'),
        ("gpus = [0, true]\n", "devagent.toml line 1: gpus = [0, true]: true is not a GPU index or UUID",
         "e.g. gpus = [0, 1]"),
        ("[memory]\n", "devagent.toml line 1: memory = {}: expected a size such as \"8g\", not a table",
         'e.g. memory = "32g"'),
        ('\n[agent]\nwatch = "*.py"\n', 'devagent.toml line 3: watch = "*.py": expected an array of globs such as '
         '["**/*.py"], not a string', 'e.g. watch = ["**/*.py"]'),
        ("[agent]\nwatch = [\n  1,\n]\n", "devagent.toml line 2: watch = [1]: 1 is not a glob in quotes",
         'e.g. watch = ["**/*.py"]'),
        ("[agent]\npoll_saves = 1\n", "devagent.toml line 2: poll_saves = 1: expected true or false, not an integer",
         "e.g. poll_saves = false"),
        ("agent = 3\n", "devagent.toml line 1: agent = 3: expected a table",
         "write it as a table: a line [agent] followed by its keys"),
        ("[[agent]]\n", "devagent.toml line 1: agent = [{}]: expected a table",
         "write it as a table: a line [agent] followed by its keys"),
    ])
    def test_a_value_of_the_wrong_type_is_refused_with_the_line_and_an_example(self, text: str, message: str,
                                                                                hint: str) -> None:
        err = usage_error(text)
        assert (err.message, err.hint) == (message, hint)

    def test_the_message_names_the_file_it_was_given(self) -> None:
        assert usage_error("cpus = 0\n", source="code/devagent.toml").message == (
            "code/devagent.toml line 1: cpus = 0: '0' is not a positive number")

    def test_a_toml_syntax_error_keeps_tomllibs_line_and_column(self) -> None:
        err = usage_error('name = "x"\nmemory = \n')
        assert re.fullmatch(r"devagent\.toml: .+ \(at line 2, column 10\)", err.message), err.message
        assert err.hint == 'the file is TOML (https://toml.io): key = value lines, strings in "quotes"'

    def test_a_key_written_twice_is_a_toml_error(self) -> None:
        message = usage_error("cpus = 2\ncpus = 3\n").message
        assert re.fullmatch(r"devagent\.toml: .+ \(at line 2, column \d+\)", message), message

    def test_lines_inside_a_multiline_string_are_not_taken_for_keys(self) -> None:
        text = 'base_image = """\nmemroy = 1\n"""\nmemroy = 2\n'
        assert usage_error(text).message == 'devagent.toml line 4: unknown key "memroy"'

    def test_lines_inside_a_multiline_array_are_not_taken_for_keys(self) -> None:
        text = '[agent]\nwatch = [\n  "a.py",  # notebook = 1\n]\nnotbook = "x"\n'
        assert usage_error(text).message == 'devagent.toml line 5: unknown key "notbook" in [agent]'

    def test_a_key_in_an_inline_table_is_reported_at_the_tables_line(self) -> None:
        # tomllib gives no positions: the line scan knows where `agent` is, not where inside it the key is.
        text = 'cpus = 2\nagent = { watch = ["a.py"], notbook = "x" }\n'
        assert usage_error(text).message == 'devagent.toml line 2: unknown key "notbook" in [agent]'

    def test_quoted_and_dotted_keys_are_found(self) -> None:
        assert usage_error('cpus = 2\n"memroy" = "1g"\n').message == 'devagent.toml line 2: unknown key "memroy"'
        assert usage_error('cpus = 2\nagent . "notbook" = "x"\n').message == (
            'devagent.toml line 2: unknown key "notbook" in [agent]')


# -- property tests ------------------------------------------------------------------------------------------------

TOP_SETTINGS = {
    "name": st.sampled_from(["a", "resnet-dev", "exp_01.v2"]).map(lambda v: (f'"{v}"', v)),
    "user": st.sampled_from(["dev", "ana", "_svc"]).map(lambda v: (f'"{v}"', v)),
    "gpus": st.sampled_from([('"all"', "all"), ('"none"', "none"), ("[0, 1]", "0,1"), ('"2,3"', "2,3")]),
    "memory": st.integers(1, 512).map(lambda n: (f'"{n}g"', f"{n}g")),
    "cpus": st.sampled_from([("8", "8"), ("0.5", "0.5"), ("32", "32")]),
    "shm_size": st.integers(1, 4096).map(lambda n: (f'"{n}m"', f"{n}m")),
    "pids": st.integers(64, 100_000).map(lambda n: (str(n), str(n))),
    "sshd_profile": st.sampled_from(["strict", "compat"]).map(lambda v: (f'"{v}"', v)),
    "vscode": st.booleans().map(lambda b: (str(b).lower(), b)),
}
AGENT_SETTINGS = {
    "notebook": st.sampled_from(["lab-notebook.md", "notes/nb.md"]).map(lambda v: (f'"{v}"', v)),
    "watch": st.lists(st.sampled_from(["**/*.py", "train.py", "src/*.py"]), max_size=3).map(
        lambda globs: ("[" + ", ".join(f'"{g}"' for g in globs) + "]", tuple(globs))),
    "poll_saves": st.booleans().map(lambda b: (str(b).lower(), b)),
}
FILLER = st.sampled_from(["", "# a comment", "   ", "# memroy = 1"])


@st.composite
def config_files(draw: st.DrawFn) -> tuple[list[str], dict[str, object]]:
    """A valid devagent.toml as lines (settings in any order, with blank and comment lines) and what it sets."""
    expected: dict[str, object] = {}

    def section(settings: dict[str, st.SearchStrategy[tuple[str, object]]]) -> list[str]:
        keys = draw(st.lists(st.sampled_from(sorted(settings)), unique=True))
        lines = []
        for key in keys:
            toml, value = draw(settings[key])
            expected[key] = value
            lines += [*draw(st.lists(FILLER, max_size=2)), f"{key} = {toml}"]
        return lines

    lines = section(TOP_SETTINGS)
    if draw(st.booleans()):
        lines += ["[agent]", *section(AGENT_SETTINGS)]
    return lines, expected


@given(config_files())
def test_any_valid_file_gives_back_what_it_says(case: tuple[list[str], dict[str, object]]) -> None:
    lines, expected = case
    assert parse_config("\n".join(lines) + "\n") == UpConfig(**expected)  # type: ignore[arg-type]


@given(config_files(), st.data())
def test_an_unknown_key_anywhere_is_reported_at_its_own_line(case: tuple[list[str], dict[str, object]],
                                                             data: st.DataObject) -> None:
    lines, _ = case
    agent_at = lines.index("[agent]") if "[agent]" in lines else len(lines)
    at = data.draw(st.integers(0, agent_at), label="insert at")  # at the top level, before any [agent] line
    lines.insert(at, 'memroy = "1g"')
    err = usage_error("\n".join(lines) + "\n")
    assert err.message == f'devagent.toml line {at + 1}: unknown key "memroy"'


# -- merging with the command line ---------------------------------------------------------------------------------


class TestMerge:
    def test_options_the_user_gave_win_over_the_file(self) -> None:
        config = parse_config(FULL_EXAMPLE)
        merged = merge(config, {"memory": "64g", "gpus": "0", "watch": ("train.py",), "poll_saves": True})
        assert (merged["memory"], merged["gpus"], merged["watch"], merged["poll_saves"]) == (
            "64g", "0", ("train.py",), True)
        assert merged["cpus"] == "8" and merged["name"] == "resnet-dev"

    def test_options_not_given_leave_the_files_settings(self) -> None:
        config = parse_config(FULL_EXAMPLE)
        merged = merge(config, {"memory": None, "watch": (), "gpus": None})
        assert {k: merged[k] for k in ("memory", "watch", "gpus")} == {
            "memory": "32g", "watch": ("**/*.py", "configs/*.yaml"), "gpus": "all"}

    def test_false_is_an_option_given(self) -> None:
        assert merge(UpConfig(vscode=True), {"vscode": False})["vscode"] is False

    def test_every_setting_is_in_the_result_and_other_options_pass_through(self) -> None:
        merged = merge(UpConfig(cpus="4"), {"identity": "/k", "recreate": True, "workspace": None})
        assert set(merged) == {f.name for f in fields(UpConfig)} | {"identity", "recreate", "workspace"}
        assert (merged["cpus"], merged["identity"], merged["recreate"], merged["workspace"], merged["memory"]) == (
            "4", "/k", True, None, None)


# -- `devagent init` -----------------------------------------------------------------------------------------------

SETTING_LINE = re.compile(r"^#(?=[a-z_]+ = )", re.MULTILINE)  # "#memory = ..." is a setting; "# ..." is prose


class TestInitTemplate:
    def test_as_written_it_sets_nothing(self) -> None:
        assert parse_config(INIT_TEMPLATE) == UpConfig()

    def test_it_shows_every_setting_once(self) -> None:
        shown = [line.split(" = ")[0] for line in SETTING_LINE.sub("", INIT_TEMPLATE).splitlines()
                 if re.match(r"^[a-z_]+ = ", line)]
        assert sorted(shown) == sorted(f.name for f in fields(UpConfig))

    def test_with_every_setting_uncommented_it_parses_to_the_defaults_and_an_example_team_image(self) -> None:
        assert parse_config(SETTING_LINE.sub("", INIT_TEMPLATE)) == UpConfig(
            name="pytorch-dev", host="gpu-server", base_image=DEFAULT_BASE_IMAGE,
            image="lab.example:5000/pytorch-cuda:v2.8-cu121", user="dev", gpus="none", memory="16g", cpus="8",
            shm_size="2g", pids="4096", sshd_profile="strict", vscode=True, idle_release="2h",
            notebook="lab-notebook.md", watch=("**/*.py",), poll_saves=False,
            slurm=SlurmSettings(partition="gpu", gpus=2, time="8:00:00"))

    @given(st.sets(st.sampled_from([f.name for f in fields(UpConfig)])))
    def test_any_selection_of_settings_uncommented_parses(self, chosen: set[str]) -> None:
        text = re.sub(r"^#(?=([a-z_]+) = )", lambda m: "" if m.group(1) in chosen else "#", INIT_TEMPLATE,
                      flags=re.MULTILINE)
        config = parse_config(text)
        assert {f.name for f in fields(config) if getattr(config, f.name) is not None} == chosen


# -- [slurm] ------------------------------------------------------------------------------------------------------


class TestSlurmTable:
    def test_a_table_of_the_allocation_a_bare_up_asks_for(self) -> None:
        config = parse_config('host = "hpc-login"\n[slurm]\npartition = "gpu"\ngpus = 2\ntime = "8:00:00"\n'
                              'account = "lab"\nqos = "normal"\nconstraint = "a100&nvlink"\nwait_timeout = "30m"\n')
        assert config.slurm == SlurmSettings(partition="gpu", gpus=2, time="8:00:00", account="lab", qos="normal",
                                             constraint="a100&nvlink", wait_timeout="30m")
        assert config.host == "hpc-login"

    @pytest.mark.parametrize(("text", "message"), [
        ('[slurm]\ngpus = 2\n', "devagent.toml line 1: the [slurm] table names no partition"),
        ('[slurm]\npartition = "gpu;id"\n',
         "devagent.toml line 2: partition = \"gpu;id\": invalid Slurm partition 'gpu;id'"),
        ('[slurm]\npartition = "-p"\n',
         "devagent.toml line 2: partition = \"-p\": invalid Slurm partition '-p': it must not start with '-'"),
        ('[slurm]\npartition = "gpu"\ntime = "0"\n',
         "devagent.toml line 3: time = \"0\": invalid Slurm time '0': the environment needs a time limit above "
         "zero"),
        ('[slurm]\npartition = "gpu"\ngpus = 65\n', "devagent.toml line 3: gpus = 65: 65 is not a GPU count from 0 "
         "to 64"),
        ('[slurm]\npartition = "gpu"\nnodes = 2\n', 'devagent.toml line 3: unknown key "nodes" in [slurm]'),
        ('slurm = "gpu"\n', 'devagent.toml line 1: slurm = "gpu": expected a table'),
    ])
    def test_hostile_or_wrong_values_are_refused_with_their_line(self, text: str, message: str) -> None:
        assert usage_error(text).message == message


# -- every refusal word for word, and the edges of the line scan -------------------------------------------------

KEYS = ("The keys are: name, host, base_image, image, user, gpus, memory, cpus, shm_size, pids, sshd_profile, vscode, "
        "idle_release, and the [agent] and [slurm] tables")
NAME_RULE = "1-64 letters, digits, '_', '.', '-' (no spaces, quotes or shell characters)"


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("idle_release = 5", 'idle_release = 5: 5 is not a duration', 'e.g. "2h"'),
    ('idle_release = "soon"', "idle_release = \"soon\": idle_release 'soon' is not a duration",
     "e.g. idle_release 30m (units: s, m, h, d; 1h30m)"),
    ('slurm = { partition = "gpu", wait_timeout = "soon" }', "wait_timeout = \"soon\": wait_timeout 'soon' is not a "
     "duration", "e.g. wait_timeout 30m (units: s, m, h, d; 1h30m)"),
    ('slurm = { partition = "gpu", gpus = -1 }', "gpus = -1: -1 is not a GPU count from 0 to 64", "e.g. gpus = 2"),
    ('slurm = { partition = "gpu", gpus = 65 }', "gpus = 65: 65 is not a GPU count from 0 to 64", "e.g. gpus = 2"),
    ('slurm = { partition = "gpu", constraint = "a100;rm" }', "constraint = \"a100;rm\": invalid Slurm constraint "
     "'a100;rm'", 'e.g. constraint = "a100"'),
    ('slurm = { partition = "g pu" }', "partition = \"g pu\": invalid Slurm partition 'g pu'",
     f"--slurm takes {NAME_RULE}"),
    ('slurm = { partition = "gpu", account = "a b" }', "account = \"a b\": invalid Slurm account 'a b'",
     f"--account takes {NAME_RULE}"),
    ('slurm = { partition = "gpu", qos = "q b" }', "qos = \"q b\": invalid Slurm QOS 'q b'",
     f"--qos takes {NAME_RULE}"),
    ('slurm = { partition = "gpu", nodes = 2 }', 'unknown key "nodes" in [slurm]',
     "The [slurm] keys are: partition, gpus, time, account, qos, constraint, wait_timeout"),
    ("slurm = 1", "slurm = 1: expected a table",
     'write it as a table: slurm = { partition = "gpu", gpus = 2, time = "8:00:00" }'),
    ("slurm = { gpus = 2 }", "the [slurm] table names no partition",
     'name the partition the environment runs on: partition = "gpu"'),
    ('Xmemory = "32g"', 'unknown key "Xmemory"', f'did you mean "memory"? {KEYS}'),
    ("zzz = 1", 'unknown key "zzz"', KEYS),
    ("memory = false", 'memory = false: expected a size such as "8g", not a boolean', 'e.g. memory = "32g"'),
    ("memory = 1979-05-27T07:32:00Z", 'memory = 1979-05-27T07:32:00+00:00: expected a size such as "8g", not a '
     "date-time", 'e.g. memory = "32g"'),
    ('user = "a\\\\b\\"c\\nd\\te"', "user = \"a\\\\b\\\"c\\nd\\te\": invalid login user 'a\\\\b\"c\\nd\\te'",
     'use a lowercase POSIX user name other than root, e.g. user = "dev"'),
])
def test_a_refusal_names_the_line_the_value_and_a_fix_in_the_files_terms(text: str, message: str, hint: str) -> None:
    error = usage_error(text)
    assert (error.message, error.hint) == (f"devagent.toml line 1: {message}", hint)


def test_a_hint_that_describes_an_option_is_not_turned_into_a_setting() -> None:
    # "--account takes …" is a sentence, not an example: it once became 'account = "takes" 1-64 letters…'.
    error = usage_error('slurm = { partition = "gpu", account = "a;b" }')
    assert error.hint == f"--account takes {NAME_RULE}"


def test_the_slurm_gpus_and_durations_are_kept_as_written() -> None:
    config = parse_config('idle_release = "0s"\nslurm = { partition = "gpu", gpus = 64, wait_timeout = "0s" }\n')
    assert (config.idle_release, config.slurm) == ("0s", SlurmSettings(partition="gpu", gpus=64, wait_timeout="0s"))
    assert parse_config("slurm = { partition = \"gpu\", gpus = 0 }").slurm == SlurmSettings(partition="gpu", gpus=0)


def test_an_empty_slurm_table_sets_no_slurm() -> None:
    assert parse_config("[slurm]\n").slurm is None


def test_lines_inside_a_multiline_literal_string_are_not_taken_for_keys() -> None:
    error = usage_error("base_image = '''\nmemroy = 1\n'''\nmemroy = 2\n")
    assert error.message == 'devagent.toml line 4: unknown key "memroy"'


def test_a_key_whose_line_the_scan_cannot_find_is_named_without_a_line() -> None:
    # The scan's known limit: a '''string''' holding one """ leaves it thinking a """ string is open.
    error = usage_error("base_image = '''x\"\"\"'''\nmemroy = 1\n")
    assert error.message == 'devagent.toml: unknown key "memroy"'


def test_init_text_replaces_each_covered_setting_and_keeps_the_rest_as_is() -> None:
    from devagent.core.config import init_text

    assert init_text() == INIT_TEMPLATE
    text = init_text(["slurm", "memory"], "devcontainer.json")
    assert text.count("set by devcontainer.json") == 2
    assert "# slurm: set by devcontainer.json (a value here overrides it)\n" in text
    assert "#slurm = " not in text and "#memory = " not in text
    assert text.replace("# slurm: set by devcontainer.json (a value here overrides it)\n", "").replace(
        "# memory: set by devcontainer.json (a value here overrides it)\n", "") == "".join(
        line for line in INIT_TEMPLATE.splitlines(keepends=True)
        if not line.startswith(("#slurm = ", "#memory = ")))
    assert "# memory: set by  (a value here overrides it)\n" in init_text(["memory"])


@pytest.mark.parametrize(("what", "option", "value", "message", "hint"), [
    ("account", "--account", "a b", "invalid Slurm account 'a b'", f"--account takes {NAME_RULE}"),
    ("QOS", "--qos", 'q"', "invalid Slurm QOS 'q\"'", f"--qos takes {NAME_RULE}"),
])
def test_a_slurm_name_is_checked_as_its_option_checks_it(what: str, option: str, value: str, message: str,
                                                         hint: str) -> None:
    from devagent.core.config import _slurm_name, _WrongType

    # _SLURM_KEYS holds checks made once, at import: made again here, so a change to how they are made shows.
    check = _slurm_name(what, option)
    assert check("lab_1.x-y") == "lab_1.x-y"
    with pytest.raises(DevagentError) as caught:
        check(value)
    assert (caught.value.message, caught.value.hint) == (message, hint)
    with pytest.raises(_WrongType, match=r"^a string$"):
        check(3)
