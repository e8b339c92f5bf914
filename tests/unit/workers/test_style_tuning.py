"""Pivotal tuning of StyleGAN2 in W / W+: exact per-row deltas of modulated convolutions,
and tuning that reconstructs photos the generator cannot make while edits keep working.
Small seeded StyleGAN2 (32 px, w_dim 32), photos from tests/data/faces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.inversion.deltas import apply_delta, tunable_parameters
from latentedit.workers.methods.inversion.optim import blocking
from latentedit.workers.methods.inversion.tuner import render, shared_tuner
from latentedit.workers.methods.style_projection import project
from latentedit.workers.methods.style_tuning import (
    STYLE_TUNE,
    edit_error,
    render_tuned,
    renderer,
    tune_style_steps,
)
from latentedit.workers.models.runtime import LoadedModel


@pytest.fixture(scope="module")
def model(small_stylegan2: LoadedModel) -> LoadedModel:
    return small_stylegan2


@pytest.fixture(scope="module")
def photos(photos32: torch.Tensor) -> torch.Tensor:
    return photos32


def _lowrank(p: torch.Tensor, name: str, rank: int = 4) -> dict[str, torch.Tensor]:
    """Random rank-``rank`` factors of a (1, out, in, k, k) weight's delta, ~0.3 of its std."""
    out, rest = p.shape[1], p[0, 0].numel()
    u = torch.randn(out, rank) * p.std() * 0.3 / rank**0.5
    return {f"{name}.u": u.half(), f"{name}.v": torch.randn(rank, rest).half()}


