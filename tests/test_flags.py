"""Tests of `supervised_reptile.flags`: the original's flags, the README commands, the presets
and the small commands' parsers."""

import re
import shlex

import pytest

from supervised_reptile import flags
from supervised_reptile.config import DATASETS
from supervised_reptile.presets import PRESETS
from supervised_reptile.flags import build_parser, parse_args

# The original's flags and defaults, as --help prints them.
ORIGINAL_DEFAULTS = {
    "--pretrained": False,
    "--seed": 0,
    "--checkpoint": "model_checkpoint",
    "--classes": 5,
    "--shots": 5,
    "--train-shots": 0,
    "--inner-batch": 5,
    "--inner-iters": 20,
    "--replacement": False,
    "--learning-rate": 1e-3,
    "--meta-step": 0.1,
    "--meta-step-final": 0.1,
    "--meta-batch": 1,
    "--meta-iters": 400000,
    "--eval-batch": 5,
    "--eval-iters": 50,
    "--eval-samples": 10000,
    "--eval-interval": 10,
    "--weight-decay": 1.0,
    "--transductive": False,
    "--foml": False,
    "--foml-tail": None,
    "--sgd": False,
}


def help_text(capsys, dataset):
    with pytest.raises(SystemExit) as e:
        parse_args(["--help"], dataset)
    assert e.value.code == 0
    return capsys.readouterr().out


def help_defaults(capsys, dataset):
    """Flag -> the default its own help prints (None where it prints none)."""
    out = help_text(capsys, dataset)
    blocks = re.split(r"\n  (?=-)", out.split("\n\npresets")[0])
    found = {}
    for block in blocks[1:]:
        flag = re.match(r"(--[a-z][a-z-]*)", block)
        if flag is None:
            continue
        text = " ".join(block.split())
        d = re.search(r"\(default: ([^,)]*)", text)
        found[flag.group(1)] = d.group(1) if d else None
    return found


def same_default(printed, expected):
    if isinstance(expected, bool):
        return printed is None  # switches print no default
    if expected is None:
        return printed in (None, "unset")
    if isinstance(expected, (int, float)):
        return float(printed) == float(expected)
    return printed == expected


@pytest.mark.parametrize("dataset", DATASETS)
def test_help_lists_every_original_flag_with_its_default(capsys, dataset):
    found = help_defaults(capsys, dataset)
    for flag, default in ORIGINAL_DEFAULTS.items():
        assert flag in found, flag
        assert same_default(found[flag], default), (flag, found[flag], default)
    assert found["--data-dir"] == f"data/{dataset}"
    if dataset == "omniglot":
        assert found["--train-characters"] == "1200"
    else:
        assert "--train-characters" not in found


def test_train_characters_is_omniglot_only(capsys):
    assert parse_args(["--train-characters", "1000"], "omniglot").data.train_characters == 1000
    with pytest.raises(SystemExit) as e:
        parse_args(["--train-characters", "1000"], "miniimagenet")
    assert e.value.code == 2
    assert "--train-characters" in capsys.readouterr().err


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        build_parser("cifar")


@pytest.mark.parametrize("dataset", DATASETS)
def test_defaults_equal_the_original(dataset):
    cfg = parse_args([], dataset)
    expected = dict(pretrained=False, seed=0, checkpoint="model_checkpoint", classes=5, shots=5,
                    train_shots=0, inner_batch=5, inner_iters=20, replacement=False,
                    learning_rate=0.001, meta_step=0.1, meta_step_final=0.1, meta_batch=1,
                    meta_iters=400000, eval_batch=5, eval_iters=50, eval_samples=10000,
                    eval_interval=10, weight_decay=1.0, transductive=False, algorithm="reptile",
                    foml_tail=None, sgd=False)
    for name, value in expected.items():
        got = cfg.flat()[name]
        assert got == value and type(got) is type(value), (name, got, value)
    assert cfg.data.dataset == dataset
    assert cfg.data.data_dir == f"data/{dataset}"
    assert cfg.data.train_characters == 1200
    assert cfg.effective_train_shots == 5


# ---------------------------------------------------------------- README paper commands

