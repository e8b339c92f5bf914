"""glibc malloc settings for worker processes, set before the interpreter starts.

A generator's activations are large (a 256-px StyleGAN2 at batch 1 allocates and frees
tens of MB per layer). With glibc's defaults every such block is mmap-ed and unmapped
again, so each render page-faults its whole working set afresh: measured on a 2-core
AMD EPYC, a 256-px StyleGAN2 render took 0.71-0.76 s of which 0.29-0.31 s in the kernel;
with :data:`WORKER_MALLOC` 0.55-0.58 s with 0.01 s in the kernel. The freed memory stays
with the process instead (a long-lived worker reuses its peak working set, as a GPU
caching allocator does).

glibc reads these variables once, when the process starts (``mallopt`` cannot raise the
mmap threshold past 32 MiB), so ``latentedit worker`` re-executes itself with them
(:func:`reexec_with_worker_malloc`). The operator's own choice wins: nothing is changed
when any ``MALLOC_*`` variable, ``GLIBC_TUNABLES`` or ``LD_PRELOAD`` (jemalloc, tcmalloc)
is already set. (No library sets glibc tunables for a running process; this is the
documented environment interface, ``man 3 mallopt``.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

WORKER_MALLOC = {
    "MALLOC_ARENA_MAX": "1",  # one heap: what a thread frees, the compute thread reuses
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),  # blocks below 1 GiB come from the heap
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),  # keep up to 1 GiB of freed heap
    "MALLOC_TOP_PAD_": str(64 << 20),  # grow the heap 64 MiB at a time
}
OPERATOR_KEYS = ("GLIBC_TUNABLES", "LD_PRELOAD")


def worker_malloc_env(
    env: Mapping[str, str], platform: str = sys.platform
) -> dict[str, str] | None:
    """``env`` plus :data:`WORKER_MALLOC`, or None when nothing should change (not Linux,
    the settings already there, or the operator chose a malloc setting of their own)."""
    if not platform.startswith("linux"):
        return None
    if any(k.startswith("MALLOC_") for k in env) or any(env.get(k) for k in OPERATOR_KEYS):
        return None
    return {**env, **WORKER_MALLOC}


def reexec_with_worker_malloc(module: str = "latentedit.deploy.cli") -> None:
    """Replace this process (same pid) by ``python -m module <same arguments>`` with
    :data:`WORKER_MALLOC` in its environment; returns only when nothing is to change."""
    env = worker_malloc_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)
