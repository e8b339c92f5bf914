"""What an inversion returns: per stage and per call."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor


@dataclass
class InversionResult:
    """The inversion of B images.

    latents: (B, d) float32 codes; edits act on these.
    residuals: (B, C, h, w) float32 first-feature-map residuals (zeros where unused), or None.
    deltas: per image, a tuning delta (see :func:`tune`) or None; None when no image was tuned.
    reconstructions: uint8 (B, H, W, 3).
    psnr: (B,) dB of the uint8 reconstruction against the uint8 target.
    code_psnr: (B,) the same for the plain generator at ``latents`` (no residual or delta):
        how far the editable code is from the image (= psnr where there are no extras).
    ssim: (B,) on [0, 1] images.
    edit_error: (B,) relative edit error (:func:`.metrics.edit_error`) when directions were
        given, else None.
    steps: (B,) optimiser steps spent on each image (all stages).
    seconds: wall time of the whole call.
    methods: per image, the method whose result is returned.
    trail: per image, (method, PSNR dB, steps) of every stage tried, in order.
    cancelled: progress returned False.
    """

    latents: np.ndarray
    residuals: np.ndarray | None
    deltas: list[dict[str, Tensor] | None] | None
    reconstructions: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    steps: np.ndarray
    seconds: float
    methods: list[str]
    trail: list[list[tuple[str, float, int]]] = field(default_factory=list)
    cancelled: bool = False
    edit_error: np.ndarray | None = None
    code_psnr: np.ndarray | None = None


@dataclass
class StageResult:
    """What one method returns for its B images (tensors on the targets' device).

    z: (B, d) codes; residual: (B, C, h, w) first-feature-map residuals or None;
    psnr: (B,) float dB of the returned iterate (on [0, 1] floats, not uint8);
    steps: (B,) iterations spent; cancelled: progress returned False;
    global_steps: loop iterations run (what progress counted);
    deltas: per image, the fp16 tuning delta (``tune`` only);
    stopped: (B,) bool, images that a progress mask stopped.
    """

    z: Tensor
    residual: Tensor | None
    psnr: Tensor
    steps: Tensor
    cancelled: bool
    global_steps: int
    deltas: list[dict[str, Tensor]] | None = None
    stopped: Tensor | None = None  # (B,) bool: images that progress stopped
