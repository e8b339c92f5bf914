"""The worker's thread layout for torch: one OpenMP team (the compute thread), serial elsewhere.

Run in a child process: it changes process-wide torch settings.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, threading, torch
from latentedit.workers.torch_threads import compute_executor, heavy_executor, serial_by_default
serial_by_default()
seen = {"loop": torch.get_num_threads()}
t = threading.Thread(target=lambda: seen.update(new=torch.get_num_threads()))
t.start(); t.join()
with compute_executor(2) as compute, heavy_executor(2) as heavy:
    compute.submit(int).result()  # the compute thread exists, it has not run torch yet
    seen["heavy"] = heavy.submit(torch.get_num_threads).result()  # sets torch's default to 1
    seen["compute"] = compute.submit(torch.get_num_threads).result()
print(json.dumps(seen))
"""

HOT_PATH = """
import asyncio, json, torch
from redis.asyncio import Redis
from latentedit.validate import Limits
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.jobs import JobRunner
from latentedit.workers.torch_threads import compute_executor, serial_by_default, with_threads
serial_by_default()
seen = {}
with compute_executor(2) as compute:
    run = lambda *a: compute.submit(*a).result()
    seen["with_1"] = run(with_threads, 1, torch.get_num_threads)
    seen["after"] = run(torch.get_num_threads)
    seen["with_0"] = run(with_threads, 0, torch.get_num_threads)
    runner = JobRunner({}, DirectionStore(Redis()), Limits(), None, compute, render_threads=1)
    seen["hop"] = asyncio.run(runner._hop(torch.get_num_threads))
    seen["inversion round"] = run(torch.get_num_threads)  # sessions submit to the pool directly
print(json.dumps(seen))
"""


def child(script: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    seen: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return seen


def test_only_the_compute_thread_runs_torch_in_parallel() -> None:
    assert child(CHILD) == {"loop": 1, "new": 1, "compute": 2, "heavy": 1}


def test_hot_path_renders_use_render_threads_and_inversion_rounds_keep_the_team() -> None:
    seen = child(HOT_PATH)
    assert seen == {"with_1": 1, "after": 2, "with_0": 2, "hop": 1, "inversion round": 2}
