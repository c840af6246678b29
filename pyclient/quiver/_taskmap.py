"""Client.map and Client.wait: many tasks over a Dispatcher (quiver.tasks), in a window."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import queue
from typing import Callable, Iterable, Iterator

from .tasks import Dispatcher

__all__ = ["map_tasks", "wait", "MAP_WINDOW"]

MAP_WINDOW = 20_000    # map(): submitted but not yet yielded, at most


def map_tasks(dispatcher: Dispatcher, fn: Callable, items: Iterable, more: tuple = (),
              ordered: bool = True, window: int = MAP_WINDOW, retries: int | None = None,
              concurrency: int | None = None) -> Iterator:
    """fn(item) for every item (fn(a, b, ...) over several iterables zipped, like
    the builtin map), as a generator. The first `window` tasks are submitted at
    once, the rest as results are taken; closing the generator early cancels
    the tasks not yet started."""
    if window < 1:
        raise ValueError("quiver: map's window must be at least 1")
    it = iter(items) if not more else zip(items, *more)
    in_order: collections.deque[cf.Future] = collections.deque()  # ordered
    running: set[cf.Future] = set()                                # unordered
    finished: queue.SimpleQueue = queue.SimpleQueue()              # unordered, as they finish

    def refill() -> None:
        while len(in_order) + len(running) < window:
            try:
                item = next(it)
            except StopIteration:
                return
            fut = dispatcher.submit(fn, (item,) if not more else item, {}, retries=retries,
                                    concurrency=concurrency)
            if ordered:
                in_order.append(fut)
            else:
                running.add(fut)
                fut.add_done_callback(finished.put)

    refill()  # submit now, like Executor.map, not at the first next()

    def results() -> Iterator:
        try:
            while in_order or running:
                if ordered:
                    fut = in_order.popleft()
                else:
                    fut = finished.get()
                    running.discard(fut)
                value = fut.result()
                refill()
                yield value
        finally:
            for f in (*in_order, *running):
                f.cancel()

    return results()


def wait(futures, timeout: float | None = None, return_when: str = cf.ALL_COMPLETED):
    """concurrent.futures.wait: (done, not_done) sets."""
    return cf.wait(list(futures), timeout=timeout, return_when=return_when)
