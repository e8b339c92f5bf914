"""The dispatcher: one method, or ``auto``, over a batch of images.

``auto`` runs latent stages first (encoder -> hybrid, or optimize without an encoder),
then the extended residual, then tuning, each only for the images still short of
``target_psnr``; every candidate must also keep its relative edit error under
``max_edit_error`` (measured along ``directions``), and per image the best PSNR among
the admissible candidates is returned (latent-only candidates edit exactly like the
generator: edit error 0).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from latentedit.workers.methods.encoder import Encoder
from latentedit.workers.methods.inversion.metrics import edit_error, psnr_uint8, ssim
from latentedit.workers.methods.inversion.optim import Run, Steps, blocking
from latentedit.workers.methods.inversion.protocol import (
    METHODS,
    Features,
    Progress,
    Renderer,
    as_rows,
    generate,
    is_split,
)
from latentedit.workers.methods.inversion.results import InversionResult, StageResult
from latentedit.workers.methods.inversion.stages import (
    ExtendedConfig,
    FeedbackConfig,
    HybridConfig,
    OptimizeConfig,
    encode_feedback,
    extended_steps,
    hybrid_steps,
    optimize_steps,
)
from latentedit.workers.methods.inversion.tuner import render
from latentedit.workers.methods.inversion.tuning import TuneConfig, tune_steps

#: default bound on the relative edit error of ``auto`` results
DEFAULT_MAX_EDIT_ERROR = 0.3


@dataclass(frozen=True)
class InvertConfig:
    """Settings of every method; ``steps`` is the per-image step budget of a call.

    shares: budget fractions of ``auto``'s (latent stage, extended residual); tuning gets
    the rest. ``pivot_share``: what ``tune`` and ``extended`` alone spend on their latent
    pivot. Unspent steps of an image that stopped early at its target are not carried over.
    retune_locality: in ``auto``, images whose tuned result breaks the edit-error bound
    tune again from the same pivot with this many times the locality weight (1: never).
    extended_gap_db: ``auto`` runs the extended stage only for images within this many dB of
    their target after the latent stage (generated faces: gaps of 0.5-4.6 dB closed in 1-8
    steps, so no tuning delta; real photos: gaps of 6.6-13 dB, 60 steps gained 4.7-6.2 dB and
    tuning took as many steps after it as without it); inf: every image.
    """

    steps: int = 300
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    extended: ExtendedConfig = field(default_factory=ExtendedConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    shares: tuple[float, float] = (0.1, 0.1)
    pivot_share: float = 0.25
    retune_locality: float = 3.0
    extended_gap_db: float = 6.0
    progress_every: int = 10
    # feedback passes: the ``encoder`` method's, and ``hybrid``'s start (a few passes cost
    # about one optimiser step; hybrid on 8 sets of 16 held-out faces through the SDK went
    # from 33.57-34.75 to 34.20-35.33 dB). The pivots of ``tune``, ``extended`` and ``auto``
    # start from one pass, E(x), as In-Domain inversion does (photos lie far from the faces
    # the encoder learnt).
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)


@dataclass
class _Batch:
    """Per-image state of a batch across stages: the chosen candidate and the bookkeeping."""

    z: Tensor  # (B, d)
    residual: Tensor | None  # (B, C, h, w) or None
    deltas: list[dict[str, Tensor] | None] | None
    psnr: Tensor  # (B,) dB of the chosen candidate
    error: Tensor  # (B,) edit error of the chosen candidate
    steps: Tensor  # (B,) long, all stages
    stopped: Tensor  # (B,) bool
    methods: list[str]
    trail: list[list[tuple[str, float, int]]] = field(default_factory=list)
    global_steps: int = 0
    cancelled: bool = False

    def report_for(self, rows: Tensor) -> Callable[[Tensor], np.ndarray]:
        def report(sub: Tensor) -> np.ndarray:
            full = self.psnr.clone()
            full[rows] = torch.maximum(full[rows], sub.to(full.device))
            return full.cpu().numpy()

        return report


def invert_steps(
    method: str,
    generator: Renderer,
    targets: Tensor,
    cfg: InvertConfig = InvertConfig(),
    *,
    encoder: Encoder | None = None,
    z0: Tensor | None = None,
    target_psnr: Tensor | float = math.inf,
    steps: Tensor | int | None = None,
    features: Features | None = None,
    progress: Progress | None = None,
    directions: Tensor | None = None,
    max_edit_error: Tensor | float = math.inf,
) -> Steps[InversionResult]:
    """Invert a batch with one method, or ``auto``; a step generator (see :func:`invert`).

    Args:
        method: one of :data:`METHODS` or "auto".
        generator: the generator, in eval mode (extended needs a head/tail split).
        targets: (B, 3, H, W) float32 in [-1, 1] on the generator's device.
        encoder: needed by encoder and hybrid; others start from it when given.
        z0: (B, R, d) random starts for the optimize stage (used without an encoder).
        target_psnr: (B,) or scalar dB; an image stops once it reaches it.
        steps: (B,) or scalar per-image step budget (default ``cfg.steps``).
        features: optional feature network for a feature loss (weights in the configs).
        progress: (step, loss, per-image best PSNR (B,)) every ``cfg.progress_every``
            steps; False cancels, a (B,) bool array stops the images marked False.
        directions: (K, d) unit edit directions for the edit error (None: not measured).
        max_edit_error: (B,) or scalar; candidates above it are not returned when one
            under it exists (auto escalates past them).
    Returns:
        an :class:`InversionResult` (PSNR measured on the uint8 reconstruction).
    """
    start = time.perf_counter()
    b = targets.shape[0]
    device = targets.device
    budget = as_rows(cfg.steps if steps is None else steps, b, device).long()
    tpsnr = as_rows(target_psnr, b, device)
    bound = as_rows(max_edit_error, b, device)
    d = _latent_dim(generator, encoder, z0)
    st = _Batch(
        z=torch.zeros(b, d, device=device),
        residual=None,
        deltas=None,
        psnr=torch.full((b,), -math.inf, device=device),
        error=torch.zeros(b, device=device),
        steps=torch.zeros(b, dtype=torch.long, device=device),
        stopped=torch.zeros(b, dtype=torch.bool, device=device),
        methods=[""] * b,
        trail=[[] for _ in range(b)],
    )
    base_run = Run(tpsnr, progress, cfg.progress_every, features=features)

    def errors_of(res: StageResult) -> Tensor:
        if directions is None or (res.residual is None and res.deltas is None):
            return torch.zeros(len(res.z), device=device)
        return edit_error(
            lambda z: render(generator, z, res.residual, res.deltas),
            lambda z: generate(generator, z),
            res.z,
            directions.to(device),
        ).to(device)

    def record(name: str, rows: Tensor, res: StageResult) -> None:
        st.global_steps += res.global_steps
        st.cancelled = st.cancelled or res.cancelled
        st.steps[rows] += res.steps.to(device)
        if res.stopped is not None:
            st.stopped[rows] |= res.stopped.to(device)
        err = errors_of(res)
        new_p = res.psnr.to(device)
        ok_new = err <= bound[rows]
        ok_old = st.error[rows] <= bound[rows]
        never = torch.isinf(st.psnr[rows]) & (st.psnr[rows] < 0)
        # admissible beats inadmissible; among admissible the better PSNR; among
        # inadmissible the smaller edit error
        better = never | (ok_new & ~ok_old) | (ok_new & ok_old & (new_p >= st.psnr[rows]))
        better |= ~ok_new & ~ok_old & (err < st.error[rows])
        for j, i in enumerate(rows.tolist()):
            st.trail[i].append((name, float(new_p[j]), int(res.steps[j])))
        upd = rows[better]
        if upd.numel() == 0:
            return
        st.psnr[upd] = new_p[better]
        st.error[upd] = err[better]
        st.z[upd] = res.z[better].to(device)
        if res.residual is not None:
            if st.residual is None:
                st.residual = torch.zeros(b, *res.residual.shape[1:], device=device)
            st.residual[upd] = res.residual[better].to(device)
        elif st.residual is not None:
            st.residual[upd] = 0
        if res.deltas is not None:
            if st.deltas is None:
                st.deltas = [None] * b
            for j in better.nonzero().squeeze(1).tolist():
                st.deltas[int(rows[j])] = res.deltas[j]
        elif st.deltas is not None:
            for i in upd.tolist():
                st.deltas[i] = None
        for i in upd.tolist():
            st.methods[i] = name

    def open_rows() -> Tensor:
        short = (st.psnr < tpsnr) & (st.steps < budget) & ~st.stopped
        return short.nonzero().squeeze(1)

    def stage_steps(rows: Tensor, upto: float) -> Tensor:
        return ((budget[rows].float() * upto).round().long() - st.steps[rows]).clamp_min(0)

    def run_for(rows: Tensor) -> Run:
        return base_run.sub(rows, st.report_for(rows), st.global_steps)

    def run_encoder() -> None:
        assert encoder is not None
        rows = torch.arange(b, device=device)
        fb = cfg.feedback if method in ("encoder", "hybrid") else FeedbackConfig(passes=0)
        z, p = encode_feedback(generator, encoder, targets, fb)
        record("encoder", rows, StageResult(z, None, p, torch.zeros(b, dtype=torch.long), False, 0))

    def polish_encoder() -> Steps[None]:
        """The ``encoder`` method's step budget: optimisation steps from its best code."""
        rows = open_rows()
        if rows.numel() == 0:
            return
        polish = replace(cfg.optimize, lr=cfg.feedback.polish_lr, restarts=1)
        res = yield from optimize_steps(
            generator, targets[rows], st.z[rows, None], polish, run_for(rows),
            steps=stage_steps(rows, 1.0),
        )  # fmt: skip
        record("encoder", rows, res)

    def run_latent(upto: float, use_encoder: bool = True) -> Steps[None]:
        """The latent pivot: encoder (+ hybrid), or optimize from z0."""
        if encoder is not None and use_encoder:
            run_encoder()
            rows = open_rows()
            if rows.numel() and upto > 0:
                res = yield from hybrid_steps(
                    generator, encoder, targets[rows], cfg.hybrid, run_for(rows),
                    z0=st.z[rows], steps=stage_steps(rows, upto),
                )  # fmt: skip
                record("hybrid", rows, res)
            return
        if z0 is None:
            raise ValueError(f"method {method!r} needs an encoder or z0 (B, R, d)")
        rows = torch.arange(b, device=device)
        res = yield from optimize_steps(
            generator, targets, z0.to(device), cfg.optimize, run_for(rows),
            steps=stage_steps(rows, upto).clamp_min(1),
        )  # fmt: skip
        record("optimize", rows, res)

    def run_extended(upto: float, gap: float = math.inf) -> Steps[None]:
        rows = open_rows()
        rows = rows[tpsnr[rows] - st.psnr[rows] <= gap]
        if rows.numel() == 0 or st.cancelled:
            return
        res = yield from extended_steps(
            generator, targets[rows], st.z[rows], cfg.extended, run_for(rows),
            residual0=None if st.residual is None else st.residual[rows],
            steps=stage_steps(rows, upto),
        )  # fmt: skip
        record("extended", rows, res)

    def run_tune(tune_cfg: TuneConfig, rows: Tensor) -> Steps[None]:
        if rows.numel() == 0 or st.cancelled:
            return
        res = yield from tune_steps(
            generator, targets[rows], st.z[rows], tune_cfg, run_for(rows),
            residual=None if st.residual is None else st.residual[rows],
            steps=stage_steps(rows, 1.0),
        )  # fmt: skip
        record("tune", rows, res)

    def run_tune_within_bound() -> Steps[None]:
        """Tune; images whose tuned result broke the edit-error bound tune again from the
        same pivot with a stronger locality term (``cfg.retune_locality`` x), once."""
        rows = open_rows()
        yield from run_tune(cfg.tune, rows)
        weight = cfg.tune.locality_weight
        if directions is None or cfg.retune_locality <= 1 or weight <= 0 or rows.numel() == 0:
            return
        broke = rows[(st.error[rows] > bound[rows]) | torch.tensor(
            [st.methods[i] != "tune" for i in rows.tolist()], dtype=torch.bool, device=device
        )]  # fmt: skip
        broke = broke[(st.steps[broke] < budget[broke]) & ~st.stopped[broke]]
        yield from run_tune(replace(cfg.tune, locality_weight=weight * cfg.retune_locality), broke)

    s_l, s_e = cfg.shares
    if method == "encoder":
        if encoder is None:
            raise ValueError("method 'encoder' needs an encoder")
        run_encoder()
        yield from polish_encoder()
    elif method == "optimize":
        yield from run_latent(1.0, use_encoder=False)
    elif method == "hybrid":
        if encoder is None:
            raise ValueError("method 'hybrid' needs an encoder")
        yield from run_latent(1.0)
    elif method == "extended":
        if not is_split(generator):
            raise ValueError("method 'extended' needs a generator with head/tail")
        yield from run_latent(cfg.pivot_share)
        if not st.cancelled:
            yield from run_extended(1.0)
    elif method == "tune":
        yield from run_latent(cfg.pivot_share)
        if not st.cancelled:
            yield from run_tune(cfg.tune, open_rows())
    elif method == "auto":
        yield from run_latent(s_l)
        if is_split(generator) and not st.cancelled:
            yield from run_extended(s_l + s_e, cfg.extended_gap_db)
        if not st.cancelled:
            yield from run_tune_within_bound()
    else:
        raise ValueError(f"unknown method {method!r}; known: {[*METHODS, 'auto']}")
    return _finish(generator, targets, st, start, directions)


