"""Learned latent directions (Voynov & Babenko's framework): linear, warped, curvilinear.

``make_trainer(model, method, params, seed) -> Trainer`` (see :mod:`.protocol`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latentedit.workers.learned.protocol import METHODS, DirectionSet, Trainer

if TYPE_CHECKING:
    from latentedit.workers.direction_store import DirectionStore
    from latentedit.workers.models.runtime import LoadedModel

__all__ = ["METHODS", "DirectionSet", "Trainer", "make_trainer", "store_direction_set"]


def make_trainer(model: LoadedModel, method: str, params: dict[str, str], seed: int) -> Trainer:
    """A trainer of ``method`` ("linear" | "warped" | "curvilinear") for ``model``.

    ``params`` (all strings, all optional): "num_directions", "steps", "batch", "lr",
    "image_size", ... (see :func:`latentedit.workers.learned.trainer.make_trainer`);
    bad values raise :class:`latentedit.errors.InvalidArgument`.
    """
    from latentedit.workers.learned.trainer import make_trainer as _make

    return _make(model, method, params, seed)


async def store_direction_set(
    store: DirectionStore, model: LoadedModel, status: Any, result: DirectionSet
) -> list[str]:
    """Store a finished job's set as a whole (the ``jobs`` helper's hook): the blob plus one
    record per direction ``{status.name_prefix}_{rank:02d}``; returns their ids. A set that
    is not one of ours (a plugin trainer's) is stored as its unit tangents at the origin."""
    from latentedit.workers.learned.directions import LearnedDirections
    from latentedit.workers.learned.store import store_set

    params = {**dict(status.params), "job_id": str(status.job_id)}
    if not isinstance(result, LearnedDirections):  # a plugin's set: its tangents at the origin
        import torch

        origin = torch.zeros(1, result.latent_dim)
        ids = []
        for k in range(result.num_directions):
            vector = result.tangent(origin, k)[0].detach().double().cpu().numpy()
            name = f"{status.name_prefix}_{k:02d}"
            await store.put(model.name, name, vector, str(status.method), model.version, params)
            ids.append(f"{model.name}/{name}")
        return ids
    records = await store_set(store, model, status.name_prefix, result, params)
    return [r.id for r in records]
