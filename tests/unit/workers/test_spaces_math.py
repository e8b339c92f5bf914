"""Latent math in w+ (layer masks, per-layer absolute edits), SeFa's W convention, space checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentedit import validate, validate_spaces
from latentedit.codec import to_tensor
from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.workers import latent_math as lm
from latentedit.workers.methods.sefa import sefa


@st.composite
def wplus_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """codes (N, L, d), unit directions (M, d), strengths (M,), masks (M, L)."""
    n, layers, d = draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(2, 9))
    m = draw(st.integers(1, min(3, d)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = rng.random((m, layers)) < 0.5
    return (
        rng.standard_normal((n, layers, d)),
        np.stack([lm.unit(v) for v in rng.standard_normal((m, d))]),
        rng.standard_normal(m) * 3,
        masks,
    )


@settings(max_examples=100, deadline=None)
@given(wplus_case(), st.lists(st.floats(-3, 3), min_size=1, max_size=4))
def test_relative_wplus_edits_move_only_masked_layers(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ts: list[float]
) -> None:
    codes, dirs, alphas, masks = case
    t = np.array(ts)
    out = lm.apply_edit(codes, lm.combine_layers(dirs, alphas, masks), t).astype(np.float64)
    assert out.shape == (codes.shape[0], len(t), *codes.shape[1:])
    for layer in range(codes.shape[1]):
        active = masks[:, layer]
        expected = codes[:, None, layer] + t[None, :, None] * (alphas[active] @ dirs[active])
        np.testing.assert_allclose(out[:, :, layer], expected, atol=1e-4)
    # an all-layers mask is the plain w edit repeated on every layer
    full = np.ones_like(masks)
    np.testing.assert_allclose(
        lm.apply_edit(codes, lm.combine_layers(dirs, alphas, full), t),
        lm.apply_edit(codes, lm.combine(dirs, alphas), t),
        atol=1e-5,
    )


@settings(max_examples=100, deadline=None)
@given(wplus_case(), st.integers(0, 1000))
def test_absolute_wplus_edits_hold_per_layer_and_leave_other_layers(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], seed: int
) -> None:
    codes, dirs, _, masks = case
    gram = dirs @ dirs.T
    if np.linalg.cond(gram) > 1e6:
        return  # dependent directions are refused; tested below
    n, layers, _ = codes.shape
    targets = np.random.default_rng(seed).standard_normal((n, len(dirs)))
    out = lm.place_at_distances_layers(codes, dirs, targets, masks).astype(np.float64)
    for layer in range(layers):
        active = masks[:, layer]
        if not active.any():
            np.testing.assert_allclose(out[:, layer], codes[:, layer], atol=1e-5)
            continue
        # the active terms' distances hold exactly on this layer
        np.testing.assert_allclose(out[:, layer] @ dirs[active].T, targets[:, active], atol=1e-4)
        # and the move stays in the span of the active directions (smallest move)
        move = out[:, layer] - codes[:, layer]
        basis = dirs[active]
        residue = move - move @ np.linalg.pinv(basis) @ basis
        assert np.abs(residue).max() < 1e-4


def test_dependent_absolute_terms_on_one_layer_are_refused() -> None:
    a = lm.unit(np.array([1.0, 0, 0]))
    masks = np.array([[True, False], [True, True]])
    with pytest.raises(InvalidArgument, match="linearly independent"):
        lm.place_at_distances_layers(np.zeros((1, 2, 3)), np.stack([a, a]), np.zeros((1, 2)), masks)
    # on separate layers the same normal twice is fine
    out = lm.place_at_distances_layers(
        np.zeros((1, 2, 3)), np.stack([a, a]), np.array([[1.0, 2.0]]), np.eye(2, dtype=bool)
    )
    np.testing.assert_allclose(out[0, :, 0], [1.0, 2.0])


@given(st.integers(1, 18), st.data())
def test_layer_mask_parses_ranges_and_lists(num_ws: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, num_ws - 1))
    b = data.draw(st.integers(a, num_ws - 1))
    mask = validate_spaces.layer_mask(f"{a}-{b}", num_ws)
    assert mask.tolist() == [a <= i <= b for i in range(num_ws)]
    assert (
        validate_spaces.layer_mask("all", num_ws).all()
        and validate_spaces.layer_mask("", num_ws).all()
    )
    assert validate_spaces.layer_mask(f"{b},{a}", num_ws).sum() == len({a, b})
    with pytest.raises(InvalidArgument, match="outside the style layers"):
        validate_spaces.layer_mask(f"{num_ws}", num_ws)
    if a < b:
        with pytest.raises(InvalidArgument, match="reversed"):
            validate_spaces.layer_mask(f"{b}-{a}", num_ws)


def test_layer_mask_rejects_garbage() -> None:
    for bad in ("x", "1-", "-1", "1--2", "1,,2", "0-1-2"):
        with pytest.raises(InvalidArgument, match="use 'all'"):
            validate_spaces.layer_mask(bad, 8)


@settings(deadline=None, max_examples=40)
@given(st.integers(2, 10), st.integers(1, 4), st.integers(0, 10_000))
def test_sefa_in_w_matches_genforce_eig_of_concatenated_normalised_styles(
    d: int, layers: int, seed: int
) -> None:
    """genforce/sefa: concatenate W^T of each layer along outputs, unit columns, eig(A A^T)."""
    rng = np.random.default_rng(seed)
    styles = [
        rng.standard_normal((int(rng.integers(d, 3 * d)), d)) * rng.uniform(0.1, 9)
        for _ in range(layers)
    ]
    wt = np.concatenate([s.T for s in styles], axis=1)  # (d, sum out): genforce's layout
    wt = wt / np.linalg.norm(wt, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(wt @ wt.T)  # what factorize_weight calls
    order = np.argsort(values.real)[::-1]
    ref_values, ref_vectors = values.real[order], vectors.real[:, order].T
    ours, our_values = sefa(np.concatenate(styles), d, "output")
    np.testing.assert_allclose(our_values, ref_values, rtol=1e-8, atol=1e-8)
    gaps = np.abs(np.diff(ref_values)) > 1e-6 * ref_values[0]
    for i in range(d):  # eigenvectors agree up to sign where the eigenvalue is simple
        if (i == 0 or gaps[i - 1]) and (i == d - 1 or gaps[i]):
            assert abs(abs(float(ours[i] @ ref_vectors[i])) - 1) < 1e-6
    # the output-normalised factorisation differs from the latent-normalised one in general
    latent, _ = sefa(np.concatenate(styles), d, "latent")
    assert latent.shape == ours.shape


SP = validate_spaces.ModelSpaces(("z", "w", "w+"), "w", z_dim=8, w_dim=6, num_ws=4)
Z_ONLY = validate_spaces.ModelSpaces(("z",), "z", z_dim=8)


def test_space_defaults_and_refusals() -> None:
    assert validate_spaces.space("", SP) == "w" and validate_spaces.space("w+", SP) == "w+"
    with pytest.raises(InvalidArgument, match=r"'w' is not a space of this model: it has \['z'\]"):
        validate_spaces.space("w", Z_ONLY)
    with pytest.raises(InvalidArgument, match="spaces are"):
        validate_spaces.space("s", SP)
    assert SP.shape("z") == (8,) and SP.shape("w") == (6,) and SP.shape("w+") == (4, 6)
    assert (
        validate_spaces.direction_space("w+") == "w" and validate_spaces.direction_space("z") == "z"
    )


def test_direction_in_the_wrong_space_names_both_spaces() -> None:
    validate_spaces.check_direction_space("m/a", "w", "w+")
    validate_spaces.check_direction_space("m/a", "", "z")  # stored before spaces: z
    with pytest.raises(InvalidArgument, match="m/a lives in space 'z'; it cannot edit 'w\\+'"):
        validate_spaces.check_direction_space("m/a", "z", "w+")
    with pytest.raises(InvalidArgument, match="m/a lives in space 'w'; it cannot edit 'z'"):
        validate_spaces.check_direction_space("m/a", "w", "z")


def test_codes_take_3d_or_flattened_wplus_and_refuse_other_shapes() -> None:
    x = np.random.default_rng(0).standard_normal((3, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(validate.codes(to_tensor(x), (4, 6), 8), x)
    np.testing.assert_array_equal(validate.codes(to_tensor(x.reshape(3, 24)), (4, 6), 8), x)
    np.testing.assert_array_equal(validate.codes(to_tensor(x[0]), (4, 6), 8), x[:1])
    with pytest.raises(InvalidArgument, match=r"expected shape \(N, 4, 6\) in w\+, got \(3, 6\)"):
        validate.codes(to_tensor(x[:, 0]), (4, 6), 8)
    x[1, 2, 3] = np.nan
    with pytest.raises(InvalidArgument, match="non-finite"):
        validate.codes(to_tensor(x), (4, 6), 8)


def test_space_request_checks_space_only_fields() -> None:
    w = np.zeros((1, 6), np.float32)
    assert validate_spaces.space_request(pb.EditRequest(latents=to_tensor(w)), SP) == ("w", (6,))
    with pytest.raises(InvalidArgument, match="layers: layer ranges need space 'w\\+'"):
        validate_spaces.space_request(pb.EditRequest(space="w", layers="0-1"), SP)
    with pytest.raises(InvalidArgument, match=r"edits\[1\]\.layers"):
        validate_spaces.space_request(
            pb.EditRequest(
                space="w+",
                edits=[pb.DirectionStrength(layers="0"), pb.DirectionStrength(layers="9")],
            ),
            SP,
        )
    req = pb.GenerateRequest(space="z", truncation_psi=0.7)
    req.seeds.seeds.append(1)
    with pytest.raises(InvalidArgument, match="truncation_psi applies"):
        validate_spaces.space_request(req, SP)
    req.space = "w+"
    assert validate_spaces.space_request(req, SP) == ("w+", (4, 6))
    # tuning ids (a tuned generator) go with codes of any space, a residual with z only
    tuned = pb.GenerateRequest(space="w", extras=pb.CodeExtras(tuning_ids=["a"]))
    assert validate_spaces.space_request(tuned, SP) == ("w", (6,))
    with pytest.raises(InvalidArgument, match=r"extras\.residual applies to z codes, not 'w'"):
        validate_spaces.space_request(
            pb.GenerateRequest(
                space="w", extras=pb.CodeExtras(residual=to_tensor(np.zeros((1, 2, 4, 4))))
            ),
            SP,
        )
    with pytest.raises(InvalidArgument, match=r"params\.layers: layer ranges need space"):
        validate_spaces.space_request(
            pb.DiscoverDirectionsRequest(space="z", params={"layers": "0"}), SP
        )
    with pytest.raises(InvalidArgument, match="it has \\['z'\\]"):
        validate_spaces.space_request(pb.ScoreRequest(space="w+"), Z_ONLY)