PAPER_COMMANDS = {
    "o15t": ("omniglot", "--shots 1 --inner-batch 10 --inner-iters 5 --meta-step 1 --meta-batch 5 "
             "--meta-step-final 0 --meta-iters 100000 --eval-batch 5 --eval-iters 50 "
             "--learning-rate 0.001 --train-shots 10 --checkpoint ckpt_o15t --transductive"),
    "m15t": ("miniimagenet", "--shots 1 --inner-batch 10 --inner-iters 8 --meta-step 1 "
             "--meta-batch 5 --meta-step-final 0 --meta-iters 100000 --eval-batch 5 "
             "--eval-iters 50 --learning-rate 0.001 --train-shots 15 --checkpoint ckpt_m15t "
             "--transductive"),
    "m55": ("miniimagenet", "--inner-batch 10 --inner-iters 8 --meta-step 1 --meta-batch 5 "
            "--meta-step-final 0 --meta-iters 100000 --eval-batch 15 --eval-iters 50 "
            "--learning-rate 0.001 --train-shots 15 --checkpoint ckpt_m55"),
    "m15": ("miniimagenet", "--shots 1 --inner-batch 10 --inner-iters 8 --meta-step 1 "
            "--meta-batch 5 --meta-step-final 0 --meta-iters 100000 --eval-batch 5 "
            "--eval-iters 50 --learning-rate 0.001 --train-shots 15 --checkpoint ckpt_m15"),
    "o55": ("omniglot", "--inner-batch 10 --inner-iters 5 --meta-step 1 --meta-batch 5 "
            "--meta-step-final 0 --meta-iters 100000 --eval-batch 5 --eval-iters 50 "
            "--learning-rate 0.001 --train-shots 10 --checkpoint ckpt_o55"),
    "o15": ("omniglot", "--shots 1 --inner-batch 10 --inner-iters 5 --meta-step 1 --meta-batch 5 "
            "--meta-step-final 0 --meta-iters 100000 --eval-batch 5 --eval-iters 50 "
            "--learning-rate 0.001 --train-shots 10 --checkpoint ckpt_o15"),
    "o120": ("omniglot", "--shots 1 --classes 20 --inner-batch 20 --inner-iters 10 --meta-step 1 "
             "--meta-batch 5 --meta-step-final 0 --meta-iters 200000 --eval-batch 10 "
             "--eval-iters 50 --learning-rate 0.0005 --train-shots 10 --checkpoint ckpt_o120"),
    "o520": ("omniglot", "--classes 20 --inner-batch 20 --inner-iters 10 --meta-step 1 "
             "--meta-batch 5 --meta-step-final 0 --meta-iters 200000 --eval-batch 10 "
             "--eval-iters 50 --learning-rate 0.0005 --train-shots 10 --checkpoint ckpt_o520"),
}

# The original README's table: N, K, K_train, inner-batch, inner-iters, meta-iters, eval-batch, lr, transductive.
PAPER_TABLE = {
    "o15t": (5, 1, 10, 10, 5, 100000, 5, 0.001, True),
    "m15t": (5, 1, 15, 10, 8, 100000, 5, 0.001, True),
    "m55": (5, 5, 15, 10, 8, 100000, 15, 0.001, False),
    "m15": (5, 1, 15, 10, 8, 100000, 5, 0.001, False),
    "o55": (5, 5, 10, 10, 5, 100000, 5, 0.001, False),
    "o15": (5, 1, 10, 10, 5, 100000, 5, 0.001, False),
    "o120": (20, 1, 10, 20, 10, 200000, 10, 0.0005, False),
    "o520": (20, 5, 10, 20, 10, 200000, 10, 0.0005, False),
}


def paper_config(name):
    dataset, line = PAPER_COMMANDS[name]
    return parse_args(shlex.split(line), dataset)


@pytest.mark.parametrize("name", sorted(PAPER_COMMANDS))
def test_paper_commands_parse(name):
    cfg = paper_config(name)
    n, k, k_train, ib, ii, mi, eb, lr, trans = PAPER_TABLE[name]
    assert cfg.data.dataset == PAPER_COMMANDS[name][0]
    assert (cfg.task.classes, cfg.task.shots, cfg.task.train_shots, cfg.inner.inner_batch, cfg.inner.inner_iters,
            cfg.meta.meta_iters, cfg.eval.eval_batch, cfg.inner.learning_rate, cfg.task.transductive) == \
        (n, k, k_train, ib, ii, mi, eb, lr, trans)
    assert cfg.run.checkpoint == f"ckpt_{name}"
    assert cfg.effective_train_shots == k_train
    # Shared by all eight.
    assert (cfg.meta.meta_step, cfg.meta.meta_step_final, cfg.meta.meta_batch, cfg.eval.eval_iters) == (1.0, 0.0, 5, 50)
    # Never set by them: the original's defaults.
    assert (cfg.run.seed, cfg.task.replacement, cfg.eval.eval_samples, cfg.eval.eval_interval, cfg.inner.weight_decay,
            cfg.meta.algorithm, cfg.meta.foml_tail, cfg.inner.sgd, cfg.run.pretrained) == \
        (0, False, 10000, 10, 1.0, "reptile", None, False, False)


@pytest.mark.parametrize("name", sorted(PAPER_COMMANDS))
def test_preset_equals_paper_command(name):
    dataset, _ = PAPER_COMMANDS[name]
    assert PRESETS[name][0] == dataset
    preset = parse_args(["--preset", name], dataset)
    assert preset == paper_config(name).replace(checkpoint=preset.run.checkpoint)
    assert preset.run.checkpoint == "model_checkpoint"


