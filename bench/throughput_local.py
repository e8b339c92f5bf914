"""In-process side of bench/throughput.py: what is benched, its latents, and the generator's
own render / PNG / per-request rates in this process (the ceiling the service is held to)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

log = logging.getLogger("bench.throughput")


@dataclass
class Served:
    """What is benched: set from the command line once, in ``main``."""

    model: str = "dcgan-faces"  # --model
    dim: int = 100  # the model's latent size
    worker_args: list[str] = field(default_factory=list)  # --worker-arg
    worker_env: dict[str, str] = field(default_factory=dict)  # --worker-env


SERVED = Served()
BATCH_SIZES = [1, 8, 16, 32, 64]


def load_generator() -> Any:
    """The model's LoadedModel on CPU, as the worker loads it."""
    import torch

    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    log.info("in-process: torch threads %d", torch.get_num_threads())
    return load_model(get_spec(SERVED.model), max_batch=max(BATCH_SIZES))


def latents(n: int, seed: int = 0) -> np.ndarray:
    """(n, d) float32 N(0, I) latents."""
    return np.random.default_rng(seed).standard_normal((n, SERVED.dim)).astype(np.float32)


def sweep(model: Any, images: int) -> dict[int, float]:
    """{render batch size: images/s} of ``model.render`` on ``images`` latents, one pass each."""
    z = latents(images)
    rates = {}
    for bs in BATCH_SIZES:
        sized = replace(model, max_batch=bs)
        sized.render(z[: 2 * bs])  # warm up this shape
        start = time.perf_counter()
        sized.render(z)
        rates[bs] = images / (time.perf_counter() - start)
    return rates


@dataclass
class Local:
    """One in-process measurement at the chosen render batch size."""

    images_per_s: float  # render only, best of 2 passes
    cpu_s_per_100_images: float  # this process's CPU time during those passes
    png_per_s: float  # codec.encode_image PNG, one image at a time as the worker does
    per_request_per_s: float  # render one request's latents (1..rows) at a time: no batching

    @property
    def with_png(self) -> float:
        """images/s of render then PNG encode, one after the other."""
        return 1 / (1 / self.images_per_s + 1 / self.png_per_s)


def in_process(model: Any, batch: int, images: int, rows: int) -> Local:
    """Render, PNG encode and per-request render rates of ``model`` in this process."""
    from latentedit.codec import encode_image
    from latentedit.v1 import latentedit_pb2 as pb

    sized = replace(model, max_batch=batch)
    z = latents(images, seed=1)
    sized.render(z[:batch])
    best, cpu = float("inf"), 0.0
    pixels = np.zeros(0)
    for _ in range(2):
        cpu0, start = time.process_time(), time.perf_counter()
        pixels = sized.render(z)
        seconds = time.perf_counter() - start
        if seconds < best:
            best, cpu = seconds, time.process_time() - cpu0
    start = time.perf_counter()
    for p in pixels:
        encode_image(p, pb.IMAGE_FORMAT_PNG)
    png = len(pixels) / (time.perf_counter() - start)
    plan = request_plan(0, max(images // rows, 1), rows)  # about 0.6 * ``images`` latents
    for k in range(1, rows + 1):
        sized.render(latents(k))  # warm up each request size
    start = time.perf_counter()
    for request in plan:
        sized.render(request)
    per_request = sum(map(len, plan)) / (time.perf_counter() - start)
    return Local(images / best, 100 * cpu / images, png, per_request)


def request_plan(client_index: int, requests: int, rows: int) -> list[np.ndarray]:
    """The latents of one client's requests: (k, d) float32, k in 1..rows; seeded."""
    rng = np.random.default_rng(1000 + client_index)
    sizes = rng.integers(1, rows + 1, size=requests)
    return [rng.standard_normal((int(k), SERVED.dim)).astype(np.float32) for k in sizes]
