"""Continuous batching of inversions: one running session per (model, method).

Each request is a *cohort*: its own step generator (:func:`.pipeline.invert_steps`),
its own per-image budgets, targets and progress. A session runs every admitted cohort
in one thread, round-robin one optimiser step each, so a request that arrives while
another runs starts at the next step boundary instead of waiting for it, advances at
the same step rate as every other cohort (fair across requests), and its result is
handed back the moment its last step is done. Cancelled cohorts end at their next
progress check. The number of images in flight is capped (memory); requests beyond
the cap wait in arrival order.

Torch-only: the worker's :mod:`latentedit.workers.inverter` turns jobs into cohorts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

StepGen = Generator[None, None, Any]
Done = Callable[[Any, BaseException | None], None]


@dataclass
class _Cohort:
    images: int
    start: Callable[[], StepGen]
    done: Done
    steps: StepGen | None = None


class Session:
    """Interleaves the steps of the inversions submitted to it (thread-safe).

    max_images: images in flight at once (a cohort larger than this still runs, alone).
    """

    def __init__(
        self,
        name: str,
        max_images: int = 64,
        executor: Executor | None = None,
        slice_s: float = 0.05,
    ):
        """``executor``: run the rounds there, in slices of about ``slice_s`` seconds (at
        least one round), each slice queued behind whatever else waits for that executor;
        None: in a thread of the session's own while it has work."""
        self.name = name
        self.max_images = max_images
        self.executor = executor
        self.slice_s = slice_s
        self._pending: deque[_Cohort] = deque()
        self._running: list[_Cohort] = []
        self._lock = threading.Lock()
        self._active = False  # a thread or a queued slice runs the rounds
        self.rounds = 0  # step rounds run (for tests and metrics)

    def submit(self, images: int, start: Callable[[], StepGen], done: Done) -> None:
        """Queue a cohort: ``start()`` makes its step generator (called in the session thread);
        ``done(value, error)`` gets its return value or the exception it raised."""
        with self._lock:
            self._pending.append(_Cohort(images, start, done))
            if self._active:
                return
            self._active = True
        if self.executor is not None:
            self.executor.submit(self._slice)
        else:
            threading.Thread(target=self._loop, name=f"invert-{self.name}", daemon=True).start()

    @property
    def in_flight(self) -> int:
        """Cohorts running or waiting."""
        with self._lock:
            return len(self._running) + len(self._pending)

    def _admit(self) -> bool:
        """Move waiting cohorts in while they fit; False when there is nothing left to run."""
        with self._lock:
            used = sum(c.images for c in self._running)
            while self._pending and (
                not self._running or used + self._pending[0].images <= self.max_images
            ):
                cohort = self._pending.popleft()
                used += cohort.images
                self._running.append(cohort)
            if not self._running:
                self._active = False
                return False
            return True

    def _loop(self) -> None:
        while self._admit():
            self._round()

    def _slice(self) -> None:
        """Rounds for about ``slice_s``, then the executor's queue gets its turn."""
        end = time.monotonic() + self.slice_s
        while self._admit():
            self._round()
            if time.monotonic() >= end:
                assert self.executor is not None
                self.executor.submit(self._slice)
                return

    def _round(self) -> None:
        """One optimiser step of every running cohort; finished cohorts are handed back."""
        self.rounds += 1
        for cohort in list(self._running):
            try:
                if cohort.steps is None:
                    cohort.steps = cohort.start()
                next(cohort.steps)
                continue
            except StopIteration as stop:
                value, error = stop.value, None
            except Exception as exc:
                log.exception("inversion in session %s failed", self.name)
                value, error = None, exc
            with self._lock:
                self._running.remove(cohort)
            try:
                cohort.done(value, error)
            except Exception:
                log.exception("inversion result hand-off failed")
