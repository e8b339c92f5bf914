"""Direction models of the learned sets: linear (a matrix) and warped (RBF gradient fields).

Every model is an ``nn.Module`` with ``method``, ``num_directions`` (K), ``latent_dim`` (d)
and ``apply(z, ks, ts)``: z (N, d), ks (N, E) int64 in [0, K), ts (N, E) shifts in latent
units -> edited z (N, d). ``regularizers(z)`` returns extra loss terms (none here).
The curvilinear model lives in :mod:`.curvilinear`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from latentedit.workers.learned.protocol import DirectionSet


class LearnedDirections(nn.Module):
    """Common parts: shapes checks, tangents by central differences, (de)serialisation."""

    method: str = ""

    def __init__(self, num_directions: int, latent_dim: int) -> None:
        super().__init__()
        self.num_directions = num_directions
        self.latent_dim = latent_dim

    def config(self) -> dict[str, Any]:
        """Constructor arguments (ints/floats/bools/strings), stored with the weights."""
        return {"num_directions": self.num_directions, "latent_dim": self.latent_dim}

    def apply(self, z: Tensor, ks: Tensor, ts: Tensor) -> Tensor:  # type: ignore[override]
        raise NotImplementedError

    def regularizers(self, z: Tensor) -> dict[str, Tensor]:
        """Extra loss terms at z (N, d): name -> scalar (weighted by the trainer)."""
        return {}

    def check(self, z: Tensor, ks: Tensor, ts: Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}")
        if ks.shape != ts.shape or ks.ndim != 2 or ks.shape[0] != z.shape[0]:
            raise ValueError(f"ks and ts must be (N, E), got {tuple(ks.shape)}, {tuple(ts.shape)}")
        if ks.numel() and (int(ks.min()) < 0 or int(ks.max()) >= self.num_directions):
            raise ValueError(f"direction index out of [0, {self.num_directions})")

    def shift(self, z: Tensor, k: Tensor, eps: Tensor) -> Tensor:
        """One edit per row: z (N, d), k (N,), eps (N,) -> (N, d)."""
        return self.apply(z, k[:, None], eps[:, None])

    def tangent(self, z: Tensor, k: int, h: float = 1e-3) -> Tensor:
        """Unit tangent (N, d) of path k at z, by a central difference of ``apply``."""
        ks = torch.full((len(z), 1), k, dtype=torch.long, device=z.device)
        ts = torch.full((len(z), 1), h, dtype=z.dtype, device=z.device)
        with torch.no_grad():
            d = self.apply(z, ks, ts) - self.apply(z, ks, -ts)
        return d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def to_bytes(self) -> bytes:
        from latentedit.workers.learned.serialize import set_to_bytes

        return set_to_bytes(self)


class LinearDirections(LearnedDirections):
    """K directions as rows of a matrix: z' = z + sum_e t_e * D[k_e].

    ``orthonormal``: D = first K rows of expm(S - S^T) (S free, d x d), so rows are
    orthonormal (K <= d). Otherwise D = the free matrix with unit-normalised rows.
    """

    method = "linear"

    def __init__(
        self, num_directions: int, latent_dim: int, orthonormal: bool = False, seed: int = 0
    ) -> None:
        super().__init__(num_directions, latent_dim)
        if orthonormal and num_directions > latent_dim:
            raise ValueError(f"orthonormal needs num_directions <= {latent_dim}")
        self.orthonormal = orthonormal
        g = torch.Generator().manual_seed(seed)
        if orthonormal:
            self.weight = nn.Parameter(0.1 * torch.randn(latent_dim, latent_dim, generator=g))
        else:
            self.weight = nn.Parameter(torch.randn(num_directions, latent_dim, generator=g))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "orthonormal": self.orthonormal}

    def matrix(self) -> Tensor:
        """(K, d) unit rows."""
        if self.orthonormal:
            q = torch.linalg.matrix_exp(self.weight - self.weight.T)
            return q[: self.num_directions]
        return self.weight / self.weight.norm(dim=1, keepdim=True)

    def apply(self, z: Tensor, ks: Tensor, ts: Tensor) -> Tensor:  # type: ignore[override]
        self.check(z, ks, ts)
        d = self.matrix().to(z.dtype)[ks]  # (N, E, d)
        return z + (ts[..., None] * d).sum(dim=1)

    def tangent(self, z: Tensor, k: int, h: float = 1e-3) -> Tensor:
        with torch.no_grad():
            return self.matrix()[k].to(z.dtype).expand(len(z), -1).clone()


class WarpedDirections(LearnedDirections):
    """WarpedGANSpace: direction k follows the gradient of an RBF field.

    f_k(z) = sum_i alpha_i exp(-gamma_k ||z - v_ki||^2) over S antipodal dipoles
    (v, alpha=+1), (-v, alpha=-1). A shift t walks ``ceil(|t| / step_size)`` equal steps
    along grad f_k / ||grad f_k|| (sign of t picks the way), so the path length is |t|.
    Edits of one row are applied one after another in column order (they do not commute).
    """

    method = "warped"

    def __init__(
        self,
        num_directions: int,
        latent_dim: int,
        dipoles: int = 2,
        radius: float = 0.0,
        gamma: float = 0.0,
        step_size: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(num_directions, latent_dim)
        self.dipoles = dipoles
        self.radius = radius or 0.5 * math.sqrt(latent_dim)
        self.gamma = gamma or 1.0 / latent_dim
        self.step_size = step_size
        g = torch.Generator().manual_seed(seed)
        u = torch.randn(num_directions, 1, latent_dim, generator=g)
        u = u / u.norm(dim=2, keepdim=True)
        noise = 0.1 * torch.randn(num_directions, dipoles, latent_dim, generator=g)
        self.support = nn.Parameter(self.radius * (u + noise))  # (K, S, d): the +1 poles
        self.log_gamma = nn.Parameter(torch.full((num_directions,), math.log(self.gamma)))

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "dipoles": self.dipoles,
            "radius": self.radius,
            "gamma": self.gamma,
            "step_size": self.step_size,
        }

    def gradient(self, z: Tensor, k: Tensor) -> Tensor:
        """grad f_k(z): z (N, d), k (N,) -> (N, d)."""
        v = self.support.to(z.dtype)[k]  # (N, S, d)
        gamma = self.log_gamma.exp().to(z.dtype)[k][:, None]  # (N, 1)
        plus, minus = z[:, None] - v, z[:, None] + v  # (N, S, d)
        wp = torch.exp(-gamma * plus.pow(2).sum(-1))  # (N, S)
        wm = torch.exp(-gamma * minus.pow(2).sum(-1))
        g = (wp[..., None] * plus - wm[..., None] * minus).sum(1)
        return -2 * gamma * g

    def field_direction(self, z: Tensor, k: Tensor) -> Tensor:
        g = self.gradient(z, k)
        return g / g.norm(dim=1, keepdim=True).clamp_min(1e-20)

    def apply(self, z: Tensor, ks: Tensor, ts: Tensor) -> Tensor:  # type: ignore[override]
        self.check(z, ks, ts)
        for e in range(ks.shape[1]):
            t = ts[:, e]
            if not bool((t != 0).any()):
                continue
            steps = max(1, math.ceil(float(t.abs().max()) / self.step_size))
            h = (t / steps)[:, None]
            for _ in range(steps):
                z = z + h * self.field_direction(z, ks[:, e])
        return z

    def tangent(self, z: Tensor, k: int, h: float = 1e-3) -> Tensor:
        with torch.no_grad():
            return self.field_direction(z, torch.full((len(z),), k, device=z.device))


def as_direction_set(model: LearnedDirections) -> DirectionSet:
    return model  # nn.Module structural match, checked by mypy
