"""Trainers of learned directions, as the training lane (:mod:`.training_jobs`) uses them:
the registry of training methods (plugins add theirs with :func:`register_trainer`),
checkpoints as bytes (loaded with ``weights_only=True``), training in timed chunks, and
storing a finished set."""

from __future__ import annotations

import importlib
import importlib.util
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.learned.protocol import DirectionSet, Trainer
from latentedit.workers.models.runtime import LoadedModel

TrainerFactory = Callable[[LoadedModel, str, dict[str, str], int], Trainer]


def _learned_factory(model: LoadedModel, method: str, params: dict[str, str], seed: int) -> Trainer:
    from latentedit.workers.learned import make_trainer

    return make_trainer(model, method, params, seed)


def _default_trainers() -> dict[str, TrainerFactory]:
    from latentedit.workers.learned.protocol import METHODS

    return dict.fromkeys(METHODS, _learned_factory)


TRAINERS: dict[str, TrainerFactory] = _default_trainers()


def register_trainer(method: str, factory: TrainerFactory) -> None:
    """Make ``method`` a training method of DiscoverDirections (plugins call this)."""
    TRAINERS[method] = factory


def training_methods() -> list[str]:
    return sorted(TRAINERS)


def load_plugin(spec: str) -> None:
    """Import a trainer plugin: a module name or a ``.py`` path; it calls register_trainer."""
    if spec.endswith(".py"):
        path = Path(spec)
        module_spec = importlib.util.spec_from_file_location(f"latentedit_plugin_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"cannot load trainer plugin {spec!r}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)


def ckpt_bytes(trainer: Trainer) -> bytes:
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    return buf.getvalue()


def ckpt_load(trainer: Trainer, blob: bytes) -> None:
    trainer.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu"))


NOT_METRICS = frozenset({"step", "total_steps"})  # JobStatus has them already


def run_chunk(
    trainer: Trainer, seconds: float, pause_s: float
) -> tuple[int, dict[str, float], float]:
    """Train for about ``seconds`` (at least one step): (steps, mean metrics, wall seconds)."""
    start = time.perf_counter()
    sums: dict[str, float] = {}
    first, calls = trainer.step, 0
    while trainer.step < trainer.total_steps:
        metrics = trainer.train_step()  # may prepare (no step) before the first step
        calls += 1
        for k, v in metrics.items():
            if k not in NOT_METRICS:
                sums[k] = sums.get(k, 0.0) + float(v)
        time.sleep(pause_s)  # sleep(0) still lets the event loop thread take the GIL
        if time.perf_counter() - start >= seconds:
            break
    means = {k: v / max(calls, 1) for k, v in sums.items()}
    return trainer.step - first, means, time.perf_counter() - start


async def store_result(
    store: DirectionStore,
    model: LoadedModel,
    status: pb.JobStatus,
    result: DirectionSet,
) -> list[str]:
    """Store the trained set; returns the direction ids ("<model>/<name>") usable in Edit.

    Sets of the learned methods go through :func:`latentedit.workers.learned.store_direction_set`
    (the set stored and versioned as a whole; Edit follows its paths). A plugin trainer's
    set is stored as plain directions, each its unit tangent at the origin (exact for
    linear sets).
    """
    from latentedit.workers import learned

    if result.method in learned.METHODS:
        return list(await learned.store_direction_set(store, model, status, result))
    ids = []
    origin = torch.zeros(1, result.latent_dim)
    for k in range(result.num_directions):
        vector = result.tangent(origin, k)[0].detach().double().cpu().numpy()
        name = f"{status.name_prefix}_{k:02d}"
        await store.put(
            model.name,
            name,
            np.asarray(vector),
            status.method,
            model.version,
            params={**status.params, "job_id": status.job_id},
        )
        ids.append(f"{model.name}/{name}")
    return ids
