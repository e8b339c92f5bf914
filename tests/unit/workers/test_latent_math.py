"""latentedit.workers.latent_math: properties of the edit and projection math."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from latentedit.errors import InvalidArgument
from latentedit.workers import latent_math as lm


@st.composite
def primary_and_conditions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    d = draw(st.integers(2, 24))
    m = draw(st.integers(1, d - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal(d), rng.standard_normal((m, d))


@settings(max_examples=200, deadline=None)
@given(primary_and_conditions())
def test_projection_is_unit_and_orthogonal_to_every_condition(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    n, c = case
    s = np.linalg.svd(c / np.linalg.norm(c, axis=1, keepdims=True), compute_uv=False)
    assume(s[-1] > 1e-3 * s[0])  # well-conditioned sets; dependent ones are tested below
    p = lm.project_out(n, c)
    assert abs(np.linalg.norm(p) - 1) < 1e-12
    assert np.abs(lm.cosines(p, c)).max() <= 1e-9
    # idempotent, and the primary's component outside span(C) is kept (positive cosine)
    np.testing.assert_allclose(lm.project_out(p, c), p, atol=1e-12)
    assert float(p @ n) > 0


@given(st.integers(0, 10_000))
def test_one_condition_is_interfacegans_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = (v / np.linalg.norm(v) for v in rng.standard_normal((2, 10)))
    expected = n1 - (n1 @ n2) * n2
    np.testing.assert_allclose(
        lm.project_out(n1, n2[None]), expected / np.linalg.norm(expected), atol=1e-12
    )


def test_dependent_conditions_and_primary_in_span_are_refused() -> None:
    a, b = np.eye(5)[:2]
    with pytest.raises(InvalidArgument, match="linearly dependent"):
        lm.project_out(np.eye(5)[2], np.stack([a, b, a + b]))
    with pytest.raises(InvalidArgument, match="span of the conditions"):
        lm.project_out(a + 2 * b, np.stack([a, b]))
    with pytest.raises(InvalidArgument, match="no freedom"):
        lm.project_out(a, np.eye(5))
    with pytest.raises(InvalidArgument, match="non-zero"):
        lm.unit(np.zeros(3))


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 1000))
def test_apply_edit_is_linear_in_t(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, off, ts = rng.standard_normal((n, 7)), rng.standard_normal(7), rng.standard_normal(k)
    out = lm.apply_edit(z, off, ts)
    assert out.shape == (n, k, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, z[:, None] + ts[None, :, None] * off, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lm.combine(np.eye(7)[:3], [1.0, 2.0, 3.0]), [1, 2, 3, 0, 0, 0, 0])


@given(st.integers(1, 4), st.integers(0, 1000))
def test_place_at_distances_hits_every_target_with_the_smallest_move(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    normals = np.stack([lm.unit(v) for v in rng.standard_normal((m, 8))])
    z = rng.standard_normal((5, 8))
    targets = rng.standard_normal((5, m))
    out = lm.place_at_distances(z, normals, targets).astype(np.float64)
    np.testing.assert_allclose(out @ normals.T, targets, atol=1e-4)
    # the move lies in the span of the normals (nothing else changes)
    move = out - z
    residue = move - move @ np.linalg.pinv(normals) @ normals
    assert np.abs(residue).max() < 1e-4


def test_seeded_latents_are_per_seed() -> None:
    a = lm.seeded_latents([1, 2, 3], 16)
    b = lm.seeded_latents([3, 1], 16)
    assert a.shape == (3, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0], b[1])
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.allclose(a[0], a[1])
    assert lm.seeded_latents([], 4).shape == (0, 4)


@settings(max_examples=50, deadline=None)
@given(primary_and_conditions(), st.floats(0.1, 10), st.integers(0, 2**32 - 1))
def test_projection_ignores_scale_and_sign_of_its_inputs(
    case: tuple[np.ndarray, np.ndarray], scale: float, seed: int
) -> None:
    n, c = case
    s = np.linalg.svd(c / np.linalg.norm(c, axis=1, keepdims=True), compute_uv=False)
    assume(s[-1] > 1e-3 * s[0])
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(len(c), 1))
    scales = np.random.default_rng(seed + 1).uniform(0.1, 10, size=(len(c), 1))
    np.testing.assert_allclose(
        lm.project_out(scale * n, signs * scales * c), lm.project_out(n, c), atol=1e-9
    )


def test_projection_edge_cases() -> None:
    rng = np.random.default_rng(3)
    n = rng.standard_normal(6)
    np.testing.assert_allclose(lm.project_out(n, np.zeros((0, 6))), n / np.linalg.norm(n))
    # d - 1 conditions: the only freedom left is the normal of their hyperplane
    c = rng.standard_normal((5, 6))
    normal = np.linalg.svd(c)[2][-1]
    p = lm.project_out(n, c)
    assert abs(abs(float(p @ normal)) - 1) < 1e-12
    # nearly (not exactly) dependent conditions still give an exact projection
    c2 = np.stack([np.eye(6)[0], np.eye(6)[0] + 1e-5 * np.eye(6)[1]])
    assert np.abs(lm.cosines(lm.project_out(n, c2), c2)).max() <= 1e-9
    with pytest.raises(InvalidArgument, match="condition 1 must be a finite, non-zero"):
        lm.project_out(n, np.stack([np.eye(6)[0], np.zeros(6)]))
    with pytest.raises(InvalidArgument, match="primary direction must be"):
        lm.project_out(np.full(6, np.nan), c)


@given(st.integers(1, 5), st.integers(0, 10_000))
def test_combine_is_the_weighted_sum_and_edits_add_up(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dirs, alphas = rng.standard_normal((m, 6)), rng.standard_normal(m)
    expected = sum(a * d for a, d in zip(alphas, dirs, strict=True))
    np.testing.assert_allclose(lm.combine(dirs, alphas), expected, atol=1e-12)
    z, ts = rng.standard_normal((3, 6)), np.array([0.0, 0.5, -2.0])
    a, b = rng.standard_normal((2, 6))
    both = lm.apply_edit(z, a + b, ts).astype(np.float64)
    parts = lm.apply_edit(z, a, ts) + lm.apply_edit(z, b, ts) - z[:, None].astype(np.float32)
    np.testing.assert_allclose(both, parts, atol=1e-5)
    np.testing.assert_allclose(both[:, 0], z, atol=1e-6)  # t = 0 leaves the code alone


def test_cosines() -> None:
    v = np.array([1.0, 0.0, 0.0])
    others = np.array([[2.0, 0, 0], [0, 3.0, 0], [-1.0, 1.0, 0]])
    np.testing.assert_allclose(lm.cosines(v, others), [1, 0, -np.sqrt(0.5)], atol=1e-15)


def test_seeded_latents_look_standard_normal_and_repeat() -> None:
    seeds = list(range(200))
    z = lm.seeded_latents(seeds, 100)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03  # 20000 draws
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.25
    np.testing.assert_array_equal(lm.seeded_latents(seeds, 100), z)
    np.testing.assert_array_equal(lm.seeded_latents([7], 100)[0], z[7])
    assert len({row.tobytes() for row in z}) == 200
    big = lm.seeded_latents([2**63 - 1], 8)  # the largest int64 a Seeds message carries
    assert big.shape == (1, 8) and np.isfinite(big).all()


def test_negative_seeds_are_usable() -> None:
    z = lm.seeded_latents([-1, 1], 8)
    assert z.shape == (2, 8) and not np.array_equal(z[0], z[1])
