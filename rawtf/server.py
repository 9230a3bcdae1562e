"""``rawtf serve``: a trained model behind TF Serving's REST API, with dynamic batching,
health and Prometheus metrics, on Starlette and uvicorn (the ``serve`` extra).

What is served is the SavedModel (a run folder is exported on the fly), so the answers are
exactly what TF Serving would give. Paths (``NAME`` defaults to ``rawtf``; each also with
``/versions/1``): ``GET /v1/models/NAME`` (status), ``GET /v1/models/NAME/metadata``,
``POST /v1/models/NAME:predict``; ``GET /healthz``, ``GET /metrics``. Every error is JSON
``{"error": "<one line>"}`` with TF Serving's status: 400 for a bad request or signature,
404 for another model or version, 413 for a body over the limit, 503 (with
``Retry-After``) when the queue is full, 504 when a request waits too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np

from rawtf import rest
from rawtf._io import first_line
from rawtf.batching import Batcher, Overloaded
from rawtf.errors import CheckpointError, ConfigError

try:
    import prometheus_client as prom
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError:  # pragma: no cover - reported by require_extra()
    Starlette = None

VERSION = "1"
#: The draw-a-digit page: self-contained HTML, CSS and JavaScript.
PAGE = Path(__file__).parent / "static" / "index.html"


def require_extra() -> None:
    """A :class:`ConfigError` saying how to install the ``serve`` extra, if missing."""
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"rawtf serve needs the serve extra ({e.name} is missing): pip install 'rawtf[serve]'"
        ) from None


@dataclasses.dataclass
class Settings:
    """How the server batches and what it accepts."""

    model_name: str = "rawtf"
    max_batch: int = 256
    batch_wait: float = 0.002
    batching: bool = True
    max_queue: int = 1024
    max_body: int = 4 << 20
    timeout: float = 10.0


def load_servable(path: str | Path, folder: Path):
    """The SavedModel at ``path``, or the model of the run folder ``path`` exported into
    ``folder`` first; loaded with ``tf.saved_model.load``."""
    from rawtf import export, runs
    from rawtf._tf import import_tensorflow

    tf = import_tensorflow()
    path = Path(path)
    if not export.is_saved_model(path):
        if not (path / runs.CONFIG).is_file():
            raise CheckpointError(f"{path}: neither a SavedModel nor a rawtf run folder")
        path = export.export_saved_model(runs.load_run(path).model, folder / "exported")
    try:
        return tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"{path}: cannot load the SavedModel ({e})") from None


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "rawtf_requests", "Predict requests answered", ["signature", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.batch = prom.Histogram(
            "rawtf_batch_size", "Examples per forward call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry,
        )  # fmt: skip
        self.latency = prom.Histogram(
            "rawtf_request_seconds", "Seconds from a request's arrival to its answer",
            ["signature"], registry=self.registry,
        )  # fmt: skip


class Model:
    """The loaded SavedModel's signatures, each with its batcher."""

    def __init__(self, loaded, settings: Settings, metrics: Metrics):
        self.loaded, self.settings = loaded, settings
        self.functions = {name: loaded.signatures[name] for name in loaded.signatures}
        self.specs = {name: _spec(fn) for name, fn in self.functions.items()}
        self.batchers = {
            name: _batcher(fn, settings, metrics) for name, fn in self.functions.items()
        }
        self.available = False

    async def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()
        for name, spec in self.specs.items():  # warm-up: trace and allocate before serving
            await self.batchers[name].predict(_example(spec))
        self.available = True

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()


def _spec(function) -> rest.Spec:
    _, inputs = function.structured_input_signature
    spec = inputs[rest.INPUT]
    return rest.Spec(spec.dtype.name, tuple(spec.shape.as_list()[1:]))


def _example(spec: rest.Spec) -> np.ndarray:
    """One example for warming a signature up: zeros, or a PNG of a white square."""
    if spec.dtype == "string":
        from rawtf._tf import import_tensorflow

        square = np.zeros((28, 28, 1), np.uint8)
        square[8:20, 8:20] = 255
        return np.array([import_tensorflow().io.encode_png(square).numpy()], dtype=object)
    return np.zeros((1, *spec.example_shape), np.dtype(spec.dtype))


def _seen(picture: bytes):
    """The 28x28 picture the model sees for ``picture``'s bytes, and whether it has ink."""
    from rawtf import picture_ops

    return [t.numpy() for t in picture_ops.placed_bytes(picture)]


def _batcher(function, settings: Settings, metrics: Metrics):
    from rawtf._tf import import_tensorflow

    tf = import_tensorflow()

    def run(images: np.ndarray):
        dtype = tf.string if images.dtype == object else tf.as_dtype(images.dtype)
        out = function(images=tf.constant(images, dtype))
        return out["probabilities"].numpy(), out["classes"].numpy()

    return Batcher(
        run,
        max_batch=settings.max_batch,
        max_wait=settings.batch_wait,
        max_queue=settings.max_queue,
        enabled=settings.batching,
        on_batch=metrics.batch.observe,
    )


