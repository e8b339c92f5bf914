"""Scorers: image-statistic proxies, exact testbed factors, operator TorchScript files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import Tensor, nn

from latentedit.errors import InvalidArgument, NotFound
from latentedit.workers.methods.interfacegan import train_boundary
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.shapes import FACTOR_NAMES, ShapesGenerator
from latentedit.workers.scorers import (
    Scorer,
    asymmetry,
    background_green,
    border_mask,
    brightness,
    get_scorer,
    load_exported_scorer,
    load_torchscript_scorer,
    scorers_for,
    warmth,
)

PROXIES = {"brightness", "warmth", "background_green", "asymmetry"}

images_strategy = arrays(np.float32, (2, 3, 16, 16), elements=st.floats(-1, 1, width=32))


def _images(seed: int, n: int = 4, side: int = 32) -> Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_registry_by_model() -> None:
    faces = scorers_for("dcgan-faces", DCGANGenerator())
    assert set(faces) == PROXIES
    assert all(s.needs_images and not s.needs_latents and not s.exact for s in faces.values())
    shapes = scorers_for("shapes", ShapesGenerator())
    assert list(shapes) == list(FACTOR_NAMES)
    assert all(s.needs_latents and not s.needs_images and s.exact for s in shapes.values())
    with pytest.raises(NotFound, match="brightness"):
        get_scorer("dcgan-faces", DCGANGenerator(), "smile")


@settings(max_examples=30, deadline=None)
@given(images_strategy, st.floats(0.05, 0.5))
def test_brightening_raises_brightness(pixels: np.ndarray, delta: float) -> None:
    x = torch.from_numpy(pixels)
    brighter = (x + delta).clamp(-1, 1)
    before, after = brightness(x), brightness(brighter)
    assert bool((after >= before).all())
    unsaturated = (x < 1 - delta).all(dim=(1, 2, 3))
    assert bool((after[unsaturated] > before[unsaturated]).all())
    assert bool(((before >= 0) & (before <= 1)).all())


def test_brightness_of_flat_images() -> None:
    assert brightness(torch.full((1, 3, 8, 8), -1.0)).item() == pytest.approx(0.0)
    assert brightness(torch.ones(1, 3, 8, 8)).item() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(images_strategy)
def test_warmth_flips_when_red_and_blue_swap(pixels: np.ndarray) -> None:
    x = torch.from_numpy(pixels)
    swapped = x[:, [2, 1, 0]]
    assert torch.allclose(warmth(swapped), -warmth(x), atol=1e-6)
    redder = x.clone()
    redder[:, 0] = (redder[:, 0] + 0.3).clamp(-1, 1)
    assert bool((warmth(redder) >= warmth(x)).all())


def test_background_green_reads_only_the_border() -> None:
    x = _images(1)
    mask = border_mask(32, 32)
    assert mask[0].all() and mask[:, 0].all() and not mask[16, 16]
    inner = x.clone()
    inner[:, :, ~mask] = torch.rand(int((~mask).sum()))  # repaint the middle only
    assert torch.allclose(background_green(inner), background_green(x))
    greener = x.clone()
    greener[:, 1, mask] = 1.0
    greener[:, 0, mask] = -1.0
    assert bool((background_green(greener) > background_green(x)).all())
    assert background_green(greener).max() <= 1.0


@settings(max_examples=30, deadline=None)
@given(images_strategy)
def test_asymmetry_is_odd_under_mirroring(pixels: np.ndarray) -> None:
    x = torch.from_numpy(pixels)
    mirrored = x.flip(-1)
    assert torch.allclose(asymmetry(mirrored), -asymmetry(x), atol=1e-6)
    symmetric = (x + mirrored) / 2
    assert torch.allclose(asymmetry(symmetric), torch.zeros(2), atol=1e-6)


def test_asymmetry_sign_follows_the_brighter_side() -> None:
    x = torch.zeros(1, 3, 32, 32)
    x[..., :16] = 0.5  # left half brighter
    assert asymmetry(x).item() > 0
    assert asymmetry(x.flip(-1)).item() < 0


def test_scorer_call_contract() -> None:
    s = scorers_for("dcgan-faces", DCGANGenerator())["brightness"]
    out = s(_images(2, n=3))
    assert out.shape == (3,) and out.dtype == torch.float64
    with pytest.raises(InvalidArgument, match="needs images"):
        s(None, torch.zeros(3, 100))
    with pytest.raises(InvalidArgument, match=r"\(N, 3, H, W\)"):
        s(torch.zeros(3, 1, 8, 8))
    bad = Scorer("bad", "returns a matrix", lambda images, latents: torch.zeros(3, 2))
    with pytest.raises(InvalidArgument, match="scores"):
        bad(_images(3, n=3))


def test_shapes_scorers_are_the_exact_factors() -> None:
    gen = ShapesGenerator()
    z = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    scorers = scorers_for("shapes", gen)
    for i, name in enumerate(FACTOR_NAMES):
        got = scorers[name](None, z)
        assert torch.allclose(got, gen.factors(z)[:, i])
    assert torch.allclose(scorers["x"](None, z.numpy()), scorers["x"](None, z))  # numpy latents
    with pytest.raises(InvalidArgument, match="needs latents"):
        scorers["hue"](gen(z))


def test_image_proxies_find_the_testbed_directions() -> None:
    """On shapes, brightness tracks the background and warmth tracks -hue (red 0, blue 240)."""
    gen = ShapesGenerator().eval().requires_grad_(False)
    truth = gen.true_directions().numpy()
    z = np.random.default_rng(5).standard_normal((2000, 16)).astype(np.float32)
    with torch.inference_mode():
        images = torch.cat([gen(torch.from_numpy(z[i : i + 500])) for i in range(0, 2000, 500)])
    proxies = scorers_for("dcgan-faces", DCGANGenerator())
    bright = train_boundary(z, proxies["brightness"](images).numpy())
    warm = train_boundary(z, proxies["warmth"](images).numpy())
    assert float(bright.normal @ truth[FACTOR_NAMES.index("background")]) >= 0.95
    assert float(warm.normal @ truth[FACTOR_NAMES.index("hue")]) <= -0.95


class _MeanLuma(nn.Module):
    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: Tensor) -> Tensor:
        rgb = (x + 1) / 2
        out = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).mean(dim=(1, 2))
        return out[:, None] if self.keepdim else out


class _Pair(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))[:, :2]


def _script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
        torch.jit.script(module).save(str(path))
    return path


@pytest.mark.parametrize("keepdim", [False, True])
def test_torchscript_scorer_round_trip(tmp_path: Path, keepdim: bool) -> None:
    path = _script(_MeanLuma(keepdim), tmp_path / "luma.pt")
    scorer = load_torchscript_scorer(path)
    assert scorer.name == "luma" and scorer.needs_images and not scorer.needs_latents
    x = _images(4, n=5)
    np.testing.assert_allclose(scorer(x).numpy(), brightness(x).numpy(), rtol=1e-5, atol=1e-6)


def test_torchscript_scorer_rejects_bad_files_and_outputs(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_torchscript_scorer(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(InvalidArgument, match="TorchScript"):
        load_torchscript_scorer(garbage)
    pair = load_torchscript_scorer(_script(_Pair(), tmp_path / "pair.pt"))
    with pytest.raises(InvalidArgument, match=r"\(3,\) or \(3, 1\)"):
        pair(_images(5, n=3))
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    fixed = load_torchscript_scorer(_script(linear, tmp_path / "linear.pt"))
    assert fixed(_images(6, n=2, side=8)).shape == (2,)
    with pytest.raises(InvalidArgument, match="failed"):
        fixed(_images(6, n=2, side=16))  # the module only takes 8x8


def test_exported_scorer_round_trip(tmp_path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        _MeanLuma(False), (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(tmp_path / "luma.pt2"))
    scorer = load_exported_scorer(tmp_path / "luma.pt2", name="luma")
    x = _images(6, n=3, side=16)
    np.testing.assert_allclose(scorer(x).numpy(), brightness(x).numpy(), rtol=1e-5, atol=1e-6)
