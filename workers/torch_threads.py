"""Which threads of a worker run torch, and with how many intra-op threads.

Every Python thread that runs a parallel torch op gets an OpenMP team of its own, and idle
teams cost the busy one: rendering one 64-px dcgan-faces image in a pool thread took
3.5 ms when no other thread had ever run a parallel op, 5.0–5.5 ms once the event-loop
thread had (2 cores, torch 2.13, libgomp). So a worker process keeps its event-loop thread
at one intra-op thread (it only does light tensor work) and renders in one dedicated
thread, whose team stays warm; heavy work (discovery, inversion, training) runs in threads
of its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch


def serial_here(threads: int) -> None:
    """This thread: 1 intra-op thread; threads that first run torch later: ``threads``.

    torch keeps a per-thread count (OpenMP's) and a process default that a thread takes up
    the first time it asks; ``set_num_threads`` sets both. So: this thread asks first, then
    sets 1, and the default is set back from a throwaway thread.
    """
    torch.get_num_threads()  # this thread's first use: later changes of the default skip it
    torch.set_num_threads(1)
    setter = threading.Thread(target=torch.set_num_threads, args=(threads,), name="torch-threads")
    setter.start()
    setter.join()


def render_executor(threads: int) -> ThreadPoolExecutor:
    """One thread for the hot render path, with ``threads`` intra-op threads."""
    return ThreadPoolExecutor(
        1, thread_name_prefix="render", initializer=torch.set_num_threads, initargs=(threads,)
    )
