"""A bounded per-process cache of values read by id: least recently used out first,
bounded by count and by bytes, with one lock per key being read so that concurrent
misses of one key read it once. quiver.get keeps the objects it read in one."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

__all__ = ["ValueCache"]


class ValueCache:
    def __init__(self, max_items: int, max_bytes: int):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: collections.OrderedDict = collections.OrderedDict()  # key -> (value, bytes)
        self._bytes = 0
        self._lock = threading.Lock()
        self._reading: dict[Any, threading.Lock] = {}

    def get_or_read(self, key, read: Callable[[], tuple[Any, int]]) -> Any:
        """The value of key, calling read() -> (value, bytes) once on a miss."""
        hit, value = self._get(key)
        if hit:
            return value
        with self._read_lock(key):  # concurrent misses of one key read it once
            hit, value = self._get(key)
            if hit:
                return value
            try:
                value, size = read()
                self._put(key, value, size)
            finally:
                with self._lock:
                    self._reading.pop(key, None)
        return value

    def forget(self, key) -> None:
        with self._lock:
            item = self._items.pop(key, None)
            if item is not None:
                self._bytes -= item[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _get(self, key) -> tuple[bool, Any]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key][0]
        return False, None

    def _read_lock(self, key) -> threading.Lock:
        with self._lock:
            lock = self._reading.get(key)
            if lock is None:
                lock = self._reading[key] = threading.Lock()
            return lock

    def _put(self, key, value, size: int) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
