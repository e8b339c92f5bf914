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
    seen["compute"] = compute.submit(torch.get_num_threads).result()
    seen["heavy"] = heavy.submit(torch.get_num_threads).result()
print(json.dumps(seen))
"""


def test_only_the_compute_thread_runs_torch_in_parallel() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"loop": 1, "new": 1, "compute": 2, "heavy": 1}
