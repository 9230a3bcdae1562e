"""Architectures: each a declared list of layers (which fixes the variables, the output
shapes and the summary) plus a forward function that reads one line per layer.

A model is a ``tf.Module`` holding ``weights`` and ``biases`` dictionaries named as in the
low-level tutorial (``W_conv1``, ``b_conv1``, ..., ``out``), so ``tf.train.Checkpoint``,
``tf.saved_model`` and ``tf.distribute`` work on it directly. Models are registered by
name; :func:`get_model` builds one, and users register their own with
:func:`register_model`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rawtf import init as initializers
from rawtf import layers as L
from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError, ShapeError

tf = import_tensorflow()


# ------------------------------------------------------------------------ layer specs


def weight_key(layer: str) -> str:
    """Tutorial naming: the output layer's weight is ``out``, others ``W_<layer>``."""
    return "out" if layer == "out" else f"W_{layer}"


def bias_key(layer: str) -> str:
    return "out" if layer == "out" else f"b_{layer}"


@dataclasses.dataclass(frozen=True)
class Conv:
    """A square convolution with bias (and its activation, applied in the forward)."""

    name: str
    kernel: int
    filters: int
    stride: int = 1
    padding: str = "SAME"

    kind: ClassVar[str] = "Conv2D"

    def output_shape(self, shape):
        return L.conv2d_output_shape(shape, self.kernel, self.filters, self.stride, self.padding)

    def weights(self, shape):
        return {weight_key(self.name): (self.kernel, self.kernel, shape[-1], self.filters)}

    def biases(self, shape):
        return {bias_key(self.name): (self.filters,)}


@dataclasses.dataclass(frozen=True)
class Pool:
    name: str
    window: int = 2
    stride: int = 2
    padding: str = "SAME"

    kind: ClassVar[str] = "MaxPool"

    def output_shape(self, shape):
        return L.max_pool_output_shape(shape, self.window, self.stride, self.padding)


@dataclasses.dataclass(frozen=True)
class Flatten:
    name: str = "flatten"

    kind: ClassVar[str] = "Flatten"

    def output_shape(self, shape):
        return L.flatten_output_shape(shape)


@dataclasses.dataclass(frozen=True)
class Dense:
    name: str
    units: int

    kind: ClassVar[str] = "Dense"

    def output_shape(self, shape):
        return L.dense_output_shape(shape, self.units)

    def weights(self, shape):
        return {weight_key(self.name): (shape[-1], self.units)}

    def biases(self, shape):
        return {bias_key(self.name): (self.units,)}


@dataclasses.dataclass(frozen=True)
class Dropout:
    name: str
    rate: float

    kind: ClassVar[str] = "Dropout"

    def output_shape(self, shape):
        return tuple(shape)


def _params(spec, kind: str, shape) -> dict:
    method = getattr(spec, kind, None)
    return method(shape) if method else {}


# ----------------------------------------------------------------------------- models


