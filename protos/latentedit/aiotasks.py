"""Stopping background asyncio tasks without trusting a single ``cancel()`` to land.

A cancellation can be lost: on Python 3.11 a cancel that races with an inner await finishing
(``asyncio.wait_for`` / ``asyncio.timeout``, which redis-py uses around socket reads) is
swallowed, and the task runs on. Seen here: the gateway's Redis monitor kept looping after
``cancel()``, so ``await task`` never returned and SIGTERM left the process up for good.
So every loop that can be stopped also checks a stop flag, and shutdown waits a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task[object] | None], timeout_s: float = 5.0) -> None:
    """Cancel ``tasks`` (``None`` entries are skipped) and wait up to ``timeout_s`` seconds.

    Cancelling is repeated every 0.1 s while a task runs on (a lost cancellation gets another
    one). A task still running at the end is logged and left; exceptions the tasks ended with
    are retrieved (and logged unless they are cancellations), never raised here.
    """
    started = [t for t in tasks if t is not None]
    pending = {t for t in started if not t.done()}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(0.1, left))
    for task in pending:
        log.warning("task %s did not stop within %.1f s; leaving it", task.get_name(), timeout_s)
    for task in started:
        if task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.warning("task %s had failed: %r", task.get_name(), exc)
