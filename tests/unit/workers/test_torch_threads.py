"""The worker's thread layout for torch: the loop thread serial, every other thread parallel.

Run in a child process: it changes process-wide torch settings.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, threading, torch
from latentedit.workers.torch_threads import render_executor, serial_here
serial_here(3)
torch.zeros(64, 64) @ torch.zeros(64, 64)  # the loop thread's first op after the change
seen = {}
t = threading.Thread(target=lambda: seen.update(new=torch.get_num_threads()))
t.start(); t.join()
with render_executor(2) as pool:
    seen["render"] = pool.submit(torch.get_num_threads).result()
seen["loop"] = torch.get_num_threads()
print(json.dumps(seen))
"""


def test_loop_thread_serial_new_threads_parallel_render_thread_as_asked() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"loop": 1, "new": 3, "render": 2}
