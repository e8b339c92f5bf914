"""Latent-space math in one place: unit directions, edits, sweeps, exact projection.

Pure numpy; every edit path (Edit, ConditionalEdit, sweeps) goes through here.
Directions are float64 unit vectors of shape (d,). Codes are (N, d) (z or w) or
(N, L, d) (w+: one w per style layer); in w+ each edit term touches only the layers
of its boolean layer mask (L,), as in SeFa's and GANSpace's layer-wise editing.
"""

from __future__ import annotations

import numpy as np

from latentedit.errors import InvalidArgument

_RANK_TOL = 1e-6  # relative singular-value tolerance for "dependent conditions"


def unit(vector: np.ndarray, what: str = "direction") -> np.ndarray:
    """(d,) -> (d,) float64 with unit L2 norm; InvalidArgument for zero or non-finite input."""
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidArgument(f"{what} must be a finite, non-zero vector")
    return v / norm


def apply_edit(latents: np.ndarray, offset: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """z'[n, k] = z[n] + t_k * offset.

    Args:
        latents: (N, d), or (N, L, d) in w+.
        offset: (d,), e.g. sum_i alpha_i n_i (added to every layer in w+), or (L, d) per
            layer (see :func:`combine_layers`).
        ts: (K,) multipliers.
    Returns:
        (N, K, d) or (N, K, L, d) float32.
    """
    z = np.asarray(latents, dtype=np.float64)
    off = np.asarray(offset, np.float64)
    t = np.asarray(ts, np.float64).reshape((1, -1) + (1,) * (z.ndim - 1))
    out = z[:, None] + t * off
    return out.astype(np.float32)


def combine(directions: np.ndarray, strengths: np.ndarray) -> np.ndarray:
    """sum_i alpha_i n_i: directions (M, d), strengths (M,) -> (d,)."""
    return np.asarray(strengths, np.float64) @ np.asarray(directions, np.float64)


def combine_layers(directions: np.ndarray, strengths: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-layer offset for w+: row l is sum of alpha_i n_i over the terms whose mask has l.

    Args:
        directions: (M, d); strengths: (M,); masks: (M, L) bool.
    Returns:
        (L, d) float64.
    """
    weights = np.asarray(masks, np.float64) * np.asarray(strengths, np.float64)[:, None]
    return weights.T @ np.asarray(directions, np.float64)


def place_at_distances_layers(
    codes: np.ndarray, normals: np.ndarray, distances: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """Absolute edits in w+: on each layer, the terms whose mask holds it are placed exactly.

    Layer l of every code moves to the given signed distances from the hyperplanes of the
    terms active on l (:func:`place_at_distances` on that layer); other layers stay.

    Args:
        codes: (..., L, d); normals: (M, d) unit rows; distances: (..., M); masks: (M, L).
    Returns:
        (..., L, d) float32.
    """
    out = np.asarray(codes, np.float64).copy()
    masks = np.asarray(masks, bool)
    dist = np.asarray(distances, np.float64)
    for layer in range(out.shape[-2]):
        active = masks[:, layer]
        if active.any():
            out[..., layer, :] = place_at_distances(
                out[..., layer, :], normals[active], dist[..., active]
            )
    return out.astype(np.float32)


def project_out(primary: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """Project a direction onto the orthogonal complement of span(conditions), renormalised.

    The exact projection n - C^T (C C^T)^-1 C n (InterFaceGAN's n1 - (n1^T n2) n2
    for one condition), computed with an orthonormal basis of span(C) from the SVD.

    Args:
        primary: (d,).
        conditions: (M, d), M >= 0.
    Returns:
        (d,) float64 unit vector orthogonal to every condition.
    Raises:
        InvalidArgument: dependent conditions, or a primary inside their span.
    """
    n = unit(primary, "primary direction")
    c = np.asarray(conditions, dtype=np.float64).reshape(-1, n.shape[0])
    if c.shape[0] == 0:
        return n
    if c.shape[0] >= n.shape[0]:
        raise InvalidArgument(
            f"{c.shape[0]} conditions leave no freedom in a {n.shape[0]}-dimensional space"
        )
    c = np.stack([unit(row, f"condition {i}") for i, row in enumerate(c)])
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    if s[-1] < _RANK_TOL * s[0]:
        raise InvalidArgument(
            "condition directions are linearly dependent "
            f"(singular values {np.round(s, 8).tolist()})"
        )
    projected = n - vt.T @ (vt @ n)
    # One more pass removes the rounding residue so that cosines reach ~1e-15.
    projected = projected - vt.T @ (vt @ projected)
    if np.linalg.norm(projected) < _RANK_TOL:
        raise InvalidArgument("the primary direction lies in the span of the conditions")
    return unit(projected)


def place_at_distances(
    latents: np.ndarray, normals: np.ndarray, distances: np.ndarray
) -> np.ndarray:
    """Move codes to given signed distances from hyperplanes n_j . z = 0 (absolute edits).

    The smallest move that satisfies all M constraints at once:
    z' = z + N^T (N N^T)^-1 (t - N z); for one direction InterFaceGAN's z + (t - n.z) n.

    Args:
        latents: (..., d).
        normals: (M, d) unit rows, linearly independent.
        distances: (..., M) target signed distances.
    Returns:
        (..., d) float32.
    """
    n = np.asarray(normals, np.float64)
    z = np.asarray(latents, np.float64)
    gram = n @ n.T
    if np.linalg.matrix_rank(gram) < len(n):
        raise InvalidArgument("absolute edits need linearly independent directions")
    gap = np.asarray(distances, np.float64) - z @ n.T  # (..., M)
    return (z + np.linalg.solve(gram, gap[..., None])[..., 0] @ n).astype(np.float32)


def cosines(vector: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Cosine of (d,) with each row of (M, d) -> (M,)."""
    v = unit(vector)
    o = np.asarray(others, np.float64).reshape(-1, v.shape[0])
    return (o @ v) / np.linalg.norm(o, axis=1)


def seeded_latents(seeds: list[int], dim: int) -> np.ndarray:
    """One standard-normal latent per seed (N, d) float32; the same seed always gives the same z."""
    return (
        np.stack(
            [np.random.default_rng(int(s) % 2**64).standard_normal(dim) for s in seeds]
        ).astype(np.float32)
        if seeds
        else np.zeros((0, dim), np.float32)
    )
