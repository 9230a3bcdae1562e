"""Keras twins of rawtf's models, written by hand from the seed tutorials' descriptions, used
only as references in tests and benchmarks. Each ends in a linear Dense (logits); layer
names match rawtf's so weights can be copied across."""

from __future__ import annotations


def keras_twin(name: str, dropout: bool = True):
    """The Keras model for rawtf architecture ``name``; ``dropout=False`` sets every dropout
    rate to 0 (for comparing training-mode passes without random masks)."""
    import keras
    from keras import layers

    def drop(rate, name):
        return layers.Dropout(rate if dropout else 0.0, name=name)

    def conv(name, filters, kernel, strides=1, padding="valid"):
        return layers.Conv2D(filters, kernel, strides, padding, activation="relu", name=name)

    def dense(name, units, activation="relu"):
        return layers.Dense(units, activation=activation, name=name)

    def bn(name, momentum=0.99):
        return layers.BatchNormalization(momentum=momentum, epsilon=1e-3, name=name)

    if name == "tutorial":
        stack = [
            conv("conv1", 32, 5, padding="same"),
            layers.MaxPool2D(2, padding="same", name="pool1"),
            conv("conv2", 64, 5, padding="same"),
            layers.MaxPool2D(2, padding="same", name="pool2"),
            layers.Flatten(name="flatten"),
            dense("fc", 1024),
            drop(0.2, "dropout"),
            dense("out", 10, None),
        ]
    elif name == "kaggle":
        stack = [
            conv("conv1", 32, 5, padding="same"),
            layers.MaxPool2D(2, name="pool1"),
            drop(0.25, "dropout1"),
            conv("conv2", 64, 3, padding="same"),
            conv("conv3", 64, 3, padding="same"),
            layers.MaxPool2D(2, strides=2, name="pool2"),
            drop(0.25, "dropout2"),
            layers.Flatten(name="flatten"),
            dense("fc", 256),
            drop(0.5, "dropout3"),
            dense("out", 10, None),
        ]
    elif name == "three_conv":
        stack = [
            conv("conv1", 64, 3),
            layers.MaxPool2D(2, name="pool1"),
            conv("conv2", 64, 3),
            layers.MaxPool2D(2, name="pool2"),
            conv("conv3", 64, 3),
            layers.MaxPool2D(2, name="pool3"),
            layers.Flatten(name="flatten"),
            dense("fc1", 64),
            dense("fc2", 32),
            dense("out", 10, None),
        ]
    elif name in ("deep_bn", "deep_bn/wide"):
        # deep_bn/wide: 48 and 96 filters, 256 dense units.
        a, b, units = (48, 96, 256) if name == "deep_bn/wide" else (32, 64, 128)
        stack = [
            conv("conv1", a, 3),
            bn("bn1"),
            conv("conv2", a, 3),
            bn("bn2"),
            conv("conv3", a, 5, strides=2, padding="same"),
            bn("bn3"),
            drop(0.4, "dropout1"),
            conv("conv4", b, 3),
            bn("bn4"),
            conv("conv5", b, 3),
            bn("bn5"),
            conv("conv6", b, 5, strides=2, padding="same"),
            bn("bn6"),
            drop(0.4, "dropout2"),
            layers.Flatten(name="flatten"),
            dense("fc", units),
            bn("bn7"),
            drop(0.4, "dropout3"),
            dense("out", 10, None),
        ]
    elif name in ("small_bn", "small_bn/fast"):
        # small_bn/fast: the fast recipe's two blocks, the first a 5x5 stride-2 convolution.
        width, blocks = (8, 2) if name == "small_bn/fast" else (16, 3)
        stack = []
        for i in range(1, blocks + 1):
            filters = 4 * width // 2 ** (blocks - i)
            stem = i == 1 and name == "small_bn/fast"
            stack += [
                layers.Conv2D(filters, 5 if stem else 3, 2 if stem else 1, "same", name=f"conv{i}"),
                layers.MaxPool2D(2, padding="same", name=f"pool{i}"),
                bn(f"bn{i}", momentum=0.9),
                layers.ReLU(name=f"relu{i}"),
            ]
        stack += [
            layers.Flatten(name="flatten"),
            layers.Dense(128, name="fc"),
            bn(f"bn{blocks + 1}", momentum=0.9),
            layers.ReLU(name=f"relu{blocks + 1}"),
            dense("out", 10, None),
        ]
    else:
        raise KeyError(name)
    twin_name = name.replace("/", "_")
    return keras.Sequential([keras.Input((28, 28, 1)), *stack], name=f"{twin_name}_twin")


def counterparts(model, layer) -> list:
    """rawtf ``model``'s variables for the Keras ``layer``, in the order of
    ``layer.weights`` (matched by name; empty for layers without weights)."""
    W, b, state = model.weights, model.biases, model.state
    name = layer.name
    if name.startswith("bn"):
        return [
            W[f"gamma_{name}"],
            b[f"beta_{name}"],
            state[f"moving_mean_{name}"],
            state[f"moving_variance_{name}"],
        ]
    if not layer.weights:
        return []
    key_w, key_b = ("out", "out") if name == "out" else (f"W_{name}", f"b_{name}")
    return [W[key_w], b[key_b]]


def copy_weights(model, twin) -> None:
    """Copy rawtf ``model``'s variables into the Keras ``twin``, layer by layer by name."""
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights([v.numpy() for v in counterparts(model, layer)])
