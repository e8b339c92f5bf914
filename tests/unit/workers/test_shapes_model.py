"""The shapes testbed: weight structure, factor semantics in pixels, and its contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentedit.workers.models.registry import ARCHITECTURES, ModelSpec
from latentedit.workers.models.runtime import load_model
from latentedit.workers.models.shapes import (
    CORRELATED,
    CORRELATION,
    FACTOR_NAMES,
    FACTOR_RANGES,
    SHAPES_SPEC_KWARGS,
    ShapesGenerator,
    hsv_to_rgb,
)

IDX = {name: i for i, name in enumerate(FACTOR_NAMES)}


@pytest.fixture(scope="module")
def gen() -> ShapesGenerator:
    return ShapesGenerator().eval().requires_grad_(False)


def _factors(**values: float) -> torch.Tensor:
    """A (1, 6) factor row: the middle of each range unless given."""
    row = [(lo + hi) / 2 for lo, hi in FACTOR_RANGES]
    for name, value in values.items():
        row[IDX[name]] = value
    return torch.tensor([row], dtype=torch.float32)


def test_mixing_weight_structure(gen: ShapesGenerator) -> None:
    w = gen.mixing.weight.detach().double()
    col_norms = w.norm(dim=0)
    zero = [j for j in range(16) if col_norms[j] == 0]
    assert zero == gen.nuisance_dims and len(zero) == 4
    live = torch.tensor([j for j in range(16) if j not in zero])
    assert torch.allclose(col_norms[live], col_norms[live].mean().expand(12), rtol=1e-6)
    # The nuisance map reads only the nuisance dims.
    nw = gen.nuisance.weight.detach()
    assert torch.all(nw[:, live] == 0) and torch.all(nw[:, gen.nuisance_dims].abs().sum(0) > 0)
    t = gen.true_directions()
    assert torch.allclose(t.norm(dim=1), torch.ones(6, dtype=torch.float64))
    gram = t @ t.T
    a, b = IDX[CORRELATED[0]], IDX[CORRELATED[1]]
    assert gram[a, b] == pytest.approx(CORRELATION, abs=1e-6) and gram[a, b] >= 0.5
    off = gram - torch.diag(torch.diag(gram))
    off[a, b] = off[b, a] = 0
    assert off.abs().max() < 1e-6


def test_spec_fields_load_through_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ARCHITECTURES, "shapes", ShapesGenerator)
    spec = ModelSpec(**SHAPES_SPEC_KWARGS)
    loaded, again = load_model(spec), load_model(spec)
    assert loaded.version == again.version and len(loaded.version) == 16
    a = loaded.first_projection()
    assert a.shape == (6, 16)
    assert torch.equal(a, loaded.generator.mixing.weight.double())
    pixels = loaded.render(np.zeros((2, 16), np.float32))
    assert pixels.shape == (2, 64, 64, 3) and pixels.dtype == np.uint8
    # Another seed is another model version, with the same structure.
    other = ModelSpec(**{**SHAPES_SPEC_KWARGS, "arch_kwargs": {"seed": 1}})
    assert load_model(other).version != loaded.version
    t = ShapesGenerator(seed=1).true_directions()
    assert (t @ t.T)[IDX["scale"], IDX["hue"]] == pytest.approx(CORRELATION, abs=1e-6)


def test_forward_contract(gen: ShapesGenerator) -> None:
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    x = gen(z)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    # Batch-independent: each image is the same rendered alone.
    alone = torch.cat([gen(z[i : i + 1]) for i in range(5)])
    assert torch.allclose(x, alone, atol=1e-6)
    with pytest.raises(ValueError):
        gen(torch.zeros(2, 15))


def test_forward_is_differentiable_in_every_latent_dim() -> None:
    g = ShapesGenerator()
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g(z).square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert (z.grad.abs().sum(0) > 0).all()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (4, 16), elements=st.floats(-50, 50)))
def test_factors_stay_in_their_ranges(z: np.ndarray) -> None:
    f = ShapesGenerator().factors(torch.from_numpy(z))
    lo = torch.tensor([r[0] for r in FACTOR_RANGES], dtype=torch.float64)
    hi = torch.tensor([r[1] for r in FACTOR_RANGES], dtype=torch.float64)
    assert f.shape == (4, 6) and bool((f >= lo).all()) and bool((f <= hi).all())


def test_factors_match_the_rendering_pre_activations(gen: ShapesGenerator) -> None:
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    u = z.double() @ gen.mixing.weight.double().T
    lo, hi = gen.factor_ranges[:, 0].double(), gen.factor_ranges[:, 1].double()
    assert torch.allclose(gen.factors(z), lo + (hi - lo) * (torch.tanh(u) + 1) / 2)


def test_true_direction_moves_only_its_factor(gen: ShapesGenerator) -> None:
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = gen.true_directions()
    for i, name in enumerate(FACTOR_NAMES):
        before, after = gen.factors(z), gen.factors(z + 0.5 * t[i])
        assert (after[:, i] > before[:, i]).all()
        others = [j for j in range(6) if j != i and {name, FACTOR_NAMES[j]} != set(CORRELATED)]
        assert torch.allclose(after[:, others], before[:, others], atol=1e-9)


def test_nuisance_dims_change_only_texture(gen: ShapesGenerator) -> None:
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(4))
    z2 = z.clone()
    z2[:, gen.nuisance_dims] = torch.randn(8, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(gen.factors(z), gen.factors(z2))
    x, x2 = gen(z), gen(z2)
    diff = (x - x2).abs()
    assert diff.amax() > 0.02  # the texture does move
    assert diff.amax() < 0.35  # but only faintly (about 8% of the shape's colour)
    assert diff[:, :, :2, :2].amax() < 1e-6  # corners are background


def _mask(image: torch.Tensor, background: float) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W) weight of 'not background'."""
    return ((image + 1) / 2 - background).abs().amax(0)


