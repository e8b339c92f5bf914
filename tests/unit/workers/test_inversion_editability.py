"""Editability (relative edit error), locality-regularised tuning, method support and the
continuous-batching session. Toy DCGAN (latent 16, width 8) so that each test runs in seconds."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace

import pytest
import torch

from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.inversion.session import Session
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.shapes import ShapesGenerator

D = 16


def toy_generator(seed: int = 0) -> DCGANGenerator:
    torch.manual_seed(seed)
    g = DCGANGenerator(latent_dim=D, width=8)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    g.train()
    with torch.no_grad():
        g(torch.randn(512, D))
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def gen() -> DCGANGenerator:
    return toy_generator(0)


def directions(k: int = 3) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(D, k, generator=torch.Generator().manual_seed(1)))
    return q.T.contiguous()


def test_edit_error_is_zero_for_the_generator_itself_and_matches_its_formula(
    gen: DCGANGenerator,
) -> None:
    z = torch.randn(3, D, generator=torch.Generator().manual_seed(2))
    n = directions(2)
    plain = inv.edit_error(gen, gen, z, n)
    assert plain.shape == (3,) and torch.all(plain == 0)
    # R: the generator plus a fixed image offset that does not move with edits -> error 0 too
    offset = torch.randn(1, 3, 64, 64) * 0.1
    assert torch.allclose(inv.edit_error(lambda c: gen(c) + offset, gen, z, n), plain)
    # R: a different generator -> the formula by hand
    other = toy_generator(5)
    got = inv.edit_error(other, gen, z, n, alphas=(2.0,))
    want = []
    for d in n:
        dr, dg = other(z + 2 * d) - other(z), gen(z + 2 * d) - gen(z)
        want.append((dr - dg).square().flatten(1).sum(1) / dg.square().flatten(1).sum(1))
    torch.testing.assert_close(got, torch.stack(want).mean(0), rtol=1e-5, atol=1e-6)
    assert bool((got > 0.05).all())


def test_locality_term_keeps_tuned_photos_editable(gen: DCGANGenerator) -> None:
    x = toy_generator(9)(torch.randn(2, D, generator=torch.Generator().manual_seed(3)))
    z = torch.randn(2, D, generator=torch.Generator().manual_seed(4)) * 0.5
    n = directions(3)
    errors, psnrs = {}, {}
    for weight in (0.0, 5.0):
        cfg = inv.TuneConfig(steps=40, lr=3e-2, locality_weight=weight, skip_first=0)
        res = inv.tune(gen, x, z, cfg)
        psnrs[weight] = res.psnr.mean().item()
        errors[weight] = (
            inv.edit_error(lambda c, r=res: inv.render(gen, c, None, r.deltas), gen, z, n)
            .mean()
            .item()
        )
    assert errors[5.0] < 0.7 * errors[0.0], errors
    assert psnrs[5.0] > psnrs[0.0] - 6, psnrs  # still a reconstruction, not a no-op


def test_auto_keeps_the_edit_error_under_its_bound(gen: DCGANGenerator) -> None:
    x = toy_generator(9)(torch.randn(2, D, generator=torch.Generator().manual_seed(3)))
    z0 = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(0))
    cfg = inv.InvertConfig(
        steps=40,
        tune=inv.TuneConfig(locality_weight=0.0, skip_first=0),
        extended_gap_db=math.inf,  # every stage, so each candidate is there to choose from
    )
    free = inv.invert("auto", gen, x, cfg, z0=z0, directions=directions(), max_edit_error=math.inf)
    assert free.methods == ["tune", "tune"] and free.edit_error is not None
    strict = inv.invert("auto", gen, x, cfg, z0=z0, directions=directions(), max_edit_error=0.0)
    assert strict.methods == ["optimize", "optimize"], strict.trail
    assert strict.edit_error is not None and bool((strict.edit_error == 0).all())
    assert [t[0] for t in strict.trail[0]] == ["optimize", "extended", "tune"]


def test_auto_tunes_again_with_a_stronger_locality_term_when_the_bound_breaks(
    gen: DCGANGenerator,
) -> None:
    x = toy_generator(9)(torch.randn(2, D, generator=torch.Generator().manual_seed(3)))
    z0 = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(0))
    weak = inv.TuneConfig(locality_weight=0.2, skip_first=0, lr=3e-2)
    cfg = inv.InvertConfig(steps=60, tune=weak, retune_locality=50.0, extended_gap_db=math.inf)
    n = directions()
    probe = inv.invert("auto", gen, x, replace(cfg, retune_locality=1.0), z0=z0)
    # what 60 steps reach, with a budget of 120: tuning stops early, steps are left to retry
    target = torch.from_numpy(probe.psnr).float() - 0.5
    cfg = replace(cfg, steps=120)
    once = inv.invert(
        "auto", gen, x, replace(cfg, retune_locality=1.0), z0=z0, directions=n,
        target_psnr=target,
    )  # fmt: skip
    assert once.edit_error is not None and once.methods == ["tune", "tune"], once.trail
    bound = float(once.edit_error.min()) * 0.6  # both weakly tuned results break it
    strict_once = inv.invert(
        "auto", gen, x, replace(cfg, retune_locality=1.0), z0=z0, directions=n,
        max_edit_error=bound, target_psnr=target,
    )  # fmt: skip
    assert "tune" not in strict_once.methods  # without a second try: back to the latent code
    again = inv.invert(
        "auto", gen, x, cfg, z0=z0, directions=n, max_edit_error=bound, target_psnr=target
    )
    assert again.edit_error is not None
    assert [t[0] for t in again.trail[0]] == ["optimize", "extended", "tune", "tune"]
    assert "tune" in again.methods, again.trail
    tuned = [i for i, m in enumerate(again.methods) if m == "tune"]
    assert bool((again.edit_error[tuned] <= bound).all())
    assert bool((again.psnr[tuned] > strict_once.psnr[tuned] + 0.5).all())  # tuned, in bounds


def test_supported_methods_follow_the_generator() -> None:
    assert inv.supported_methods(toy_generator(0)) == inv.INVERT_METHODS
    shapes = inv.supported_methods(ShapesGenerator())
    assert "extended" not in shapes and {"optimize", "tune", "auto"} <= set(shapes)


def test_tune_and_auto_run_on_a_generator_without_a_split() -> None:
    g = ShapesGenerator().eval().requires_grad_(False)
    x = g(torch.randn(2, g.latent_dim, generator=torch.Generator().manual_seed(1)))
    z0 = torch.randn(2, 2, g.latent_dim, generator=torch.Generator().manual_seed(2))
    for method in ("tune", "auto"):
        res = inv.invert(method, g, x, inv.InvertConfig(steps=8), z0=z0)
        assert res.psnr.shape == (2,) and res.residuals is None


def test_interleaved_step_generators_give_the_results_of_separate_runs(
    gen: DCGANGenerator,
) -> None:
    xs = [
        toy_generator(9)(torch.randn(2, D, generator=torch.Generator().manual_seed(s)))
        for s in (1, 2)
    ]
    z0 = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(0))
    cfgs = [inv.InvertConfig(steps=s) for s in (30, 6)]
    alone = [inv.invert("optimize", gen, x, c, z0=z0) for x, c in zip(xs, cfgs, strict=True)]
    session = Session("test", max_images=8)
    got: dict[int, inv.InversionResult] = {}
    finished: list[int] = []
    event = threading.Event()

    def done_for(i: int):
        def done(value: inv.InversionResult, error: BaseException | None) -> None:
            assert error is None
            got[i] = value
            finished.append(i)
            if len(got) == 2:
                event.set()

        return done

    for i, (x, c) in enumerate(zip(xs, cfgs, strict=True)):
        session.submit(
            2, lambda x=x, c=c: inv.invert_steps("optimize", gen, x, c, z0=z0), done_for(i)
        )
    assert event.wait(120)
    assert finished == [1, 0]  # the short one leaves first
    for i in (0, 1):
        torch.testing.assert_close(
            torch.from_numpy(got[i].latents), torch.from_numpy(alone[i].latents)
        )
    deadline = time.monotonic() + 5
    while session.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.in_flight == 0


def test_a_session_on_an_executor_lets_other_work_in_between_its_slices() -> None:
    """On the worker's one compute thread, a long inversion runs in slices: a render queued
    meanwhile runs before the inversion ends, and the inversion still completes."""
    from concurrent.futures import ThreadPoolExecutor

    order: list[str] = []
    finished = threading.Event()

    def steps():
        for _ in range(40):
            time.sleep(0.005)  # one optimiser step
            yield
        order.append("inversion done")

    with ThreadPoolExecutor(1) as compute:
        session = Session("test", executor=compute, slice_s=0.02)
        session.submit(1, steps, lambda value, error: finished.set())
        time.sleep(0.03)  # the session holds the thread now
        compute.submit(order.append, "render").result(10)
        assert finished.wait(10)
    assert order == ["render", "inversion done"]
    assert session.rounds == 41 and session.in_flight == 0
