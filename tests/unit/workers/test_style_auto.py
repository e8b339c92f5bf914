"""``auto`` in W / W+: the projection alone where it reaches the target, tuning for the
photos it cannot reach, and the edit-error bound deciding between them. Small seeded
StyleGAN2 (32 px, w_dim 32), photos from tests/data/faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentedit.workers.inverter import edit_directions
from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.inversion.optim import blocking
from latentedit.workers.methods.style_auto import LATENT_SHARE, auto_style_steps
from latentedit.workers.methods.style_projection import project
from latentedit.workers.methods.style_tuning import edit_error, render_tuned
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.spaces import synthesize

auto = blocking(auto_style_steps)


@pytest.fixture(scope="module")
def model(small_stylegan2: LoadedModel) -> LoadedModel:
    return small_stylegan2


def _run(model: LoadedModel, targets: torch.Tensor, space: str, steps: int, **kw: float):  # type: ignore[no-untyped-def]
    args = {"target_psnr": 30.0, "max_edit_error": 0.3, **kw}
    return auto(model, targets, space, steps, directions=edit_directions(model, space), **args)


def test_generated_images_need_no_tuning(model: LoadedModel) -> None:
    """Images the generator makes: the projection reaches the target; no delta, error 0."""
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        targets = synthesize(model, model.generator.mapping(z), "w").float()
    out = _run(model, targets, "w+", 300)
    assert out.methods == ["optimize", "optimize"] and out.deltas == [None, None]
    assert (out.psnr >= 30).all() and (out.edit_error == 0).all(), out.psnr
    assert out.steps <= round(300 * LATENT_SHARE)  # stopped at the target


@pytest.mark.parametrize("space", ["w", "w+"])
def test_photos_get_tuned_within_the_bound_and_render_what_is_reported(
    model: LoadedModel, photos32: torch.Tensor, space: str
) -> None:
    # this random-weight model's tuned photos: edit error 0.47 / 0.46 in w, 0.18 / 0.08 in w+
    plain = project(model, photos32, space, 150)
    out = _run(model, photos32, space, 300, max_edit_error=0.6)
    assert out.methods == ["tune", "tune"], (out.methods, out.psnr, out.edit_error)
    assert (out.psnr >= plain.psnr + 1).all(), (plain.psnr, out.psnr)
    assert (out.edit_error > 0).all() and (out.edit_error <= 0.6).all(), out.edit_error
    assert out.steps <= 300
    deltas = list(out.deltas)
    x = render_tuned(model, torch.from_numpy(out.codes), space, deltas)
    np.testing.assert_allclose(inv.psnr(x, photos32).numpy(), out.psnr, atol=0.05)
    again = edit_error(model, out.codes, space, deltas, edit_directions(model, space))
    np.testing.assert_allclose(again, out.edit_error, rtol=1e-4)


def test_a_bound_no_tuning_meets_keeps_the_pivot(
    model: LoadedModel, photos32: torch.Tensor
) -> None:
    """With a bound below any tuned result's error, no tuning is admissible and each photo
    keeps its pivot: error 0."""
    out = _run(model, photos32, "w", 200, max_edit_error=1e-6)
    assert out.methods == ["optimize", "optimize"] and out.deltas == [None, None]
    assert (out.edit_error == 0).all()
    assert out.steps > round(200 * LATENT_SHARE)  # the tuning rounds did run
    codes = torch.from_numpy(out.codes)
    with torch.no_grad():
        x = synthesize(model, codes, "w").float()
    np.testing.assert_allclose(inv.psnr(x, photos32).numpy(), out.psnr, atol=0.05)