def test_presets_cover_exactly_the_paper_commands():
    assert set(PRESETS) == set(PAPER_COMMANDS)


def test_explicit_flags_override_a_preset():
    cfg = parse_args(["--preset", "o15", "--shots", "5", "--meta-batch", "2",
                      "--checkpoint", "x"], "omniglot")
    assert (cfg.task.shots, cfg.meta.meta_batch, cfg.run.checkpoint) == (5, 2, "x")
    assert (cfg.task.train_shots, cfg.inner.inner_iters, cfg.meta.meta_step_final) == (10, 5, 0.0)
    # Order does not matter, and an explicit value equal to the original default still wins.
    cfg = parse_args(["--meta-step-final", "0.1", "--eval-batch", "5", "--preset", "m55"],
                     "miniimagenet")
    assert (cfg.meta.meta_step_final, cfg.eval.eval_batch, cfg.task.train_shots) == (0.1, 5, 15)
    assert parse_args(["--preset", "o120", "--classes", "5"], "omniglot").task.classes == 5


def test_preset_of_the_other_dataset_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--preset", "m55"], "omniglot")
    assert e.value.code == 2
    assert "m55" in capsys.readouterr().err


# ---------------------------------------------------------------- gradient-combination commands

GRAD_SHARED = ("--sgd --seed 0 --inner-batch 25 --learning-rate 0.003 --meta-step-final 0 "
               "--meta-iters 40000 --eval-batch 25 --eval-iters 5 --eval-interval 1")
GRAD_COMMANDS = {
    "g1": "--inner-iters 1 --train-shots 5 --meta-step 0.25 --checkpoint g1",
    "g1_g2": "--inner-iters 2 --train-shots 10 --meta-step 0.25 --checkpoint g1_g2",
    "half_g1_g2": "--inner-iters 2 --train-shots 10 --meta-step 0.125 --checkpoint half_g1_g2",
    "g2": "--foml --inner-iters 2 --train-shots 10 --meta-step 0.25 --checkpoint g2",
    "g1_g2_g3": "--inner-iters 3 --train-shots 15 --meta-step 0.25 --checkpoint g1_g2_g3",
    "third_g1_g2_g3": ("--inner-iters 3 --train-shots 15 --meta-step 0.08325 "
                       "--checkpoint third_g1_g2_g3"),
    "g3": "--foml --inner-iters 3 --train-shots 15 --meta-step 0.25 --checkpoint g3",
    "g4": "--foml --inner-iters 4 --train-shots 20 --meta-step 0.25 --checkpoint g4",
    "g1_g2_g3_g4": "--inner-iters 4 --train-shots 20 --meta-step 0.25 --checkpoint g1_g2_g3_g4",
    "fourth_g1_g2_g3_g4": ("--inner-iters 4 --train-shots 20 --meta-step 0.0625 "
                           "--checkpoint fourth_g1_g2_g3_g4"),
}
# The original README's gradient-combination table: inner-iters, train-shots, meta-step, foml.
GRAD_TABLE = {
    "g1": (1, 5, 0.25, False),
    "g1_g2": (2, 10, 0.25, False),
    "half_g1_g2": (2, 10, 0.125, False),
    "g2": (2, 10, 0.25, True),
    "g1_g2_g3": (3, 15, 0.25, False),
    "third_g1_g2_g3": (3, 15, 0.08325, False),
    "g3": (3, 15, 0.25, True),
    "g4": (4, 20, 0.25, True),
    "g1_g2_g3_g4": (4, 20, 0.25, False),
    "fourth_g1_g2_g3_g4": (4, 20, 0.0625, False),
}


@pytest.mark.parametrize("name", sorted(GRAD_COMMANDS))
def test_gradient_combination_commands_parse(name):
    cfg = parse_args(shlex.split(f"{GRAD_SHARED} {GRAD_COMMANDS[name]}"), "omniglot")
    ii, ts, ms, foml = GRAD_TABLE[name]
    assert (cfg.inner.inner_iters, cfg.task.train_shots, cfg.meta.meta_step,
            cfg.meta.algorithm == "foml") == (ii, ts, ms, foml)
    assert cfg.run.checkpoint == name
    assert (cfg.inner.sgd, cfg.run.seed, cfg.inner.inner_batch, cfg.inner.learning_rate, cfg.meta.meta_step_final,
            cfg.meta.meta_iters, cfg.eval.eval_batch, cfg.eval.eval_iters, cfg.eval.eval_interval) == \
        (True, 0, 25, 0.003, 0.0, 40000, 25, 5, 1)
    # Defaults: 5-way, K = 5, meta-batch 1, non-transductive, no tail.
    assert (cfg.task.classes, cfg.task.shots, cfg.meta.meta_batch, cfg.task.transductive, cfg.meta.foml_tail) == \
        (5, 5, 1, False, None)
    # train-shots = 5 x inner-iters: one disjoint pass of 25-sample batches.
    assert cfg.effective_train_shots * cfg.task.classes == cfg.inner.inner_batch * cfg.inner.inner_iters


