"""The measures of Deep Curvilinear Editing's evaluation, for any D directions.

A direction j is an edit ``edit(j, z, t) -> z'`` (z (N, d) float32 tensor, t a float, in
latent units: a unit vector moves t, a warped path has length t, a curvilinear edit shifts
f(z) by t). Scores come from ``score(z) -> (N, S)`` (the model's scorers, rendering when they
need images). Every attribute difference is expressed in % of the attribute's range:
``ranges`` (S,) when known (``shapes``: the factors' exact ranges), else the 1st-99th
percentile spread of the scores over the samples.

- commutativity (D, D): mean over samples and attributes of |s(B(A(z))) - s(A(B(z)))|, % range.
- side_effect (D, S): mean |change of attribute s| / mean |change of the target| x 100,
  target = the attribute the direction changes most (or the one given).
- reversibility (D,): mean ||A_-t(A_t(z)) - z|| / ||z||; identity (D,): the same round trip's
  mean attribute change, % range.
- alignment (D,): the share of the largest attribute change in the sum of all changes.
- image_change (D,): RMS pixel change (pixels in [-1, 1]) of one edit; ranks learned sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

EditFn = Callable[[int, Tensor, float], Tensor]
ScoreFn = Callable[[Tensor], np.ndarray]
RenderFn = Callable[[Tensor], Tensor]


@dataclass
class Evaluation:
    directions: list[str]
    scorers: list[str]
    ranges: np.ndarray  # (S,)
    targets: np.ndarray  # (D,) int: index of each direction's target attribute
    change: np.ndarray  # (D, S) mean |attribute change| of one edit, % range
    side_effect: np.ndarray  # (D, S) % of the target's change (target column: 100)
    commutativity: np.ndarray  # (D, D) % range, symmetric, zero diagonal
    reversibility: np.ndarray  # (D,) relative latent error of +t then -t
    identity: np.ndarray  # (D,) % range attribute change of +t then -t
    alignment: np.ndarray  # (D,) share of the largest attribute change, 0..1
    image_change: np.ndarray  # (D,) RMS pixel change; NaN without a renderer
    samples: int
    strength: float

    def summary(self) -> dict[str, float]:
        """Mean commutativity (off-diagonal), side effect (off-target), reversibility, identity."""
        d = len(self.directions)
        off = ~np.eye(d, dtype=bool)
        side = self.side_effect.copy()
        side[np.arange(d), self.targets] = np.nan
        return {
            "commutativity": float(self.commutativity[off].mean()) if d > 1 else 0.0,
            "side_effect": float(np.nanmean(side)) if side.size > d else 0.0,
            "reversibility": float(self.reversibility.mean()),
            "identity": float(self.identity.mean()),
        }


def evaluate(
    names: Sequence[str],
    edit: EditFn,
    score: ScoreFn,
    scorer_names: Sequence[str],
    latent_dim: int,
    samples: int = 256,
    strength: float = 2.0,
    seed: int = 0,
    ranges: np.ndarray | None = None,
    targets: Sequence[int] | None = None,
    render: RenderFn | None = None,
) -> Evaluation:
    """All measures for the D = len(names) directions over ``samples`` seeded codes."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, latent_dim, generator=gen)
    d, t = len(names), float(strength)
    base = score(z)
    if ranges is None:
        lo, hi = np.percentile(base, [1, 99], axis=0)
        ranges = np.maximum(hi - lo, 1e-12)
    pct = 100.0 / np.asarray(ranges, dtype=np.float64)

    edited = [edit(j, z, t) for j in range(d)]
    change = np.stack([np.abs(score(e) - base).mean(0) * pct for e in edited])  # (D, S)
    tgt = np.asarray(targets, dtype=np.int64) if targets is not None else change.argmax(1)
    side = change / np.maximum(change[np.arange(d), tgt], 1e-12)[:, None] * 100.0
    totals = change.sum(1)
    alignment = np.where(totals > 0, change.max(1) / np.maximum(totals, 1e-12), 0.0)

    comm = np.zeros((d, d))
    for i in range(d):
        for j in range(i + 1, d):
            ab = score(edit(j, edited[i], t))
            ba = score(edit(i, edited[j], t))
            comm[i, j] = comm[j, i] = float((np.abs(ab - ba) * pct).mean())

    rev, ident = np.zeros(d), np.zeros(d)
    znorm = z.double().norm(dim=1)
    for j in range(d):
        back = edit(j, edited[j], -t)
        rev[j] = float(((back.double() - z.double()).norm(dim=1) / znorm).mean())
        ident[j] = float((np.abs(score(back) - base) * pct).mean())

    image_change = np.full(d, np.nan)
    if render is not None:
        few = z[:64]
        with torch.no_grad():
            x0 = render(few)
            for j in range(d):
                x1 = render(edit(j, few, t))
                image_change[j] = float((x1 - x0).pow(2).mean().sqrt())
    return Evaluation(
        list(names),
        list(scorer_names),
        np.asarray(ranges, np.float64),
        tgt,
        change,
        side,
        comm,
        rev,
        ident,
        alignment,
        image_change,
        samples,
        t,
    )


def linear_edit(vectors: np.ndarray) -> EditFn:
    """Edits along unit vectors (D, d): z + t n_j."""
    unit = torch.from_numpy(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).float()

    def edit(j: int, z: Tensor, t: float) -> Tensor:
        return z + t * unit[j]

    return edit


def set_edit(direction_set: object, indices: Sequence[int]) -> EditFn:
    """Edits along directions ``indices`` of a learned set (``apply(z, ks, ts)``)."""
    apply = direction_set.apply  # type: ignore[attr-defined]

    def edit(j: int, z: Tensor, t: float) -> Tensor:
        ks = torch.full((len(z), 1), indices[j], dtype=torch.long)
        ts = torch.full((len(z), 1), t, dtype=z.dtype)
        with torch.no_grad():
            out: Tensor = apply(z, ks, ts)
        return out

    return edit


def combine(edits: Sequence[tuple[EditFn, int]]) -> EditFn:
    """One EditFn over directions from several sources: entry j = (source edit, its index)."""

    def edit(j: int, z: Tensor, t: float) -> Tensor:
        fn, i = edits[j]
        return fn(i, z, t)

    return edit
