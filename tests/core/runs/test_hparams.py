"""Hyperparameters: argparse defaults read from the source, overlaid with the command line."""

from __future__ import annotations

from typing import ClassVar

import pytest

from devagent.core.runs.hparams import ArgDefault, argparse_defaults, effective_batch, overlay_argv
from tests.core.runs.samples import TRAIN_SCRIPT


class TestArgparseDefaults:
    def test_a_realistic_training_script(self) -> None:
        found = argparse_defaults(TRAIN_SCRIPT)
        assert list(found) == ["data_dir", "lr", "batch_size", "epochs", "optimizer", "weight_decay", "amp",
                               "shuffle", "verbose", "workers", "out", "depth", "augment", "layers", "seed"]
        assert found["data_dir"] == ArgDefault("data_dir", ("data_dir",), None, None)
        assert found["lr"] == ArgDefault("lr", ("--lr", "--learning-rate"), "3e-4", None)
        assert found["batch_size"] == ArgDefault("batch_size", ("--batch-size", "-b"), "64", None)
        assert found["optimizer"].default == "adam"
        assert found["weight_decay"] == ArgDefault("weight_decay", ("--wd",), "0.01", None)
        assert found["amp"] == ArgDefault("amp", ("--amp",), "False", "store_true")
        assert found["shuffle"] == ArgDefault("shuffle", ("--no-shuffle",), "True", "store_false")
        assert found["verbose"] == ArgDefault("verbose", ("-v", "--verbose"), "0", "count")
        assert found["workers"].default == "int(os.environ.get('WORKERS', 4))"
        assert found["out"].default == "os.environ.get('OUT_DIR', 'runs/')"
        assert found["depth"].default == "18"
        assert found["augment"].default == "none"
        assert found["layers"] == ArgDefault("layers", ("--layers",), "[64, 128]", None, nargs="+")
        assert found["seed"] == ArgDefault("seed", ("--seed",), None, None)

    def test_set_defaults_overrides_a_default_as_argparse_does(self) -> None:
        source = "p.set_defaults(lr=0.1)\np.add_argument('--lr', default=1e-3)\np.set_defaults(unknown=1)\n"
        assert argparse_defaults(source) == {"lr": ArgDefault("lr", ("--lr",), "0.1", None)}

    def test_boolean_optional_action_is_kept_as_written(self) -> None:
        source = "p.add_argument('--compile', action=argparse.BooleanOptionalAction, default=True)"
        assert argparse_defaults(source)["compile"].action == "argparse.BooleanOptionalAction"

    def test_a_call_with_a_computed_flag_is_skipped(self) -> None:
        assert argparse_defaults("for name in names:\n    p.add_argument(name, default=1)\n") == {}

    def test_a_script_with_a_plain_dict_config_has_none(self) -> None:
        source = "config = {'lr': 3e-4, 'batch_size': 64}\n\ndef train(cfg):\n    return cfg['lr']\n"
        assert argparse_defaults(source) == {}

    @pytest.mark.parametrize("source", ["def broken(:\n    pass\n", "x = 1\x00", "add_argument('--x'"])
    def test_a_source_that_does_not_parse_has_none(self, source: str) -> None:
        assert argparse_defaults(source) == {}

    def test_the_script_is_never_run(self) -> None:
        source = "import sys\nsys.exit(3)\nraise SystemExit\np.add_argument('--x', default=open('/nope').read())"
        assert argparse_defaults(source)["x"].default == "open('/nope').read()"


