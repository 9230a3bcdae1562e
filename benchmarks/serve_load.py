"""Load on ``rawtf serve``: requests per second, digits per second and latency (p50, p99)
for 1, 16 and 64 concurrent clients, with batching on and off, next to in-process
``rawtf.predict`` (the ceiling) measured in the same run; then a 10x overload.

    python benchmarks/serve_load.py [--seconds 5] [--run RUN_DIR]

The server runs in its own process on localhost; the client is a small asyncio HTTP/1.1
client with one keep-alive connection per simulated client (lighter than a general HTTP
library, so that it is not the bottleneck on the same cores). Payloads: one uint8 digit
(``serving_uint8``), one PNG (``serving_image``), one float digit in JSON
(``serving_default``), and 100 uint8 digits per request. Without ``--run`` a small model
(small_bn, one epoch on 12,000 images) is trained first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port, request, deadline, latencies, statuses):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses.append(int(status_line.split()[1]))
    except (ConnectionError, asyncio.IncompleteReadError):
        statuses.append(-1)  # a lost answer
    finally:
        writer.close()


async def _load(port, request, clients, seconds):
    latencies, statuses = [], []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(_client(port, request, deadline, latencies, statuses) for _ in range(clients))
    )
    return latencies, statuses


def _payloads(x):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - np.kron(x[0], np.ones((4, 4), np.uint8))).save(buffer, "PNG")
    picture = base64.b64encode(buffer.getvalue()).decode()
    return {
        "uint8, 1 digit": ({"signature_name": "serving_uint8", "instances": x[:1].tolist()}, 1),
        "PNG, 1 digit": (
            {"signature_name": "serving_image", "instances": [{"b64": picture}]},
            1,
        ),
        "float JSON, 1 digit": ({"instances": (x[:1, ..., None] / 255).round(4).tolist()}, 1),
        "uint8, 100 digits": (
            {"signature_name": "serving_uint8", "instances": x[:100].tolist()},
            100,
        ),
    }


def _serve(run: Path, batching: bool, port: int, queue: int = 1024) -> subprocess.Popen:
    argv = [sys.executable, "-m", "rawtf.cli", "serve", str(run), "--port", str(port)]
    argv += ["--no-batching"] if not batching else []
    argv += ["--max-queue", str(queue)]
    argv += ["--max-body-mb", "16"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(process.stderr.read().decode()[-2000:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _row(name, clients, digits, seconds, latencies, statuses):
    ok = sum(s == 200 for s in statuses)
    p50, p99 = (np.percentile(latencies, [50, 99]) * 1000) if latencies else (0, 0)
    return (
        f"| {name} | {clients} | {ok / seconds:,.0f} | {ok * digits / seconds:,.0f} | "
        f"{p50:.1f} | {p99:.1f} | {len(statuses) - ok} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--run", help="a trained run folder (default: train small_bn first)")
    args = parser.parse_args()

    import rawtf

    (_, _), (x, _) = rawtf.load_mnist()
    folder = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run = Path(args.run) if args.run else folder / "run"
    if not args.run:
        settings = rawtf.config.TrainConfig(model="small_bn", epochs=1, train_limit=12000)
        rawtf.train_run(settings, out=run, verbose=0, print_fn=lambda line: None)
    model = rawtf.runs.load_run(run).model
    rawtf.predict(model, x[:1000])
    start = time.perf_counter()
    rawtf.predict(model, x)
    ceiling = len(x) / (time.perf_counter() - start)
    print(f"in-process rawtf.predict: {ceiling:,.0f} digits/s (10,000 digits, batch 1000)")
    print("| payload | clients | req/s | digits/s | p50 ms | p99 ms | not 200 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for batching in (True, False):
        port = _free_port()
        server = _serve(run, batching, port)
        try:
            for name, (body, digits) in _payloads(x).items():
                request = _request("/v1/models/rawtf:predict", json.dumps(body).encode())
                for clients in (1, 16, 64):
                    latencies, statuses = asyncio.run(_load(port, request, clients, args.seconds))
                    label = f"{name}, batching {'on' if batching else 'off'}"
                    print(_row(label, clients, digits, args.seconds, latencies, statuses))
        finally:
            server.terminate()
            server.wait(timeout=30)
    port = _free_port()
    server = _serve(run, True, port, queue=64)
    try:
        _overload(port, x, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _overload(port, x, seconds) -> None:
    """640 clients (10x the largest load above) on one uint8 digit each, against a server
    that lets 64 requests wait."""
    body = {"signature_name": "serving_uint8", "instances": x[:1].tolist()}
    request = _request("/v1/models/rawtf:predict", json.dumps(body).encode())
    latencies, statuses = asyncio.run(_load(port, request, 640, seconds))
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    print(f"overload, 640 clients: answers by status {counts} (-1: lost); p99 "
          f"{np.percentile(latencies, 99) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
