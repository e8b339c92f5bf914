"""SeFa: closed-form factorisation, on random matrices and on the real dcgan-faces weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import load_model


@settings(deadline=None, max_examples=50)
@given(st.integers(2, 12), st.integers(0, 10_000))
def test_rows_are_orthonormal_eigenvectors_in_descending_order(d: int, seed: int) -> None:
    a = np.random.default_rng(seed).standard_normal((3 * d, d))
    vectors, values = sefa(a, d)
    an = a / np.linalg.norm(a, axis=0)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(d), atol=1e-9)
    np.testing.assert_allclose((an.T @ an) @ vectors.T, vectors.T * values, atol=1e-8)
    assert np.all(np.diff(values) <= 1e-12)
    # the same subspace as the right singular vectors of the normalised matrix
    _, _, vt = np.linalg.svd(an)
    assert np.all(np.abs(np.sum(vt[:d] * vectors, axis=1)) > 0.999)


def test_zero_columns_are_tolerated() -> None:
    a = np.random.default_rng(0).standard_normal((20, 6))
    a[:, 2] = 0
    vectors, _ = sefa(a, 5)
    assert np.isfinite(vectors).all()
    assert np.abs(vectors[:, 2]).max() < 1e-9  # a dim that does not enter the layer is ignored


def test_real_dcgan_faces_weights_match_an_independent_computation() -> None:
    spec = importlib.util.find_spec("gan_face_generate")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.tar"
    weight = torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"][
        "main.0.weight"
    ]
    a = weight.double().reshape(100, -1).T.numpy()  # (8192, 100)
    a = a / np.linalg.norm(a, axis=0)
    values, vecs = np.linalg.eigh(a.T @ a)
    reference = vecs[:, ::-1][:, :10].T

    model = load_model(get_spec("dcgan-faces"))
    vectors, eigen = sefa(model.first_projection().numpy(), 10)
    assert np.all(np.abs(np.sum(reference * vectors, axis=1)) >= 0.999)
    np.testing.assert_allclose(eigen, values[::-1][:10], rtol=1e-9)


@settings(deadline=None, max_examples=30)
@given(st.integers(2, 10), st.integers(1, 10), st.integers(0, 10_000))
def test_top_k_eigenvalues_are_squared_singular_values(d: int, k: int, seed: int) -> None:
    k = min(k, d)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((2 * d, d)) * rng.uniform(0.1, 10, d)  # columns of any scale
    vectors, values = sefa(a, k)
    assert vectors.shape == (k, d) and values.shape == (k,)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-12)
    s = np.linalg.svd(a / np.linalg.norm(a, axis=0), compute_uv=False)
    np.testing.assert_allclose(values, s[:k] ** 2, rtol=1e-9, atol=1e-12)
    # unit columns: the eigenvalues of the full Gram matrix sum to its trace, d
    assert sum(sefa(a, d)[1]) == pytest.approx(d, rel=1e-12)
    # a column's scale does not matter: SeFa normalises columns first
    scaled = sefa(a * 7.5, k)[0]  # (sign ties between equal entries may flip a row)
    np.testing.assert_allclose(np.abs(np.sum(scaled * vectors, axis=1)), 1, atol=1e-9)


def test_a_zero_column_has_eigenvalue_zero_along_its_axis() -> None:
    a = np.random.default_rng(1).standard_normal((20, 4))
    a[:, 1] = 0
    vectors, values = sefa(a, 4)
    assert values[-1] == pytest.approx(0, abs=1e-12)
    assert abs(vectors[-1, 1]) == pytest.approx(1, abs=1e-12)
