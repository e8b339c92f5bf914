"""Throughput of dcgan-faces: in-process generator vs the service, and batching on vs off.

Measured side by side in one run (machines are noisy; read the ratios):

1. in-process: ``LoadedModel.render`` images/s at batch sizes 1..64; the best is the ceiling.
2. service: ``--clients`` threads, each with its own SDK client, send Generate requests of
   ``--rows`` latents against a fresh stack (one worker) with batching on
   (max_batch=32, max_wait_ms=5) and off (max_batch=1, max_wait_ms=0), raw images (no PNG).
3. ratios: service / in-process best, batching on / off.

Usage: ``python bench/throughput.py [--requests 40] [--clients 16] [--rows 2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from dataclasses import replace

import numpy as np

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig


def in_process(batch_sizes: list[int], images: int) -> dict[int, float]:
    """images/s of LoadedModel.render per batch size."""
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    out = {}
    for bs in batch_sizes:
        model = load_model(get_spec("dcgan-faces"), max_batch=bs)
        z = np.random.default_rng(0).standard_normal((images, 100)).astype(np.float32)
        model.render(z[:bs])  # warm up
        start = time.perf_counter()
        model.render(z)
        out[bs] = images / (time.perf_counter() - start)
    return out


def through_service(config: StackConfig, clients: int, requests: int, rows: int, fmt: str) -> float:
    """images/s with ``clients`` concurrent SDK clients, ``requests`` calls each."""
    with tempfile.TemporaryDirectory() as logs, Stack(replace(config, log_dir=logs)) as stack:
        barrier = threading.Barrier(clients + 1)
        errors: list[BaseException] = []

        def run(seed: int) -> None:
            z = np.random.default_rng(seed).standard_normal((rows, 100)).astype(np.float32)
            with Client(stack.target, timeout=120) as client:
                client.generate("dcgan-faces", latents=z, image_format=fmt)  # connect, warm up
                barrier.wait()
                try:
                    for _ in range(requests):
                        client.generate("dcgan-faces", latents=z, image_format=fmt)
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return clients * requests * rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rows", type=int, default=2, help="latents per request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    local = in_process([1, 8, 16, 32, 64], images=256)
    best_bs = max(local, key=lambda b: local[b])
    on = StackConfig(port=0, workers=1, max_batch=32, max_wait_ms=5)
    off = StackConfig(port=0, workers=1, max_batch=1, max_wait_ms=0)
    batched = through_service(on, args.clients, args.requests, args.rows, "raw")
    unbatched = through_service(off, args.clients, args.requests, args.rows, "raw")
    batched_png = through_service(on, args.clients, args.requests, args.rows, "png")

    print("in-process render, images/s by batch size:")
    for bs, ips in local.items():
        print(f"  batch {bs:3d}: {ips:8.1f}")
    print(f"service, {args.clients} clients x {args.requests} requests x {args.rows} latents:")
    print(f"  batching on  (max_batch 32, 5 ms), raw: {batched:8.1f} images/s")
    print(f"  batching on  (max_batch 32, 5 ms), png: {batched_png:8.1f} images/s")
    print(f"  batching off (max_batch 1),        raw: {unbatched:8.1f} images/s")
    print(
        f"ratio service (batched, raw) / in-process best (batch {best_bs}): "
        f"{batched / local[best_bs]:.2f}"
    )
    print(f"ratio batching on / off: {batched / unbatched:.2f}")
    print(
        json.dumps(
            {
                "in_process_images_per_s": local,
                "best_batch": best_bs,
                "service_batched_raw": batched,
                "service_batched_png": batched_png,
                "service_unbatched_raw": unbatched,
                "ratio_service_over_in_process": batched / local[best_bs],
                "ratio_batching_on_over_off": batched / unbatched,
            }
        )
    )


if __name__ == "__main__":
    main()
