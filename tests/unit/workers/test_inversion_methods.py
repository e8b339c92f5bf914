"""Inversion methods: SSIM, hybrid, extended, tune (deltas), auto, progress and cancel.

Most tests use a toy DCGAN (latent 16, width 8, BatchNorm statistics calibrated on
its own samples) so that they run in seconds; the tuning test also runs the real
``dcgan-faces`` generator on real face photos from tests/data/faces.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.ndimage import gaussian_filter

from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods import tuning_store
from latentedit.workers.methods.encoder import Encoder, train_encoder
from latentedit.workers.methods.preprocess import preprocess
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.runtime import from_uint8, to_uint8

log = logging.getLogger(__name__)

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"
D = 16


def toy_generator(seed: int = 0) -> DCGANGenerator:
    """A small random DCGAN whose BatchNorm statistics come from its own samples."""
    torch.manual_seed(seed)
    g = DCGANGenerator(latent_dim=D, width=8)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    g.train()
    with torch.no_grad():
        g(torch.randn(512, D))
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def gen() -> DCGANGenerator:
    return toy_generator(0)


@pytest.fixture(scope="module")
def encoder(gen: DCGANGenerator) -> Encoder:
    enc, report = train_encoder(
        gen, D, 64, steps=100, batch_size=32, lr=2e-3, seed=0, width=8, pixel_start=0.3
    )
    log.info("toy encoder: val PSNR %.2f dB after %d steps", report.val_psnr, report.steps)
    return enc


def samples(gen: DCGANGenerator, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(n, D, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return z, gen(z)


# --------------------------------------------------------------------- SSIM


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM with scipy's Gaussian filter, 'valid' part only: (C, H, W) in [0, 1]."""
    out = []
    for ca, cb in zip(a.astype(np.float64), b.astype(np.float64), strict=True):

        def f(x: np.ndarray) -> np.ndarray:
            return gaussian_filter(x, 1.5, truncate=5 / 1.5, mode="constant")[5:-5, 5:-5]

        mu_a, mu_b = f(ca), f(cb)
        va, vb = f(ca * ca) - mu_a**2, f(cb * cb) - mu_b**2
        cov = f(ca * cb) - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
        out.append(s.mean())
    return float(np.mean(out))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(0.01, 0.5))
