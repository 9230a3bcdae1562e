"""Dynamic batching for a server: concurrent requests are gathered into one forward call.

Requests wait in a bounded queue; a worker takes what has arrived, waits up to
``max_wait`` seconds for more (never beyond ``max_batch`` examples), runs ``run`` on the
concatenation in a thread of its own (so the event loop keeps accepting), and hands each
request its rows. A full queue refuses at once (:class:`Overloaded`); a call that fails
for the whole batch is retried request by request, so that one bad request cannot fail
the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class Overloaded(Exception):
    """The queue is full: the server should answer 503 with ``Retry-After``."""


@dataclasses.dataclass
class _Item:
    images: np.ndarray
    future: asyncio.Future
    queued: float


class Batcher:
    """Gathers requests for ``run(images) -> (probabilities, classes)``.

    ``max_batch`` bounds the examples per call, ``max_wait`` the seconds a request waits
    for company, ``max_queue`` the requests waiting; ``enabled=False`` runs each request
    alone (for comparison). ``on_batch(size)`` is told each call's example count."""

    def __init__(
        self,
        run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        max_batch: int = 256,
        max_wait: float = 0.002,
        max_queue: int = 1024,
        enabled: bool = True,
        on_batch: Callable[[int], Any] = lambda size: None,
    ):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.enabled, self.on_batch = enabled, on_batch
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue)
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict")
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``images``' probabilities and classes, computed in some batch."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(_Item(images, future, time.perf_counter()))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.queue.maxsize} requests are waiting") from None
        return await future

    async def _gather(self) -> list[_Item]:
        """The first waiting request and those arriving within ``max_wait`` of it."""
        items = [await self.queue.get()]
        size, deadline = len(items[0].images), time.perf_counter() + self.max_wait
        while self.enabled and size < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if size + len(item.images) > self.max_batch:
                await self._put_back(item)
                break
            items.append(item)
            size += len(item.images)
        return items

    async def _put_back(self, item: _Item) -> None:
        """Run ``item`` first in the next batch (it did not fit in this one)."""
        rest = [item]
        while not self.queue.empty():
            rest.append(self.queue.get_nowait())
        for waiting in rest:
            self.queue.put_nowait(waiting)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [i for i in await self._gather() if not i.future.done()]
            if not items:
                continue
            batch = np.concatenate([i.images for i in items])
            self.on_batch(len(batch))
            try:
                probabilities, classes = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as error:  # noqa: BLE001  (answered per request below)
                await self._one_by_one(items, error)
                continue
            start = 0
            for item in items:
                end = start + len(item.images)
                if not item.future.done():
                    item.future.set_result((probabilities[start:end], classes[start:end]))
                start = end

    async def _one_by_one(self, items: list[_Item], error: Exception) -> None:
        """After a failed batch, each request alone: only the bad ones fail."""
        if len(items) == 1:
            if not items[0].future.done():
                items[0].future.set_exception(error)
            return
        loop = asyncio.get_running_loop()
        for item in items:
            try:
                result = await loop.run_in_executor(self.executor, self.run, item.images)
            except Exception as own:  # noqa: BLE001
                if not item.future.done():
                    item.future.set_exception(own)
                continue
            if not item.future.done():
                item.future.set_result(result)
