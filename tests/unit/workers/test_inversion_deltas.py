"""Per-image generator deltas: applying one to the weights and back, rendering many at once
(blocks of rows sharing a delta, full deltas merged into one grouped convolution), storage.

A small DCGAN (latent 16, width 8), a seeded StyleGAN2 (conftest) and a toy generator of
biased plain / transposed convolutions."""

from __future__ import annotations

import math

import pytest
import torch

from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods import tuning_store
from latentedit.workers.methods.inversion.tuner import Tuner, init_factors
from latentedit.workers.methods.inversion.tuning import tuned_layers
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.runtime import LoadedModel

D = 16


@pytest.fixture(scope="module")
def gen() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=D, width=8).eval().requires_grad_(False)


def test_apply_delta_restores_on_error(gen: DCGANGenerator) -> None:
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    delta = {"main.1.weight.d": torch.ones(64, dtype=torch.float16)}
    with pytest.raises(RuntimeError), inv.apply_delta(gen, delta):
        assert not torch.equal(gen.main[1].weight, before["main.1.weight"])
        raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in gen.state_dict().items())
    with pytest.raises(KeyError), inv.apply_delta(gen, {"nope.weight.d": torch.ones(1)}):
        pass
    assert all(torch.equal(before[k], v) for k, v in gen.state_dict().items())


@pytest.mark.parametrize("rank", [0, 4])
@pytest.mark.parametrize("which", ["dcgan", "stylegan2"])
def test_codes_in_blocks_of_the_factor_rows_render_as_repeated_factors(
    gen: DCGANGenerator, small_stylegan2: LoadedModel, which: str, rank: int
) -> None:
    """The locality term renders pivot and nearby codes as two blocks sharing one delta per
    image: exactly what the factors repeated per block give (conv / BatchNorm layers and
    StyleGAN2's modulated convs); a batch that is not whole blocks is refused."""
    g = gen if which == "dcgan" else small_stylegan2.generator
    assert isinstance(g, torch.nn.Module)
    tuner = Tuner(g, tuned_layers(g, inv.TuneConfig(skip_first=0)))
    factors, _ = init_factors(tuner, 3, rank, torch.device("cpu"))
    torch.manual_seed(0)
    factors = {k: torch.randn_like(v) * 0.05 for k, v in factors.items()}
    z = torch.randn(6, D if which == "dcgan" else 32)
    with torch.no_grad():
        blocks = tuner(z, None, factors)
        repeated = tuner(z, None, {k: torch.cat([v, v]) for k, v in factors.items()})
        plain = inv.generate(g, z)
    torch.testing.assert_close(blocks, repeated, atol=1e-6, rtol=0)
    assert (blocks - plain).abs().amax() > 0.01  # the deltas do change the pictures
    with pytest.raises(ValueError, match="5 codes for factors of"):
        tuner(z[:5], None, factors)


class _BiasedConvs(torch.nn.Module):
    """z (N, 8) -> (N, 3, 8, 8): transposed and plain convolutions, all with biases."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(8, 16, 4, 1, 0),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(16, 8, 4, 2, 1),
            torch.nn.Conv2d(8, 3, 3, 1, 1),
            torch.nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


def test_full_deltas_of_biased_convs_render_as_the_tuned_weights_would() -> None:
    """Rows with full deltas run one grouped convolution of weight + delta (bias kept, its
    own delta added); a row without a delta renders as the plain generator."""
    torch.manual_seed(0)
    g = _BiasedConvs().eval().requires_grad_(False)
    named = dict(g.named_parameters())
    deltas: list[dict[str, torch.Tensor] | None] = [
        {f"{n}.d": (torch.randn_like(p) * 0.2).half() for n, p in named.items()} for _ in range(3)
    ]
    deltas[1] = None
    z = torch.randn(3, 8)
    rendered = inv.render(g, z, None, deltas)
    for i, delta in enumerate(deltas):
        if delta is None:
            want = g(z[i : i + 1])
        else:
            with inv.apply_delta(g, delta):
                want = g(z[i : i + 1])
            assert (want - g(z[i : i + 1])).abs().amax() > 0.05
        torch.testing.assert_close(rendered[i : i + 1], want, atol=1e-5, rtol=0)


def test_tuning_store_round_trip_and_rejects_junk() -> None:
    delta = {
        "main.3.weight.u": torch.randn(8, 2),
        "main.3.weight.v": torch.randn(2, 64),
        "main.4.bias.d": torch.randn(8),
    }
    data = tuning_store.delta_to_bytes(delta)
    back = tuning_store.delta_from_bytes(data)
    assert set(back) == set(delta)
    for k, v in delta.items():
        assert back[k].dtype == torch.float16
        torch.testing.assert_close(back[k].float(), v, atol=2e-3, rtol=1e-3)
    with pytest.raises(ValueError):
        tuning_store.delta_from_bytes(b"not a delta")
    with pytest.raises(ValueError):
        tuning_store.delta_to_bytes({"main.3.weight.u": torch.ones(2, 2)})  # no .v
    with pytest.raises(ValueError):
        tuning_store.delta_to_bytes({"x.d": torch.tensor([math.nan])})


def test_tuning_leaves_the_coarse_layers_alone_with_their_batchnorm_vectors(
    gen: DCGANGenerator,
) -> None:
    """skip_first=2: nothing before the third conv's weight is tuned (so the backward pass
    stops there); skip_first=0: every conv, BatchNorm weight and bias."""
    names = [n for n, _ in gen.named_parameters()]
    third_conv = [n for n in names if n.endswith("weight") and gen.get_parameter(n).ndim > 1][2]
    kept = tuned_layers(gen, inv.TuneConfig(skip_first=2))
    assert kept == tuple(names[names.index(third_conv) :])
    assert tuned_layers(gen, inv.TuneConfig(skip_first=0)) == tuple(names)
