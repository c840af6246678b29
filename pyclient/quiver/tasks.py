"""Tasks: run Python functions on a node's workers from driver-side code.

    client = quiver.connect()
    fut = client.submit(simulate, seed=1, steps=10_000)   # concurrent.futures.Future
    fut.result()
    for r in client.map(price, grid): ...                 # results in input order
    for r in client.map(price, grid, ordered=False): ...  # as they finish
    done, not_done = client.wait(futures, timeout=5)

    data = client.put(table)                              # an ObjectRef: see quiver.objects
    client.submit(score, data, p)                         # score(table, p): refs are resolved
    client.map(score, params, itertools.repeat(data))     # several iterables, like map()
    # or, in any task or UDF: table = quiver.get(data)    # read once per worker, cached

How it runs. The function is registered once per Client (cloudpickled,
content-addressed, kind "task", result type large_binary). Each submission is
cloudpickled as (args, kwargs) into one row of a large_binary column, and put
on a queue. Dispatch threads (at most MAX_CALLS per Client, started on demand
and gone after IDLE_S idle) take pending tasks of one function, up to MAX_ROWS
(and MAX_CALL_BYTES of arguments) at a time, a share of the backlog so that
several calls run at once, and send each share as one call with
rows_per_task=1, so every task is its own node task, spread over every worker;
while calls are in flight new submissions pile up and go in the next call. That is how a thousand submit()s
make a few calls instead of a thousand.

In the worker ("task" kind, quiver.worker) each row is unpickled, ObjectRef
arguments (top-level positional arguments and keyword values) are replaced by
their objects (read from the worker's node once and cached by id in the worker
process), the function runs, and the row's result is the cloudpickle of
("ok", value) or ("err", type name, message, traceback). An exception in one
task therefore fails only its own future, with quiver.UDFError carrying the
remote traceback (``remote_type``, ``remote_traceback``).

A worker that dies mid-task (a crash, os._exit, the OOM killer) is replaced and
the task runs again on the fresh worker (the node's quiver-retries, 3 by
default), so results are complete; tasks should be idempotent, as with any
retrying executor. A task that kills every worker it runs on fails its call;
the call's other tasks are then sent again one per call, so that only the
culprit's future fails (UDFError naming the task and quoting the node), at the
price of running its neighbours' work a second time.

Nested tasks. Code in a task may itself use the API: quiver.connect() there
reaches the worker's own node ($QUIVER_ADDRESS), and submit/map/get work as on
the driver. A parent that blocks on its children holds its worker meanwhile:
with a pool of N workers, nesting works as long as fewer than N parents block
at once (the children need a free worker); more blocked parents than that
deadlock, as in any fixed pool. Prefer one level of fan-out from the driver, or
keep blocking parents below the worker count.

Objects lost with a node are reported, not recomputed: see quiver.objects.
Results come back in futures only; the node does not keep them.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import pickle
import queue
import reprlib
import threading
import time
import traceback
import weakref
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from .errors import QuiverError, UDFError
from .objects import ObjectRef

__all__ = ["Dispatcher", "run_task_rows"]

MAX_CALLS = 8          # calls in flight per Client
MAX_ROWS = 1000        # tasks per call at most
MAX_CALL_BYTES = 64 << 20  # pickled arguments per call at most (one task alone may pass it)
IDLE_S = 2.0           # a dispatch thread with nothing to do this long exits
MAP_WINDOW = 20_000    # map(): submitted but not yet yielded, at most
ARGS_COLUMN = "args"
RESULT_TYPE = pa.large_binary()
_ARGS_SCHEMA = pa.schema([pa.field(ARGS_COLUMN, RESULT_TYPE)])
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlevel = 2


class _Task:
    """One submission: where it goes, its pickled arguments and its future."""

    __slots__ = ("name", "payload", "future", "fn", "args", "kwargs", "alone")

    def __init__(self, name, payload, future, fn, args, kwargs):
        self.name = name
        self.payload = payload
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.alone = False  # True once its shared call failed: it runs as its own call

    def label(self) -> str:
        fn = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        parts = [_short.repr(a) for a in self.args or ()]
        parts += [f"{k}={_short.repr(v)}" for k, v in (self.kwargs or {}).items()]
        return f"task {fn}({', '.join(parts)})"

    def done(self) -> None:
        self.payload = self.args = self.kwargs = None


class Dispatcher:
    """A Client's task queue and the threads that turn it into calls.

    Threads start on demand (up to max_calls, each running one call at a time)
    and exit after idle_s without work, so a Client that is no longer used
    holds no thread. Safe to use from any thread.
    """

    def __init__(self, client, max_calls: int | None = None, max_rows: int | None = None,
                 idle_s: float | None = None):
        self._client = client
        self.max_calls = max_calls or MAX_CALLS
        self.max_rows = max_rows or MAX_ROWS
        self.idle_s = idle_s or IDLE_S
        self._cond = threading.Condition()
        self._queues: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._alone: collections.deque = collections.deque()
        self._queued = 0
        self._threads = 0
        self._idle = 0      # threads waiting for work
        self._wakeups = 0   # of those, notified and not yet running
        self._closed = False
        self._names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._names_by_id: dict[int, tuple[Any, str]] = {}  # for callables without weak references
        self._names_lock = threading.Lock()
        self.calls = 0  # calls made, for tests and benchmarks

    # Submitting.

    def name_for(self, fn: Callable) -> str:
        """fn's registered name on the node, registering it at first use."""
        try:
            name = self._names.get(fn)
        except TypeError:
            entry = self._names_by_id.get(id(fn))
            name = entry[1] if entry and entry[0] is fn else None
        if name is not None:
            return name
        import cloudpickle
        with self._names_lock:
            digest = hashlib.sha256(cloudpickle.dumps(fn)).hexdigest()[:16]
            qual = getattr(fn, "__qualname__", None) or type(fn).__name__
            name = f"task:{qual}:{digest}"
            self._client.register(fn, name=name, returns=RESULT_TYPE, kind="task")
            try:
                self._names[fn] = name
            except TypeError:
                self._names_by_id[id(fn)] = (fn, name)
        return name

    def submit(self, fn: Callable, args: tuple, kwargs: dict) -> cf.Future:
        if not callable(fn):
            raise TypeError(f"quiver: submit needs a callable, not {type(fn).__name__}")
        import cloudpickle
        name = self.name_for(fn)
        try:
            payload = cloudpickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            raise TypeError(f"quiver: cannot pickle the arguments of {getattr(fn, '__qualname__', fn)}: {e}") from e
        task = _Task(name, payload, cf.Future(), fn, args, kwargs)
        with self._cond:
            if self._closed:
                raise QuiverError("quiver: the client is closed")
            q = self._queues.get(name)
            if q is None:
                q = self._queues[name] = collections.deque()
            q.append(task)
            self._queued += 1
            self._wake()
        return task.future

    def close(self) -> None:
        """Fail every queued task; calls in flight end with the connection."""
        with self._cond:
            self._closed = True
            pending = [t for q in self._queues.values() for t in q] + list(self._alone)
            self._queues.clear()
            self._alone.clear()
            self._queued = 0
            self._cond.notify_all()
        for t in pending:
            if t.future.set_running_or_notify_cancel():
                t.future.set_exception(QuiverError("quiver: the client was closed before the task ran"))
            t.done()

    # Dispatching.

    def _wake(self) -> None:
        """Hold _cond. Hand new work to an idle thread, or start one."""
        if self._idle > self._wakeups:
            self._wakeups += 1
            self._cond.notify()
        elif self._threads < self.max_calls:
            self._threads += 1
            threading.Thread(target=self._loop, name="quiver-tasks", daemon=True).start()

    def _take(self) -> list[_Task]:
        """Hold _cond. The next call's tasks: one isolated task, or a share of one function's queue."""
        if self._alone:
            return [self._alone.popleft()]
        name, q = next(iter(self._queues.items()))
        # Spread a backlog over the calls that can run at once, within max_rows.
        share = -(-self._queued // self.max_calls)
        n = min(len(q), self.max_rows, max(1, share))
        tasks, size = [], 0
        while q and len(tasks) < n:
            if tasks and size + len(q[0].payload) > MAX_CALL_BYTES:
                break
            size += len(q[0].payload)
            tasks.append(q.popleft())
        if q:
            self._queues.move_to_end(name)  # round robin between functions
        else:
            del self._queues[name]
        self._queued -= len(tasks)
        return tasks

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._queues or self._alone) and not self._closed:
                    self._idle += 1
                    woken = self._cond.wait(self.idle_s)
                    self._idle -= 1
                    if self._wakeups:  # ours, or one whose thread will find the work taken
                        self._wakeups -= 1
                    if not woken and not (self._queues or self._alone or self._closed):
                        self._threads -= 1
                        return
                if self._closed:
                    self._threads -= 1
                    return
                tasks = self._take()
                if self._queues or self._alone:
                    self._wake()  # more work than this call takes: another thread for it
            try:
                self._run(tasks)
            except BaseException as e:  # never lose a future to a bug here
                for t in tasks:
                    if not t.future.done():
                        t.future.set_exception(e)
                        t.done()

    def _run(self, tasks: list[_Task]) -> None:
        live = [t for t in tasks if t.alone or t.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            rows = self._call(live[0].name, [t.payload for t in live])
        except QuiverError as e:
            if len(live) > 1 and not self._closed:
                # Find the culprit: each task again as its own call (taken before new work).
                with self._cond:
                    for t in reversed(live):
                        t.alone = True
                        self._alone.appendleft(t)
                    self._wake()
                return
            for t in live:
                err = type(e)(f"quiver: {t.label()} failed: {e.message}")
                err.__cause__ = e
                t.future.set_exception(err)
                t.done()
            return
        for t, row in zip(live, rows):
            _resolve(t, row)

    def _call(self, name: str, payloads: list[bytes]) -> list:
        """One call of name over payloads; the result rows (bytes)."""
        client = self._client
        batch = pa.RecordBatch.from_arrays([pa.array(payloads, type=RESULT_TYPE)], schema=_ARGS_SCHEMA)
        options = client._call_options(1, None, None, None)
        self.calls += 1
        chunks, _, _ = client._exchange(name, batch.schema, [batch], options)
        return chunks[0].to_pylist()


def _resolve(t: _Task, row) -> None:
    """Settle t's future from its result row."""
    try:
        if row is None:
            raise QuiverError("the node returned no result")
        outcome = pickle.loads(row)
    except Exception as e:
        t.future.set_exception(QuiverError(f"quiver: {t.label()}: cannot read its result here: "
                                           f"{type(e).__name__}: {e}"))
        t.done()
        return
    if outcome[0] == "ok":
        t.future.set_result(outcome[1])
    else:
        _, etype, message, tb = outcome
        err = UDFError(f"{t.label()} raised {etype}: {message}\n\nRemote traceback:\n{tb}")
        err.remote_type, err.remote_message, err.remote_traceback = etype, message, tb
        t.future.set_exception(err)
    t.done()


# The API Client exposes.

def map_tasks(dispatcher: Dispatcher, fn: Callable, items: Iterable, more: tuple = (),
              ordered: bool = True, window: int = MAP_WINDOW) -> Iterator:
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
            fut = dispatcher.submit(fn, (item,) if not more else item, {})
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


# The worker's side: the "task" kind (quiver.worker calls this).

def run_task_rows(fn: Callable, column: pa.Array) -> tuple[pa.Array, float]:
    """Run fn once per row of column (each the pickle of (args, kwargs)).

    Returns a large_binary array with one pickled outcome per row, and the
    milliseconds spent in fn. Never raises for a row: each row's failure is
    its own ("err", ...) outcome.
    """
    import cloudpickle

    out = []
    ms = 0.0
    for payload in column.to_pylist():
        start = None
        try:
            args, kwargs = pickle.loads(payload)
            args = [_resolve_ref(a) for a in args]
            kwargs = {k: _resolve_ref(v) for k, v in kwargs.items()}
            start = time.perf_counter()
            value = fn(*args, **kwargs)
            ms += (time.perf_counter() - start) * 1e3
            start = None
            try:
                row = cloudpickle.dumps(("ok", value), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                raise TypeError(f"cannot pickle the result ({type(value).__name__}): {e}") from e
        except BaseException as e:  # noqa: BLE001  (sys.exit in a task is that task's error)
            if isinstance(e, KeyboardInterrupt):
                raise
            if start is not None:
                ms += (time.perf_counter() - start) * 1e3
            row = cloudpickle.dumps(("err", type(e).__name__, str(e), _task_traceback(e)))
        out.append(row)
    return pa.array(out, type=RESULT_TYPE), ms


def _resolve_ref(value):
    if isinstance(value, ObjectRef):
        from .objects import get
        return get(value)
    return value


def _task_traceback(e: BaseException) -> str:
    """The traceback from the user's code on (frames of this module left out)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__))
