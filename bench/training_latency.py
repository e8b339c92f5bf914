"""Generate latency with and without a training job on the same worker.

    .venv/bin/python bench/training_latency.py [--requests 100] [--rounds 3] [--render-batch 32]

One stack (private redis-server, gateway, one worker serving dcgan-faces) whose worker
loads the toy trainer plugin (tests/integration/toy_trainer.py). Each round measures, side
by side, ``--requests`` single-image Generate calls (one client, closed loop, one seed
each) twice: "idle" with no training job, "training" while a training job runs on the same
worker; the job renders ``--render-batch`` dcgan-faces images per step (the generator
load of a real Voynov trainer) in the worker's training thread (``--training-threads``,
default 1; render threads: ``--torch-threads``, default torch's). The job is cancelled
after the phase. Prints per phase p50 / p90 / p99 (ms), the job's steps/s, and the ratios
training / idle per round and their median; the last line is one JSON object.

The machine is shared: read the ratios, measured next to each other, not the absolute ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig

MODEL = "dcgan-faces"
PLUGIN = Path(__file__).resolve().parents[1] / "tests/integration/toy_trainer.py"


def latencies(c: Client, n: int, seed0: int) -> np.ndarray:
    out = []
    for i in range(n):
        start = time.perf_counter()
        got = c.generate(MODEL, seeds=[seed0 + i], timeout=30)
        out.append(time.perf_counter() - start)
        assert len(got.images) == 1
    return np.asarray(out) * 1000


def summary(ms: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)} | {"mean": float(ms.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--render-batch", type=int, default=32)
    ap.add_argument("--training-threads", type=int, default=1)
    ap.add_argument("--torch-threads", type=int, default=0, help="render threads; 0: torch's")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log_dir = tempfile.mkdtemp(prefix="bench-training-latency-")
    config = StackConfig(
        port=0,
        workers=1,
        models=[MODEL],
        log_dir=log_dir,
        extra_worker_args=[
            "--trainer-plugin",
            str(PLUGIN),
            "--training-threads",
            str(args.training_threads),
            "--torch-threads",
            str(args.torch_threads),
        ],
    )
    rows: list[dict[str, Any]] = []
    with Stack(config) as stack, Client(stack.target, timeout=60) as c:
        latencies(c, 10, 0)  # warm-up
        for r in range(args.rounds):
            idle = latencies(c, args.requests, 1000 * r)
            job = c.discover(
                MODEL,
                "toy",
                top_k=4,
                params={"steps": "10000000", "render_batch": str(args.render_batch)},
            )
            deadline = time.monotonic() + 60
            while (status := job.status()).step < 3:
                if time.monotonic() > deadline or status.done:
                    raise RuntimeError(f"the training job did not start: {status}")
                time.sleep(0.1)
            step0, t0 = job.status().step, time.monotonic()
            busy = latencies(c, args.requests, 1000 * r + 500)
            steps_per_s = (job.status().step - step0) / (time.monotonic() - t0)
            cancelled = job.cancel()
            assert cancelled.state == "cancelled", cancelled
            row = {
                "round": r,
                "idle": summary(idle),
                "training": summary(busy),
                "training_steps_per_s": steps_per_s,
                "images_per_s_training": steps_per_s * args.render_batch,
            }
            row["ratio"] = {k: row["training"][k] / row["idle"][k] for k in row["idle"]}
            rows.append(row)
            print(
                f"round {r}: idle p50 {row['idle']['p50']:.1f} p99 {row['idle']['p99']:.1f} ms | "
                f"training p50 {row['training']['p50']:.1f} p99 {row['training']['p99']:.1f} ms"
                f" | job {steps_per_s:.2f} steps/s ({row['images_per_s_training']:.0f} img/s)"
                f" | ratio p50 {row['ratio']['p50']:.2f} p99 {row['ratio']['p99']:.2f}"
            )
    med = {
        phase: {k: statistics.median(row[phase][k] for row in rows) for k in ("p50", "p90", "p99")}
        for phase in ("idle", "training", "ratio")
    }
    print(
        f"median over {len(rows)} rounds: idle p50 {med['idle']['p50']:.1f} ms, "
        f"p99 {med['idle']['p99']:.1f} ms; training p50 {med['training']['p50']:.1f} ms, "
        f"p99 {med['training']['p99']:.1f} ms; ratio p50 {med['ratio']['p50']:.2f}, "
        f"p99 {med['ratio']['p99']:.2f}"
    )
    print(json.dumps({"args": vars(args), "rounds": rows, "median": med}))


if __name__ == "__main__":
    main()