@pytest.mark.parametrize("kind", ["full", "lowrank"])
def test_per_row_deltas_of_modulated_convs_render_as_the_tuned_weights_would(
    model: LoadedModel, kind: str
) -> None:
    g = model.generator
    names = tunable_parameters(g)
    # every modulated conv: 3x3 (plain and upsampling, demodulated) and 1x1 ToRGB (not)
    assert "conv1.conv.weight" in names and "convs.0.conv.weight" in names
    assert "to_rgb1.conv.weight" in names
    params = dict(g.named_parameters())
    torch.manual_seed(0)
    deltas: list[dict[str, torch.Tensor] | None] = [
        {f"{n}.d": (torch.randn_like(params[n]) * params[n].std() * 0.3).half() for n in names}
        if kind == "full"  # low-rank: the layer convolves with v's filters, then mixes by u
        else {k: v for n in names for k, v in _lowrank(params[n], n).items()}
        for _ in range(3)
    ]
    deltas[1] = None
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    batched = render(g, z, None, deltas)
    for i, delta in enumerate(deltas):
        if delta is None:
            want = g(z[i : i + 1])
        else:
            with apply_delta(g, delta):
                want = g(z[i : i + 1])
            assert (want - g(z[i : i + 1])).abs().max() > 0.1  # the delta does change it
        torch.testing.assert_close(batched[i : i + 1], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("space", ["w", "w+"])
def test_tuning_reconstructs_photos_past_projection_and_renders_what_it_reports(
    model: LoadedModel, photos: torch.Tensor, space: str
) -> None:
    projected = project(model, photos, space, 150)
    tuned = blocking(tune_style_steps)(model, photos, space, 150)
    assert tuned.steps == 150 and len(tuned.deltas) == 2
    gain = tuned.psnr - projected.psnr
    assert (gain >= 2).all(), (projected.psnr, tuned.psnr)
    x = render_tuned(model, torch.from_numpy(tuned.codes), space, list(tuned.deltas))
    np.testing.assert_allclose(inv.psnr(x, photos).numpy(), tuned.psnr, atol=0.05)
    untuned = render_tuned(model, torch.from_numpy(tuned.codes), space, [None, None])
    assert (inv.psnr(untuned, photos).numpy() < tuned.psnr - 2).all()


def test_locality_keeps_edits_of_tuned_photos_like_edits_of_the_generator(
    model: LoadedModel, photos: torch.Tensor
) -> None:
    """Edit error (R(u + a n) - R(u) vs G(u + a n) - G(u)) along random W directions."""
    r = renderer(model, "w", whitened=True)
    pivot = project(model, photos, "w", 40)
    u = r.whiten(torch.from_numpy(pivot.codes))
    n = torch.linalg.qr(torch.randn(32, 3, generator=torch.Generator().manual_seed(2)))[0].T
    errors = {}
    for weight in (0.0, 5.0):
        cfg = inv.TuneConfig(**{**STYLE_TUNE.__dict__, "steps": 60, "locality_weight": weight})
        res = inv.tune(r, photos, u, cfg)
        assert res.deltas is not None
        deltas = list(res.deltas)
        errors[weight] = float(
            inv.edit_error(lambda c, d=deltas: render(r, c, None, d), r, u, n).mean()
        )
    assert errors[5.0] < 0.7 * errors[0.0], errors


def test_edit_error_of_w_plus_results_moves_every_layer_and_is_zero_without_a_delta(
    model: LoadedModel, photos: torch.Tensor
) -> None:
    tuned = blocking(tune_style_steps)(model, photos[:1], "w+", 40)
    codes = np.concatenate([tuned.codes, tuned.codes])
    n = torch.linalg.qr(torch.randn(32, 2, generator=torch.Generator().manual_seed(4)))[0].T
    errors = edit_error(model, codes, "w+", [tuned.deltas[0], None], n)
    assert errors[1] < 1e-6 and 0 < errors[0] < 5, errors  # no delta: R = G
    # the same measure by hand: whitened w+ codes, each direction repeated in every layer
    r = renderer(model, "w+", whitened=True)
    u = r.whiten(torch.from_numpy(tuned.codes))
    moves = n.repeat(1, model.info.num_ws)
    delta = {f"g.{k}": v for k, v in tuned.deltas[0].items()}
    want = inv.edit_error(lambda c: render(r, c, None, [delta]), r, u, moves)
    np.testing.assert_allclose(errors[:1], want.numpy(), rtol=1e-4)
    assert np.all(edit_error(model, codes, "w+", [None, None], n) == 0)  # not even rendered


def test_tuned_renders_share_one_private_copy_and_stay_exact_across_threads(
    model: LoadedModel,
) -> None:
    """Renders with deltas reuse one private copy of the generator (no copy per call); each
    call's deltas live in its own thread, so concurrent calls do not mix them."""
    g = model.generator
    params = dict(g.named_parameters())
    gen = torch.Generator().manual_seed(3)

    def delta() -> dict[str, torch.Tensor]:
        return {
            f"{n}.d": (torch.randn(params[n].shape, generator=gen) * params[n].std() * 0.3).half()
            for n in tunable_parameters(g)
        }

    w = model.generator.mapping(torch.randn(8, 32, generator=gen))
    deltas = [delta() for _ in range(8)]
    want = []
    for i in range(8):
        with apply_delta(g, deltas[i]):
            want.append(model.synthesize(w[i : i + 1], "w"))
    first = render_tuned(model, w[:1], "w", deltas[:1])
    tuner = shared_tuner(renderer(model, "w+"), tuple(sorted(f"g.{n}" for n in deltas[0])))
    copy_id = id(tuner.module)
    torch.testing.assert_close(first, want[0], atol=1e-5, rtol=0)
    plus = w[:, None].expand(-1, model.info.num_ws, -1)
    with ThreadPoolExecutor(4) as pool:  # w and w+ alike, 4 threads at once, 3 rounds
        jobs = [
            pool.submit(render_tuned, model, (w if s == "w" else plus)[i : i + 1], s, [deltas[i]])
            for s in ("w", "w+", "w")
            for i in range(8)
        ]
        got = [j.result() for j in jobs]
    for k, x in enumerate(got):
        torch.testing.assert_close(x, want[k % 8], atol=1e-5, rtol=0)
    again = shared_tuner(renderer(model, "w+"), tuple(sorted(f"g.{n}" for n in deltas[0])))
    assert id(again.module) == copy_id
