"""SeFa: closed-form factorisation of the first projection (Shen & Zhou, CVPR 2021).

z -> z + alpha n changes the first projection y = A z + b by alpha A n, so the
directions that move the image most are the top eigenvectors of A^T A.
"""

from __future__ import annotations

import numpy as np


def sefa(weight: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvectors of A^T A with A's columns normalised.

    Args:
        weight: A, (out_features, d): column j is how latent dim j enters the first layer.
        top_k: how many directions, 1 <= top_k <= d.
    Returns:
        directions (top_k, d) unit rows, eigenvalues (top_k,) descending.
    """
    a = np.asarray(weight, dtype=np.float64)
    # Columns of latent dims that do not enter this layer are zero: leave them at zero.
    a = a / np.maximum(np.linalg.norm(a, axis=0, keepdims=True), 1e-12)
    eigenvalues, eigenvectors = np.linalg.eigh(a.T @ a)  # ascending
    order = np.argsort(eigenvalues)[::-1][:top_k]
    vectors = eigenvectors[:, order].T
    # eigh's sign is arbitrary; fix it so the largest-magnitude entry is positive.
    signs = np.sign(vectors[np.arange(len(order)), np.abs(vectors).argmax(1)])
    return vectors * signs[:, None], eigenvalues[order]
