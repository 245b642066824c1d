"""Firing timer-triggered functions on their NCRONTAB schedules, in background threads.

One thread per timer function, so a slow timer delays only itself and never overlaps itself
(the host holds a singleton lock per timer). The next occurrence is computed after each run,
so a run longer than the interval skips occurrences rather than queueing them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from azure.functions.timer import TimerRequest

from shared.local.host.index import IndexedFunction, TimerTrigger
from shared.local.host.invoke import InvocationFailed, discard_result, invoke
from shared.local.host.ncrontab import next_occurrence

logger = logging.getLogger("shared.local.host")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TimerScheduler:
    """Runs every timer function of the app until `stop()`."""

    def __init__(self, functions: list[IndexedFunction], function_directory: Path, clock: Clock = utc_now) -> None:
        self._timers = [function for function in functions if isinstance(function.trigger, TimerTrigger)]
        self._function_directory = function_directory
        self._clock = clock
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for function in self._timers:
            thread = threading.Thread(target=self._run, args=(function,), name=f"timer-{function.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, function: IndexedFunction) -> None:
        trigger = function.trigger
        assert isinstance(trigger, TimerTrigger)
        last: datetime | None = None
        if trigger.run_on_startup:
            self._fire(function, trigger, last, self._clock())
        after = self._clock()
        while not self._stopping.is_set():
            # Never before the last occurrence fired: a wait that wakes early must not fire it twice.
            due = next_occurrence(trigger.schedule, max(self._clock(), after))
            if self._stopping.wait(max(0.0, (due - self._clock()).total_seconds())):
                return
            self._fire(function, trigger, last, due)
            last = after = due

    def _fire(self, function: IndexedFunction, trigger: TimerTrigger, last: datetime | None, due: datetime) -> None:
        status = {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": next_occurrence(trigger.schedule, due).isoformat(),
            "LastUpdated": self._clock().isoformat(),
        }
        timer = TimerRequest(past_due=False, schedule_status=status, schedule={"AdjustForDST": True})
        # A failure is already logged with its invocation id; the schedule carries on, as in the host.
        with contextlib.suppress(InvocationFailed):
            invoke(
                function,
                timer,
                reason=f"Timer fired at {due.isoformat()}",
                function_directory=self._function_directory,
                convert=discard_result,
            )
