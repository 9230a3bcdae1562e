"""Architectures: each a declared list of layers (which fixes the variables, the output
shapes and the summary) plus a forward function that reads one line per layer.

A model is a ``tf.Module`` holding ``weights`` and ``biases`` dictionaries named as in the
low-level tutorial (``W_conv1``, ``b_conv1``, ..., ``out``; ``gamma_bn1`` and ``beta_bn1``
for batch norm) and a ``state`` dictionary of batch-norm moving statistics, so
``tf.train.Checkpoint``, ``tf.saved_model`` and ``tf.distribute`` work on it directly.
Models are registered by name; :func:`get_model` builds one, and users register their own
with :func:`register_model`.
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


# ------------------------------------------------------------------------- precision

PRECISIONS = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}


def compute_dtype(precision: str | None) -> tf.DType:
    """The dtype a forward pass computes in: ``fp32`` (default) or ``bf16`` (bfloat16
    activations and weights, float32 master variables, statistics and logits)."""
    if precision is None:
        return tf.float32
    try:
        return tf.as_dtype(PRECISIONS[str(precision).lower()])
    except KeyError:
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}") from None


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


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation: trainable ``gamma_<name>`` (in ``weights``, starts at 1) and
    ``beta_<name>`` (in ``biases``, starts at 0); moving statistics in ``state``."""

    name: str

    kind: ClassVar[str] = "BatchNorm"

    def output_shape(self, shape):
        return tuple(shape)

    def weights(self, shape):
        return {f"gamma_{self.name}": (shape[-1],)}

    def biases(self, shape):
        return {f"beta_{self.name}": (shape[-1],)}

    def state(self, shape):
        return {
            f"moving_mean_{self.name}": (shape[-1],),
            f"moving_variance_{self.name}": (shape[-1],),
        }

    def initial(self, key: str):
        """Initialisers that do not follow the model's scheme: gamma and the moving
        variance start at one, beta and the moving mean at zero."""
        return (
            initializers.ones
            if key.startswith(("gamma_", "moving_variance_"))
            else initializers.zeros
        )


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
    #: The peak learning rate and batch size the command line uses for this model unless
    #: told otherwise (chosen by measurement: see the README).
    default_lr: ClassVar[float] = 1e-3
    default_batch_size: ClassVar[int] = 128

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
        shapes: dict[str, dict[str, tuple]] = {"weights": {}, "biases": {}, "state": {}}
        overrides: dict[str, Callable] = {}
        shape: tuple = (None, *self.input_shape)
        for spec in self.layers():
            for kind, table in shapes.items():
                for key, param_shape in _params(spec, kind, shape).items():
                    table[key] = param_shape
                    if hasattr(spec, "initial"):
                        overrides[key] = spec.initial(key)
            shape = spec.output_shape(shape)
        # The tutorial fills biases from the same normal as weights; the others start at 0.
        bias_init = initializers.normal if init == "normal" else initializers.zeros
        self.weights = initializers.declare(
            shapes["weights"], init, self.seed, 1, overrides=overrides
        )
        self.biases = initializers.declare(
            shapes["biases"], bias_init, self.seed, 2, overrides=overrides
        )
        # Under tf.distribute each replica updates the moving statistics from its own batch;
        # the replicas' values are averaged.
        self.state = initializers.declare(
            shapes["state"],
            initializers.zeros,
            self.seed,
            3,
            trainable=False,
            overrides=overrides,
            aggregation=tf.VariableAggregation.MEAN,
        )

    # -- what subclasses write
    def layers(self) -> Sequence[Any]:
        raise NotImplementedError

    def forward(self, x, training: bool, dropout: bool, seed) -> tf.Tensor:
        raise NotImplementedError

    # -- calling
    def __call__(
        self,
        x,
        training: bool = False,
        dropout: bool | None = None,
        seed=None,
        precision: str | None = None,
    ):
        """Float32 logits for a batch of images (float32 in [0, 1], NHWC, NHW or N x 784).

        ``training`` selects training-mode behaviour (batch statistics in batch norm);
        ``dropout`` (default: ``training``) turns dropout on; ``seed`` is the stateless
        ``[2]`` integer seed its masks are drawn from (default: a fresh random one).
        ``precision="bf16"`` computes in bfloat16 (see :func:`compute_dtype`)."""
        dtype = compute_dtype(precision)
        x = self._as_input(x)
        dropout = training if dropout is None else dropout
        if dropout and seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        if dtype == tf.float32:
            return self.forward(x, training=training, dropout=dropout, seed=seed)
        logits = self.forward(tf.cast(x, dtype), training=training, dropout=dropout, seed=seed)
        return tf.cast(logits, tf.float32)

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
        if not active or rate == 0:
            return x
        layer_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)
        return L.dropout(x, rate, seed=layer_seed, training=True)

    def batch_norm(self, x, name: str, training: bool):
        """Batch normalisation with this model's ``gamma_<name>``, ``beta_<name>`` and
        moving statistics (updated in training)."""
        return L.batch_norm(
            x,
            self.weights[f"gamma_{name}"],
            self.biases[f"beta_{name}"],
            self.state[f"moving_mean_{name}"],
            self.state[f"moving_variance_{name}"],
            training=training,
            momentum=self.settings.get("bn_momentum", 0.99),
            epsilon=self.settings.get("bn_epsilon", 1e-3),
            fused=self.settings.get("bn_fused", False),
        )

    # -- introspection
    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to build this model again with :func:`get_model`."""
        return {"model": self.model_name, "init": self.init, "seed": self.seed, **self.settings}

    def variable_map(self) -> dict[str, tf.Variable]:
        """Every variable by its path: ``weights/W_conv1``, ``biases/b_conv1``,
        ``state/moving_mean_bn1``, ..."""
        return {
            **{f"weights/{k}": v for k, v in self.weights.items()},
            **{f"biases/{k}": v for k, v in self.biases.items()},
            **{f"state/{k}": v for k, v in self.state.items()},
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

    def flops_per_image(self) -> int:
        """Floating-point operations of one forward pass of one image, counted from the
        layer shapes: a multiply-add is 2 FLOPs (convolutions ``2·H'·W'·k²·C_in·C_out``,
        dense layers ``2·in·out``); biases, activations, pooling and normalisation are
        left out as negligible. A training step costs about three times this."""
        total, shape = 0, (1, *self.input_shape)
        for spec in self.layers():
            out = spec.output_shape(shape)
            if isinstance(spec, Conv):
                total += 2 * out[1] * out[2] * spec.kernel**2 * shape[-1] * spec.filters
            elif isinstance(spec, Dense):
                total += 2 * shape[-1] * spec.units
            shape = out
        return total

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
        """A table of layer, output shape, trainable and non-trainable parameter counts,
        with totals; printed with ``print_fn`` (``None`` to only return it)."""
        rows = [("Layer (type)", "Output shape", "Trainable", "Non-trainable")]
        shape: tuple = (None, *self.input_shape)
        for spec in self.layers():
            trainable, frozen = (
                sum(math.prod(s) for k in kinds for s in _params(spec, k, shape).values())
                for kinds in (("weights", "biases"), ("state",))
            )
            shape = spec.output_shape(shape)
            rows.append((f"{spec.name} ({spec.kind})", str(shape), f"{trainable:,}", f"{frozen:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]

        def fmt(r):
            return "   ".join(
                f"{cell:<{w}}" if i < 2 else f"{cell:>{w}}"
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            )

        rule = "-" * len(fmt(rows[0]))
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


# ------------------------------------------------------------- the other seed networks


@register_model("kaggle")
class Kaggle(Model):
    """The Kaggle digit-recognizer tutorial's network (861,898 parameters): a 5x5 and two
    3x3 SAME convolutions (32, 64, 64), two 2x2 poolings with dropout 0.25 after each, a
    256-unit dense layer, dropout 0.5, 10 logits.

    The tutorial ends in a sigmoid trained with categorical cross-entropy, which is a bug
    (sigmoids do not make the ten outputs a distribution); rawtf returns logits and trains
    them with softmax cross-entropy, like every model here."""

    defaults: ClassVar[dict[str, Any]] = {"conv_dropout": 0.25, "fc_dropout": 0.5}
    default_lr: ClassVar[float] = 1e-2

    def layers(self):
        return [
            Conv("conv1", kernel=5, filters=32),
            Pool("pool1", padding="VALID"),
            Dropout("dropout1", self.settings["conv_dropout"]),
            Conv("conv2", kernel=3, filters=64),
            Conv("conv3", kernel=3, filters=64),
            Pool("pool2", padding="VALID"),
            Dropout("dropout2", self.settings["conv_dropout"]),
            Flatten(),
            Dense("fc", 256),
            Dropout("dropout3", self.settings["fc_dropout"]),
            Dense("out", self.num_classes),
        ]

    def forward(self, x, training, dropout, seed):
        W, b = self.weights, self.biases
        conv_rate, fc_rate = self.settings["conv_dropout"], self.settings["fc_dropout"]
        x = L.relu(L.conv2d(x, W["W_conv1"], b["b_conv1"], stride=1, padding="SAME"))
        x = L.max_pool(x, window=2, stride=2, padding="VALID")
        x = self.dropout(x, conv_rate, 0, dropout, seed)
        x = L.relu(L.conv2d(x, W["W_conv2"], b["b_conv2"], stride=1, padding="SAME"))
        x = L.relu(L.conv2d(x, W["W_conv3"], b["b_conv3"], stride=1, padding="SAME"))
        x = L.max_pool(x, window=2, stride=2, padding="VALID")
        x = self.dropout(x, conv_rate, 1, dropout, seed)
        x = L.flatten(x)
        x = L.relu(L.dense(x, W["W_fc"], b["b_fc"]))
        x = self.dropout(x, fc_rate, 2, dropout, seed)
        return L.dense(x, W["out"], b["out"])


@register_model("three_conv")
class ThreeConv(Model):
    """The tf.keras blog tutorial's network (81,066 parameters): three times a 3x3 VALID
    convolution with 64 filters, ReLU and 2x2 VALID pooling, then dense layers of 64 and
    32 units and 10 logits (the tutorial's softmax lives in the loss)."""

    default_lr: ClassVar[float] = 1e-2

    def layers(self):
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
            Dense("out", self.num_classes),
        ]

    def forward(self, x, training, dropout, seed):
        W, b = self.weights, self.biases
        x = L.relu(L.conv2d(x, W["W_conv1"], b["b_conv1"], stride=1, padding="VALID"))
        x = L.max_pool(x, window=2, stride=2, padding="VALID")
        x = L.relu(L.conv2d(x, W["W_conv2"], b["b_conv2"], stride=1, padding="VALID"))
        x = L.max_pool(x, window=2, stride=2, padding="VALID")
        x = L.relu(L.conv2d(x, W["W_conv3"], b["b_conv3"], stride=1, padding="VALID"))
        x = L.max_pool(x, window=2, stride=2, padding="VALID")
        x = L.flatten(x)
        x = L.relu(L.dense(x, W["W_fc1"], b["b_fc1"]))
        x = L.relu(L.dense(x, W["W_fc2"], b["b_fc2"]))
        return L.dense(x, W["out"], b["out"])


