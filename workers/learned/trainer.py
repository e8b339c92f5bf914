"""Voynov & Babenko's training loop, shared by the linear, warped and curvilinear models.

Each step: z ~ N(0, I) (B, d), k ~ U{0..K-1}, eps ~ ±U[shift_min, shift_max]; render
x = G(z), x' = G(model.shift(z, k, eps)); the reconstructor R(x, x') predicts k (cross
entropy) and eps (mean absolute error, weight ``mae_weight``); plus the model's own
regularisers (curvilinear: ``logdet_weight * (log|det df/dz|)^2`` and
``length_weight * (||phi(z) - z|| - |eps|)^2``). Adam on both; the
learning rates follow a cosine from ``lr`` down to ``lr / 10`` over ``steps``.

Parameters (``params``, all strings, all optional; defaults in :data:`DEFAULTS`):
num_directions, steps, batch, lr, lr_directions, image_size, shift_min, shift_max,
mae_weight, logdet_weight, length_weight (curvilinear), orthonormal (linear),
dipoles/gamma/step_size (warped),
layers/hidden (curvilinear).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from latentedit.errors import InvalidArgument
from latentedit.workers.learned.curvilinear import CurvilinearDirections
from latentedit.workers.learned.directions import (
    LearnedDirections,
    LinearDirections,
    WarpedDirections,
)
from latentedit.workers.learned.protocol import METHODS
from latentedit.workers.learned.reconstructor import Reconstructor
from latentedit.workers.learned.serialize import set_from_bytes
from latentedit.workers.models.runtime import LoadedModel

#: Default steps per method: each trains within 20 min on 2 CPU cores for ``shapes``.
DEFAULT_STEPS = {"linear": 3000, "warped": 3000, "curvilinear": 3000}

DEFAULTS: dict[str, str] = {
    "batch": "32",
    "lr": "1e-3",
    "lr_directions": "",  # "": same as lr
    "image_size": "32",
    "shift_min": "0.5",
    "shift_max": "",  # "": min(6, 0.75 sqrt(d))
    "mae_weight": "0.25",
    "logdet_weight": "0.1",
    "length_weight": "1.0",  # curvilinear: (||phi(z) - z|| - |eps|)^2, keeps edits unit-speed
    "orthonormal": "false",
    "dipoles": "2",
    "gamma": "0",  # 0: 1/d
    "step_size": "0.2",
    "layers": "4",
    "hidden": "64",
}


@dataclass(frozen=True)
class Config:
    method: str
    num_directions: int
    steps: int
    batch: int
    lr: float
    lr_directions: float
    image_size: int
    shift_min: float
    shift_max: float
    mae_weight: float
    logdet_weight: float
    length_weight: float
    extra: dict[str, Any]  # constructor arguments of the direction model


def _num(params: dict[str, str], key: str, kind: type, low: float, high: float) -> Any:
    raw = params.get(key) or DEFAULTS.get(key, "")
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidArgument(f"param {key}={raw!r} is not a {kind.__name__}") from None
    if not (low <= value <= high) or (kind is float and not math.isfinite(value)):
        raise InvalidArgument(f"param {key}={raw!r} must be in [{low}, {high}]")
    return value


def parse_config(method: str, params: dict[str, str], latent_dim: int) -> Config:
    """Validated config; InvalidArgument names the bad parameter."""
    if method not in METHODS:
        raise InvalidArgument(f"unknown learned method {method!r}; choose one of {list(METHODS)}")
    known = {*DEFAULTS, "num_directions", "steps"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidArgument(f"unknown param(s) {unknown}; known: {sorted(known)}")
    d = latent_dim
    p = dict(params)
    p.setdefault("num_directions", str(min(d, 16)))
    p.setdefault("steps", str(DEFAULT_STEPS[method]))
    k_max = d if method in ("curvilinear",) or p.get("orthonormal") == "true" else 4 * d
    lr = _num(p, "lr", float, 1e-6, 1.0)
    extra: dict[str, Any] = {}
    if method == "linear":
        flag = p.get("orthonormal", "false").lower()
        if flag not in ("true", "false"):
            raise InvalidArgument(f"param orthonormal={flag!r} must be true or false")
        extra["orthonormal"] = flag == "true"
    elif method == "warped":
        extra["dipoles"] = _num(p, "dipoles", int, 1, 64)
        extra["gamma"] = _num(p, "gamma", float, 0.0, 100.0)
        extra["step_size"] = _num(p, "step_size", float, 1e-3, 10.0)
    else:
        extra["layers"] = _num(p, "layers", int, 1, 32)
        extra["hidden"] = _num(p, "hidden", int, 4, 1024)
    shift_max = (
        _num(p, "shift_max", float, 0.01, 100.0)
        if p.get("shift_max")
        else min(6.0, 0.75 * math.sqrt(d))
    )
    cfg = Config(
        method=method,
        num_directions=_num(p, "num_directions", int, 2, k_max),
        steps=_num(p, "steps", int, 1, 10_000_000),
        batch=_num(p, "batch", int, 2, 4096),
        lr=lr,
        lr_directions=_num(p, "lr_directions", float, 1e-6, 1.0) if p.get("lr_directions") else lr,
        image_size=_num(p, "image_size", int, 8, 1024),
        shift_min=_num(p, "shift_min", float, 0.0, 100.0),
        shift_max=shift_max,
        mae_weight=_num(p, "mae_weight", float, 0.0, 100.0),
        logdet_weight=_num(p, "logdet_weight", float, 0.0, 1000.0),
        length_weight=_num(p, "length_weight", float, 0.0, 1000.0),
        extra=extra,
    )
    if cfg.shift_min >= cfg.shift_max:
        raise InvalidArgument(f"shift_min {cfg.shift_min} must be below shift_max {cfg.shift_max}")
    return cfg


def build_directions(cfg: Config, latent_dim: int, seed: int) -> LearnedDirections:
    k, d = cfg.num_directions, latent_dim
    if cfg.method == "linear":
        return LinearDirections(k, d, seed=seed, **cfg.extra)
    if cfg.method == "warped":
        return WarpedDirections(k, d, seed=seed, **cfg.extra)
    return CurvilinearDirections(k, d, seed=seed, **cfg.extra)


class VoynovTrainer:
    """A :class:`~latentedit.workers.learned.protocol.Trainer` (see the module docstring)."""

    def __init__(self, model: LoadedModel, cfg: Config, seed: int) -> None:
        self.model, self.cfg, self.seed = model, cfg, seed
        self.total_steps = cfg.steps
        self.step = 0
        torch.manual_seed(seed)
        self.directions = build_directions(cfg, model.latent_dim, seed)
        self.reconstructor = Reconstructor(cfg.num_directions, cfg.image_size)
        self.opt_dir = torch.optim.Adam(self.directions.parameters(), lr=cfg.lr_directions)
        self.opt_rec = torch.optim.Adam(self.reconstructor.parameters(), lr=cfg.lr)
        self.rng = torch.Generator().manual_seed(seed)
        self.accuracy_ema = 0.0

    def _lr_factor(self) -> float:
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * self.step / max(1, self.total_steps)))

    def _sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, b = self.cfg, self.cfg.batch
        z = torch.randn(b, self.model.latent_dim, generator=self.rng)
        k = torch.randint(0, cfg.num_directions, (b,), generator=self.rng)
        mag = cfg.shift_min + (cfg.shift_max - cfg.shift_min) * torch.rand(b, generator=self.rng)
        sign = torch.randint(0, 2, (b,), generator=self.rng) * 2 - 1
        return z, k, mag * sign

    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        factor = self._lr_factor()
        for opt, base in ((self.opt_dir, self.cfg.lr_directions), (self.opt_rec, self.cfg.lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor
        self.directions.train()
        self.reconstructor.train()
        z, k, eps = self._sample()
        with torch.no_grad():
            x = self.model.forward(z)
        z_shift = self.directions.shift(z, k, eps)
        x_shift = self.model.forward(z_shift)
        logits, eps_hat = self.reconstructor(x, x_shift)
        ce = F.cross_entropy(logits, k)
        mae = (eps_hat - eps).abs().mean()
        loss = ce + self.cfg.mae_weight * mae
        out: dict[str, float] = {}
        for name, term in self.directions.regularizers(z).items():
            loss = loss + self.cfg.logdet_weight * term
            out[name] = float(term.detach())
        if self.cfg.method == "curvilinear" and self.cfg.length_weight > 0:
            # A shift eps along an axis of f-space moves z by about |eps| (as a unit vector
            # would): without it the flow learns large, easily told-apart jumps.
            length = ((z_shift - z).norm(dim=1) - eps.abs()).pow(2).mean()
            loss = loss + self.cfg.length_weight * length
            out["length"] = float(length.detach())
        self.opt_dir.zero_grad(set_to_none=True)
        self.opt_rec.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_dir.step()
        self.opt_rec.step()
        self.step += 1
        accuracy = float((logits.argmax(1) == k).float().mean())
        self.accuracy_ema = (
            accuracy if self.step == 1 else 0.95 * self.accuracy_ema + 0.05 * accuracy
        )
        out.update(
            step=float(self.step),
            total_steps=float(self.total_steps),
            loss=float(loss.detach()),
            ce=float(ce.detach()),
            mae=float(mae.detach()),
            accuracy=accuracy,
            accuracy_ema=self.accuracy_ema,
            lr=self.cfg.lr * factor,
            seconds=time.perf_counter() - start,
        )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.cfg.method,
            "step": self.step,
            "seed": self.seed,
            "accuracy_ema": self.accuracy_ema,
            "directions": self.directions.state_dict(),
            "reconstructor": self.reconstructor.state_dict(),
            "opt_dir": self.opt_dir.state_dict(),
            "opt_rec": self.opt_rec.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.cfg.method:
            raise InvalidArgument(
                f"checkpoint is for {state.get('method')!r}, trainer is {self.cfg.method!r}"
            )
        self.directions.load_state_dict(state["directions"])
        self.reconstructor.load_state_dict(state["reconstructor"])
        self.opt_dir.load_state_dict(state["opt_dir"])
        self.opt_rec.load_state_dict(state["opt_rec"])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.accuracy_ema = float(state["accuracy_ema"])

    def result(self) -> LearnedDirections:
        """A detached copy of the direction model (eval mode, no grad)."""
        return set_from_bytes(self.directions.to_bytes())


def make_trainer(
    model: LoadedModel, method: str, params: dict[str, str], seed: int
) -> VoynovTrainer:
    """A trainer of ``method`` for ``model``; InvalidArgument for a bad method or param."""
    return VoynovTrainer(model, parse_config(method, params, model.latent_dim), seed)