invert = blocking(invert_steps)


def _latent_dim(generator: Renderer, encoder: Encoder | None, z0: Tensor | None) -> int:
    if encoder is not None:
        return encoder.cfg.latent_dim
    if z0 is not None:
        return int(z0.shape[-1])
    dim = getattr(generator, "latent_dim", None)
    if dim is None:
        raise ValueError("cannot tell the latent size: pass an encoder or z0")
    return int(dim)


def _finish(
    generator: Renderer,
    targets: Tensor,
    st: _Batch,
    start: float,
    directions: Tensor | None,
) -> InversionResult:
    from latentedit.workers.models.runtime import to_uint8

    x = render(generator, st.z, st.residual, st.deltas)
    recon = to_uint8(x)
    target_u8 = to_uint8(targets)
    p = code_psnr = psnr_uint8(recon, target_u8)
    if st.residual is not None or any(d is not None for d in st.deltas or []):
        # the plain generator at the codes: how far the editable code is from the image
        code_psnr = psnr_uint8(to_uint8(render(generator, st.z)), target_u8)
    with torch.no_grad():
        s = ssim(
            torch.from_numpy(recon).permute(0, 3, 1, 2).float() / 255,
            torch.from_numpy(target_u8).permute(0, 3, 1, 2).float() / 255,
        )
    err = None
    if directions is not None:
        err = (
            edit_error(
                lambda z: render(generator, z, st.residual, st.deltas),
                lambda z: generate(generator, z),
                st.z,
                directions.to(st.z.device),
            )
            .cpu()
            .numpy()
        )
    return InversionResult(
        latents=st.z.detach().cpu().float().numpy(),
        residuals=None if st.residual is None else st.residual.cpu().float().numpy(),
        deltas=st.deltas,
        reconstructions=recon,
        psnr=p,
        code_psnr=code_psnr,
        ssim=s.numpy(),
        steps=st.steps.cpu().numpy(),
        seconds=time.perf_counter() - start,
        methods=st.methods,
        trail=st.trail,
        cancelled=st.cancelled,
        edit_error=err,
    )
