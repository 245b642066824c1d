"""The tattoos this worker wrote last, each with the ETag its write returned.

Azure raises a build's version write a moment before its run completion, and both events
usually reach the same worker: the second would read back the row the first just wrote. The
intake keeps what it wrote and starts the next read-merge-write from there instead.

A hint, never the truth: a write started from it is conditional on that ETag, so when anyone
else (another instance, another service, the outbox timer) moved the row on, storage refuses
the write and the intake reads the row and merges again. "Nothing to change" is never concluded
from a hint alone either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from shared.domain.tattoo import ImageTattoo, TattooKey

CAPACITY = 1024  # tattoos; a few MB at most, and far more builds than finish at once


class RecentTattoos:
    """A bounded, thread-safe LRU of (tattoo, ETag) by key."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._rows: OrderedDict[TattooKey, tuple[ImageTattoo, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, tattoo: ImageTattoo, etag: str) -> None:
        with self._lock:
            self._rows[tattoo.key] = (tattoo, etag)
            self._rows.move_to_end(tattoo.key)
            while len(self._rows) > self._capacity:
                self._rows.popitem(last=False)

    def forget(self, key: TattooKey) -> None:
        with self._lock:
            self._rows.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)
