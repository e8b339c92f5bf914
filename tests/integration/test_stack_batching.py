"""Cross-client batching: concurrent requests from separate clients are fused into one worker
batch, and batching never changes an answer.

A private stack whose worker gathers for up to 200 ms; the worker's Prometheus endpoint
(``latentedit_worker_batch_jobs``, jobs per batch) shows whether requests were fused.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from latentedit.client import Client, Generated
from latentedit.deploy.stack import Stack, free_port

MODEL = "dcgan-faces"
CLIENTS = 8


def pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


def batch_histogram(port: int) -> tuple[float, float]:
    """(batches, batches holding exactly one job) the worker has run so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
        assert match, f"{pattern} not in the worker's metrics"
        return float(match.group(1))

    total = value(r"^latentedit_worker_batch_jobs_count")
    single = value(r'^latentedit_worker_batch_jobs_bucket\{le="1\.0"\}')
    return total, single


def test_concurrent_clients_are_batched_without_changing_answers(
    make_stack: Callable[..., Stack],
) -> None:
    metrics_port = free_port()
    stack = make_stack(
        workers=1,
        max_wait_ms=200,
        max_batch=32,
        extra_worker_args=["--metrics-port", str(metrics_port)],
    )
    seeds = [[1000 + i, 2000 + i * i] for i in range(CLIENTS)]

    # One at a time: each request is its own batch.
    with Client(stack.target, timeout=60) as c:
        sequential = [c.generate(MODEL, seeds=s) for s in seeds]
        edit_dir = c.put_direction(MODEL, "batching_dir", np.ones(100)).name
        sequential_edit = c.edit(MODEL, sequential[0].latents, {edit_dir: 2.0}, sweep=(3, -1, 1))
    batches_before, single_before = batch_histogram(metrics_port)

    # All at once, each from its own client (its own channel).
    clients = [Client(stack.target, timeout=60) for _ in range(CLIENTS + 1)]
    for cl in clients:
        cl.wait_ready(30)
    barrier = threading.Barrier(len(clients))
    results: list[dict[str, Any]] = [{} for _ in clients]

    def call(i: int) -> None:
        try:
            barrier.wait(30)
            if i < CLIENTS:
                results[i]["result"] = clients[i].generate(MODEL, seeds=seeds[i])
            else:  # an edit rides in the same batch
                results[i]["result"] = clients[i].edit(
                    MODEL, sequential[0].latents, {edit_dir: 2.0}, sweep=(3, -1, 1)
                )
        except BaseException as exc:
            results[i]["error"] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for cl in clients:
        cl.close()
    assert not any(t.is_alive() for t in threads)
    assert all("error" not in r for r in results), [r.get("error") for r in results]

    for i in range(CLIENTS):
        got: Generated = results[i]["result"]
        np.testing.assert_array_equal(got.latents, sequential[i].latents)
        np.testing.assert_array_equal(pixels(got.images), pixels(sequential[i].images))
    edited = results[CLIENTS]["result"]
    np.testing.assert_array_equal(edited.latents, sequential_edit.latents)
    for row_got, row_ref in zip(edited.images, sequential_edit.images, strict=True):
        np.testing.assert_array_equal(pixels(row_got), pixels(row_ref))

    batches_after, single_after = batch_histogram(metrics_port)
    new_batches = batches_after - batches_before
    fused = new_batches - (single_after - single_before)
    assert 1 <= new_batches < len(clients), "concurrent requests were not batched together"
    assert fused >= 1
