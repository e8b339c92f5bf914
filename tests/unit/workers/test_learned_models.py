"""The learned direction models: invertibility, commutativity, warped paths, serialisation."""

from __future__ import annotations

import pytest
import torch

from latentedit.errors import InvalidArgument
from latentedit.workers.learned.curvilinear import CurvilinearDirections
from latentedit.workers.learned.directions import LinearDirections, WarpedDirections
from latentedit.workers.learned.protocol import DirectionSet
from latentedit.workers.learned.serialize import set_from_bytes


def _perturbed_curvilinear(d: int = 16, k: int = 8, seed: int = 0) -> CurvilinearDirections:
    """A curvilinear set whose couplings are far from identity (fresh ones start at it)."""
    model = CurvilinearDirections(k, d, layers=4, hidden=32, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.15 * torch.randn(p.shape, generator=g))
    return model.eval().requires_grad_(False)


def _codes(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_curvilinear_round_trip_and_nonlinearity() -> None:
    model = _perturbed_curvilinear()
    z = _codes(256, 16)
    with torch.no_grad():
        v, logdet = model(z)
        back = model.inverse(v)  # float32 all the way
        v64, _ = model(z.double())
        back64 = model.inverse(v64)
    assert float((back - z).abs().max()) <= 1e-4
    assert float((back64 - z.double()).abs().max()) <= 1e-10
    assert float(logdet.abs().mean()) > 1e-2  # the couplings really scale: f is not a rotation
    # An edit along one axis of V is not a straight line in z (the set is really curvilinear).
    ks = torch.zeros(len(z), 1, dtype=torch.long)
    one = model.apply(z, ks, torch.ones(len(z), 1))
    two = model.apply(z, ks, 2 * torch.ones(len(z), 1))
    assert float(((two - z) - 2 * (one - z)).norm(dim=1).mean()) > 1e-2


def test_curvilinear_edits_commute_and_reverse() -> None:
    model = _perturbed_curvilinear()
    z = _codes(128, 16, seed=1)
    n = len(z)
    a, b = torch.full((n, 1), 2, dtype=torch.long), torch.full((n, 1), 5, dtype=torch.long)
    ta, tb = torch.full((n, 1), 1.5), torch.full((n, 1), -2.0)
    with torch.no_grad():
        ab = model.apply(model.apply(z, a, ta), b, tb)
        ba = model.apply(model.apply(z, b, tb), a, ta)
        both = model.apply(z, torch.cat([a, b], 1), torch.cat([ta, tb], 1))
        back = model.apply(model.apply(z, a, ta), a, -ta)
    assert float((ab - ba).abs().max()) <= 1e-4
    assert float((ab - both).abs().max()) <= 1e-4
    assert float((back - z).abs().max()) <= 1e-4
    assert float((ab - z).norm(dim=1).min()) > 0.5  # the edits really moved the codes


def test_warped_path_follows_the_normalised_gradient() -> None:
    model = WarpedDirections(4, 8, dipoles=2, step_size=0.05, seed=3).eval()
    z = _codes(32, 8, seed=2)
    k = torch.full((32,), 1, dtype=torch.long)
    with torch.no_grad():
        # Finite differences of the field match its analytic gradient.
        zz = z.double()
        model.double()
        h = 1e-6
        grad = model.gradient(zz, k)
        for i in range(3):
            e = torch.zeros(8, dtype=torch.float64)
            e[i] = h
            fd = (_field(model, zz + e, 1) - _field(model, zz - e, 1)) / (2 * h)
            torch.testing.assert_close(grad[:, i], fd, atol=1e-6, rtol=1e-5)
        # A short edit moves along grad/||grad|| by exactly its length.
        t = 0.05
        moved = model.apply(zz, k[:, None], torch.full((32, 1), t, dtype=torch.float64))
        expected = zz + t * grad / grad.norm(dim=1, keepdim=True)
        torch.testing.assert_close(moved, expected, atol=1e-12, rtol=0)
        # A long edit is a curve: its end differs from a straight step along the first tangent.
        far = model.apply(zz, k[:, None], torch.full((32, 1), 3.0, dtype=torch.float64))
        straight = zz + 3.0 * grad / grad.norm(dim=1, keepdim=True)
        assert float((far - straight).norm(dim=1).mean()) > 1e-3
        # Its path length is |t| (unit-speed steps): the chord is at most t.
        assert float((far - zz).norm(dim=1).max()) <= 3.0 + 1e-9


def _field(model: WarpedDirections, z: torch.Tensor, k: int) -> torch.Tensor:
    v = model.support[k]
    gamma = model.log_gamma.exp()[k]
    plus = torch.exp(-gamma * (z[:, None] - v).pow(2).sum(-1)).sum(1)
    minus = torch.exp(-gamma * (z[:, None] + v).pow(2).sum(-1)).sum(1)
    return plus - minus


def test_warped_edits_do_not_commute() -> None:
    model = WarpedDirections(4, 8, seed=1).eval().requires_grad_(False)
    z = _codes(64, 8)
    a, b = torch.zeros(64, 1, dtype=torch.long), torch.ones(64, 1, dtype=torch.long)
    t = torch.full((64, 1), 2.0)
    with torch.no_grad():
        ab = model.apply(model.apply(z, a, t), b, t)
        ba = model.apply(model.apply(z, b, t), a, t)
    assert float((ab - ba).norm(dim=1).mean()) > 1e-3


def test_linear_orthonormal_rows() -> None:
    model = LinearDirections(6, 10, orthonormal=True, seed=0)
    m = model.matrix().detach()
    torch.testing.assert_close(m @ m.T, torch.eye(6), atol=1e-5, rtol=0)
    z = _codes(5, 10)
    ks = torch.tensor([[0, 3]] * 5)
    ts = torch.tensor([[1.0, -2.0]] * 5)
    with torch.no_grad():
        out = model.apply(z, ks, ts)
    torch.testing.assert_close(out, z + m[0] - 2 * m[3])
    with pytest.raises(ValueError, match="index"):
        model.apply(z, ks + 10, ts)


@pytest.mark.parametrize(
    "model",
    [
        LinearDirections(5, 8, seed=1),
        WarpedDirections(5, 8, seed=1),
        _perturbed_curvilinear(8, 5, seed=2),
    ],
    ids=["linear", "warped", "curvilinear"],
)
def test_bytes_round_trip(model: torch.nn.Module) -> None:
    assert isinstance(model, DirectionSet)
    restored = set_from_bytes(model.to_bytes())
    assert type(restored) is type(model) and restored.config() == model.config()
    z = _codes(16, 8)
    ks = torch.randint(0, 5, (16, 2), generator=torch.Generator().manual_seed(0))
    ts = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(restored.apply(z, ks, ts), model.apply(z, ks, ts))
        torch.testing.assert_close(restored.tangent(z, 1), model.tangent(z, 1))


def test_bad_blob_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        set_from_bytes(b"\x00")
    with pytest.raises(InvalidArgument, match="metadata"):
        from safetensors.torch import save

        set_from_bytes(save({"x": torch.zeros(1)}))
