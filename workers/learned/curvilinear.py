"""Deep Curvilinear Editing (Aoshima & Matsubara 2023): edits along the axes of f(z).

f: R^d -> V = R^d is exactly invertible: an orthogonal map Q = expm(S - S^T) followed by
L affine coupling layers (RealNVP). Edit k by t: phi_k(z) = f^-1(f(z) + t e_k); several
edits of a row add their shifts in V before one inverse, so edits commute by construction.
The trainer adds ``logdet_weight * (log|det df/dz|)^2`` (Q contributes 0) so that small
shifts in V stay small in z. Coupling outputs start at zero: f starts as Q (linear).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentedit.workers.learned.directions import LearnedDirections


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a)) + b(x_a), y_a = x_a; (a, b) = halves, swapped if ``flip``.

    s = scale_limit * tanh(raw): bounded log-scales keep the inverse well conditioned.
    """

    def __init__(self, dim: int, hidden: int, flip: bool, scale_limit: float = 2.0) -> None:
        super().__init__()
        self.dim, self.flip, self.scale_limit = dim, flip, scale_limit
        self.na = dim // 2 if not flip else dim - dim // 2
        nb = dim - self.na
        self.fc1, self.fc2 = nn.Linear(self.na, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2 * nb)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.flip:
            return x[:, self.dim - self.na :], x[:, : self.dim - self.na]
        return x[:, : self.na], x[:, self.na :]

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def _params(self, a: Tensor) -> tuple[Tensor, Tensor]:
        h = a
        for i, fc in enumerate((self.fc1, self.fc2, self.out)):
            h = F.linear(h, fc.weight.to(a.dtype), fc.bias.to(a.dtype))  # in a's dtype
            h = F.silu(h) if i < 2 else h
        raw, shift = h.chunk(2, dim=1)
        return self.scale_limit * torch.tanh(raw / self.scale_limit), shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, d) -> (y (N, d), log|det| (N,))."""
        a, b = self._split(x)
        s, shift = self._params(a)
        return self._join(a, b * torch.exp(s) + shift), s.sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        a, b = self._split(y)
        s, shift = self._params(a)
        return self._join(a, (b - shift) * torch.exp(-s))


class CurvilinearDirections(LearnedDirections):
    """K curvilinear directions: the first K axes of V = f(z)."""

    method = "curvilinear"

    def __init__(
        self,
        num_directions: int,
        latent_dim: int,
        layers: int = 4,
        hidden: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(num_directions, latent_dim)
        if num_directions > latent_dim:
            raise ValueError(f"curvilinear needs num_directions <= latent_dim ({latent_dim})")
        self.layers, self.hidden = layers, hidden
        g = torch.Generator().manual_seed(seed)
        self.skew = nn.Parameter(0.1 * torch.randn(latent_dim, latent_dim, generator=g))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.couplings = nn.ModuleList(
                AffineCoupling(latent_dim, hidden, flip=i % 2 == 1) for i in range(layers)
            )

    def config(self) -> dict[str, Any]:
        return {**super().config(), "layers": self.layers, "hidden": self.hidden}

    def rotation(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Q (d, d) orthogonal, computed in ``dtype`` (so Q^-1 = Q^T to that precision)."""
        s = self.skew.to(dtype)
        return torch.linalg.matrix_exp(s - s.T)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """f: z (N, d) -> (v (N, d), log|det df/dz| (N,))."""
        v = z @ self.rotation(z.dtype).T
        logdet = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        for layer in self.couplings:
            v, ld = layer(v)
            logdet = logdet + ld
        return v, logdet

    def inverse(self, v: Tensor) -> Tensor:
        """f^-1: v (N, d) -> z (N, d)."""
        layers: list[AffineCoupling] = list(self.couplings)  # type: ignore[arg-type]
        for layer in reversed(layers):
            v = layer.inverse(v)
        return v @ self.rotation(v.dtype)

    def apply(self, z: Tensor, ks: Tensor, ts: Tensor) -> Tensor:
        """Computed in float64 (round trip ~1e-12), returned in z's dtype."""
        self.check(z, ks, ts)
        v, _ = self(z.double())
        shift = torch.zeros_like(v).scatter_add(1, ks, ts.to(v.dtype))
        return self.inverse(v + shift).to(z.dtype)

    def regularizers(self, z: Tensor) -> dict[str, Tensor]:
        _, logdet = self(z)
        return {"logdet": logdet.pow(2).mean()}
