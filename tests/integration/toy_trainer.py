"""A small real trainer for the training-job tests, loaded by workers as a plugin.

``toy``: learns K unit directions T (rows of a seeded random orthogonal matrix) from
noisy linear observations y = X Tᵀ, by gradient descent on the mean squared error,
over exactly ``steps`` steps. Its truth is known, so a test can check the stored
directions; ``step_ms`` adds a sleep per step so jobs last long enough to cancel,
checkpoint and kill; ``render_batch`` renders that many images with the model's generator
per step, the CPU load of a real trainer (for bench/training_latency.py). Parameters
(strings): steps, num_directions, batch, lr, step_ms, render_batch.
"""

from __future__ import annotations

import io
import time
from typing import Any

import torch

from latentedit.errors import InvalidArgument
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.trainers import register_trainer


def truth(dim: int, k: int, seed: int) -> torch.Tensor:
    """The K target directions (K, d), orthonormal rows: what ``toy`` learns for ``seed``."""
    g = torch.Generator().manual_seed(seed + 7)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q[:k].float()


class LinearSet:
    method = "toy"

    def __init__(self, w: torch.Tensor) -> None:
        self.w = w / w.norm(dim=1, keepdim=True)
        self.num_directions, self.latent_dim = w.shape

    def apply(self, z: torch.Tensor, ks: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        return z + (ts.unsqueeze(-1) * self.w[ks]).sum(1)

    def tangent(self, z: torch.Tensor, k: int) -> torch.Tensor:
        return self.w[k].expand(len(z), -1).clone()

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"w": self.w.contiguous()}, buf)
        return buf.getvalue()


class ToyTrainer:
    def __init__(self, model: LoadedModel, params: dict[str, str], seed: int) -> None:
        dim = model.latent_dim
        self.model = model
        try:
            self.total_steps = int(params.get("steps", "200"))
            self.k = int(params.get("num_directions", "4"))
            self.batch = int(params.get("batch", "64"))
            self.lr = float(params.get("lr", "0.05"))
            self.step_ms = float(params.get("step_ms", "0"))
            self.render_batch = int(params.get("render_batch", "0"))
        except ValueError as exc:
            raise InvalidArgument(f"params: {exc}") from None
        if not 1 <= self.total_steps <= 10_000_000:
            raise InvalidArgument(f"params.steps: {self.total_steps} outside 1..10000000")
        if not 1 <= self.k <= dim:
            raise InvalidArgument(f"params.num_directions: {self.k} outside 1..{dim}")
        self.dim = dim
        self.step = 0
        self.target = truth(dim, self.k, seed)
        g = torch.Generator().manual_seed(seed)
        self.w = 0.1 * torch.randn(self.k, dim, generator=g)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def train_step(self) -> dict[str, float]:
        x = torch.randn(self.batch, self.dim, generator=self.gen)
        err = x @ self.w.T - x @ self.target.T  # (B, K)
        loss = (err**2).mean()
        self.w -= self.lr * 2 * err.T @ x / self.batch
        self.step += 1
        cos = torch.nn.functional.cosine_similarity(self.w, self.target, dim=1)
        if self.step_ms:
            time.sleep(self.step_ms / 1000)
        if self.render_batch:
            with torch.inference_mode():
                self.model.forward(torch.randn(self.render_batch, self.dim, generator=self.gen))
        return {
            "loss": float(loss),
            "mse": float(loss),
            "accuracy": float((cos > 0.99).float().mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "gen": self.gen.get_state(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"].clone()
        self.gen.set_state(state["gen"])
        self.step = int(state["step"])

    def result(self) -> LinearSet:
        return LinearSet(self.w.clone())


def make_toy(model: LoadedModel, method: str, params: dict[str, str], seed: int) -> ToyTrainer:
    return ToyTrainer(model, params, seed)


register_trainer("toy", make_toy)
