"""Running items (rows, or slices of rows) of one function up to N at a time, results in order.

    outcomes = run_all(call, items, n, is_async(fn))
    values = values_or_raise(outcomes)       # or look at each outcome's error

For functions that wait (an HTTP call, a model endpoint, a database): a
worker given ``concurrency=N`` (docs/worker-protocol.md, LOAD) runs a task's
items on N threads, or, for an ``async def`` function, as coroutines awaited
together on one event loop with at most N in flight. ``call(item)`` does one
item; for an async function it returns an awaitable, which is awaited.

Every item runs to its end: one that raises does not stop or change the
others, and its outcome carries the exception. Outcomes come back in the
order of the items. The threads belong to the process (one executor per N)
and an event loop to the calling thread, made at first use; the calling thread waits
for all items before it returns, so nothing of a task runs after its answer.

Both the worker and the driver side (the accelerate wrapper's local runs)
import this module; it imports nothing of quiver.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Sequence

__all__ = ["Outcome", "run_all", "values_or_raise", "is_async", "total_ms", "wait"]


class Outcome(NamedTuple):
    value: Any
    error: BaseException | None
    ms: float  # time in call(item), awaiting included


_lock = threading.Lock()
_executors: dict[int, ThreadPoolExecutor] = {}
_loops = threading.local()  # an event loop per calling thread


def is_async(fn) -> bool:
    """Whether fn (a function, or an object whose __call__ is) is an ``async def``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None) if not inspect.isroutine(fn) else None
    return call is not None and inspect.iscoroutinefunction(call)


def run_all(call: Callable[[Any], Any], items: Sequence, n: int, async_fn: bool = False) -> list[Outcome]:
    """call(item) for every item, up to n at once; the outcomes in item order."""
    if async_fn:
        return _loop_for().run_until_complete(_gather(call, items, max(1, n)))
    if n <= 1 or len(items) <= 1:
        return [_timed(call, item) for item in items]
    return list(_executor(n).map(lambda item: _timed(call, item), items))


def values_or_raise(outcomes: Sequence[Outcome]) -> list:
    """The values; the first failed item's exception (in item order) when one failed."""
    for o in outcomes:
        if o.error is not None:
            raise o.error
    return [o.value for o in outcomes]


def total_ms(outcomes: Sequence[Outcome]) -> float:
    """The items' time added up: what running them one after another would have cost."""
    return sum(o.ms for o in outcomes)


def wait(awaitable):
    """The value of an awaitable, run to its end on the calling thread's event loop."""
    return _loop_for().run_until_complete(awaitable)


def _timed(call, item) -> Outcome:
    start = time.perf_counter()
    try:
        value = call(item)
    except BaseException as e:  # noqa: BLE001  (sys.exit in one item fails that item only)
        if isinstance(e, KeyboardInterrupt):
            raise
        return Outcome(None, e, (time.perf_counter() - start) * 1e3)
    return Outcome(value, None, (time.perf_counter() - start) * 1e3)


async def _gather(call, items, n: int) -> list[Outcome]:
    gate = asyncio.Semaphore(n)

    async def one(item) -> Outcome:
        async with gate:
            start = time.perf_counter()
            try:
                value = call(item)
                if inspect.isawaitable(value):
                    value = await value
            except BaseException as e:  # noqa: BLE001
                if isinstance(e, (KeyboardInterrupt, asyncio.CancelledError)):
                    raise
                return Outcome(None, e, (time.perf_counter() - start) * 1e3)
            return Outcome(value, None, (time.perf_counter() - start) * 1e3)

    return list(await asyncio.gather(*(one(item) for item in items)))


def _executor(n: int) -> ThreadPoolExecutor:
    with _lock:
        ex = _executors.get(n)
        if ex is None:
            ex = _executors[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"quiver-c{n}")
        return ex


def _loop_for() -> asyncio.AbstractEventLoop:
    """The calling thread's event loop for async functions (the worker has one thread)."""
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    return loop