def _moments(weight: torch.Tensor) -> tuple[float, float, float]:
    """Centroid (x, y) in image coordinates and the principal-axis angle (screen CCW)."""
    r = weight.shape[0]
    c = (torch.arange(r, dtype=torch.float64) + 0.5) / r * 2 - 1
    gy, gx = torch.meshgrid(c, c, indexing="ij")
    w = weight.double() / weight.sum()
    mx, my = float((w * gx).sum()), float((w * gy).sum())
    cxx = float((w * (gx - mx) ** 2).sum())
    cyy = float((w * (gy - my) ** 2).sum())
    cxy = float((w * (gx - mx) * (gy - my)).sum())
    angle_down = 0.5 * math.atan2(2 * cxy, cxx - cyy)  # y axis pointing down
    return mx, my, -angle_down


@pytest.mark.parametrize(("x", "y", "rotation"), [(-0.3, 0.2, 0.0), (0.25, -0.35, 0.7)])
def test_position_and_rotation_in_pixels(
    gen: ShapesGenerator, x: float, y: float, rotation: float
) -> None:
    image = gen.render(_factors(x=x, y=y, rotation=rotation, background=0.1), torch.zeros(1, 2))
    mx, my, angle = _moments(_mask(image[0], 0.1))
    pixel = 2 / 64
    assert mx == pytest.approx(x, abs=pixel) and my == pytest.approx(y, abs=pixel)
    assert angle == pytest.approx(rotation, abs=0.05)


def test_scale_sets_the_area(gen: ShapesGenerator) -> None:
    areas = []
    for scale in (0.2, 0.4):
        image = gen.render(_factors(scale=scale, background=0.1), torch.zeros(1, 2))
        areas.append(float(_mask(image[0], 0.1).sum()))  # soft area, edges scale with size
    assert areas[1] / areas[0] == pytest.approx(4.0, rel=0.05)


def test_background_and_hue_in_pixels(gen: ShapesGenerator) -> None:
    for background in (0.15, 0.8):
        image = gen.render(_factors(background=background), torch.zeros(1, 2))
        corners = (image[0, :, [0, 0, -1, -1], [0, -1, 0, -1]] + 1) / 2
        assert torch.allclose(corners, torch.full_like(corners, background), atol=1e-4)
    for hue, channel in ((0.0, 0), (120.0, 1), (240.0, 2)):
        image = gen.render(_factors(hue=hue), torch.zeros(1, 2))
        centre = image[0, :, 31:33, 31:33].mean(dim=(1, 2))
        assert int(centre.argmax()) == channel


def test_hsv_to_rgb_primaries() -> None:
    rgb = hsv_to_rgb(torch.tensor([0.0, 60.0, 120.0, 240.0]), 1.0, 1.0)
    expected = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert torch.allclose(rgb, expected)
