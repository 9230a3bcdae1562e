"""TrainConfig: one source for every training setting, its checks, recipes, and how flags,
recipes and a stored run combine."""

from __future__ import annotations

import dataclasses

import pytest

import rawtf
from rawtf import cli, config
from rawtf.config import RECIPES, TrainConfig, resolve
from rawtf.errors import ConfigError, UsageError


def test_defaults_are_the_documented_ones():
    c = TrainConfig()
    assert (c.model, c.epochs, c.optimizer, c.schedule, c.precision) == (
        "tutorial",
        3,
        "adam",
        "onecycle",
        "fp32",
    )
    assert (c.augment, c.validation_split, c.seed, c.batch_size, c.lr) == (
        False,
        0.0,
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("epochs", 0, "epochs must be a positive integer, got 0"),
        ("epochs", 2.0, "epochs must be a positive integer"),
        ("epochs", True, "epochs must be a positive integer"),
        ("seed", -1, "seed must be an integer >= 0"),
        ("seed", 2**70, "seed must be an integer <= 2147483647"),
        ("lr", "fast", "lr must be a positive number"),
        ("lr", float("inf"), "lr must be a positive number"),
        ("validation_split", 1.0, "validation_split must be a number in [0, 1)"),
        ("model", ["tutorial"], "model must be a string"),
        ("optimizer", "adagrad", "optimizer must be one of adam, adamw, rmsprop, sgd"),
        ("precision", "fp16", "precision must be one of fp32, bf16"),
        ("augment", "yes", "augment must be true or false"),
        ("elastic", -1, "elastic must be a number in [0, 1000]"),
        ("elastic_sigma", 0.0, "elastic_sigma must be a number in [0.5, 100]"),
        ("model_settings", [1], "model_settings must be an object"),
        ("data_dir", 3, "data_dir must be a string"),
    ],
)
def test_every_setting_is_checked(field, value, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert message in str(info.value)


def test_from_dict_names_the_source_and_rejects_unknown_settings():
    assert TrainConfig.from_dict({"epochs": 2}).epochs == 2
    with pytest.raises(ConfigError, match=r"run/config.json: unknown setting 'epoch'"):
        TrainConfig.from_dict({"epoch": 2}, "run/config.json")
    with pytest.raises(ConfigError, match=r"run/config.json: epochs must be a positive integer"):
        TrainConfig.from_dict({"epochs": "3"}, "run/config.json")
    with pytest.raises(ConfigError, match="expected an object of settings"):
        TrainConfig.from_dict(["epochs"], "x")
    original = TrainConfig(model="deep_bn", model_settings={"bn_fused": True}, lr=3e-3)
    assert TrainConfig.from_dict(original.to_dict()) == original


def test_model_defaults_fill_only_what_is_left_out():
    filled = TrainConfig(model="deep_bn").with_model_defaults()
    deep_bn = rawtf.models.get_model_class("deep_bn")
    assert (filled.batch_size, filled.lr) == (deep_bn.default_batch_size, deep_bn.default_lr)
    given = TrainConfig(model="deep_bn", batch_size=32, lr=1e-4).with_model_defaults()
    assert (given.batch_size, given.lr) == (32, 1e-4)


def test_recipes_are_complete_valid_configs():
    assert set(RECIPES) == set(config.RECIPE_NAMES) == set(config.RECIPE_SUMMARIES)
    for name, recipe in RECIPES.items():
        assert isinstance(recipe, TrainConfig) and recipe.recipe == name
        assert recipe.model in config.MODEL_NAMES and recipe.schedule in config.SCHEDULE_NAMES
        rawtf.get_model(recipe.model, **recipe.model_settings)  # settings the model knows
    fast = RECIPES["fast"]
    assert (fast.model, fast.epochs, fast.batch_size, fast.lr, fast.precision) == (
        "small_bn",
        2,
        256,
        3e-2,
        "fp32",
    )
    assert (fast.label_smoothing, fast.train_limit) == (0.1, 50000)
    assert fast.model_settings == {"width": 8, "blocks": 2, "stem_stride": 2}


def test_flags_win_over_a_recipe_which_wins_over_the_base():
    base = TrainConfig(model="kaggle", augment=True)
    assert resolve({}, base) == base
    assert resolve({"epochs": 5}, base).model == "kaggle"
    best = resolve({"recipe": "best", "epochs": 2, "precision": "bf16", "lr": 1e-3}, base)
    assert (best.epochs, best.precision, best.lr) == (2, "bf16", 1e-3)
    assert (best.model, best.augment, best.model_settings) == ("deep_bn", True, {"bn_fused": True})
    assert best.validation_split == 0.0  # best trains on the whole training set...
    watched = resolve({"recipe": "best", "validation_split": 0.083333})
    assert watched.validation_split == 0.083333  # ...unless told to hold some out
    with pytest.raises(ConfigError, match="unknown recipe 'fastest'"):
        resolve({"recipe": "fastest"})


def test_resuming_keeps_the_stored_run_and_refuses_contradictions():
    stored = TrainConfig(model="deep_bn", seed=4, epochs=3, lr=1e-2, batch_size=64)
    assert resolve({}, stored=stored) == stored
    extended = resolve({"epochs": 6, "logdir": "logs", "model": "deep_bn"}, stored=stored)
    assert extended == dataclasses.replace(stored, epochs=6, logdir="logs")
    for name, value in (("model", "tutorial"), ("seed", 5), ("lr", 1e-3), ("augment", True)):
        with pytest.raises(UsageError) as info:
            resolve({name: value}, stored=stored, source="the run in R")
        message = str(info.value)
        flag = "--" + name.replace("_", "-")
        assert message.startswith(f"{flag} {value!r} contradicts the run in R, which has ")
        assert repr(getattr(stored, name)) in message
    wide = dataclasses.replace(stored, model_settings={"bn_fused": True, "width": 48})
    assert resolve({"model_settings": {"width": 48}}, stored=wide) == wide  # a subset agrees
    with pytest.raises(UsageError, match="^--model-setting .* contradicts the run in R"):
        resolve({"model_settings": {"width": 64}}, stored=wide, source="the run in R")


def test_name_lists_follow_the_modules_that_define_them():
    builtin = {n for n in rawtf.models.model_names() if not n.startswith("test_")}
    assert set(config.MODEL_NAMES) == builtin
    assert set(config.OPTIMIZER_NAMES) == set(rawtf.optim.OPTIMIZERS)
    assert set(config.SCHEDULE_NAMES) == set(rawtf.schedules.SCHEDULES)
    assert set(config.INIT_NAMES) == set(rawtf.initializers.INITIALIZERS)


def _train_options() -> dict[str, object]:
    """``rawtf train``'s options by destination."""
    train = next(
        action.choices["train"]
        for action in cli.build_parser()._actions
        if getattr(action, "choices", None) and "train" in action.choices
    )
    return {a.dest: a for a in train._actions if a.option_strings and a.dest != "help"}


def test_every_setting_with_a_flag_is_a_train_flag():
    options = _train_options()
    for name, field in config.SETTINGS.items():
        assert (name in options) == field.metadata["flag"], name
    assert {"out", "resume", "overwrite", "save_every_steps", "verbose"} <= set(options)
