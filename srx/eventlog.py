"""A bounded, thread-safe record of what happened during a long run, for --json-summary.

A stream can run for days; its sources reconnect, its backend comes and goes, its Triton servers
leave and return. `EventLog` keeps the run's first `first` events (how it started) and its newest
`last` (how it stands), and counts those between them (`left_out`), so memory stays bounded and
the morning's "reconnected" is still there after a night of failed attempts.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

#: events kept: the first ones of the run and the newest ones; those between are counted
EVENTS_FIRST, EVENTS_LAST = 200, 800


class EventLog:
    def __init__(self, first: int = EVENTS_FIRST, last: int = EVENTS_LAST) -> None:
        self._first: list[dict[str, Any]] = []
        self._first_max = int(first)
        self._last: collections.deque[dict[str, Any]] = collections.deque(maxlen=int(last))
        self._lock = threading.Lock()
        self.left_out = 0

    def add(self, kind: str, **info: Any) -> dict[str, Any]:
        """Record `kind` now (time.monotonic() in "t"); returns the event."""
        event = {"t": time.monotonic(), "event": kind, **info}
        with self._lock:
            if len(self._first) < self._first_max:
                self._first.append(event)
            else:
                if len(self._last) == self._last.maxlen:
                    self.left_out += 1  # the oldest of the newest goes: counted, not silently lost
                self._last.append(event)
        return event

    @property
    def items(self) -> list[dict[str, Any]]:
        """The kept events, oldest first."""
        with self._lock:
            return self._first + list(self._last)

    def __len__(self) -> int:
        with self._lock:
            return len(self._first) + len(self._last)


def merged(*logs: EventLog) -> tuple[list[dict[str, Any]], int]:
    """The events of several logs in time order, and how many all of them left out."""
    events = sorted((e for log in logs for e in log.items), key=lambda e: e["t"])
    return events, sum(log.left_out for log in logs)