# ------------------------------------------------------------------------------ the app


def _json(payload: bytes, status: int = 200, **headers: str) -> Response:
    return Response(payload, status, headers=headers, media_type="application/json")


def _error(message: str, status: int, **headers: str) -> Response:
    return _json(rest.error_body(message), status, **headers)


def _check_model(request: Request, settings: Settings) -> Response | None:
    """A 404 answer unless the path names this model (and version 1 when it names one)."""
    name = request.path_params["name"]
    version = request.path_params.get("version", VERSION)
    if name != settings.model_name:
        return _error(f"Servable not found for request: Latest({name})", 404)
    if version != VERSION:
        return _error(f"Servable not found for request: Specific({name}, {version})", 404)
    return None


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise rest.RequestError(f"request body over the {limit}-byte limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise rest.RequestError(f"request body over the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(loaded, settings: Settings | None = None) -> Starlette:
    """The ASGI app serving the SavedModel object ``loaded``."""
    settings = settings or Settings()
    metrics = Metrics()
    model = Model(loaded, settings, metrics)

    async def status(request: Request) -> Response:
        if (refusal := _check_model(request, settings)) is not None:
            return refusal
        state = "AVAILABLE" if model.available else "LOADING"
        entry = {"version": VERSION, "state": state,
                 "status": {"error_code": "OK", "error_message": ""}}  # fmt: skip
        return _json(rest.orjson.dumps({"model_version_status": [entry]}))

    async def metadata(request: Request) -> Response:
        if (refusal := _check_model(request, settings)) is not None:
            return refusal
        defs = {name: rest.signature_def(fn) for name, fn in model.functions.items()}
        spec = {"name": settings.model_name, "signature_name": "", "version": VERSION}
        body = {"model_spec": spec, "metadata": {"signature_def": {"signature_def": defs}}}
        return _json(rest.orjson.dumps(body))

    async def predict(request: Request) -> Response:
        if (refusal := _check_model(request, settings)) is not None:
            return refusal
        return await _predict(request, model, settings, metrics)

    async def page(request: Request) -> Response:
        html = PAGE.read_text(encoding="utf-8").replace("{{MODEL}}", settings.model_name)
        return Response(html, media_type="text/html; charset=utf-8")

    async def seen(request: Request) -> Response:
        try:
            body = rest.parse_picture(await _body(request, settings.max_body))
            field, has_ink = await asyncio.get_running_loop().run_in_executor(None, _seen, body)
        except rest.RequestError as e:
            return _error(str(e), e.status)
        except Exception as e:  # noqa: BLE001  (an undecodable picture)
            return _error(first_line(e), 400)
        return _json(rest.orjson.dumps({"seen": field.tolist(), "ink": bool(has_ink)}))

    async def healthz(request: Request) -> Response:
        ready = model.available
        return _json(
            rest.orjson.dumps({"status": "ok" if ready else "loading"}), 200 if ready else 503
        )

    async def prometheus(request: Request) -> Response:
        return Response(prom.generate_latest(metrics.registry), media_type=prom.CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await model.start()
        yield
        await model.stop()

    base = "/v1/models/{name}"
    versioned = base + "/versions/{version}"
    routes = [
        Route("/", page),
        Route("/page/seen", seen, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", prometheus),
        *(Route(path + ":predict", predict, methods=["POST"]) for path in (base, versioned)),
        *(Route(path + "/metadata", metadata) for path in (base, versioned)),
        *(Route(path, status) for path in (base, versioned)),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _predict(request: Request, model: Model, settings: Settings, metrics: Metrics):
    started, signature, code = time.perf_counter(), "unknown", 200
    try:
        parsed = rest.parse_predict(await _body(request, settings.max_body), model.specs)
        signature = parsed.signature
        probabilities, classes = await asyncio.wait_for(
            model.batchers[signature].predict(parsed.images), settings.timeout
        )
        return _json(rest.answer(parsed, probabilities, classes))
    except rest.RequestError as e:
        code = e.status
        return _error(str(e), e.status)
    except Overloaded as e:
        code = 503
        return _error(f"server overloaded: {e}; retry shortly", 503, **{"Retry-After": "1"})
    except asyncio.TimeoutError:
        code = 504
        return _error(f"no answer within {settings.timeout:g} s", 504)
    except Exception as e:  # noqa: BLE001  (the model refused the input; the server lives on)
        code = 400
        return _error(first_line(e), 400)
    finally:
        metrics.requests.labels(signature, str(code)).inc()
        metrics.latency.labels(signature).observe(time.perf_counter() - started)


def run(loaded, settings: Settings, host: str = "127.0.0.1", port: int = 8501) -> None:
    """Serve ``loaded`` with uvicorn (httptools) until interrupted."""
    import uvicorn

    print(f"serving {settings.model_name} at http://{host}:{port}/v1/models/{settings.model_name}")
    uvicorn.run(
        create_app(loaded, settings),
        host=host,
        port=port,
        http="httptools",
        log_level="warning",
        access_log=False,
    )