@register_model("deep_bn")
class DeepBN(Model):
    """The "deep Keras CNN" notebook's network (327,242 parameters, 326,410 trainable):
    two blocks of [3x3 VALID, 3x3 VALID, 5x5 stride-2 SAME] convolutions (32 then 64
    filters), each convolution followed by ReLU and batch norm and each block by dropout
    0.4; then a 128-unit dense layer with ReLU, batch norm and dropout 0.4, and 10 logits.
    Batch norm uses momentum 0.99 and epsilon 1e-3 (Keras's defaults); ``bn_fused=True``
    selects TensorFlow's fused kernel in training."""

    defaults: ClassVar[dict[str, Any]] = {
        "dropout_rate": 0.4,
        "bn_momentum": 0.99,
        "bn_epsilon": 1e-3,
        "bn_fused": False,
    }
    default_lr: ClassVar[float] = 1e-2
    default_batch_size: ClassVar[int] = 64  # the notebook's own

    def layers(self):
        rate = self.settings["dropout_rate"]
        return [
            Conv("conv1", kernel=3, filters=32, padding="VALID"),
            BatchNorm("bn1"),
            Conv("conv2", kernel=3, filters=32, padding="VALID"),
            BatchNorm("bn2"),
            Conv("conv3", kernel=5, filters=32, stride=2, padding="SAME"),
            BatchNorm("bn3"),
            Dropout("dropout1", rate),
            Conv("conv4", kernel=3, filters=64, padding="VALID"),
            BatchNorm("bn4"),
            Conv("conv5", kernel=3, filters=64, padding="VALID"),
            BatchNorm("bn5"),
            Conv("conv6", kernel=5, filters=64, stride=2, padding="SAME"),
            BatchNorm("bn6"),
            Dropout("dropout2", rate),
            Flatten(),
            Dense("fc", 128),
            BatchNorm("bn7"),
            Dropout("dropout3", rate),
            Dense("out", self.num_classes),
        ]

    def forward(self, x, training, dropout, seed):
        W, b, rate = self.weights, self.biases, self.settings["dropout_rate"]
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv1"], b["b_conv1"], 1, "VALID")), "bn1", training
        )
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv2"], b["b_conv2"], 1, "VALID")), "bn2", training
        )
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv3"], b["b_conv3"], 2, "SAME")), "bn3", training
        )
        x = self.dropout(x, rate, 0, dropout, seed)
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv4"], b["b_conv4"], 1, "VALID")), "bn4", training
        )
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv5"], b["b_conv5"], 1, "VALID")), "bn5", training
        )
        x = self.batch_norm(
            L.relu(L.conv2d(x, W["W_conv6"], b["b_conv6"], 2, "SAME")), "bn6", training
        )
        x = self.dropout(x, rate, 1, dropout, seed)
        x = L.flatten(x)
        x = self.batch_norm(L.relu(L.dense(x, W["W_fc"], b["b_fc"])), "bn7", training)
        x = self.dropout(x, rate, 2, dropout, seed)
        return L.dense(x, W["out"], b["out"])


