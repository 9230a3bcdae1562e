"""Layer specifications and their shape arithmetic, in closed form and without TensorFlow.

A network declares its layers as a list of specs (:class:`Conv`, :class:`Pool`,
:class:`Flatten`, :class:`Dense`, :class:`Dropout`, :class:`BatchNorm`); from that list
alone follow every variable's shape, every layer's output shape, the parameter counts, the
FLOPs and the summary table. Nothing here imports TensorFlow, so shapes and summaries are
instant.

Output sizes along one axis, for input size ``n``, window ``k`` and stride ``s``::

    SAME:  ceil(n / s)
    VALID: floor((n - k) / s) + 1
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

from rawtf.errors import ConfigError, ShapeError

PADDINGS = ("SAME", "VALID")

Shape = tuple  # (N, H, W, C) or (N, D), N and any size possibly None


def check_padding(padding: str) -> str:
    """``padding`` upper-cased, which must be SAME or VALID."""
    value = str(padding).upper()
    if value not in PADDINGS:
        raise ConfigError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return value


# ------------------------------------------------------------------ closed-form shapes


def conv_output_size(size: int | None, kernel: int, stride: int, padding: str) -> int | None:
    """Spatial output size of a convolution or pooling window along one axis."""
    if size is None:
        return None
    if check_padding(padding) == "SAME":
        return -(-size // stride)
    if size < kernel:
        raise ShapeError(f"VALID window {kernel} does not fit input size {size}")
    return (size - kernel) // stride + 1


def conv2d_output_shape(
    input_shape: Sequence[int | None],
    kernel_size: int,
    filters: int,
    stride: int = 1,
    padding: str = "SAME",
) -> Shape:
    """``(N, H, W, C) -> (N, H', W', filters)`` for a square kernel and stride."""
    if len(input_shape) != 4:
        raise ShapeError(f"conv2d: expected an (N, H, W, C) shape, got {tuple(input_shape)}")
    n, h, w, _ = input_shape
    return (
        n,
        conv_output_size(h, kernel_size, stride, padding),
        conv_output_size(w, kernel_size, stride, padding),
        filters,
    )


def max_pool_output_shape(
    input_shape: Sequence[int | None], window: int = 2, stride: int = 2, padding: str = "SAME"
) -> Shape:
    """``(N, H, W, C) -> (N, H', W', C)``."""
    if len(input_shape) != 4:
        raise ShapeError(f"max_pool: expected an (N, H, W, C) shape, got {tuple(input_shape)}")
    n, h, w, c = input_shape
    return (
        n,
        conv_output_size(h, window, stride, padding),
        conv_output_size(w, window, stride, padding),
        c,
    )


def flatten_output_shape(input_shape: Sequence[int | None]) -> Shape:
    """``(N, d1, d2, ...) -> (N, d1*d2*...)``."""
    rest = input_shape[1:]
    return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))


def dense_output_shape(input_shape: Sequence[int | None], units: int) -> Shape:
    """``(N, D) -> (N, units)``."""
    if len(input_shape) != 2:
        raise ShapeError(f"dense: expected an (N, D) shape, got {tuple(input_shape)}")
    return (input_shape[0], units)


# ------------------------------------------------------------------------ layer specs


def weight_key(layer: str) -> str:
    """Tutorial naming: the output layer's weight is ``out``, others ``W_<layer>``."""
    return "out" if layer == "out" else f"W_{layer}"


def bias_key(layer: str) -> str:
    return "out" if layer == "out" else f"b_{layer}"


class Spec:
    """What every spec answers; layers without parameters keep the empty defaults."""

    name: str
    kind: ClassVar[str] = ""

    def output_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    def weights(self, shape: Shape) -> dict[str, tuple]:
        return {}

    def biases(self, shape: Shape) -> dict[str, tuple]:
        return {}

    def state(self, shape: Shape) -> dict[str, tuple]:
        return {}

    def initial(self, key: str) -> str | None:
        """The initialiser of variable ``key`` when it does not follow the model's scheme."""
        return None

    def flops(self, shape: Shape) -> int:
        """Multiply-adds x 2 of one image through this layer (0 where negligible)."""
        return 0


@dataclasses.dataclass(frozen=True)
class Conv(Spec):
    """A square convolution with bias (its activation is applied in the forward)."""

    name: str
    kernel: int
    filters: int
    stride: int = 1
    padding: str = "SAME"

    kind: ClassVar[str] = "Conv2D"

    def output_shape(self, shape):
        return conv2d_output_shape(shape, self.kernel, self.filters, self.stride, self.padding)

    def weights(self, shape):
        return {weight_key(self.name): (self.kernel, self.kernel, shape[-1], self.filters)}

    def biases(self, shape):
        return {bias_key(self.name): (self.filters,)}

    def flops(self, shape):
        _, h, w, _ = self.output_shape(shape)
        return 2 * h * w * self.kernel**2 * shape[-1] * self.filters


@dataclasses.dataclass(frozen=True)
class Pool(Spec):
    name: str
    window: int = 2
    stride: int = 2
    padding: str = "SAME"

    kind: ClassVar[str] = "MaxPool"

    def output_shape(self, shape):
        return max_pool_output_shape(shape, self.window, self.stride, self.padding)


