"""GANSpace and SeFa on the shapes testbed: both must find the true factor subspace."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import subspace_angles

from latentedit.errors import InvalidArgument
from latentedit.workers.methods.ganspace import ganspace, layer_sampler
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.runtime import first_projection_matrix
from latentedit.workers.models.shapes import ShapesGenerator

log = logging.getLogger(__name__)


def _captured(directions: np.ndarray, truth: np.ndarray) -> float:
    """Mean cos^2 of the principal angles between span(directions) and span(truth)."""
    return float(np.mean(np.cos(subspace_angles(directions.T, truth.T)) ** 2))


@pytest.fixture(scope="module")
def gen() -> ShapesGenerator:
    return ShapesGenerator().eval().requires_grad_(False)


def test_sefa_top6_is_the_factor_subspace(gen: ShapesGenerator) -> None:
    a = first_projection_matrix(gen.mixing.weight, 16).numpy()
    directions, eigenvalues = sefa(a, 6)
    captured = _captured(directions, gen.true_directions().numpy())
    log.info("SeFa top-6 mean cos^2 %.6f, eigenvalues %s", captured, np.round(eigenvalues, 4))
    assert captured >= 0.9
    # The entangled pair shows up as the largest and smallest eigenvalue (1 +- rho).
    assert eigenvalues[0] > eigenvalues[1] and eigenvalues[4] > eigenvalues[5] > 1e-6
    # Nothing of the nuisance dims, which the first projection does not see.
    assert np.abs(directions[:, gen.nuisance_dims]).max() < 1e-6


def test_ganspace_top6_on_the_factor_layer(gen: ShapesGenerator) -> None:
    result = ganspace(layer_sampler(gen, "mixing", 16), 4000, 6, batch_size=500, seed=0)
    truth = gen.true_directions().numpy()
    captured = _captured(result.components, truth)
    log.info(
        "GANSpace top-6 mean cos^2 %.4f, per angle %s, stds %s",
        captured,
        np.round(np.cos(subspace_angles(result.components.T, truth.T)) ** 2, 4),
        np.round(result.stds, 3),
    )
    assert captured >= 0.9
    assert result.components.shape == (6, 16) and result.space == "activation"
    np.testing.assert_allclose(np.linalg.norm(result.components, axis=1), 1.0)
    np.testing.assert_allclose(result.stds, 1.0, atol=0.1)  # Gaussian z: sigma units ~ 1
    assert result.activation_components is not None
    assert result.activation_components.shape == (6, 6)
    assert np.all(np.diff(result.explained_variance_ratio) <= 1e-12)
    assert result.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)


def test_ganspace_is_reproducible(gen: ShapesGenerator) -> None:
    sample = layer_sampler(gen, "mixing", 16)
    first = ganspace(sample, 600, 3, batch_size=200, seed=4)
    again = ganspace(sample, 600, 3, batch_size=200, seed=4)
    other = ganspace(sample, 600, 3, batch_size=200, seed=5)
    np.testing.assert_array_equal(first.components, again.components)
    assert not np.array_equal(first.components, other.components)


def test_latent_mode_finds_the_principal_axes() -> None:
    """PCA of an anisotropic Gaussian 'W' recovers its axes and their standard deviations."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    sigmas = np.array([3.0, 2.0, 1.5, 0.5, 0.4, 0.3, 0.2, 0.1])
    mixing = sigmas[:, None] * basis.T  # w = x @ mixing, x ~ N(0, I)

    def sample(r: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        return r.standard_normal((n, 8)) @ mixing, None

    result = ganspace(sample, 6000, 3, batch_size=1000, space="latent")
    assert result.activation_components is None
    cos = np.abs(np.sum(result.components * basis.T[:3], axis=1))
    assert np.all(cos >= 0.99)
    np.testing.assert_allclose(result.stds, sigmas[:3], rtol=0.05)


@settings(max_examples=15, deadline=None)
@given(st.integers(7, 400), st.integers(1, 120), st.integers(1, 6))
def test_any_batching_fits(n_samples: int, batch_size: int, k: int) -> None:
    """IncrementalPCA needs >= k rows per partial fit; odd batch sizes must still work."""

    def sample(r: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = r.standard_normal((n, 6))
        return z, np.tanh(z)

    result = ganspace(sample, n_samples, k, batch_size=batch_size)
    assert result.components.shape == (k, 6) and result.n_samples == n_samples


def test_layer_sampler(gen: ShapesGenerator) -> None:
    rng = np.random.default_rng(0)
    z, acts = layer_sampler(gen, "mixing", 16)(rng, 5)
    assert z.shape == (5, 16) and acts is not None and acts.shape == (5, 6)
    np.testing.assert_allclose(acts, z @ gen.mixing.weight.numpy().T, rtol=1e-5, atol=1e-6)
    z2, images = layer_sampler(gen, "", 16)(np.random.default_rng(0), 2)
    assert images is not None and images.shape == (2, 3 * 64 * 64)
    np.testing.assert_allclose(images, gen(torch.from_numpy(z2)).reshape(2, -1), atol=1e-6)
    assert layer_sampler(gen, None, 16)(rng, 3)[1] is None
    with pytest.raises(InvalidArgument, match="no layer"):
        layer_sampler(gen, "conv9", 16)


def test_validation() -> None:
    def sample(r: np.random.Generator, n: int) -> tuple[np.ndarray, None]:
        return r.standard_normal((n, 4)), None

    with pytest.raises(InvalidArgument):
        ganspace(sample, 4, 4)  # n_samples must exceed n_components
    with pytest.raises(InvalidArgument, match="no activations"):
        ganspace(sample, 100, 2)  # activation mode needs activations
    with pytest.raises(InvalidArgument):
        ganspace(sample, 100, 2, space="pixels")
    with pytest.raises(InvalidArgument, match="PCA failed"):
        ganspace(sample, 100, 5, space="latent")  # 5 components of a 4-d space