def test_ssim_matches_a_reference_and_is_one_on_identity(seed: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random((2, 3, 24, 20))
    b = np.clip(a + noise * rng.standard_normal(a.shape), 0, 1)
    ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
    got = inv.ssim(ta, tb).numpy()
    want = [_ssim_reference(a[i], b[i]) for i in range(2)]
    np.testing.assert_allclose(got, want, atol=2e-4)
    np.testing.assert_allclose(inv.ssim(ta, ta).numpy(), 1.0, atol=1e-5)


def test_ssim_falls_as_noise_grows() -> None:
    x = to01(toy_generator(3)(torch.randn(4, D)))
    gen = torch.Generator().manual_seed(0)
    values = [
        inv.ssim(x, (x + s * torch.randn(x.shape, generator=gen)).clamp(0, 1)).mean().item()
        for s in (0.0, 0.02, 0.05, 0.1, 0.3)
    ]
    assert values[0] == pytest.approx(1.0, abs=1e-5)
    assert all(a > b for a, b in itertools.pairwise(values)), values


def to01(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(-1, 1) + 1) / 2


# --------------------------------------------------------------- generator split


def test_dcgan_head_tail_compose_and_keep_state_dict_keys() -> None:
    g = toy_generator(1)
    z = torch.randn(3, D)
    h = g.head(z)
    assert h.shape == (3, 64, 4, 4)
    torch.testing.assert_close(g.tail(h), g(z), rtol=0, atol=0)
    assert next(iter(g.state_dict())) == "main.0.weight"
    assert set(g.state_dict()) == set(DCGANGenerator(latent_dim=D, width=8).state_dict())
    with pytest.raises(ValueError):
        g.head(torch.randn(3, D + 1))


# ------------------------------------------------------------------- methods


def test_hybrid_beats_encoder_alone(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(gen, 6, seed=99)  # held out: the trainer never saw seed 99
    z_enc = inv.encode(encoder, x)
    enc_psnr = inv.psnr(gen(z_enc), x)
    res = inv.hybrid(gen, encoder, x, inv.HybridConfig(steps=60, lr=0.1, domain_weight=1e-3))
    log.info("encoder %.2f dB, hybrid %.2f dB", enc_psnr.mean(), res.psnr.mean())
    assert res.psnr.mean() > enc_psnr.mean() + 3
    assert bool((res.psnr >= enc_psnr - 1e-4).all())  # best iterate: never worse than its start
    torch.testing.assert_close(inv.psnr(gen(res.z), x), res.psnr, atol=1e-3, rtol=0)


def test_encoder_feedback_improves_on_one_pass_and_never_loses(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    _, x = samples(gen, 16, seed=97)
    one = inv.psnr(gen(inv.encode(encoder, x)), x)
    z0, p0 = inv.encode_feedback(gen, encoder, x, inv.FeedbackConfig(passes=0))
    torch.testing.assert_close(z0, inv.encode(encoder, x))
    torch.testing.assert_close(p0, one)
    z, p = inv.encode_feedback(gen, encoder, x, inv.FeedbackConfig(passes=6))
    log.info("encoder one pass %.2f dB, with feedback %.2f dB", one.mean(), p.mean())
    assert bool((p >= one - 1e-4).all())  # the best iterate is kept
    assert p.mean() > one.mean() + 0.5
    torch.testing.assert_close(inv.psnr(gen(z), x), p, atol=1e-3, rtol=0)


def test_the_encoder_method_polishes_its_best_code_within_its_step_budget(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    """After the feedback passes, the call's step budget optimises from the best code; the
    better of the two is returned."""
    _, x = samples(gen, 8, seed=99)
    res = inv.invert("encoder", gen, x, inv.InvertConfig(steps=3), encoder=encoder)
    assert [[(t[0], t[2]) for t in trail] for trail in res.trail] == [
        [("encoder", 0), ("encoder", 3)]
    ] * 8
    assert res.methods == ["encoder"] * 8 and res.steps.tolist() == [3] * 8
    passes = np.array([trail[0][1] for trail in res.trail])
    polished = np.array([trail[1][1] for trail in res.trail])
    log.info("encoder passes %.2f dB, polished %.2f dB", passes.mean(), polished.mean())
    assert polished.mean() > passes.mean() + 0.1
    assert (res.psnr >= np.maximum(passes, polished) - 0.25).all()  # uint8 vs float PSNR


def test_hybrid_starts_from_the_encoders_feedback_passes(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    _, x = samples(gen, 4, seed=100)
    _, fed = inv.encode_feedback(gen, encoder, x, inv.FeedbackConfig())
    res = inv.invert("hybrid", gen, x, inv.InvertConfig(steps=4), encoder=encoder)
    start = np.array([trail[0][1] for trail in res.trail])
    np.testing.assert_allclose(start, fed.numpy(), atol=1e-3)


def test_domain_regulariser_keeps_codes_closer_to_the_encoder(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    _, x = samples(gen, 6, seed=98)
    gaps = []
    for weight in (0.0, 1.0):
        cfg = inv.HybridConfig(steps=40, lr=0.1, domain_weight=weight)
        z = inv.hybrid(gen, encoder, x, cfg).z
        gaps.append((z - inv.encode(encoder, gen(z))).square().mean().item())
    assert gaps[1] < gaps[0], gaps


def test_extended_reaches_at_least_optimize_on_the_same_budget(gen: DCGANGenerator) -> None:
    # Images made with a residual on the first feature map: out of range for z alone.
    g = torch.Generator().manual_seed(5)
    z_star = torch.randn(4, D, generator=g)
    r_star = inv.feature_scale(gen, D) * torch.randn(4, 64, 4, 4, generator=g)
    with torch.no_grad():
        x = inv.generate(gen, z_star, r_star)
    z0 = torch.randn(4, 1, D, generator=torch.Generator().manual_seed(1))
    opt = inv.optimize(gen, x, z0, inv.OptimizeConfig(steps=60, restarts=1, lr=0.1))
    ext = inv.extended(gen, x, z0[:, 0], inv.ExtendedConfig(steps=60, lr_z=0.1))
    log.info("optimize %.2f dB, extended %.2f dB", opt.psnr.mean(), ext.psnr.mean())
    assert ext.residual is not None and ext.residual.shape == (4, 64, 4, 4)
    assert ext.psnr.mean() >= opt.psnr.mean() + 1
    assert bool((ext.psnr >= opt.psnr).all())
    torch.testing.assert_close(
        inv.psnr(inv.generate(gen, ext.z, ext.residual), x), ext.psnr, atol=1e-3, rtol=0
    )
    # Edits act on z and keep the residual: moving z changes the image, r = 0 is plain G.
    torch.testing.assert_close(inv.generate(gen, ext.z, torch.zeros_like(ext.residual)), gen(ext.z))


def test_batching_does_not_change_an_images_answer(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(gen, 4, seed=77)
    cfg = inv.HybridConfig(steps=25, lr=0.1, domain_weight=1e-2)
    together = inv.hybrid(gen, encoder, x, cfg, steps=torch.tensor([25, 10, 25, 5]))
    alone = inv.hybrid(gen, encoder, x[1:2], cfg, steps=10)
    torch.testing.assert_close(together.z[1:2], alone.z, atol=1e-4, rtol=1e-4)
    assert together.steps.tolist() == [25, 10, 25, 5]


def test_target_psnr_stops_an_image_early(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(gen, 3, seed=55)
    start = inv.psnr(gen(inv.encode(encoder, x)), x)
    target = torch.stack([start[0] + 1, torch.tensor(math.inf), start[2] - 1])
    res = inv.hybrid(
        gen, encoder, x, inv.HybridConfig(steps=80, lr=0.1), inv.Run(target_psnr=target)
    )
    assert res.steps[2] == 0  # already there
    assert 0 < res.steps[0] < 80 and res.psnr[0] >= target[0]
    assert res.steps[1] == 80


def test_progress_is_called_and_cancel_stops_early(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(gen, 3, seed=44)
    calls: list[tuple[int, float, np.ndarray]] = []

    def progress(step: int, loss: float, psnr: np.ndarray) -> bool:
        calls.append((step, loss, psnr.copy()))
        return len(calls) < 3

    cfg = inv.InvertConfig(steps=200, progress_every=5)
    res = inv.invert("hybrid", gen, x, cfg, encoder=encoder, progress=progress)
    assert [c[0] for c in calls] == [5, 10, 15]
    assert all(c[2].shape == (3,) and np.isfinite(c[2]).all() for c in calls)
    assert res.cancelled
    assert (res.steps <= 16).all() and (res.steps > 0).all()
    assert np.isfinite(res.psnr).all() and res.latents.shape == (3, D)
    # What was reached is returned: at least the encoder's start.
    assert (res.psnr >= np.array([t[0][1] for t in res.trail]) - 0.1).all()


def test_optimize_with_restarts_keeps_the_best_start(gen: DCGANGenerator) -> None:
    z_true, x = samples(gen, 2, seed=33)
    z0 = torch.randn(2, 4, D, generator=torch.Generator().manual_seed(2))
    z0[1, 2] = z_true[1] + 0.01  # one start right next to the answer
    res = inv.optimize(gen, x, z0, inv.OptimizeConfig(steps=16, restarts=4, lr=0.01))
    assert res.psnr[1] > 35
    assert res.steps.tolist() == [16, 16]  # iterations: warm-up on all starts, then the best


# ------------------------------------------------------------------ tuning


def real_faces(n: int) -> torch.Tensor:
    files = sorted(FACES.glob("*.png"))[:n]
    pixels = [preprocess(np.asarray(Image.open(f).convert("RGB")), 64)[0] for f in files]
    return from_uint8(np.stack(pixels))


@pytest.fixture(scope="module")
def faces_model() -> DCGANGenerator:
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    generator = load_model(get_spec("dcgan-faces")).generator
    assert isinstance(generator, DCGANGenerator)
    return generator


def test_tune_improves_real_photos_and_apply_delta_restores_exactly(
    faces_model: DCGANGenerator,
) -> None:
    g = faces_model
    x = real_faces(2)
    pivot = inv.extended(g, x, torch.zeros(2, 100), inv.ExtendedConfig(steps=15, lr_z=0.1))
    cfg = inv.TuneConfig(steps=15, lr=1e-2, rank=4, skip_first=0)
    tuned = inv.tune(g, x, pivot.z, cfg, residual=pivot.residual)
    log.info("pivot %s dB -> tuned %s dB", pivot.psnr.tolist(), tuned.psnr.tolist())
    assert bool((tuned.psnr > pivot.psnr + 0.5).all())
    assert tuned.deltas is not None and len(tuned.deltas) == 2
    delta = tuned.deltas[0]
    assert all(t.dtype == torch.float16 for t in delta.values())
    # rank-4 factors of every conv weight, full BatchNorm vectors
    want = 0
    for p in g.parameters():
        want += (p.shape[0] + p[0].numel()) * 4 if p.ndim > 1 else p.numel()
    assert inv.delta_nbytes(delta) == tuning_store.delta_nbytes(delta) == 2 * want

    before = {k: v.clone() for k, v in g.state_dict().items()}
    plain = g(pivot.z[:1])
    with inv.apply_delta(g, delta):
        inside = inv.generate(g, pivot.z[:1], pivot.residual[:1])
        changed = g(pivot.z[:1])
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    assert not torch.allclose(changed, plain, atol=1e-3)
    # render() gives the same pictures without touching the shared module
    rendered = inv.render(g, pivot.z, pivot.residual, [delta, None])
    torch.testing.assert_close(rendered[:1], inside, atol=2e-3, rtol=0)
    torch.testing.assert_close(rendered[1:], inv.generate(g, pivot.z[1:], pivot.residual[1:]))
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())


# --------------------------------------------------------------------- auto


def test_auto_escalates_until_the_target(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(toy_generator(9), 2, seed=3)  # out of range: needs the later methods
    cfg = inv.InvertConfig(
        steps=60,
        tune=inv.TuneConfig(rank=2, lr=1e-2),
        hybrid=inv.HybridConfig(lr=0.1),
        extended_gap_db=math.inf,  # every image takes every stage
    )
    res = inv.invert("auto", gen, x, cfg, encoder=encoder, target_psnr=math.inf)
    assert [[t[0] for t in trail] for trail in res.trail] == [
        ["encoder", "hybrid", "extended", "tune"]
    ] * 2
    for trail in res.trail:
        gains = [t[1] for t in trail]
        assert gains == sorted(gains)  # each stage starts from the previous best
    assert res.steps.tolist() == [60, 60]
    assert res.deltas is not None and all(d is not None for d in res.deltas)
    assert res.methods == ["tune", "tune"]
    assert res.residuals is not None and res.residuals.shape == (2, 64, 4, 4)
    # the reconstruction is what render() gives for the returned code
    again = inv.render(
        gen, torch.from_numpy(res.latents), torch.from_numpy(res.residuals), res.deltas
    )
    recon = ((again.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(recon.astype(int) - res.reconstructions.astype(int)).max() <= 1

    easy = inv.invert("auto", gen, x, cfg, encoder=encoder, target_psnr=0.0)
    assert easy.methods == ["encoder", "encoder"] and easy.steps.tolist() == [0, 0]
    assert easy.deltas is None and easy.residuals is None


def test_auto_runs_extended_only_for_images_near_their_target(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    _, x = samples(toy_generator(9), 1, seed=3)
    x = x.repeat(2, 1, 1, 1)
    cfg = inv.InvertConfig(steps=40, tune=inv.TuneConfig(rank=2), extended_gap_db=math.inf)
    full = inv.invert("auto", gen, x, cfg, encoder=encoder, target_psnr=math.inf)
    after_latent = [t[1][1] for t in full.trail]  # (method, PSNR, steps) of the hybrid stage
    assert [t[1][0] for t in full.trail] == ["hybrid", "hybrid"]
    # the same image: 1 dB to go (within the gap) and 30 dB to go (past it)
    targets = torch.tensor([after_latent[0] + 1.0, after_latent[1] + 30.0])
    res = inv.invert(
        "auto", gen, x, replace(cfg, extended_gap_db=6.0), encoder=encoder, target_psnr=targets
    )
    stages = [[t[0] for t in trail] for trail in res.trail]
    assert stages[0][:3] == ["encoder", "hybrid", "extended"], stages
    assert stages[1] == ["encoder", "hybrid", "tune"], stages
    assert [t[1][1] for t in res.trail] == after_latent  # same latent stage either way


def test_invert_reports_metrics_for_every_method(gen: DCGANGenerator, encoder: Encoder) -> None:
    _, x = samples(gen, 2, seed=11)
    z0 = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(0))
    cfg = inv.InvertConfig(steps=10, tune=inv.TuneConfig(rank=1))
    for method in inv.METHODS:
        res = inv.invert(method, gen, x, cfg, encoder=encoder, z0=z0)
        assert res.reconstructions.shape == (2, 64, 64, 3) and res.reconstructions.dtype == np.uint8
        assert res.psnr.shape == (2,) and res.ssim.shape == (2,)
        assert np.all(res.ssim <= 1) and np.all(res.ssim > 0)
        assert res.methods == [method] * 2, (method, res.methods)
        assert res.steps.max() <= 10 and res.seconds > 0
        # code_psnr: the plain generator at the returned codes, without residual / delta
        plain = inv.psnr_uint8(to_uint8(gen(torch.from_numpy(res.latents))), to_uint8(x))
        assert res.code_psnr is not None
        np.testing.assert_allclose(res.code_psnr, plain, atol=1e-6)
        if method in ("extended", "tune"):  # the extras carry what the code cannot
            assert np.all(res.code_psnr < res.psnr - 0.1), (method, res.code_psnr, res.psnr)
        else:
            np.testing.assert_array_equal(res.code_psnr, res.psnr)
    with pytest.raises(ValueError):
        inv.invert("nope", gen, x, cfg, encoder=encoder)
    with pytest.raises(ValueError):
        inv.invert("hybrid", gen, x, cfg)  # no encoder


def test_face_fixtures_are_listed_in_sources() -> None:
    sources = (FACES / "SOURCES.md").read_text()
    files = sorted(FACES.glob("*.png"))
    assert len(files) >= 8
    for f in files:
        assert f.name in sources
        with Image.open(f) as im:
            assert im.size == (128, 128) and im.mode == "RGB"


def test_a_torchscript_feature_network_drives_the_feature_loss(
    gen: DCGANGenerator, tmp_path: Path
) -> None:
    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [torch.nn.functional.avg_pool2d(x, 4), torch.nn.functional.avg_pool2d(x, 16)]

    path = tmp_path / "feat.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
        torch.jit.script(Pool()).save(str(path))
    features = inv.load_perceptual(str(path))
    _, x = samples(gen, 2, seed=21)
    assert [f.shape for f in features(x)] == [(2, 3, 16, 16), (2, 3, 4, 4)]
    z0 = torch.zeros(2, D)
    plain = inv.extended(gen, x, z0, inv.ExtendedConfig(steps=5))
    feat = inv.extended(
        gen, x, z0, inv.ExtendedConfig(steps=5, feature_weight=10.0), inv.Run(features=features)
    )
    assert not torch.allclose(plain.z, feat.z)  # the feature term changes the gradient


def test_a_progress_mask_stops_only_the_marked_images(
    gen: DCGANGenerator, encoder: Encoder
) -> None:
    torch.manual_seed(0)  # invert() draws its starts from the global RNG: no order dependence
    _, x = samples(toy_generator(9), 3, seed=8)
    seen: list[tuple[int, np.ndarray]] = []

    def progress(step: int, loss: float, psnr: np.ndarray) -> np.ndarray:
        seen.append((step, psnr))
        return np.array([True, step < 20, True])  # image 1's client cancels at step 20

    cfg = inv.InvertConfig(
        steps=60,
        progress_every=5,
        tune=inv.TuneConfig(rank=1),
        shares=(0.25, 0.2),
        extended_gap_db=math.inf,
    )  # image 1 stops (step 20) in the extended stage, before tuning starts (step 27)
    res = inv.invert("auto", gen, x, cfg, encoder=encoder, progress=progress)
    stop = min(step for step, _ in seen if step >= 20)
    assert not res.cancelled
    assert res.steps[1] == stop < 60 and res.steps[0] == res.steps[2] == 60
    stages = [t[0] for t in res.trail[1]]
    assert stages[-1] != "tune" and len(stages) < len(res.trail[0])  # no later stage for it
    assert res.methods[0] == res.methods[2] == "tune"
    assert all(p.shape == (3,) for _, p in seen)