@register_model("small_bn")
class SmallBN(Model):
    """A small, fast network for time-to-accuracy runs (the ``fast`` recipe; 156,746
    parameters, 156,266 trainable): three blocks of 3x3 SAME convolution, 2x2 pooling,
    batch norm and ReLU (``width``, 2·``width``, 4·``width`` filters; 28 -> 14 -> 7 -> 4),
    a ``fc``-unit dense
    layer with batch norm and ReLU, and 10 logits. Pooling comes before normalisation
    (max-pooling commutes with the ReLU; normalising a quarter of the pixels is cheaper).
    No dropout: it is meant for runs of an epoch or two. Batch norm uses the fused kernel
    and momentum 0.9, so that the moving statistics settle within a few hundred steps."""

    defaults: ClassVar[dict[str, Any]] = {
        "width": 16,
        "fc": 128,
        "bn_momentum": 0.9,
        "bn_epsilon": 1e-3,
        "bn_fused": True,
    }
    default_lr: ClassVar[float] = 2e-2
    default_batch_size: ClassVar[int] = 256

    def layers(self):
        w = self.settings["width"]
        blocks = []
        for i, filters in enumerate((w, 2 * w, 4 * w), start=1):
            blocks += [Conv(f"conv{i}", 3, filters), Pool(f"pool{i}"), BatchNorm(f"bn{i}")]
        return [
            *blocks,
            Flatten(),
            Dense("fc", self.settings["fc"]),
            BatchNorm("bn4"),
            Dense("out", self.num_classes),
        ]

    def forward(self, x, training, dropout, seed):
        W, b = self.weights, self.biases
        for i in (1, 2, 3):
            x = L.conv2d(x, W[f"W_conv{i}"], b[f"b_conv{i}"], 1, "SAME")
            x = L.max_pool(x, window=2, stride=2, padding="SAME")
            x = L.relu(self.batch_norm(x, f"bn{i}", training))
        x = L.relu(self.batch_norm(L.dense(L.flatten(x), W["W_fc"], b["b_fc"]), "bn4", training))
        return L.dense(x, W["out"], b["out"])