@dataclasses.dataclass(frozen=True)
class Flatten(Spec):
    name: str = "flatten"

    kind: ClassVar[str] = "Flatten"

    def output_shape(self, shape):
        return flatten_output_shape(shape)


@dataclasses.dataclass(frozen=True)
class Dense(Spec):
    name: str
    units: int

    kind: ClassVar[str] = "Dense"

    def output_shape(self, shape):
        return dense_output_shape(shape, self.units)

    def weights(self, shape):
        return {weight_key(self.name): (shape[-1], self.units)}

    def biases(self, shape):
        return {bias_key(self.name): (self.units,)}

    def flops(self, shape):
        return 2 * shape[-1] * self.units


@dataclasses.dataclass(frozen=True)
class Dropout(Spec):
    name: str
    rate: float

    kind: ClassVar[str] = "Dropout"


@dataclasses.dataclass(frozen=True)
class BatchNorm(Spec):
    """Batch normalisation: trainable ``gamma_<name>`` (in ``weights``, starts at 1) and
    ``beta_<name>`` (in ``biases``, starts at 0); moving statistics in ``state``."""

    name: str

    kind: ClassVar[str] = "BatchNorm"

    def weights(self, shape):
        return {f"gamma_{self.name}": (shape[-1],)}

    def biases(self, shape):
        return {f"beta_{self.name}": (shape[-1],)}

    def state(self, shape):
        return {
            f"moving_mean_{self.name}": (shape[-1],),
            f"moving_variance_{self.name}": (shape[-1],),
        }

    def initial(self, key):
        """gamma and the moving variance start at one, beta and the moving mean at zero."""
        return "ones" if key.startswith(("gamma_", "moving_variance_")) else "zeros"


# ------------------------------------------------------------------ whole networks


@dataclasses.dataclass(frozen=True)
class Variables:
    """The shapes of a network's three variable dictionaries, and initialisers that do not
    follow the model's scheme (by variable name)."""

    weights: dict[str, tuple]
    biases: dict[str, tuple]
    state: dict[str, tuple]
    initial: dict[str, str]


def variable_shapes(layers: Sequence[Spec], input_shape: Shape) -> Variables:
    """Every variable's shape, walking ``layers`` from ``input_shape`` (N, H, W, C)."""
    tables: dict[str, dict[str, tuple]] = {"weights": {}, "biases": {}, "state": {}}
    initial: dict[str, str] = {}
    shape = tuple(input_shape)
    for spec in layers:
        for kind, table in tables.items():
            for key, param_shape in getattr(spec, kind)(shape).items():
                table[key] = param_shape
                if spec.initial(key):
                    initial[key] = spec.initial(key)
        shape = spec.output_shape(shape)
    return Variables(initial=initial, **tables)


def layer_shapes(layers: Sequence[Spec], input_shape: Shape) -> list[tuple[str, Shape]]:
    """``(layer name, output shape)`` for every layer, from the closed-form formulas."""
    shape = tuple(input_shape)
    if len(shape) != 4:
        raise ShapeError(f"layer_shapes: expected an (N, H, W, C) input shape, got {shape}")
    result = []
    for spec in layers:
        shape = spec.output_shape(shape)
        result.append((spec.name, shape))
    return result


def flops_per_image(layers: Sequence[Spec], image_shape: Shape) -> int:
    """FLOPs of one image's forward pass: a multiply-add is 2 (convolutions
    ``2·H'·W'·k²·C_in·C_out``, dense layers ``2·in·out``); biases, activations, pooling and
    normalisation are left out as negligible. A training step costs about three times this."""
    total, shape = 0, (1, *image_shape)
    for spec in layers:
        total += spec.flops(shape)
        shape = spec.output_shape(shape)
    return total


def _count(table: dict[str, tuple]) -> int:
    return sum(math.prod(s) for s in table.values())


def summary_rows(layers: Sequence[Spec], image_shape: Shape) -> list[tuple[str, str, int, int]]:
    """``(layer (type), output shape, trainable, non-trainable parameters)`` per layer."""
    rows, shape = [], (None, *image_shape)
    for spec in layers:
        trainable = _count(spec.weights(shape)) + _count(spec.biases(shape))
        frozen = _count(spec.state(shape))
        shape = spec.output_shape(shape)
        rows.append((f"{spec.name} ({spec.kind})", str(shape), trainable, frozen))
    return rows


def summary_text(name: str, layers: Sequence[Spec], image_shape: Shape) -> str:
    """Keras-style table of the layers, output shapes and parameter counts, with totals."""
    body = summary_rows(layers, image_shape)
    rows = [("Layer (type)", "Output shape", "Trainable", "Non-trainable")]
    rows += [(layer, shape, f"{t:,}", f"{f:,}") for layer, shape, t, f in body]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]

    def line(row):
        return "   ".join(
            f"{cell:<{w}}" if i < 2 else f"{cell:>{w}}"
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "-" * len(line(rows[0]))
    trainable = sum(r[2] for r in body)
    total = trainable + sum(r[3] for r in body)
    return "\n".join(
        [
            f'Model: "{name}"',
            rule,
            line(rows[0]),
            rule.replace("-", "="),
            *(line(r) for r in rows[1:]),
            rule.replace("-", "="),
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ]
    )
