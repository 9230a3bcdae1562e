"""The built-in networks' layers as specs, with their default settings: what fixes each
network's variables, shapes, parameter counts and summary. Needs no TensorFlow, so that
``rawtf summary`` and shape checks answer at once; :mod:`rawtf.networks` runs them.

Each function takes the network's settings (its defaults with any overrides) and the
number of classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rawtf.errors import ConfigError
from rawtf.specs import BatchNorm, Conv, Dense, Dropout, Flatten, Pool, Spec

Settings = Mapping[str, Any]


def tutorial(s: Settings, classes: int) -> list[Spec]:
    return [
        Conv("conv1", kernel=5, filters=32),
        Pool("pool1"),
        Conv("conv2", kernel=5, filters=64),
        Pool("pool2"),
        Flatten(),
        Dense("fc", 1024),
        Dropout("dropout", s["dropout_rate"]),
        Dense("out", classes),
    ]


def kaggle(s: Settings, classes: int) -> list[Spec]:
    return [
        Conv("conv1", kernel=5, filters=32),
        Pool("pool1", padding="VALID"),
        Dropout("dropout1", s["conv_dropout"]),
        Conv("conv2", kernel=3, filters=64),
        Conv("conv3", kernel=3, filters=64),
        Pool("pool2", padding="VALID"),
        Dropout("dropout2", s["conv_dropout"]),
        Flatten(),
        Dense("fc", 256),
        Dropout("dropout3", s["fc_dropout"]),
        Dense("out", classes),
    ]


def three_conv(s: Settings, classes: int) -> list[Spec]:
    return [
        Conv("conv1", kernel=3, filters=64, padding="VALID"),
        Pool("pool1", padding="VALID"),
        Conv("conv2", kernel=3, filters=64, padding="VALID"),
        Pool("pool2", padding="VALID"),
        Conv("conv3", kernel=3, filters=64, padding="VALID"),
        Pool("pool3", padding="VALID"),
        Flatten(),
        Dense("fc1", 64),
        Dense("fc2", 32),
        Dense("out", classes),
    ]


def _check_sizes(model: str, s: Settings, names: tuple[str, ...]) -> None:
    for name in names:
        if not isinstance(s[name], int) or isinstance(s[name], bool) or s[name] < 1:
            raise ConfigError(f"{model}: {name} must be a positive integer, got {s[name]!r}")


def deep_bn(s: Settings, classes: int) -> list[Spec]:
    _check_sizes("deep_bn", s, ("width", "fc"))
    rate, w = s["dropout_rate"], s["width"]  # the second block has twice the filters
    return [
        Conv("conv1", kernel=3, filters=w, padding="VALID"),
        BatchNorm("bn1"),
        Conv("conv2", kernel=3, filters=w, padding="VALID"),
        BatchNorm("bn2"),
        Conv("conv3", kernel=5, filters=w, stride=2, padding="SAME"),
        BatchNorm("bn3"),
        Dropout("dropout1", rate),
        Conv("conv4", kernel=3, filters=2 * w, padding="VALID"),
        BatchNorm("bn4"),
        Conv("conv5", kernel=3, filters=2 * w, padding="VALID"),
        BatchNorm("bn5"),
        Conv("conv6", kernel=5, filters=2 * w, stride=2, padding="SAME"),
        BatchNorm("bn6"),
        Dropout("dropout2", rate),
        Flatten(),
        Dense("fc", s["fc"]),
        BatchNorm("bn7"),
        Dropout("dropout3", rate),
        Dense("out", classes),
    ]


def small_bn(s: Settings, classes: int) -> list[Spec]:
    _check_sizes("small_bn", s, ("width", "fc", "blocks", "stem_stride"))
    w, count, stride = s["width"], s["blocks"], s["stem_stride"]
    blocks: list[Spec] = []
    for i in range(1, count + 1):
        filters = w * 2 ** (i + 2 - count)  # the last block has 4 * width filters
        # A strided first convolution takes a 5x5 window, so that no pixel goes unseen.
        kernel, step = (5, stride) if i == 1 and stride > 1 else (3, 1)
        blocks += [Conv(f"conv{i}", kernel, filters, stride=step), Pool(f"pool{i}")]
        blocks += [BatchNorm(f"bn{i}")]
    fc = [Dense("fc", s["fc"]), BatchNorm(f"bn{count + 1}"), Dense("out", classes)]
    return [*blocks, Flatten(), *fc]


#: Each built-in network's layers and default settings, by model name.
LAYERS: dict[str, Callable[[Settings, int], list[Spec]]] = {
    "tutorial": tutorial,
    "kaggle": kaggle,
    "three_conv": three_conv,
    "deep_bn": deep_bn,
    "small_bn": small_bn,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "tutorial": {"dropout_rate": 0.2},
    "kaggle": {"conv_dropout": 0.25, "fc_dropout": 0.5},
    "three_conv": {},
    "deep_bn": {
        "dropout_rate": 0.4,
        "width": 32,
        "fc": 128,
        "bn_momentum": 0.99,
        "bn_epsilon": 1e-3,
        "bn_fused": False,
    },
    "small_bn": {
        "width": 16,
        "fc": 128,
        "blocks": 3,
        "stem_stride": 1,
        "bn_momentum": 0.9,
        "bn_epsilon": 1e-3,
        "bn_fused": True,
    },
}