class Model(tf.Module):
    """Base of every architecture.

    Subclasses set ``defaults`` (their settings and default values), return their layers
    from :meth:`layers`, and write :meth:`forward`. ``model(x, training, dropout, seed)``
    returns logits.
    """

    model_name: ClassVar[str] = ""
    input_shape: ClassVar[tuple[int, int, int]] = (28, 28, 1)
    num_classes: ClassVar[int] = 10
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, init: str = "he", seed: int = 0, **settings: Any):
        super().__init__(name=self.model_name or type(self).__name__.lower())
        unknown = set(settings) - set(self.defaults)
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"model {self.model_name!r} has no setting {sorted(unknown)[0]!r} (known: {known})"
            )
        initializers.get_initializer(init)
        self.init = init
        self.seed = int(seed)
        self.settings = {**self.defaults, **settings}
        weight_shapes: dict[str, tuple] = {}
        bias_shapes: dict[str, tuple] = {}
        shape: tuple = (None, *self.input_shape)
        for spec in self.layers():
            weight_shapes.update(_params(spec, "weights", shape))
            bias_shapes.update(_params(spec, "biases", shape))
            shape = spec.output_shape(shape)
        # The tutorial fills biases from the same normal as weights; the others start at 0.
        bias_init = initializers.normal if init == "normal" else initializers.zeros
        self.weights = initializers.declare(weight_shapes, init, self.seed, stream=1)
        self.biases = initializers.declare(bias_shapes, bias_init, self.seed, stream=2)

    # -- what subclasses write
    def layers(self) -> Sequence[Any]:
        raise NotImplementedError

    def forward(self, x, training: bool, dropout: bool, seed) -> tf.Tensor:
        raise NotImplementedError

    # -- calling
    def __call__(self, x, training: bool = False, dropout: bool | None = None, seed=None):
        """Logits for a batch of images (float32 in [0, 1], NHWC, NHW or N x 784).

        ``training`` selects training-mode behaviour (batch statistics in batch norm);
        ``dropout`` (default: ``training``) turns dropout on; ``seed`` is the stateless
        ``[2]`` integer seed its masks are drawn from (default: a fresh random one)."""
        x = self._as_input(x)
        dropout = training if dropout is None else dropout
        if dropout and seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        return self.forward(x, training=training, dropout=dropout, seed=seed)

    def _as_input(self, x):
        x = tf.convert_to_tensor(x)
        if x.dtype != tf.float32:
            if not x.dtype.is_floating:
                raise ShapeError(
                    f"{self.model_name}: expects float32 images in [0, 1], got dtype {x.dtype.name}"
                )
            x = tf.cast(x, tf.float32)
        h, w, c = self.input_shape
        dims = tuple(x.shape.as_list()[1:]) if x.shape.rank is not None else None
        if dims not in ((h, w, c), (h, w), (h * w * c,)) and not (c == 1 and dims == (h, w, 1)):
            raise ShapeError(
                f"{self.model_name}: expects images of shape (N, {h}, {w}, {c}), (N, {h}, {w}) "
                f"or (N, {h * w * c}), got {tuple(x.shape.as_list()) if dims else x.shape}"
            )
        return tf.reshape(x, [-1, h, w, c])

    def dropout(self, x, rate: float, index: int, active: bool, seed):
        """Dropout whose mask is keyed on ``(seed, index)``: each dropout layer of the
        model draws its own mask from the step's seed."""
        if not active:
            return x
        layer_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)
        return L.dropout(x, rate, seed=layer_seed, training=True)

    # -- introspection
    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to build this model again with :func:`get_model`."""
        return {"model": self.model_name, "init": self.init, "seed": self.seed, **self.settings}

    def variable_map(self) -> dict[str, tf.Variable]:
        """Every variable by its path: ``weights/W_conv1``, ``biases/b_conv1``, ..."""
        return {
            **{f"weights/{k}": v for k, v in self.weights.items()},
            **{f"biases/{k}": v for k, v in self.biases.items()},
        }

    def layer_shapes(
        self, input_shape: Sequence[int | None] | None = None
    ) -> list[tuple[str, tuple]]:
        """``(layer name, output shape)`` for every layer, from the closed-form formulas —
        no data is run. ``input_shape`` is ``(N, H, W, C)``; default ``(None, 28, 28, 1)``."""
        shape = tuple(input_shape) if input_shape is not None else (None, *self.input_shape)
        if len(shape) != 4:
            raise ShapeError(f"layer_shapes: expected an (N, H, W, C) input shape, got {shape}")
        result = []
        for spec in self.layers():
            shape = spec.output_shape(shape)
            result.append((spec.name, shape))
        return result

    def output_shape(self, input_shape: Sequence[int | None] | None = None) -> tuple:
        return self.layer_shapes(input_shape)[-1][1]

    def count_params(self, trainable: bool | None = None) -> int:
        variables = (
            self.variables
            if trainable is None
            else (
                self.trainable_variables
                if trainable
                else [v for v in self.variables if not v.trainable]
            )
        )
        return sum(math.prod(v.shape) for v in variables)

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layer, output shape and parameter count, with totals; printed with
        ``print_fn`` (``None`` to only return it)."""
        rows = [("Layer (type)", "Output shape", "Param #")]
        shape: tuple = (None, *self.input_shape)
        for spec in self.layers():
            count = sum(
                math.prod(s)
                for kind in ("weights", "biases")
                for s in _params(spec, kind, shape).values()
            )
            shape = spec.output_shape(shape)
            rows.append((f"{spec.name} ({spec.kind})", str(shape), f"{count:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        rule = "-" * (sum(widths) + 6)

        def fmt(r):
            return f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}"

        total, trainable = self.count_params(), self.count_params(trainable=True)
        lines = [
            f'Model: "{self.model_name}"',
            rule,
            fmt(rows[0]),
            rule.replace("-", "="),
            *(fmt(r) for r in rows[1:]),
            rule.replace("-", "="),
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


_REGISTRY: dict[str, type[Model]] = {}


def register_model(name: str) -> Callable[[type[Model]], type[Model]]:
    """Class decorator: make a :class:`Model` subclass buildable as ``get_model(name)``."""

    def decorate(cls: type[Model]) -> type[Model]:
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise ConfigError(f"register_model({name!r}): {cls!r} is not a rawtf Model subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"a model named {name!r} is already registered")
        cls.model_name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[Model]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose from {', '.join(model_names())}"
        ) from None


def get_model(name: str, **config: Any) -> Model:
    """Build the registered model ``name`` with ``config`` (``init``, ``seed`` and its own
    settings); ``get_model(**model.config)`` rebuilds ``model``'s architecture."""
    return get_model_class(name)(**config)


get = get_model


# ---------------------------------------------------------------- the tutorial network


@register_model("tutorial")
class Tutorial(Model):
    """The low-level TensorFlow tutorial's network (3,274,634 parameters): two 5x5 SAME
    convolutions (32, 64 filters) each followed by 2x2 max pooling, a 1024-unit dense
    layer, dropout (rate 0.2, i.e. keep 0.8) and 10 logits."""

    defaults: ClassVar[dict[str, Any]] = {"dropout_rate": 0.2}

    def layers(self):
        return [
            Conv("conv1", kernel=5, filters=32),
            Pool("pool1"),
            Conv("conv2", kernel=5, filters=64),
            Pool("pool2"),
            Flatten(),
            Dense("fc", 1024),
            Dropout("dropout", self.settings["dropout_rate"]),
            Dense("out", self.num_classes),
        ]

    def forward(self, x, training, dropout, seed):
        W, b = self.weights, self.biases
        x = L.relu(L.conv2d(x, W["W_conv1"], b["b_conv1"], stride=1, padding="SAME"))
        x = L.max_pool(x, window=2, stride=2, padding="SAME")
        x = L.relu(L.conv2d(x, W["W_conv2"], b["b_conv2"], stride=1, padding="SAME"))
        x = L.max_pool(x, window=2, stride=2, padding="SAME")
        x = L.flatten(x)
        x = L.relu(L.dense(x, W["W_fc"], b["b_fc"]))
        x = self.dropout(x, self.settings["dropout_rate"], 0, dropout, seed)
        return L.dense(x, W["out"], b["out"])
