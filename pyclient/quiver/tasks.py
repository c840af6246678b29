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
cloudpickled as (args, kwargs) into one row of a large_binary column and goes
to the node over the connection's session (quiver._wire.session: one long-lived stream,
no stream per call). A submission made while nothing is in flight is sent at
once by the submitting thread; the rest pile up and a sender thread sends
them as a few requests of many rows. The node runs each row as a job of its
own ("jobs": one row per task until it has measured the function, then cheap
rows packed into tasks of about 2 ms, never more than an even share of the
request per worker), so slow tasks spread over every worker one by one and a
thousand tiny ones cost a handful of worker round trips.

In the worker ("task" kind, quiver._taskrows) each row is unpickled, ObjectRef
arguments (top-level positional arguments and keyword values) are replaced by
their objects (read from the worker's node once and cached by id in the worker
process), the function runs, and the row's result is the cloudpickle of
("ok", value) or ("err", type name, message, traceback, the id of the object
an ObjectLost names or None). An exception in one
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
Results come back in futures only; the node does not keep them. What is sent
again after a failure is decided by quiver._retry.

Layer: a Dispatcher holds a Connection and a Registry (quiver._registry);
it is below quiver.lineage, which installs itself as its ``recover`` hook,
and below the Client facade.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import pickle
import threading
import time
import weakref
from typing import Any, Callable

import pyarrow as pa

from . import _retry
from ._leases import Leases
from ._registry import Registry
from ._taskfuture import TaskFuture, _resolve, _Task
from ._taskrows import RESULT_TYPE
from ._wire.conn import Connection
from ._wire.session import SCHEMA as SESSION_SCHEMA
from ._wire.session import error as session_error
from .errors import QuiverError
from .objects import ObjectRef, StoreResult

__all__ = ["Dispatcher", "TaskFuture"]

SPREAD = 8             # a backlog goes out as this many requests, about
MAX_ROWS = 1000        # tasks per request at most
MAX_CALL_BYTES = 64 << 20  # pickled arguments per request at most (one task alone may pass it)
IDLE_S = 2.0           # the sender thread exits after this long without work


