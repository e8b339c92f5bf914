"""InterFaceGAN boundaries on the shapes testbed, whose true directions are known."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentedit.errors import InvalidArgument
from latentedit.workers.latent_math import apply_edit, project_out
from latentedit.workers.methods.interfacegan import (
    Boundary,
    absolute_edit,
    signed_distance,
    train_boundary,
)
from latentedit.workers.models.shapes import CORRELATED, FACTOR_NAMES, ShapesGenerator
from latentedit.workers.scorers import scorers_for

log = logging.getLogger(__name__)
N = 10_000


@pytest.fixture(scope="module")
def gen() -> ShapesGenerator:
    return ShapesGenerator().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def sample(gen: ShapesGenerator) -> tuple[np.ndarray, np.ndarray]:
    """N latents and their exact factor scores (N, 6), through the shapes scorers."""
    z = np.random.default_rng(123).standard_normal((N, 16)).astype(np.float32)
    scorers = scorers_for("shapes", gen)
    scores = np.stack([scorers[name](None, torch.from_numpy(z)).numpy() for name in FACTOR_NAMES])
    return z, scores.T


@pytest.fixture(scope="module")
def boundaries(sample: tuple[np.ndarray, np.ndarray]) -> dict[str, Boundary]:
    z, scores = sample
    return {name: train_boundary(z, scores[:, i]) for i, name in enumerate(FACTOR_NAMES)}


def test_boundaries_recover_every_true_direction(
    gen: ShapesGenerator, boundaries: dict[str, Boundary]
) -> None:
    truth = gen.true_directions().numpy()
    for i, name in enumerate(FACTOR_NAMES):
        b = boundaries[name]
        cosine = float(b.normal @ truth[i])
        log.info(
            "%s: cosine %.5f val %.4f remaining %.4f",
            name, cosine, b.val_accuracy, b.remaining_accuracy,
        )  # fmt: skip
        assert np.linalg.norm(b.normal) == pytest.approx(1.0)
        assert cosine >= 0.95, name
        assert b.val_accuracy >= 0.95, name
        assert b.remaining_accuracy >= 0.9, name
        assert b.n_train == 2 * int(int(N * 0.02) * 0.7)
        assert b.n_val + b.n_train == 2 * int(N * 0.02)
        assert b.n_remaining == N - 2 * int(N * 0.02)


def test_entangled_pair_is_measured_as_entangled(
    gen: ShapesGenerator, boundaries: dict[str, Boundary]
) -> None:
    a, b = (boundaries[name].normal for name in CORRELATED)
    truth = gen.true_directions().numpy()
    ia, ib = FACTOR_NAMES.index(CORRELATED[0]), FACTOR_NAMES.index(CORRELATED[1])
    assert float(a @ b) == pytest.approx(float(truth[ia] @ truth[ib]), abs=0.03)


def _held_change(
    gen: ShapesGenerator, z: np.ndarray, direction: np.ndarray, held: int
) -> np.ndarray:
    """Per sample, (max - min) of factor ``held`` over edits t in [-3, 3], as a range fraction."""
    edited = apply_edit(z, direction, np.linspace(-3, 3, 25))  # (N, K, d)
    f = gen.factors(torch.from_numpy(edited.reshape(-1, 16))).numpy().reshape(len(z), 25, 6)
    lo, hi = gen.factor_ranges[held].tolist()
    return np.ptp(f[:, :, held], axis=1) / (hi - lo)


@pytest.mark.parametrize("edited", CORRELATED)
def test_conditional_edit_holds_the_entangled_factor(
    gen: ShapesGenerator, boundaries: dict[str, Boundary], edited: str
) -> None:
    held = CORRELATED[1] if edited == CORRELATED[0] else CORRELATED[0]
    i_edit, i_held = FACTOR_NAMES.index(edited), FACTOR_NAMES.index(held)
    plain = boundaries[edited].normal
    conditional = project_out(plain, boundaries[held].normal[None])
    z = np.random.default_rng(7).standard_normal((200, 16)).astype(np.float32)
    plain_held = _held_change(gen, z, plain, i_held)
    cond_held = _held_change(gen, z, conditional, i_held)
    cond_target = _held_change(gen, z, conditional, i_edit)
    log.info(
        "edit %s holding %s: held change plain mean %.3f, conditional max %.4f; "
        "target change conditional mean %.3f",
        edited, held, plain_held.mean(), cond_held.max(), cond_target.mean(),
    )  # fmt: skip
    assert cond_held.max() <= 0.02
    assert plain_held.mean() >= 0.20
    assert cond_target.mean() >= 0.5  # the conditional edit still edits


def test_same_seed_same_direction(sample: tuple[np.ndarray, np.ndarray]) -> None:
    z, scores = sample[0][:4000], sample[1][:4000, 0]
    first, again = train_boundary(z, scores, seed=3), train_boundary(z, scores, seed=3)
    other = train_boundary(z, scores, seed=4)
    assert np.array_equal(first.normal, again.normal)
    assert first.val_accuracy == again.val_accuracy
    assert not np.array_equal(first.normal, other.normal)  # another split
    assert float(first.normal @ other.normal) > 0.95


def test_normal_points_to_higher_scores(sample: tuple[np.ndarray, np.ndarray]) -> None:
    z, scores = sample[0][:4000], sample[1][:4000, 3]
    up, down = train_boundary(z, scores), train_boundary(z, -scores)
    assert float(up.normal @ down.normal) < -0.95
    d = signed_distance(z, up.normal)
    assert np.corrcoef(d, scores)[0, 1] > 0.8


def test_renorm_finds_the_same_direction(
    gen: ShapesGenerator, sample: tuple[np.ndarray, np.ndarray]
) -> None:
    z, scores = sample
    b = train_boundary(z, scores[:, 0], renorm=True)
    assert b.renorm and float(b.normal @ gen.true_directions().numpy()[0]) >= 0.95


def test_random_scores_give_chance_accuracy() -> None:
    rng = np.random.default_rng(0)
    z, scores = rng.standard_normal((5000, 16)), rng.standard_normal(5000)
    b = train_boundary(z, scores, ratio=0.1)
    assert b.val_accuracy < 0.75


def test_input_validation() -> None:
    z = np.zeros((100, 4))
    with pytest.raises(InvalidArgument):
        train_boundary(z, np.zeros(99))
    with pytest.raises(InvalidArgument):
        train_boundary(z, np.full(100, np.nan))
    with pytest.raises(InvalidArgument):
        train_boundary(z, np.arange(100.0), ratio=0.6)
    with pytest.raises(InvalidArgument):
        train_boundary(z, np.arange(100.0), split=1.0)
    with pytest.raises(InvalidArgument):  # 2 per class, 1 of them for training
        train_boundary(z, np.arange(100.0), ratio=0.02)


finite = st.floats(-5, 5, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, (3, 6), elements=finite),
    arrays(np.float64, 6, elements=finite).filter(lambda v: np.linalg.norm(v) > 0.1),
    arrays(np.float64, 4, elements=finite),
)
def test_absolute_edit_sets_the_signed_distance(
    z: np.ndarray, normal: np.ndarray, distances: np.ndarray
) -> None:
    out = absolute_edit(z, normal, distances)
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    n = normal / np.linalg.norm(normal)
    got = signed_distance(out.reshape(-1, 6).astype(np.float64), n).reshape(3, 4)
    np.testing.assert_allclose(got, np.broadcast_to(distances, (3, 4)), atol=1e-4)
    # The part of z orthogonal to the normal is untouched.
    ortho = out - (out.astype(np.float64) @ n)[..., None] * n
    want = z - (z @ n)[:, None] * n
    np.testing.assert_allclose(ortho, np.broadcast_to(want[:, None], ortho.shape), atol=1e-4)


def test_signed_distance_with_intercept() -> None:
    z = np.array([[3.0, 4.0], [0.0, -1.0]])
    np.testing.assert_allclose(signed_distance(z, np.array([0.0, 2.0]), 0.5), [4.5, -0.5])
