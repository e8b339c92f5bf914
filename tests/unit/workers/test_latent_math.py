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