class TestOverlayArgv:
    def test_given_values_overlay_the_defaults_in_source_order(self) -> None:
        defaults = argparse_defaults(TRAIN_SCRIPT)
        result = overlay_argv(defaults, ["--lr", "1e-3", "--batch-size=32", "--amp", "data/", "-vv",
                                         "--layers", "32", "64", "--no-shuffle"])
        assert result == {
            "data_dir": "data/", "lr": "1e-3", "batch_size": "32", "epochs": "10", "optimizer": "adam",
            "weight_decay": "0.01", "amp": "True", "shuffle": "False", "verbose": "2",
            "workers": "int(os.environ.get('WORKERS', 4))", "out": "os.environ.get('OUT_DIR', 'runs/')",
            "depth": "18", "augment": "none", "layers": "32 64", "seed": "None",
        }

    @pytest.mark.parametrize("argv", [["-b", "32"], ["-b32"], ["-b=32"], ["--batch-size", "32"],
                                      ["--batch", "32"], ["--batch-s=32"]])
    def test_every_spelling_of_a_short_or_long_flag(self, argv: list[str]) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), argv)["batch_size"] == "32"

    def test_combined_short_switches(self) -> None:
        defaults = argparse_defaults("p.add_argument('-v', action='count')\np.add_argument('-q', action='store_true')")
        assert overlay_argv(defaults, ["-vqv"]) == {"v": "2", "q": "True"}

    def test_an_alias_is_the_same_argument(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--learning-rate", "0.1"])["lr"] == "0.1"

    def test_a_negative_number_is_a_value(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--lr", "-1e-3"])["lr"] == "-1e-3"

    def test_unknown_flags_are_kept_under_their_names(self) -> None:
        result = overlay_argv({}, ["--warmup-steps", "100", "--fast", "--name=run 1", "--dry-run", "-x"])
        assert result == {"warmup_steps": "100", "fast": "True", "name": "run 1", "dry_run": "True", "x": "True"}

    def test_positionals_go_in_order_and_extra_ones_under_their_index(self) -> None:
        defaults = argparse_defaults("p.add_argument('src')\np.add_argument('dst')\np.add_argument('--k', default=1)")
        assert overlay_argv(defaults, ["a", "--k", "2", "b", "c", "--", "-d"]) == {
            "src": "a", "dst": "b", "k": "2", "argv[4]": "c", "argv[6]": "-d"}

    def test_a_star_positional_takes_what_the_others_leave(self) -> None:
        defaults = argparse_defaults("p.add_argument('files', nargs='*')\np.add_argument('out')")
        assert overlay_argv(defaults, ["a", "b", "c"]) == {"files": "a b", "out": "c"}

    def test_boolean_optional_action_knows_its_no_flag(self) -> None:
        defaults = argparse_defaults("p.add_argument('--compile', action=argparse.BooleanOptionalAction, default=True)")
        assert overlay_argv(defaults, ["--no-compile"]) == {"compile": "False"}
        assert overlay_argv(defaults, []) == {"compile": "True"}

    def test_store_const_and_append(self) -> None:
        defaults = argparse_defaults("p.add_argument('--fp16', dest='dtype', action='store_const', const='half')\n"
                                     "p.add_argument('--tag', action='append')")
        assert overlay_argv(defaults, ["--fp16", "--tag", "a", "--tag=b"]) == {"dtype": "half", "tag": "a, b"}

    def test_a_missing_value_keeps_the_default(self) -> None:
        assert overlay_argv(argparse_defaults(TRAIN_SCRIPT), ["--epochs"])["epochs"] == "10"


def test_effective_batch() -> None:
    assert effective_batch({"batch_size": "64"}, 2) == (64, 2, 128)
    assert effective_batch({"bs": "auto", "per_device_train_batch_size": "8"}, 4) == (8, 4, 32)
    assert effective_batch({"batch_size": "64"}, 0) is None
    assert effective_batch({"lr": "1"}, 2) is None
    assert effective_batch({"batch_size": "0"}, 2) is None
    assert effective_batch({"batch_size": "1"}, 1) == (1, 1, 1)


class TestHowManyWordsAnOptionTakes:
    """`nargs`, counts and clusters, each read the way argparse reads it."""

    SOURCE = ("p.add_argument('--opt', nargs='?', const='c', default='d')\n"
              "p.add_argument('--maybe', nargs='?')\n"
              "p.add_argument('--pair', nargs=2, default=[0, 0])\n"
              "p.add_argument('--files', nargs='*', default=[])\n"
              "p.add_argument('-v', action='count')\n"
              "p.add_argument('-b', '--batch', type=int, default=8)\n"
              "p.add_argument('--flag', action='append_const', const='x')\n")
    DEFAULTS: ClassVar[dict[str, str]] = {"opt": "d", "maybe": "None", "pair": "[0, 0]", "files": "[]",
                                          "v": "None", "batch": "8", "flag": "None"}

    @pytest.mark.parametrize(("argv", "changed"), [
        (["--opt"], {"opt": "c"}),
        (["--opt", "v"], {"opt": "v"}),
        (["--opt", "--maybe"], {"opt": "c"}),
        (["--maybe", "-3"], {"maybe": "-3"}),
        (["--pair", "1", "2"], {"pair": "1 2"}),
        (["--pair", "1"], {"argv[1]": "1"}),
        (["--files", "a", "-1", "b", "--opt", "z"], {"files": "a -1 b", "opt": "z"}),
        (["--files"], {"files": ""}),
        (["-vb32"], {"v": "1", "batch": "32"}),
        (["-vvx"], {"v": "2", "x": "True"}),
        (["-v", "-v", "-v"], {"v": "3"}),
        (["--flag"], {"flag": "x"}),
        (["-b", "-5"], {"batch": "-5"}),
        (["-"], {"argv[0]": "-"}),
    ])
    def test_each_option_takes_its_words(self, argv: list[str], changed: dict[str, str]) -> None:
        assert overlay_argv(argparse_defaults(self.SOURCE), argv) == {**self.DEFAULTS, **changed}

    def test_a_count_starts_from_its_default(self) -> None:
        assert overlay_argv(argparse_defaults("p.add_argument('-v', action='count', default=-1)"), ["-v"]) == {
            "v": "0"}
        assert overlay_argv(argparse_defaults("p.add_argument('-v', action='count', default=x)"), ["-vv"]) == {
            "v": "2"}

    def test_an_ambiguous_prefix_is_an_unknown_flag(self) -> None:
        defaults = argparse_defaults("p.add_argument('--bad', default=1)\np.add_argument('--batch', default=2)")
        assert overlay_argv(defaults, ["--ba", "3"]) == {"bad": "1", "batch": "2", "ba": "3"}

    def test_optional_and_greedy_positionals_leave_one_word_to_each_later_one(self) -> None:
        defaults = argparse_defaults("p.add_argument('src', nargs='?', default='s')\np.add_argument('dst')\n"
                                     "p.add_argument('rest', nargs='+')\np.add_argument('last')")
        assert overlay_argv(defaults, ["a", "b"]) == {"src": "s", "dst": "a", "rest": "None", "last": "b"}
        assert overlay_argv(defaults, ["a", "b", "c", "d", "e"]) == {
            "src": "a", "dst": "b", "rest": "c d", "last": "e"}

    def test_unknown_flags_spell_their_names_with_underscores(self) -> None:
        assert overlay_argv({}, ["-x-y", "---", "--", "--a"]) == {"x_y": "True", "---": "True", "argv[3]": "--a"}


def test_values_with_equals_signs_const_without_a_const_extend_and_odd_flag_names() -> None:
    defaults = argparse_defaults("p.add_argument('--name')\n"
                                 "p.add_argument('--half', dest='dtype', action='store_const')\n"
                                 "p.add_argument('--ext', action='extend', nargs='+')\n"
                                 "p.add_argument('-v', action='count')")
    assert overlay_argv(defaults, ["--name=a=b", "--half", "--ext", "a", "b", "--ext", "c", "--Xla", "-vx-y"]) == {
        "name": "a=b", "dtype": "None", "ext": "a b, c", "v": "1", "Xla": "True", "x_y": "True"}


def test_a_positional_of_two_words_then_an_optional_one_that_leaves_its_word_to_the_last() -> None:
    defaults = argparse_defaults("p.add_argument('pair', nargs=2)\np.add_argument('src', nargs='?', default='s')\n"
                                 "p.add_argument('dst')")
    assert overlay_argv(defaults, ["a", "b", "c"]) == {"pair": "a b", "src": "s", "dst": "c"}


def test_a_dest_a_count_from_a_default_that_is_no_number_a_const_as_written_and_an_unknown_short_flag() -> None:
    defaults = argparse_defaults("p.add_argument('--Xdim', default=1)\n"
                                 "p.add_argument('-v', action='count', default='X3')\n"
                                 "p.add_argument('--half', action='store_const', const=1.50)")
    assert list(defaults) == ["Xdim", "v", "half"]
    assert defaults["half"].const == "1.50"
    assert overlay_argv(defaults, ["-v", "--half", "-x", "5"]) == {"Xdim": "1", "v": "1", "half": "1.50", "x": "5"}
