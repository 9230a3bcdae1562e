"""The model base class, the registry of architectures, and the compute precision.

A model is a ``tf.Module`` holding ``weights`` and ``biases`` dictionaries named as in the
low-level tutorial (``W_conv1``, ``b_conv1``, ..., ``out``; ``gamma_bn1`` and ``beta_bn1``
for batch norm) and a ``state`` dictionary of batch-norm moving statistics, so
``tf.train.Checkpoint``, ``tf.saved_model`` and ``tf.distribute`` work on it directly. Its
variables, shapes and summary follow from the layer specs it declares (:mod:`rawtf.specs`).
Models are registered by name; :func:`get_model` builds one, and users register their own
with :func:`register_model`. The built-in networks live in :mod:`rawtf.networks`.
"""

from __future__ import annotations

import html
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rawtf import initializers, layers, specs
from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError, ShapeError
from rawtf.specs import (  # noqa: F401  (re-exported: a user model declares its layers with them)
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Pool,
)

tf = import_tensorflow()

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


class Model(tf.Module):
    """Base of every architecture.

    Subclasses set ``defaults`` (their settings and default values), return their layer
    specs from :meth:`layers`, and write :meth:`forward`. ``model(x, training, dropout,
    seed)`` returns logits.
    """

    model_name: ClassVar[str] = ""
    input_shape: ClassVar[tuple[int, int, int]] = (28, 28, 1)
    num_classes: ClassVar[int] = 10
    defaults: ClassVar[dict[str, Any]] = {}
    #: The peak learning rate and batch size a training run uses for this model unless told
    #: otherwise.
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
        shapes = specs.variable_shapes(self.layers(), (None, *self.input_shape))
        # The tutorial fills biases from the same normal as weights; the others start at 0.
        bias_init = initializers.normal if init == "normal" else initializers.zeros
        declare = initializers.declare
        self.weights = declare(shapes.weights, init, self.seed, 1, overrides=shapes.initial)
        self.biases = declare(shapes.biases, bias_init, self.seed, 2, overrides=shapes.initial)
        # Under tf.distribute each replica updates the moving statistics from its own batch;
        # the replicas' values are averaged.
        self.state = declare(
            shapes.state,
            initializers.zeros,
            self.seed,
            3,
            trainable=False,
            overrides=shapes.initial,
            aggregation=tf.VariableAggregation.MEAN,
        )

    # -- what subclasses write
    def layers(self) -> Sequence[specs.Spec]:
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
        return layers.dropout(x, rate, seed=layer_seed, training=True)

    def batch_norm(self, x, name: str, training: bool):
        """Batch normalisation with this model's ``gamma_<name>``, ``beta_<name>`` and
        moving statistics (updated in training)."""
        return layers.batch_norm(
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
        return specs.layer_shapes(self.layers(), shape)

    def output_shape(self, input_shape: Sequence[int | None] | None = None) -> tuple:
        return self.layer_shapes(input_shape)[-1][1]

    def flops_per_image(self) -> int:
        """Forward FLOPs of one image (see :func:`rawtf.specs.flops_per_image`)."""
        return specs.flops_per_image(self.layers(), self.input_shape)

    def count_params(self, trainable: bool | None = None) -> int:
        """Parameters held in variables: all, or only the (non-)trainable ones."""
        variables = [
            v for v in self.variables if trainable is None or bool(v.trainable) == trainable
        ]
        return sum(math.prod(v.shape) for v in variables)

    def __repr__(self) -> str:
        h, w, c = self.input_shape
        trainable = self.count_params(trainable=True)
        return (
            f"<rawtf model {self.model_name!r}: {self.count_params():,} parameters "
            f"({trainable:,} trainable), input {h}x{w}x{c}, {self.num_classes} classes>"
        )

    def _repr_html_(self) -> str:
        """The summary table, for notebooks."""
        rows = specs.summary_rows(self.layers(), self.input_shape)
        head = "".join(
            f"<th>{t}</th>" for t in ("Layer (type)", "Output shape", "Trainable", "Non-trainable")
        )
        body = "".join(
            f"<tr><td>{html.escape(layer)}</td><td>{html.escape(shape)}</td>"
            f"<td>{t:,}</td><td>{f:,}</td></tr>"
            for layer, shape, t, f in rows
        )
        settings = html.escape(", ".join(f"{k}={v!r}" for k, v in self.config.items()))
        return (
            f"<p><b>{html.escape(repr(self))}</b><br><small>{settings}</small></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layer, output shape, trainable and non-trainable parameter counts,
        with totals; printed with ``print_fn`` (``None`` to only return it)."""
        text = specs.summary_text(self.model_name, self.layers(), self.input_shape)
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


def _registry() -> dict[str, type[Model]]:
    """The registry, with the built-in networks registered (their module imports this one,
    so it is loaded on first use rather than at import)."""
    importlib.import_module("rawtf.networks")
    return _REGISTRY


def model_names() -> list[str]:
    return sorted(_registry())


def get_model_class(name: str) -> type[Model]:
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose from {', '.join(model_names())}"
        ) from None


def get_model(name: str, **config: Any) -> Model:
    """Build the registered model ``name`` with ``config`` (``init``, ``seed`` and its own
    settings); ``get_model(**model.config)`` rebuilds ``model``'s architecture."""
    return get_model_class(name)(**config)
