"""``rawtf serve``: TF Serving's REST protocol (both forms, every signature), every hostile
request answered in one JSON line with TF Serving's status, and the batcher (gathering,
isolation of a bad request, overload). Answers are checked against ``rawtf.predict`` and
``rawtf.images`` on the same model."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import rawtf
from rawtf import batching, export, runs, server
from tests.conftest import tf

PREDICT = "/v1/models/rawtf:predict"
IMAGE = b'{"signature_name": "serving_image", "instances": [%s]}'


@pytest.fixture(scope="module")
def model(trained_run):
    return runs.load_run(trained_run[0]).model


@pytest.fixture(scope="module")
def loaded(model, tmp_path_factory):
    folder = export.export_saved_model(model, tmp_path_factory.mktemp("served") / "1")
    return tf.saved_model.load(str(folder))


@pytest.fixture(scope="module")
def client(loaded):
    with TestClient(server.create_app(loaded, server.Settings(max_body=200_000))) as client:
        yield client


@pytest.fixture(scope="module")
def digits(mnist):
    (_, _), (x_test, y_test) = mnist
    return x_test[:6], y_test[:6]


def png_b64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_status_and_metadata(client):
    for path in ("/v1/models/rawtf", "/v1/models/rawtf/versions/1"):
        status = {"error_code": "OK", "error_message": ""}
        expected = {"version": "1", "state": "AVAILABLE", "status": status}
        assert client.get(path).json() == {"model_version_status": [expected]}
    meta = client.get("/v1/models/rawtf/metadata").json()
    assert meta["model_spec"] == {"name": "rawtf", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "serving_uint8", "serving_image"}
    uint8 = defs["serving_uint8"]["inputs"]["images"]
    assert [int(d["size"]) for d in uint8["tensor_shape"]["dim"]] == [-1, 28, 28]
    assert defs["serving_image"]["inputs"]["images"]["dtype"] == "DT_STRING"
    assert set(defs["serving_default"]["outputs"]) == {"probabilities", "classes"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_predict_in_both_forms_and_every_signature(client, model, digits):
    x, _ = digits
    expected, classes = rawtf.predict(model, x)
    rows = client.post(PREDICT, json={"signature_name": "serving_uint8", "instances": x.tolist()})
    assert rows.status_code == 200
    predictions = rows.json()["predictions"]
    assert [p["classes"] for p in predictions] == classes.tolist()
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, atol=1e-5)
    floats = (x[..., None] / 255.0).tolist()
    columnar = client.post(PREDICT, json={"inputs": {"images": floats}}).json()["outputs"]
    assert columnar["classes"] == classes.tolist()
    np.testing.assert_allclose(columnar["probabilities"], expected, atol=1e-5)
    wrapped = [{"images": image} for image in floats[:2]]
    versioned = client.post("/v1/models/rawtf/versions/1:predict", json={"instances": wrapped})
    assert [p["classes"] for p in versioned.json()["predictions"]] == classes[:2].tolist()


def test_pictures_are_read_as_rawtf_images_reads_them(client, model, digits, tmp_path):
    x, _ = digits
    big = [255 - np.kron(image, np.ones((5, 5), np.uint8)) for image in x]  # dark on light
    for i, image in enumerate(big):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    paths = [tmp_path / f"{i}.png" for i in range(len(big))]
    expected, classes = rawtf.predict(model, rawtf.images.load_digit_images(paths))
    body = {"signature_name": "serving_image", "instances": [{"b64": png_b64(i)} for i in big]}
    predictions = client.post(PREDICT, json=body).json()["predictions"]
    assert [p["classes"] for p in predictions] == classes.tolist()
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, atol=1e-4)


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"instances": [], "inputs": []}', 400, "exactly one of"),
        (b'{"instances": []}', 400, "non-empty list"),
        (b'{"signature_name": "serving_x", "instances": [1]}', 400, "'serving_x' not found"),
        (b'{"instances": [[1, 2]]}', 400, "has shape [1, 2], expected N x 28x28x1"),
        (b'{"instances": [["a"]]}', 400, "must be numbers"),
        (b'{"instances": [[1, [2]]]}', 400, "must be numbers"),
        (b'{"inputs": {"pixels": [1]}}', 400, "the one input is 'images'"),
        (b'{"inputs": [[[1e999]]]}', 400, "malformed JSON: number is infinity"),
        (b'{"inputs": [[[NaN]]]}', 400, "malformed JSON"),
        (b'{"inputs": %s}' % str(np.full((1, 28, 28, 1), 1e39).tolist()).encode(), 400, "float32"),
        (b'{"signature_name": "serving_uint8", "inputs": [[300]]}', 400, "expected N x 28x28"),
        (IMAGE % b'"abc"', 400, 'expected {"b64": "<base64 bytes>"}'),
        (IMAGE % b'{"b64": "!!"}', 400, "not valid base64"),
        (IMAGE % b'{"b64": "bm90IGEgcGljdHVyZQ=="}', 400, "Unknown image file format"),
        (b"x" * 300_000, 413, "over the 200000-byte limit"),
    ],
)
def test_hostile_requests_get_one_json_line(client, body, status, message):
    response = client.post(PREDICT, content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error, error
    assert client.get("/healthz").status_code == 200  # and the server lives on


def test_uint8_values_are_checked(client, digits):
    x, _ = digits
    bad = x[:1].astype(int)
    bad[0, 0, 0] = 256
    body = {"signature_name": "serving_uint8", "instances": bad.tolist()}
    response = client.post(PREDICT, json=body)
    assert response.status_code == 400 and "integers 0-255" in response.json()["error"]


def test_a_picture_over_the_budget(client, tmp_path):
    from tests.test_images import png_header_only

    png_header_only(tmp_path / "bomb.png", 30000, 30000)
    payload = base64.b64encode((tmp_path / "bomb.png").read_bytes()).decode()
    body = {"signature_name": "serving_image", "instances": [{"b64": payload}]}
    response = client.post(PREDICT, json=body)
    assert response.status_code == 400
    assert "over the 50,000,000-pixel budget" in response.json()["error"]


def test_unknown_model_or_version_is_404(client, digits):
    x, _ = digits
    body = {"instances": (x[:1, ..., None] / 255).tolist()}
    assert client.post("/v1/models/other:predict", json=body).status_code == 404
    response = client.post("/v1/models/rawtf/versions/7:predict", json=body)
    assert response.status_code == 404 and "Specific(rawtf, 7)" in response.json()["error"]
    assert client.get("/v1/models/other/metadata").status_code == 404


def test_timeout_and_metrics(loaded, digits):
    x, _ = digits
    settings = server.Settings(timeout=1e-6)
    with TestClient(server.create_app(loaded, settings)) as slow:
        body = {"signature_name": "serving_uint8", "instances": x[:1].tolist()}
        response = slow.post(PREDICT, json=body)
        assert response.status_code == 504 and "no answer within" in response.json()["error"]
        metrics = slow.get("/metrics").text
    assert 'rawtf_requests_total{code="504",signature="serving_uint8"} 1.0' in metrics
    assert "rawtf_batch_size_bucket" in metrics and "rawtf_request_seconds_bucket" in metrics


# ------------------------------------------------------------------------------ batcher


def _fake_run(calls):
    def run(images):
        calls.append(len(images))
        time.sleep(0.01)
        if (images == 255).any():
            raise ValueError("bad example")
        probabilities = np.repeat(images.reshape(len(images), -1)[:, :1], 10, axis=1) / 100.0
        return probabilities.astype(np.float32), images.reshape(len(images), -1)[:, 0]

    return run


async def _requests(batcher, values):
    batcher.start()
    try:
        return await asyncio.gather(
            *(batcher.predict(np.full((1, 2), v, np.uint8)) for v in values),
            return_exceptions=True,
        )
    finally:
        await batcher.stop()


def test_concurrent_requests_share_forward_calls():
    calls = []
    results = asyncio.run(_requests(batching.Batcher(_fake_run(calls), max_wait=0.05), range(40)))
    assert [int(classes[0]) for _, classes in results] == list(range(40))  # each its own rows
    assert sum(calls) == 40 and len(calls) <= 3, calls
    calls.clear()
    unbatched = batching.Batcher(_fake_run(calls), enabled=False)
    asyncio.run(_requests(unbatched, range(10)))
    assert calls == [1] * 10


def test_a_bad_request_fails_alone():
    calls = []
    results = asyncio.run(
        _requests(batching.Batcher(_fake_run(calls), max_wait=0.05), [1, 2, 255, 3])
    )
    assert isinstance(results[2], ValueError)
    assert [int(r[1][0]) for i, r in enumerate(results) if i != 2] == [1, 2, 3]


def test_a_full_queue_is_refused_at_once():
    calls = []
    results = asyncio.run(
        _requests(batching.Batcher(_fake_run(calls), max_queue=2, max_wait=0.05), range(6))
    )
    refused = [r for r in results if isinstance(r, batching.Overloaded)]
    answered = [r for r in results if isinstance(r, tuple)]
    assert refused and answered and len(refused) + len(answered) == 6


def test_serve_says_how_to_install_its_extra(capsys, monkeypatch, trained_run):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    code = rawtf.cli.main(["serve", str(trained_run[0])])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "rawtf: error: rawtf serve needs the serve extra (uvicorn is missing): "
        "pip install 'rawtf[serve]'\n"
    )
