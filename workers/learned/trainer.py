"""Voynov & Babenko's training loop, shared by the linear, warped and curvilinear models.

Each step: z ~ N(0, I) (B, d), k ~ U{0..K-1}, eps ~ ±U[shift_min, shift_max]; render
x = G(z), x' = G(model.shift(z, k, eps)); the reconstructor R(x, x') predicts k (cross
entropy) and eps (mean absolute error, weight ``mae_weight``); plus the model's own
regularisers (curvilinear: ``logdet_weight * (log|det df/dz|)^2`` and
``length_weight * (||phi(z) - z|| - |eps|)^2``) and ``orthogonal_weight`` x the mean cos^2
between the image changes of two directions at the same z (:mod:`.orthogonality`; default on
for curvilinear, which also starts from the generator's jointly diagonalising basis,
``init=jacobian``: on ``shapes`` that is what aligns its axes with the true factors).
Adam on both; the learning rates follow a cosine from ``lr`` down to ``lr / 10`` over ``steps``.

Parameters (``params``, all strings, all optional; defaults in :data:`DEFAULTS`):
num_directions (default :data:`DEFAULT_DIRECTIONS`), steps, batch, lr, lr_directions,
image_size, shift_min, shift_max, mae_weight, logdet_weight, length_weight (curvilinear),
orthogonal_weight, orthogonal_step, init (random | jacobian: linear and curvilinear),
orthonormal (linear), dipoles/gamma/step_size (warped), layers/hidden (curvilinear).
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
from latentedit.workers.learned.orthogonality import jacobian_skew_steps, orthogonality_loss
from latentedit.workers.learned.protocol import METHODS
from latentedit.workers.learned.reconstructor import Reconstructor
from latentedit.workers.learned.serialize import set_from_bytes
from latentedit.workers.methods.inversion.optim import Steps
from latentedit.workers.models.runtime import LoadedModel

#: Default steps per method: each trains within 20 min on 2 CPU cores for ``shapes``.
DEFAULT_STEPS = {"linear": 3000, "warped": 3000, "curvilinear": 3000}

#: Default K per method (capped at d). Curvilinear defaults to 8: its orthogonality term
#: aligns axes with factors only while K does not exceed the generator's effective latent
#: dimensions; with more, Voynov & Babenko's loss spreads the directions as a frame instead
#: (shapes, 3 seeds: 6-7 of 8 aligned at K = 8, 3-6 of the top 8 at K = 16).
DEFAULT_DIRECTIONS = {"linear": 16, "warped": 16, "curvilinear": 8}

#: Largest latent size the Jacobian start is computed for (its cost grows as d^3 per step).
JACOBIAN_MAX_DIM = 128

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
    "orthogonal_weight": "",  # "": 20 for curvilinear, else 0 (orthogonality_loss)
    "orthogonal_step": "0.25",  # latent step of the finite differences of that term
    "init": "",  # random | jacobian (jacobian_skew); "": jacobian for curvilinear, d <= 128
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
    orthogonal_weight: float
    orthogonal_step: float
    init: str
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


def _init(method: str, raw: str, latent_dim: int) -> str:
    if not raw:
        small = latent_dim <= JACOBIAN_MAX_DIM
        return "jacobian" if method == "curvilinear" and small else "random"
    if raw not in ("random", "jacobian"):
        raise InvalidArgument(f"param init={raw!r} must be random or jacobian")
    if raw == "jacobian" and method == "warped":
        raise InvalidArgument("param init=jacobian applies to linear and curvilinear, not warped")
    return raw


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
    p.setdefault("num_directions", str(min(d, DEFAULT_DIRECTIONS[method])))
    p.setdefault("steps", str(DEFAULT_STEPS[method]))
    k_max = d if method in ("curvilinear",) or p.get("orthonormal") == "true" else 4 * d
    lr = _num(p, "lr", float, 1e-6, 1.0)
    ortho = {"orthogonal_weight": "20" if method == "curvilinear" else "0", **p}
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
        orthogonal_weight=_num(ortho, "orthogonal_weight", float, 0.0, 1000.0),
        orthogonal_step=_num(p, "orthogonal_step", float, 1e-3, 10.0),
        init=_init(method, p.get("init") or "", d),
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
        self.started = False  # the init (jacobian) happens at the first step, not on resume
        self._starting: Steps[None] | None = None

    def _lr_factor(self) -> float:
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * self.step / max(1, self.total_steps)))

    def _sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, b = self.cfg, self.cfg.batch
        z = torch.randn(b, self.model.latent_dim, generator=self.rng)
        k = torch.randint(0, cfg.num_directions, (b,), generator=self.rng)
        mag = cfg.shift_min + (cfg.shift_max - cfg.shift_min) * torch.rand(b, generator=self.rng)
        sign = torch.randint(0, 2, (b,), generator=self.rng) * 2 - 1
        return z, k, mag * sign

    def _start_steps(self) -> Steps[None]:
        """The start (init=jacobian) as a step generator; nothing for init=random."""
        if self.cfg.init != "jacobian":
            return
        small = self.model.latent_dim <= 32
        skew = yield from jacobian_skew_steps(
            self.model, samples=128 if small else 32, image_size=self.cfg.image_size,
            seed=self.seed, starts=4 if small else 1,
        )  # fmt: skip
        d = self.directions
        with torch.no_grad():
            if isinstance(d, LinearDirections) and not d.orthonormal:
                q = torch.linalg.matrix_exp((skew - skew.T).double())
                d.weight.copy_(q[: d.num_directions].to(d.weight.dtype))
            else:  # the skew parameter of expm(S - S^T): curvilinear, linear orthonormal
                param = d.skew if isinstance(d, CurvilinearDirections) else d.weight
                param.copy_(skew)

    def _prepare(self, seconds: float = 0.5) -> bool:
        """Advance the start for about ``seconds``; True once it is done."""
        if self._starting is None:
            self._starting = self._start_steps()
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            try:
                next(self._starting)
            except StopIteration:
                self.started = True
                return True
        return False

    def train_step(self) -> dict[str, float]:
        """One step; before the first, the start runs in slices of ~0.5 s, each returned as
        {"preparing": 1, "step": 0, ...} without a step (so a job stays cancellable)."""
        start = time.perf_counter()
        if not self.started and not self._prepare():
            return {
                "preparing": 1.0,
                "step": float(self.step),
                "total_steps": float(self.total_steps),
                "seconds": time.perf_counter() - start,
            }
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
        if self.cfg.orthogonal_weight > 0:
            ortho = self._orthogonality(z, k, x)
            loss = loss + self.cfg.orthogonal_weight * ortho
            out["orthogonal"] = float(ortho.detach())
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

    def _orthogonality(self, z: torch.Tensor, k: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """orthogonality_loss of direction k and a random other one at each code z."""
        kk, h = self.cfg.num_directions, self.cfg.orthogonal_step
        other = (k + torch.randint(1, kk, k.shape, generator=self.rng)) % kk
        steps = torch.full((2 * len(z),), h)
        both = self.model.forward(
            self.directions.shift(torch.cat([z, z]), torch.cat([k, other]), steps)
        )
        return orthogonality_loss(x, both[: len(z)], both[len(z) :], h)

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
        self.started = True
        self.accuracy_ema = float(state["accuracy_ema"])

    def result(self) -> LearnedDirections:
        """A detached copy of the direction model (eval mode, no grad)."""
        return set_from_bytes(self.directions.to_bytes())


def make_trainer(
    model: LoadedModel, method: str, params: dict[str, str], seed: int
) -> VoynovTrainer:
    """A trainer of ``method`` for ``model``; InvalidArgument for a bad method or param."""
    return VoynovTrainer(model, parse_config(method, params, model.latent_dim), seed)
