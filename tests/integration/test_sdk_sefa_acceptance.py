"""Acceptance: the service's SeFa directions are the top eigenvectors of the published weights.

The reference is computed here, independently of the service: the first layer of the
gan-face-generate DCGAN is ConvTranspose2d(100, 512, 4, 4), so latent dim j enters through
the weights W[j] (512 x 4 x 4); A has one column per latent dim, columns normalised, and
SeFa's directions are the eigenvectors of A^T A with the largest eigenvalues.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from latentedit.client import Client

MODEL = "dcgan-faces"
TOP_K = 5


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, np.ndarray]:
    """(eigenvectors (d, d) as columns, eigenvalues (d,)), both in descending order."""
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("gan_face_generate")
    assert spec is not None and spec.submodule_search_locations, "gan-face-generate missing"
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.tar"
    state = torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"]
    weight = state["main.0.weight"].double().numpy()  # (100, 512, 4, 4)
    assert weight.shape[0] == 100
    a = weight.reshape(weight.shape[0], -1).T  # (8192, 100): column j = latent dim j
    a = a / np.linalg.norm(a, axis=0, keepdims=True)
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(values)[::-1]
    return vectors[:, order], values[order]


def test_sefa_directions_match_independent_eigenvectors(
    client: Client, reference: tuple[np.ndarray, np.ndarray]
) -> None:
    vectors, values = reference
    # The top eigenvalues are distinct, so each eigenvector is defined up to sign.
    assert np.all(np.diff(values[: TOP_K + 1]) < -1e-3)
    found = client.discover(MODEL, "sefa", top_k=TOP_K, name_prefix="acceptance_sefa")
    assert len(found) == TOP_K
    for i, d in enumerate(found):
        assert d.vector is not None
        cos = abs(float(d.vector.astype(np.float64) @ vectors[:, i])) / np.linalg.norm(d.vector)
        assert cos >= 0.999, f"direction {i}: |cos| = {cos}"
        assert d.metrics["eigenvalue"] == pytest.approx(values[i], rel=1e-6)
        stored = client.get_direction(d.id)
        np.testing.assert_array_equal(stored.vector, d.vector)