def test_foml_tail_and_types():
    cfg = parse_args(["--foml", "--foml-tail", "2", "--weight-decay", "0.5", "--seed", "7",
                      "--pretrained", "--replacement", "--data-dir", "/d"], "omniglot")
    assert cfg.meta.algorithm == "foml" and cfg.meta.foml_tail == 2 and isinstance(cfg.meta.foml_tail, int)
    assert cfg.inner.weight_decay == 0.5 and cfg.run.seed == 7 and cfg.run.pretrained and cfg.task.replacement
    assert cfg.data.data_dir == "/d"


def test_bad_flag_value_exits(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--shots", "two"], "omniglot")
    assert e.value.code == 2
    assert "--shots" in capsys.readouterr().err


def test_foml_and_maml_switches_set_the_algorithm(capsys):
    assert parse_args([], "omniglot").meta.algorithm == "reptile"
    assert parse_args(["--foml"], "omniglot").meta.algorithm == "foml"
    assert parse_args(["--maml"], "miniimagenet").meta.algorithm == "maml"
    with pytest.raises(SystemExit) as e:
        parse_args(["--maml", "--foml"], "omniglot")
    assert e.value.code == 2
    assert "--foml cannot be combined with --maml" in capsys.readouterr().err


def test_a_maml_preset_sets_the_algorithm_and_foml_still_conflicts(capsys):
    assert parse_args(["--preset", "maml-o15"], "omniglot").meta.algorithm == "maml"
    with pytest.raises(SystemExit):
        parse_args(["--preset", "maml-o15", "--foml"], "omniglot")
    assert "--foml cannot be combined with --maml" in capsys.readouterr().err


def test_small_commands_parse_into_typed_args(capsys):
    assert flags.parse_export_args(["--checkpoint", "c", "--export", "e"]) == \
        flags.ExportArgs(checkpoint="c", export="e")
    assert flags.parse_predict_args(["--model", "m", "--support", "s", "--query", "q"]) == \
        flags.PredictArgs(model="m", support="s", query="q", scores=False)
    assert flags.parse_check_data_args(["d", "--no-decode"]) == \
        flags.CheckDataArgs(data_dir="d", dataset=None, decode=False)
    with pytest.raises(SystemExit) as e:
        flags.parse_export_args(["--checkpoint", "c"])
    assert e.value.code == 2
    assert "--export" in capsys.readouterr().err


@pytest.mark.parametrize("argv,dataset", [(["--meta-iter", "5"], "omniglot"),
                                          (["--eval-sample", "5"], "miniimagenet"),
                                          (["--meta-iter", "5"], "sinusoid")])
def test_abbreviated_flags_are_refused(capsys, argv, dataset):
    with pytest.raises(SystemExit) as e:
        parse_args(argv, dataset)
    assert e.value.code == 2
    assert f"unrecognized arguments: {' '.join(argv)}" in capsys.readouterr().err


@pytest.mark.parametrize("parse", [flags.parse_export_args, flags.parse_predict_args,
                                   flags.parse_check_data_args, flags.parse_convert_args])
def test_small_commands_refuse_abbreviations_too(capsys, parse):
    with pytest.raises(SystemExit) as e:
        parse(["--hel"])
    assert e.value.code == 2


@pytest.mark.parametrize("dataset", ["omniglot", "miniimagenet", "sinusoid"])
def test_help_is_grouped_and_explains_its_conventions(capsys, dataset):
    out = help_text(capsys, dataset)
    for group in ("data and task:", "inner loop (adapting to one task):", "meta-training:",
                  "evaluation:", "run and output:"):
        assert f"\n{group}\n" in out, group
    text = " ".join(out.split())
    assert "(default: 0, the same as --shots)" in text
    assert "(default: 1, no decay)" in text
    assert "(default: )" not in text and "(default: None)" not in text
    assert "(default: False)" not in text
    assert "example:" in out
    if dataset != "sinusoid":
        assert "\nspeed (none changes results by default):\n" in out
        assert "with --parallel-tasks, else 'shared'" in text
        presets = out.split("\npresets")[1].split("\nexample:")[0]
        names = re.findall(r"^  (\S+) ", presets, re.M)
        assert set(names) == {k for k, (ds, _) in flags.all_presets().items()
                              if (ds == "omniglot") == (dataset == "omniglot")}
        assert re.search(r"^  (o15t|m15t) +1-shot 5-way, transductive \(paper\)$", presets, re.M)
