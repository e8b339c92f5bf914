"""Learned direction sets in the direction store, versioned like any direction.

A set ``name`` of K directions is stored as one safetensors blob (``le:dirsets:{model}``)
plus K ordinary Direction records ``{name}_{r:02d}``, r the rank by image change (r = 0
changes the image most). Each record's vector is the set's mean unit tangent over seeded
codes (so listing, Analyze and linear tools still work); its params name the set
(``learned_set``), the index in it (``index``) and the blob's SHA-256 prefix (``set_sha``),
which ties a record version to exactly one blob. Edit and ConditionalEdit apply records
carrying ``learned_set`` through the set itself (see :mod:`.editing`).
"""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import torch

from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.learned.directions import LearnedDirections
from latentedit.workers.models.runtime import LoadedModel

SET_PARAM, INDEX_PARAM, SHA_PARAM = "learned_set", "index", "set_sha"


def blob_sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


@torch.no_grad()
def rank_directions(
    model: LoadedModel,
    dset: LearnedDirections,
    samples: int = 32,
    strength: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order (K,), image change (K,), mean tangents (K, d)): RMS pixel change of a
    ``strength`` edit over ``samples`` seeded codes, largest first."""
    z = torch.randn(samples, dset.latent_dim, generator=torch.Generator().manual_seed(seed))
    x0 = model.forward(z)
    change, tangents = [], []
    for k in range(dset.num_directions):
        ks = torch.full((samples, 1), k, dtype=torch.long)
        x1 = model.forward(dset.apply(z, ks, torch.full((samples, 1), strength)))
        change.append(float((x1 - x0).pow(2).mean().sqrt()))
        t = dset.tangent(z, k).double().mean(0)
        tangents.append((t / t.norm().clamp_min(1e-12)).numpy())
    c = np.asarray(change)
    return np.argsort(-c, kind="stable"), c, np.stack(tangents)


async def store_set(
    store: DirectionStore,
    model: LoadedModel,
    name: str,
    dset: LearnedDirections,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
) -> list[pb.Direction]:
    """Store ``dset`` as ``name`` (blob + K records ranked by image change); the records."""
    blob = dset.to_bytes()
    sha = blob_sha(blob)
    order, change, tangents = await asyncio.to_thread(rank_directions, model, dset)
    await store.put_set_blob(model.name, name, blob)
    out = []
    for rank, k in enumerate(order):
        out.append(
            await store.put(
                model.name,
                f"{name}_{rank:02d}",
                tangents[k],
                dset.method,
                model.version,
                {**(params or {}), SET_PARAM: name, INDEX_PARAM: str(int(k)), SHA_PARAM: sha},
                {**(metrics or {}), "image_change": float(change[k]), "rank": float(rank)},
            )
        )
    return out