class Dispatcher:
    """A connection's task queue, sent over its session (quiver._wire.session).

    A submission made while no request of this dispatcher is in flight is sent
    at once by the submitting thread (the round trip of a lone task pays no
    thread hand-off). Others queue, and a sender thread (started on demand,
    gone after idle_s without work) sends what has piled up, a share of the
    backlog per request, so a thousand submit()s make a handful of requests.
    Safe to use from any thread. ``recover(ref)`` makes a lost argument object
    again (quiver.lineage installs it); without it such a task fails.
    """

    def __init__(self, conn: Connection, registry: Registry, max_rows: int | None = None,
                 idle_s: float | None = None):
        self.conn = conn
        self._registry = registry
        self.recover: Callable[[ObjectRef], None] | None = None
        self.max_rows = max_rows or MAX_ROWS
        self.idle_s = idle_s or IDLE_S
        self._cond = threading.Condition()
        self._queues: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._alone: collections.deque = collections.deque()
        self._queued = 0
        self._in_flight = 0   # requests sent, not answered
        self._sending = False  # a thread is sending
        self._sender = False   # the sender thread is alive
        self._closed = False
        self._stale: set[str] = set()  # names the node did not know: register again before sending
        self._names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._names_by_id: dict[int, tuple[Any, str]] = {}  # for callables without weak references
        self._names_lock = threading.Lock()
        self._concurrency: dict[str, int | None] = {}  # registered name -> its concurrency
        self._leases = Leases(conn)  # a worker lent for tasks awaited one at a time (quiver._leases)
        self.calls = 0  # requests sent, for tests and benchmarks
        self.leased = 0  # tasks sent to a leased worker

    # Submitting.

    def name_for(self, fn: Callable, concurrency: int | None = None) -> str:
        """fn's registered name on the node (at that concurrency), registering it at first use."""
        try:
            names = self._names.get(fn)
        except TypeError:
            entry = self._names_by_id.get(id(fn))
            names = entry[1] if entry and entry[0] is fn else None
        if names is not None and concurrency in names:
            return names[concurrency]
        import cloudpickle
        with self._names_lock:
            digest = hashlib.sha256(cloudpickle.dumps(fn)).hexdigest()[:16]
            qual = getattr(fn, "__qualname__", None) or type(fn).__name__
            name = f"task:{qual}:{digest}" + (f":c{concurrency}" if concurrency else "")
            self._registry.register(fn, name=name, returns=RESULT_TYPE, kind="task", concurrency=concurrency)
            self._concurrency[name] = concurrency
            names = dict(names or {})
            names[concurrency] = name
            try:
                self._names[fn] = names
            except TypeError:
                self._names_by_id[id(fn)] = (fn, names)
        return name

    def submit(self, fn: Callable, args: tuple, kwargs: dict, store: str | None = None,
               retries: int | None = None, concurrency: int | None = None) -> cf.Future:
        """A future of fn(*args, **kwargs); with store, the worker keeps the result
        on its node as the object of that id instead (quiver.lineage). retries:
        how often the node runs the task again when its worker dies (None: the
        node's default, 3); concurrency: tasks of fn a worker runs at once (None: one)."""
        if not callable(fn):
            raise TypeError(f"quiver: submit needs a callable, not {type(fn).__name__}")
        import cloudpickle
        name = self.name_for(fn, concurrency)
        try:
            payload = cloudpickle.dumps((args, kwargs) if store is None
                                        else (args, kwargs, StoreResult(store)),
                                        protocol=pickle.HIGHEST_PROTOCOL)
        except QuiverError:
            raise  # an ObjectRef argument whose put failed
        except Exception as e:
            raise TypeError(f"quiver: cannot pickle the arguments of {getattr(fn, '__qualname__', fn)}: {e}") from e
        return self._enqueue(_Task(name, payload, TaskFuture(self.conn), fn, args, kwargs, retries))

    def put(self, obj_id: str, data: bytes) -> cf.Future:
        """A future that is done when the node has stored data as object obj_id.
        Puts queue and go out like tasks: many objects in one request."""
        task = _Task(None, data, TaskFuture(self.conn), None, (), {})
        task.obj_id = obj_id
        return self._enqueue(task)

    def _enqueue(self, task: _Task) -> cf.Future:
        with self._cond:
            if self._closed:
                raise QuiverError("quiver: the client is closed")
            q = self._queues.get(task.key)
            if q is None:
                q = self._queues[task.key] = collections.deque()
            q.append(task)
            self._queued += 1
            direct = not self._sending and self._in_flight == 0
            if direct:
                self._sending = True
            else:
                self._wake()
        if direct:
            self._drain()
        return task.future

    def close(self) -> None:
        """Fail every queued task; requests in flight end with the session."""
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
        self._leases.close()

    # Sending.

    def _wake(self) -> None:
        """Hold _cond. Have the sender thread send what is queued."""
        if self._sender:
            self._cond.notify()
        else:
            self._sender = True
            threading.Thread(target=self._send_loop, name="quiver-tasks", daemon=True).start()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while self._sending or not (self._queues or self._alone):
                    if self._closed or (not self._cond.wait(self.idle_s) and not (self._queues or self._alone)):
                        self._sender = False
                        return
                self._sending = True
            self._drain()

    def _drain(self) -> None:
        """Send requests until the queue is empty; the caller set _sending."""
        while True:
            with self._cond:
                if self._closed or not (self._queues or self._alone):
                    self._sending = False
                    return
                tasks = self._take()
            try:
                self._send(tasks)
            except BaseException as e:  # never lose a future to a bug here
                self._fail(tasks, e)

    def _take(self) -> list[_Task]:
        """Hold _cond. The next request's tasks: one isolated task, or a share of one function's queue."""
        if self._alone:
            return [self._alone.popleft()]
        key, q = next(iter(self._queues.items()))
        # Spread a backlog over a few requests, so that results stream back in waves.
        share = -(-self._queued // SPREAD)
        n = min(len(q), self.max_rows, max(1, share))
        tasks, size = [], 0
        while q and len(tasks) < n:
            if tasks and size + len(q[0].payload) > MAX_CALL_BYTES:
                break
            size += len(q[0].payload)
            tasks.append(q.popleft())
        if q:
            self._queues.move_to_end(key)  # round robin between functions
        else:
            del self._queues[key]
        self._queued -= len(tasks)
        return tasks

    def _send(self, tasks: list[_Task]) -> None:
        live = [t for t in tasks if t.started or t.future.set_running_or_notify_cancel()]
        if not live:
            return
        for t in live:
            t.started = True
        batch = pa.RecordBatch.from_arrays([pa.array([t.payload for t in live], type=RESULT_TYPE)],
                                           schema=SESSION_SCHEMA)
        if live[0].obj_id is not None:
            self._request({"op": "put", "ids": [t.obj_id for t in live]}, live, batch)
            return
        name = live[0].name
        if name in self._stale:  # the node lost it (a restart): register again
            self._stale.discard(name)
            self._registry.forget(name)
            self._registry.register(live[0].fn, name=name, returns=RESULT_TYPE, kind="task",
                                    concurrency=self._concurrency.get(name))
        if len(live) == 1 and self._send_leased(live[0], batch):
            return
        meta = {"op": "call", "fn": name, "jobs": True}
        if live[0].retries is not None:
            meta["retries"] = live[0].retries
        if len(live) == 1:
            meta["rows_per_task"] = 1
        self._request(meta, live, batch)

    def _send_leased(self, t: _Task, batch: pa.RecordBatch) -> bool:
        """Send a lone task to a leased worker (quiver._leases); False if it has none."""
        if (t.retries is not None or t.alone or t.resent or t.reregistered
                or self._concurrency.get(t.name)):
            return False
        with self._cond:
            if self._in_flight:  # only a task alone in flight: others go where the node places them
                return False
        lease = self._leases.get(t.name)
        if lease is None:
            return False
        with self._cond:
            self._in_flight += 1
        t.future._conn = lease.session
        try:
            lease.session.request({"op": "call", "fn": t.name}, lambda data, answer: self._settle_leased(t, lease, data, answer), batch)
        except QuiverError:  # the lease had ended: through the node
            with self._cond:
                self._in_flight -= 1
            t.future._conn = self.conn
            self._leases.drop(lease)
            return False
        lease.last = time.monotonic()
        self.leased += 1
        return True

    def _settle_leased(self, t: _Task, lease, data, answer) -> None:
        """A leased task's answer; a lease that broke under it sends it through the node."""
        t.future._conn = self.conn
        if not isinstance(answer, QuiverError):
            self._settle([t], data, answer)
            return
        self._leases.drop(lease)
        with self._cond:
            self._in_flight -= 1
        self._requeue(t)

    def _requeue(self, t: _Task) -> None:
        """Send t again, first of its queue; fail it if the client was closed."""
        with self._cond:
            if not self._closed:
                self._queues.setdefault(t.key, collections.deque()).appendleft(t)
                self._queued += 1
                self._wake()
                return
        t.future.set_exception(QuiverError("quiver: the client was closed before the task ran"))
        t.done()

    def _request(self, meta: dict, live: list[_Task], batch: pa.RecordBatch) -> None:
        with self._cond:
            self._in_flight += 1
        self.calls += 1
        try:
            self.conn.send(meta, lambda data, answer: self._settle(live, data, answer), batch)
        except QuiverError as e:
            self._settle(live, None, e)

    def _settle(self, live: list[_Task], data, answer) -> None:
        """A request's answer (on the session's reader thread, or the sender's)."""
        with self._cond:
            self._in_flight -= 1
        if isinstance(answer, QuiverError):
            self._failed(live, answer)
            return
        if live[0].obj_id is not None:
            failed = {f.get("id"): f for f in answer.get("failed") or ()}
            for t in live:
                f = failed.get(t.obj_id)
                if f is None:
                    t.future.set_result(None)
                else:
                    t.future.set_exception(session_error(f))
                t.done()
            return
        rows = data.column(0).to_pylist()
        if len(rows) != len(live):
            self._fail(live, QuiverError(f"quiver: the node answered {len(rows)} results for {len(live)} tasks"))
            return
        for t, row in zip(live, rows):
            lost = _resolve(t, row, self.recover is not None)
            if lost is not None:  # an argument made by a task was lost: make it again, then retry
                threading.Thread(target=self._recover, args=(t, lost), daemon=True).start()

    def _recover(self, t: _Task, lost: ObjectRef) -> None:
        try:
            self.recover(lost)
        except BaseException as e:  # noqa: BLE001  the task fails with why
            t.future.set_exception(e)
            t.done()
            return
        self._requeue(t)

    def _failed(self, live: list[_Task], e: QuiverError) -> None:
        """A request failed as a whole: send again, or fail its futures."""
        retry = []
        step = _retry.after_failure(e, tasks=len(live), is_put=live[0].obj_id is not None,
                                    reregistered=any(t.reregistered for t in live),
                                    resent=live[0].resent)
        if step == _retry.REREGISTER:
            for t in live:  # the node forgot the function (it restarted): once more
                t.reregistered = True
            self._stale.add(live[0].name)
            retry = live
        elif step == _retry.SPLIT:
            retry = live  # find the culprit: each task again as its own request
            for t in live:
                t.alone = True
        elif step == _retry.RESEND:
            live[0].resent = True  # the session broke under it: once more on a new one
            retry = live
        with self._cond:
            if retry and not self._closed:
                for t in reversed(retry):
                    if t.alone:
                        self._alone.appendleft(t)
                    else:
                        self._queues.setdefault(t.key, collections.deque()).appendleft(t)
                        self._queued += 1
                self._wake()
                return
        for t in live:
            err = type(e)(f"quiver: {t.label()} failed: {e.message}")
            err.__cause__ = e
            t.future.set_exception(err)
            t.done()

    def _fail(self, tasks: list[_Task], e: BaseException) -> None:
        for t in tasks:
            if not t.future.done() and (t.started or t.future.set_running_or_notify_cancel()):
                t.future.set_exception(e)
            t.done()
