"""Which threads of a worker run torch, and with how many intra-op threads.

Every thread that runs a parallel torch op keeps an OpenMP team, and once a process holds
more OpenMP threads than it has cores, libgomp stops letting idle team members spin
("throttled" spin count): every parallel op then waits for sleeping threads to wake.
Measured on 2 cores: one 64-px dcgan-faces render 3.5 ms alone, 5.0–5.5 ms once another
thread had ever run a parallel op; `auto` inversion of 8 photos 3.8 s per image alone,
5.7 s beside one idle team, 8.7 s in the service before this layout.

So a worker has exactly one OpenMP team: its compute thread (:func:`compute_executor`)
renders light batches and runs inversion sessions in slices between them; every other
thread that touches torch (the event loop, discovery and analysis in
:func:`heavy_executor`, training) runs it serially.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def serial_by_default() -> None:
    """This thread, and every thread that first runs torch after this call: 1 intra-op
    thread (torch's process default, which new threads take up)."""
    own_threads(1)


def own_threads(threads: int) -> None:
    """This thread runs torch with ``threads`` intra-op threads from now on.

    torch applies its process-wide count (the last ``set_num_threads`` of any thread) to a
    thread at that thread's first torch call, so a count set before that call is lost
    whenever another thread sets its own in between (a heavy thread starting before the
    compute thread's first render left the compute thread on one intra-op thread, for
    good). Here the first call comes first, then this thread's count.
    """
    torch.get_num_threads()  # torch's per-thread lazy init, with whatever count it takes
    torch.set_num_threads(threads)


def compute_executor(threads: int) -> ThreadPoolExecutor:
    """The worker's one thread with an OpenMP team of ``threads``."""
    return ThreadPoolExecutor(
        1, thread_name_prefix="compute", initializer=own_threads, initargs=(threads,)
    )


def with_threads(threads: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with ``threads`` intra-op threads in this thread, then its count back
    (0: leave it). Switching costs nothing measurable: libgomp keeps the team and a region
    of one thread runs inline (64-px renders of 20 images alternating 1 / 2: 84.7 vs 82.8 ms)."""
    before = torch.get_num_threads()
    if threads <= 0 or threads == before:
        return fn(*args)
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def heavy_executor(workers: int = 4) -> ThreadPoolExecutor:
    """Threads for discovery, analysis and other long calls: torch runs serially there."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix="heavy", initializer=own_threads, initargs=(1,)
    )
