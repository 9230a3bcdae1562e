"""The built-in networks, one per seed tutorial plus a small fast one. Each one's layers
are declared as specs in :mod:`rawtf.architectures` (which fix its variables, shapes and
summary, without TensorFlow); here each writes its forward pass one line per layer, with
the tutorial's variable names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rawtf import architectures
from rawtf import layers as L
from rawtf.models import Model, register_model


@register_model("tutorial")
class Tutorial(Model):
    """The low-level TensorFlow tutorial's network (3,274,634 parameters): two 5x5 SAME
    convolutions (32, 64 filters) each followed by 2x2 max pooling, a 1024-unit dense
    layer, dropout (rate 0.2, i.e. keep 0.8) and 10 logits."""

    defaults: ClassVar[dict[str, Any]] = architectures.DEFAULTS["tutorial"]

    def layers(self):
        return architectures.tutorial(self.settings, self.num_classes)

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


@register_model("kaggle")
class Kaggle(Model):
    """The Kaggle digit-recognizer tutorial's network (861,898 parameters): a 5x5 and two
    3x3 SAME convolutions (32, 64, 64), two 2x2 poolings with dropout 0.25 after each, a
    256-unit dense layer, dropout 0.5, 10 logits.

    The tutorial ends in a sigmoid trained with categorical cross-entropy, which is a bug
    (sigmoids do not make the ten outputs a distribution); rawtf returns logits and trains
    them with softmax cross-entropy, like every model here."""

    defaults: ClassVar[dict[str, Any]] = architectures.DEFAULTS["kaggle"]
    default_lr: ClassVar[float] = 1e-2

    def layers(self):
        return architectures.kaggle(self.settings, self.num_classes)

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
        return architectures.three_conv(self.settings, self.num_classes)

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
    selects TensorFlow's fused kernel in training. Settings ``width`` (the first block's
    filters; the second has twice as many) and ``fc`` (the dense layer's units) widen it."""

    defaults: ClassVar[dict[str, Any]] = architectures.DEFAULTS["deep_bn"]
    default_lr: ClassVar[float] = 1e-2
    default_batch_size: ClassVar[int] = 64  # the notebook's own

    def layers(self):
        return architectures.deep_bn(self.settings, self.num_classes)

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
    """A small, fast network for time-to-accuracy runs (156,746 parameters, 156,266
    trainable, by default): ``blocks`` blocks of SAME convolution, 2x2 pooling, batch norm
    and ReLU (the last with 4·``width`` filters, each earlier one half as many: by default
    16, 32, 64 at 28 -> 14 -> 7 -> 4), a ``fc``-unit dense layer with batch norm and ReLU,
    and 10 logits. Convolutions are 3x3, except that with ``stem_stride`` 2 the first one is
    5x5 at stride 2 (the ``fast`` recipe's two blocks: 32 filters at 28 -> 14 -> 7, then 64
    at 7 -> 4; 152,714 parameters, 2.4 forward MFLOPs an image against 4.1). Pooling comes before
    normalisation (max-pooling commutes with the ReLU; normalising a quarter of the pixels
    is cheaper). No dropout: it is meant for runs of an epoch or two. Batch norm uses the
    fused kernel and momentum 0.9, so that the moving statistics settle within a few
    hundred steps."""

    defaults: ClassVar[dict[str, Any]] = architectures.DEFAULTS["small_bn"]
    default_lr: ClassVar[float] = 2e-2
    default_batch_size: ClassVar[int] = 256

    def layers(self):
        return architectures.small_bn(self.settings, self.num_classes)

    def forward(self, x, training, dropout, seed):
        W, b = self.weights, self.biases
        blocks = self.settings["blocks"]
        for i in range(1, blocks + 1):
            stride = self.settings["stem_stride"] if i == 1 else 1
            x = L.conv2d(x, W[f"W_conv{i}"], b[f"b_conv{i}"], stride, "SAME")
            x = L.max_pool(x, window=2, stride=2, padding="SAME")
            x = L.relu(self.batch_norm(x, f"bn{i}", training))
        x = L.dense(L.flatten(x), W["W_fc"], b["b_fc"])
        x = L.relu(self.batch_norm(x, f"bn{blocks + 1}", training))
        return L.dense(x, W["out"], b["out"])
