"""Edit and ConditionalEdit with directions of learned (possibly nonlinear) sets.

Edit: codes (N, d) and frames t_1..t_K become N*K rows; the linear (stored-vector) terms
are added first, then each learned set applies all its terms of a row in one batched
``apply`` (curvilinear: shifts added in f-space, one inverse; warped: in request order).
Absolute (signed-distance) mode needs a hyperplane and is refused for learned directions.

ConditionalEdit (defined here for curved directions): the code walks in small steps
(at most :data:`COND_STEP` latent units) along the primary direction's local unit tangent
with the local tangents of the conditions projected out (InterFaceGAN's
n - C^T (C C^T)^-1 C n, evaluated at every step), renormalised, so the path has length
|t * strength| and, to first order, no condition moves. For linear directions this is
exactly InterFaceGAN's conditional edit.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers.direction_store import CachedDirection, DirectionStore
from latentedit.workers.learned.directions import LearnedDirections
from latentedit.workers.learned.serialize import set_from_bytes
from latentedit.workers.learned.store import INDEX_PARAM, SET_PARAM, SHA_PARAM, blob_sha

COND_STEP = 0.1  # latent units per step of a conditional path
MAX_COND_STEPS = 400


def is_learned(meta: pb.Direction) -> bool:
    return SET_PARAM in meta.params


class LearnedSets:
    """Loaded learned sets, cached by (model, set, blob SHA): never stale, since a record
    names the SHA of the blob it was stored with."""

    def __init__(self, store: DirectionStore, size: int = 16) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[str, str, str], LearnedDirections] = OrderedDict()
        self._size = size

    async def get(self, model: str, meta: pb.Direction) -> tuple[LearnedDirections, int]:
        """(the set, the direction's index in it) for a learned record."""
        name, sha = meta.params[SET_PARAM], meta.params.get(SHA_PARAM, "")
        key = (model, name, sha)
        dset = self._cache.get(key)
        if dset is None:
            blob = await self.store.get_set_blob(model, name)
            if sha and blob_sha(blob) != sha:
                raise InvalidArgument(
                    f"direction {meta.id} belongs to an older version of set {name!r}; "
                    "re-run the discovery or use the set's current directions"
                )
            dset = await asyncio.to_thread(set_from_bytes, blob)
            self._cache[key] = dset
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return dset, int(meta.params[INDEX_PARAM])

    async def edit(
        self,
        model: str,
        z: np.ndarray,
        dirs: Sequence[CachedDirection],
        strengths: np.ndarray,
        ts: np.ndarray,
        absolute: np.ndarray,
    ) -> np.ndarray:
        """z (N, d), E directions with strengths (E,), frames ts (K,) -> (N, K, d) float32.

        Absolute terms must be linear; they are placed last (see jobs.py) by the caller.
        """
        learned = np.array([is_learned(d.meta) for d in dirs])
        bad = [d.meta.id for d, a, lrn in zip(dirs, absolute, learned, strict=True) if a and lrn]
        if bad:
            raise InvalidArgument(
                f"absolute mode needs a hyperplane; {', '.join(bad)} is a learned path: "
                "use relative mode"
            )
        n, d = z.shape
        lin = ~learned & ~absolute
        offset = strengths[lin] @ np.stack([x.vector for x in dirs])[lin] if lin.any() else 0.0
        rows = (z[:, None, :] + ts[None, :, None] * offset).reshape(-1, d)
        frame_t = np.tile(ts, n)  # (N*K,) the frame multiplier of each row
        groups: dict[int, tuple[LearnedDirections, list[int], list[float]]] = {}
        for x, s, is_l in zip(dirs, strengths, learned, strict=True):
            if is_l:
                dset, k = await self.get(model, x.meta)
                groups.setdefault(id(dset), (dset, [], []))
                groups[id(dset)][1].append(k)
                groups[id(dset)][2].append(float(s))
        out = await asyncio.to_thread(_apply_groups, rows, frame_t, list(groups.values()))
        return out.reshape(n, len(ts), d).astype(np.float32)

    async def tangent_fn(
        self, model: str, direction: CachedDirection
    ) -> Callable[[Tensor], Tensor]:
        """z (M, d) float64 -> unit tangents (M, d) of one direction (a vector: constant)."""
        if is_learned(direction.meta):
            dset, k = await self.get(model, direction.meta)
            return lambda z: dset.tangent(z, k).double()
        v = torch.from_numpy(direction.vector / np.linalg.norm(direction.vector))
        return lambda z: v.expand(len(z), -1)

    async def conditional(
        self,
        model: str,
        z: np.ndarray,
        dirs: Sequence[CachedDirection],
        strength: float,
        ts: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(edited (N, K, d), projected tangent at z[0] (d,), its cosines with the conditions'
        tangents at z[0] (M,), its cosine with the primary's tangent at z[0])."""
        fns = [await self.tangent_fn(model, x) for x in dirs]
        return await asyncio.to_thread(_conditional_paths, z, fns, strength, ts)


def _apply_groups(
    rows: np.ndarray,
    frame_t: np.ndarray,
    groups: list[tuple[LearnedDirections, list[int], list[float]]],
) -> np.ndarray:
    zt = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    ft = torch.from_numpy(frame_t.astype(np.float32))
    with torch.no_grad():
        for dset, ks, strengths in groups:
            k = torch.tensor(ks, dtype=torch.long).expand(len(zt), -1)
            t = ft[:, None] * torch.tensor(strengths, dtype=torch.float32)[None, :]
            zt = dset.apply(zt, k, t)
    return zt.numpy()


def _project(primary: Tensor, conditions: list[Tensor]) -> Tensor:
    """Rows of primary (M, d) with span(conditions rows) projected out, renormalised."""
    if not conditions:
        return primary
    c = torch.stack(conditions, dim=1)  # (M, C, d)
    gram = c @ c.transpose(1, 2)  # (M, C, C)
    coef = torch.linalg.pinv(gram) @ (c @ primary[:, :, None])  # (M, C, 1)
    p = primary - (c.transpose(1, 2) @ coef)[:, :, 0]
    norm = p.norm(dim=1, keepdim=True)
    if bool((norm < 1e-6).any()):
        raise InvalidArgument("the primary direction lies in the span of the conditions here")
    return p / norm


def _conditional_paths(
    z: np.ndarray,
    fns: list[Callable[[Tensor], Tensor]],
    strength: float,
    ts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n, d = z.shape
    rows = torch.from_numpy(np.repeat(z.astype(np.float64), len(ts), axis=0))  # (N*K, d)
    total = torch.from_numpy(np.tile(ts.astype(np.float64), n) * strength)  # path lengths
    steps = min(MAX_COND_STEPS, max(1, math.ceil(float(total.abs().max()) / COND_STEP)))
    h = (total / steps)[:, None]
    primary_fn, cond_fns = fns[0], fns[1:]
    with torch.no_grad():
        for _ in range(steps):
            rows = rows + h * _project(primary_fn(rows), [f(rows) for f in cond_fns])
        z0 = torch.from_numpy(z[:1].astype(np.float64))
        prim = primary_fn(z0)
        conds = [f(z0) for f in cond_fns]
        proj = _project(prim, conds)[0]
    cos_c = np.array([float(proj @ c[0] / c[0].norm()) for c in conds])
    cos_p = float(proj @ prim[0] / prim[0].norm())
    return rows.numpy().reshape(n, len(ts), d).astype(np.float32), proj.numpy(), cos_c, cos_p
