"""The row-wise optimiser every inversion stage runs: Adam with per-image budgets.

Row i of every parameter tensor belongs to image i. Each row has its own step count
(Adam's bias correction and a cosine learning-rate schedule run per row), its own
budget and target PSNR; a row that reaches its target or budget stops costing compute,
and the best iterate per row (by PSNR) is what comes back.

Why not ``torch.optim.Adam``: it keeps one step count per tensor, so images with
different budgets in one batch would share one bias correction and schedule, and an
image that stopped would still be moved by its momentum; per image, the answer must not
depend on its batch mates (``test_batching_does_not_change_an_images_answer``).

The loop is a generator that yields at every step boundary, so a session can interleave
the steps of several batches (continuous batching, :mod:`.session`); :func:`drive` runs
one to completion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from torch import Tensor

from latentedit.workers.methods.inversion.metrics import psnr
from latentedit.workers.methods.inversion.protocol import Progress

T = TypeVar("T")
P = ParamSpec("P")
Steps = Generator[None, None, T]  # yields at step boundaries, returns T

# (active params {name: (M, ...)}, row indices (M,)) -> (loss per row (M,), recon (M, 3, H, W))
LossFn = Callable[[dict[str, Tensor], Tensor], tuple[Tensor, Tensor]]


def drive(steps: Steps[T]) -> T:
    """Run a step generator to completion and return its value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def blocking(fn: Callable[P, Steps[T]]) -> Callable[P, T]:
    """The plain-function form of a step generator function (runs it to completion)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return drive(fn(*args, **kwargs))

    run.__name__ = fn.__name__.removesuffix("_steps")
    run.__doc__ = fn.__doc__
    return run


@dataclass
class Run:
    """What every stage of one batch shares (instead of repeated keyword arguments).

    target_psnr: (B,) dB, an image stops once its best reaches it.
    progress: (step, loss, per-image best PSNR (B_report,)) every ``progress_every`` steps.
    step_offset: loop steps already run by earlier stages (what progress counts).
    report: maps this stage's (B,) best PSNR to what ``progress`` gets (a stage run on
        a subset of a larger batch); rows: (B,) index of each row in that larger batch.
    features: optional feature network for a feature loss.
    """

    target_psnr: Tensor | float = math.inf
    progress: Progress | None = None
    progress_every: int = 10
    step_offset: int = 0
    report: Callable[[Tensor], np.ndarray] | None = None
    rows: Tensor | None = None
    features: Callable[[Tensor], list[Tensor]] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def sub(self, rows: Tensor, report: Callable[[Tensor], np.ndarray], offset: int) -> Run:
        """This run restricted to ``rows`` of the batch."""
        t = torch.as_tensor(self.target_psnr)
        return Run(
            t[rows.cpu()] if t.ndim else t,
            self.progress,
            self.progress_every,
            offset,
            report,
            rows,
            self.features,
        )


@dataclass
class Outcome:
    best: dict[str, Tensor]  # best iterate per row, each (B, ...)
    psnr: Tensor  # (B,) float PSNR of the best iterate
    steps: Tensor  # (B,) int64 steps taken
    cancelled: bool
    global_steps: int
    stopped: Tensor  # (B,) bool: progress stopped these rows


BETAS = (0.9, 0.999)
EPS = 1e-8


def optimise(
    params: dict[str, Tensor],
    lrs: dict[str, float],
    loss_fn: LossFn,
    targets: Tensor,
    steps: Tensor,
    run: Run,
) -> Steps[Outcome]:
    """Row-wise Adam with a per-row cosine schedule and best-iterate tracking.

    params: each (B, ...) float32; targets: (B, 3, H, W) in [-1, 1]; steps: (B,) budget.
    Yields after every step; returns an :class:`Outcome`.
    """
    b = targets.shape[0]
    device = targets.device
    best = {k: v.detach().clone() for k, v in params.items()}
    cur = {k: v.detach().clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    best_psnr = torch.full((b,), -math.inf, device=device)
    done = torch.zeros(b, dtype=torch.long, device=device)
    steps = steps.to(device).long()
    target_psnr = torch.as_tensor(run.target_psnr, dtype=torch.float32).to(device).expand(b)
    beta1, beta2 = BETAS
    cancelled = False
    stopped = torch.zeros(b, dtype=torch.bool, device=device)
    k = 0
    evaluated = torch.zeros(b, dtype=torch.bool, device=device)  # current iterate scored?

    def score(idx: Tensor, p: dict[str, Tensor], recon: Tensor) -> None:
        cur_psnr = psnr(recon, targets[idx])
        better = cur_psnr > best_psnr[idx]
        if bool(better.all()) and idx.numel() == b:  # every row improved: plain copies
            best_psnr.copy_(cur_psnr)
            for name, value in p.items():
                best[name].copy_(value.detach())
        elif better.any():
            rows = idx[better]
            best_psnr[rows] = cur_psnr[better]
            for name, value in p.items():
                best[name][rows] = value.detach()[better]
        evaluated[idx] = True

    while True:
        active = (done < steps) & (best_psnr < target_psnr)
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        # every row active (the usual case): the state is updated in place, no gathers
        whole = idx.numel() == b
        p = {
            name: (value.detach() if whole else value[idx]).requires_grad_(True)
            for name, value in cur.items()
        }
        loss_rows, recon = loss_fn(p, idx)
        score(idx, p, recon)
        # A row that just reached its target keeps this iterate: no update for it.
        still = best_psnr[idx] < target_psnr[idx]
        grads = torch.autograd.grad(loss_rows.sum(), list(p.values()), allow_unused=True)
        t = (done[idx] + 1).float()
        frac = (done[idx].float() / steps[idx].clamp_min(1).float()).clamp(0, 1)
        sched = 0.5 * (1 + torch.cos(math.pi * frac))
        bc1 = 1 - beta1**t
        bc2 = 1 - beta2**t
        rate = sched / bc1 * still  # 0 for rows that keep this iterate
        upd_rows = idx[still]
        for (name, value), grad in zip(p.items(), grads, strict=True):
            if grad is None:
                continue
            shape = (-1,) + (1,) * (value.ndim - 1)
            mi = m[name] if whole else m[name][idx]
            vi = v2[name] if whole else v2[name][idx]
            mi.mul_(beta1).add_(grad, alpha=1 - beta1)
            vi.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = vi.div(bc2.view(shape)).sqrt_().add_(EPS)
            step = mi.div(denom).mul_((lrs[name] * rate).view(shape))
            if whole:
                cur[name].sub_(step)
            else:
                m[name][idx] = mi
                v2[name][idx] = vi
                cur[name][idx] = value.detach() - step
        done[upd_rows] += 1
        evaluated[upd_rows] = False
        k += 1
        if run.progress is not None and k % run.progress_every == 0:
            shown = run.report(best_psnr) if run.report else best_psnr.cpu().numpy()
            verdict = run.progress(run.step_offset + k, float(loss_rows.detach().mean()), shown)
            if verdict is False:
                cancelled = True
                break
            if verdict is not None and not isinstance(verdict, bool):
                keep = torch.as_tensor(np.asarray(verdict, dtype=bool), device=device)
                keep = keep[run.rows.to(device)] if run.rows is not None else keep
                if keep.shape != (b,):
                    raise ValueError(f"progress returned a mask of {tuple(keep.shape)} rows")
                stopped |= ~keep
                steps = torch.where(stopped, torch.minimum(steps, done), steps)
        yield
    # Score the last iterate of rows that moved since they were last scored.
    idx = (~evaluated).nonzero().squeeze(1)
    if idx.numel():
        p = {name: value[idx] for name, value in cur.items()}
        with torch.no_grad():
            _, recon = loss_fn(p, idx)
        score(idx, p, recon)
    return Outcome(best, best_psnr, done, cancelled, k, stopped)
