"""StyleGAN2 through the service vs in-process, on seeded random weights the bench writes.

    .venv/bin/python bench/stylegan2.py [--resolution 256] [--channel-multiplier 2]
        [--clients 4] [--rows 2] [--images 24] [--batch-sizes 1,2,4,8] [--device cpu]
        [--dtype float32]

1. Writes a seeded random StyleGAN2 (z/w 512, 8 mapping layers, rosinality's layout) with
   ``stylegan2_write.write_bench_checkpoint``; the worker serves it as
   ``--model stylegan2-R=stylegan2:PATH``.
2. In-process sweep: ``LoadedModel.render`` of ``--images`` latents at each render batch
   size (one warm-up batch, one timed pass each); the fastest is "best batch".
3. Interleaved, side by side: in-process at the best batch, then the service (private
   redis-server, gateway, one worker with ``--max-render-batch`` = best batch): ``--clients``
   SDK clients, each sending Generate requests of ``--rows`` latents (RAW images) until
   ``--images`` images have come back in all; then in-process again.
4. Ratios: service images/s / mean of the two in-process figures around it; and CPU seconds
   per image of the whole service (worker + gateway + redis-server + the SDK clients in this
   process, from /proc) / in-process (the steadier figure on a shared machine).

The generator's compute dominates here (hundreds of ms per image on CPU), so the ratio shows
whether the service adds anything beyond it. Workers start with the malloc settings of
``deploy/malloc_env.py`` (a 256-px render ~25 % faster); this process keeps its own, so for
like-for-like figures export ``WORKER_MALLOC``'s variables before running the bench.
Bounded: fixed image counts, per-call deadline. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig

log = logging.getLogger("bench.stylegan2")


def latents(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 512)).astype(np.float32)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_rate(model: Any, batch: int, images: int) -> tuple[float, float]:
    """(images/s, CPU seconds per image) of ``model.render`` at ``batch``."""
    sized = replace(model, max_batch=batch)
    z = latents(images, seed=1)
    sized.render(z[:batch])  # warm up this shape
    start, cpu = time.perf_counter(), time.process_time()
    sized.render(z)
    return images / (time.perf_counter() - start), (time.process_time() - cpu) / images


def service_rate(
    target: str, name: str, clients: int, rows: int, images: int, pids: list[int]
) -> tuple[float, float]:
    """(images/s, CPU seconds of ``pids`` and this process) of ``clients`` threads sending
    Generate(rows latents, RAW) until ``images``; each client's warm-up call not counted."""
    per_client = max(1, images // (clients * rows))
    go = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with Client(target, timeout=600) as c:
                c.generate(name, latents=latents(1, seed=100 + i), image_format="raw")  # warm
                go.wait()
                for k in range(per_client):
                    z = latents(rows, seed=1000 * i + k)
                    out = c.generate(name, latents=z, image_format="raw")
                    assert len(out.images) == rows
        except BaseException as exc:  # reported below
            errors.append(exc)
            go.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    start, cpu0 = time.perf_counter(), sum(map(cpu_seconds, pids)) + time.process_time()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"service load failed: {errors[0]!r}")
    cpu = sum(map(cpu_seconds, pids)) + time.process_time() - cpu0
    return clients * per_client * rows / (time.perf_counter() - start), cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channel-multiplier", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rows", type=int, default=2, help="latents per request")
    p.add_argument("--images", type=int, default=24, help="images per timed pass / load")
    p.add_argument("--batch-sizes", default="1,2,4,8")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from latentedit.workers.models.registry import parse_model_arg
    from latentedit.workers.models.runtime import load_model
    from latentedit.workers.models.stylegan2_write import write_bench_checkpoint

    name = f"stylegan2-{args.resolution}"
    with tempfile.TemporaryDirectory(prefix="bench-sg2-") as tmp:
        _, model_arg = write_bench_checkpoint(
            tmp, name, args.resolution, args.channel_multiplier, seed=0
        )
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        model = load_model(parse_model_arg(model_arg), args.device, args.dtype, max(sizes))
        sweep = {bs: in_process_rate(model, bs, args.images)[0] for bs in sizes}
        best = max(sweep, key=lambda bs: sweep[bs])
        log.info("in-process sweep (images/s): %s; best batch %d", sweep, best)
        config = StackConfig(
            workers=1,
            port=0,
            models=[name],
            device=args.device,
            log_dir=f"{tmp}/logs",
            extra_worker_args=[
                f"--model={model_arg}",
                f"--dtype={args.dtype}",
                f"--max-render-batch={best}",
            ],
        )
        with Stack(config) as stack:
            before, cpu_before = in_process_rate(model, best, args.images)
            pids = [p.pid for p in (stack.redis, stack.gateway, *stack.workers) if p is not None]
            images = args.clients * max(1, args.images // (args.clients * args.rows)) * args.rows
            service, cpu_service = service_rate(
                stack.target, name, args.clients, args.rows, args.images, pids
            )
            after, cpu_after = in_process_rate(model, best, args.images)
            with Client(stack.target) as c:
                info = next(m for m in c.models() if m.name == name)
    ratio = service / ((before + after) / 2)
    cpu_ratio = (cpu_service / images) / ((cpu_before + cpu_after) / 2)
    result = {
        "model": name,
        "device": args.device,
        "dtype": args.dtype,
        "sweep_images_per_s": sweep,
        "best_batch": best,
        "in_process_before": before,
        "service": service,
        "in_process_after": after,
        "service_over_in_process": ratio,
        "cpu_per_image_in_process": (cpu_before + cpu_after) / 2,
        "cpu_per_image_service": cpu_service / images,
        "cpu_service_over_in_process": cpu_ratio,
        "worker_render_batch": info.render_batch,
        "bytes_per_image": info.bytes_per_image,
    }
    print(
        f"{name} on {args.device} ({args.dtype}): in-process {before:.2f} / {after:.2f} images/s "
        f"at batch {best}, service {service:.2f} images/s -> service / in-process {ratio:.3f}; "
        f"CPU s per image service (worker+gateway+redis+clients) / in-process {cpu_ratio:.3f}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
