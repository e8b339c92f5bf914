"""SeFa: closed-form factorisation of the first projection (Shen & Zhou, CVPR 2021).

z -> z + alpha n changes the first projection y = A z + b by alpha A n, so the
directions that move the image most are the top eigenvectors of A^T A.

Two normalisations of A (out_features, d) before the eigendecomposition:

- ``"latent"`` (z of a DCGAN-like first layer): each latent dimension's column of A
  is scaled to unit norm (what this service has always done for z).
- ``"output"`` (W of a style generator, genforce/sefa ``factorize_weight``): the
  style-affine weights of the chosen layers are concatenated along their outputs and
  each output channel's weight vector (a row of A; a column of genforce's A^T) is
  scaled to unit norm, so that every style channel counts once whatever its scale.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Normalise = Literal["latent", "output"]


def sefa(
    weight: np.ndarray, top_k: int, normalise: Normalise = "latent"
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvectors of A^T A with A normalised as ``normalise`` says.

    Args:
        weight: A, (out_features, d): column j is how latent dim j enters the layer(s).
        top_k: how many directions, 1 <= top_k <= d.
        normalise: "latent" (unit columns) or "output" (unit rows, SeFa's W convention).
    Returns:
        directions (top_k, d) unit rows, eigenvalues (top_k,) descending.
    """
    a = np.asarray(weight, dtype=np.float64)
    # Rows / columns that are zero (e.g. a latent dim that does not enter) stay at zero.
    axis = 0 if normalise == "latent" else 1
    a = a / np.maximum(np.linalg.norm(a, axis=axis, keepdims=True), 1e-12)
    eigenvalues, eigenvectors = np.linalg.eigh(a.T @ a)  # symmetric solver, ascending
    order = np.argsort(eigenvalues)[::-1][:top_k]
    vectors = eigenvectors[:, order].T
    # eigh's sign is arbitrary; fix it so the largest-magnitude entry is positive.
    signs = np.sign(vectors[np.arange(len(order)), np.abs(vectors).argmax(1)])
    return vectors * signs[:, None], eigenvalues[order]
