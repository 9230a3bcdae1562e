"""TF Serving's REST protocol for rawtf's SavedModels, without a server: reading a predict
request's JSON into arrays (row form ``instances`` and columnar form ``inputs``, ``{"b64":
...}`` for bytes), writing the answer as TF Serving does, and describing signatures for
``/metadata``. Every malformed request is a :class:`RequestError` with a one-line message
and the HTTP status TF Serving would give.

Each rawtf signature has one input, ``images``: ``serving_default`` float32
``[N, 28, 28, 1]`` in [0, 1], ``serving_uint8`` uint8 ``[N, 28, 28]``, ``serving_image``
encoded pictures ``[N]``; each answers ``probabilities`` ``[N, 10]`` and ``classes`` ``[N]``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

import numpy as np
import orjson

INPUT = "images"
SIGNATURES = ("serving_default", "serving_uint8", "serving_image")
#: TF Serving's enum names of the dtypes rawtf's signatures use.
DTYPE_NAMES = {
    "float32": "DT_FLOAT",
    "uint8": "DT_UINT8",
    "string": "DT_STRING",
    "int64": "DT_INT64",
}


class RequestError(Exception):
    """A request rawtf cannot answer: ``status`` is the HTTP status, the message one line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Spec:
    """A signature's input: its dtype (``float32``, ``uint8`` or ``string``) and the shape
    of one example (``()`` for a picture's bytes)."""

    dtype: str
    example_shape: tuple[int, ...]


@dataclasses.dataclass
class Request:
    """A parsed predict request: the signature, its examples as one array, and whether the
    answer goes in row (``predictions``) or columnar (``outputs``) form."""

    signature: str
    images: np.ndarray
    rows: bool


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(f"malformed JSON: {e}") from None


def parse_predict(body: bytes, specs: dict[str, Spec]) -> Request:
    """The predict request in ``body`` (TF Serving's JSON) against ``specs`` by signature."""
    payload = _json(body)
    if not isinstance(payload, dict):
        raise RequestError("the request must be a JSON object")
    name = payload.get("signature_name") or "serving_default"
    if name not in specs:
        known = ", ".join(specs)
        raise RequestError(f"Serving signature name: '{name}' not found in signature def ({known})")
    if ("instances" in payload) == ("inputs" in payload):
        raise RequestError("give exactly one of 'instances' (row form) or 'inputs' (columnar)")
    rows = "instances" in payload
    values = payload["instances"] if rows else payload["inputs"]
    values = _unwrap(values, rows)
    return Request(name, to_array(values, specs[name]), rows)


def _unwrap(values: Any, rows: bool) -> Any:
    """The input's values, accepting ``{"images": ...}`` wrappers as TF Serving does."""
    if rows:
        if not isinstance(values, list) or not values:
            raise RequestError("'instances' must be a non-empty list")
        if all(isinstance(v, dict) and set(v) == {INPUT} for v in values):
            return [v[INPUT] for v in values]
        return values
    if isinstance(values, dict) and set(values) == {INPUT}:
        return values[INPUT]
    if isinstance(values, dict) and "b64" not in values:
        raise RequestError(f"'inputs' names {sorted(values)}; the one input is '{INPUT}'")
    return values


def to_array(values: Any, spec: Spec) -> np.ndarray:
    """``values`` (nested lists, or b64 objects for pictures) as the array ``spec`` asks."""
    if spec.dtype == "string":
        items = values if isinstance(values, list) else [values]
        if not items:
            raise RequestError("no pictures given")
        return np.array([_bytes(item, i) for i, item in enumerate(items)], dtype=object)
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(f"'{INPUT}' must be numbers in nested lists of equal length") from None
    if array.ndim == len(spec.example_shape):  # a single example in columnar form
        array = array[None]
    if array.shape[1:] != spec.example_shape or len(array) == 0:
        want = "x".join(map(str, spec.example_shape))
        raise RequestError(f"'{INPUT}' has shape {list(array.shape)}, expected N x {want}")
    if spec.dtype == "uint8":
        if (array != np.round(array)).any() or array.min() < 0 or array.max() > 255:
            raise RequestError(f"'{INPUT}' of serving_uint8 must be integers 0-255")
        return array.astype(np.uint8)
    with np.errstate(over="ignore"):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():  # JSON has no NaN; a huge number overflows float32
        raise RequestError(f"'{INPUT}' holds a number beyond float32's range")
    return array


def _bytes(item: Any, index: int) -> bytes:
    if not (isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str)):
        raise RequestError(f'picture {index}: expected {{"b64": "<base64 bytes>"}}')
    try:
        return base64.b64decode(item["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"picture {index}: not valid base64") from None


def parse_picture(body: bytes) -> bytes:
    """The picture in a ``{"b64": "..."}`` request body."""
    return _bytes(_json(body), 0)


def answer(request: Request, probabilities: np.ndarray, classes: np.ndarray) -> bytes:
    """TF Serving's JSON answer, in the form the request was made in."""
    if request.rows:
        rows = [
            {"probabilities": p, "classes": int(c)}
            for p, c in zip(probabilities.tolist(), classes.tolist(), strict=True)
        ]
        return orjson.dumps({"predictions": rows})
    return orjson.dumps(
        {"outputs": {"probabilities": probabilities.tolist(), "classes": classes.tolist()}}
    )


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def signature_def(function) -> dict[str, Any]:
    """A loaded signature (a concrete function) as TF Serving's metadata describes it."""

    def tensor(spec, name: str) -> dict[str, Any]:
        dims = [-1 if d is None else d for d in spec.shape.as_list()]
        return {
            "dtype": DTYPE_NAMES.get(spec.dtype.name, spec.dtype.name),
            "tensor_shape": {
                "dim": [{"size": str(d), "name": ""} for d in dims],
                "unknown_rank": False,
            },
            "name": name,
        }

    _, inputs = function.structured_input_signature
    outputs = function.structured_outputs
    return {
        "inputs": {key: tensor(spec, f"{key}:0") for key, spec in inputs.items()},
        "outputs": {key: tensor(value, value.name) for key, value in outputs.items()},
        "method_name": "tensorflow/serving/predict",
    }
