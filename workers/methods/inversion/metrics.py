"""Quality measures of an inversion: PSNR, SSIM and editability (relative edit error).

Images are float tensors (N, C, H, W) in [-1, 1] unless stated; uint8 images are
(N, H, W, 3). SSIM comes from pytorch-msssim (Gaussian window 11, sigma 1.5, 'valid'
filtering, Wang et al. 2004).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from pytorch_msssim import ssim as _ms_ssim
from torch import Tensor

#: edit strengths of the editability measure: alpha = +-2 along unit directions
EDIT_ALPHAS: tuple[float, ...] = (2.0, -2.0)
#: how many of the top SeFa directions the editability measure uses by default
EDIT_DIRECTIONS = 5


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return (images.float().clamp(-1, 1) + 1) / 2


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB of images in [-1, 1], (N, C, H, W), measured on [0, 1]: -> (N,)."""
    mse = ((a.detach().float() - b.detach().float()) / 2).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 image batches (N, H, W, 3) -> (N,); inf for identical images."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        return np.asarray(10 * np.log10(255.0**2 / mse))


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM of images in [0, 1], (N, C, H, W) -> (N,) (pytorch-msssim, window 11, sigma 1.5)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"need two (N, C, H, W) of one shape, got {a.shape} and {b.shape}")
    out: Tensor = _ms_ssim(a.float(), b.float(), data_range=1.0, size_average=False)
    return out


Render = Callable[[Tensor], Tensor]


def edit_error(
    render: Render,
    base: Render,
    z: Tensor,
    directions: Tensor,
    alphas: Sequence[float] = EDIT_ALPHAS,
) -> Tensor:
    """Relative edit error of inverted codes, mean over directions and strengths -> (N,).

    err = |(R(z + a n) - R(z)) - (G(z + a n) - G(z))|^2 / |G(z + a n) - G(z)|^2

    render: R, codes (N, d) -> images (N, C, H, W), with each row's extras (residual,
        tuning delta); base: G, the plain generator. z: (N, d) codes; directions: (K, d)
        unit rows. 0: the photo edits exactly as the generator's own faces do; ~1: the
        edit of the photo is unrelated to the generator's edit.
    """
    with torch.no_grad():
        r0, g0 = render(z).float(), base(z).float()
        errs = []
        for n in directions.to(z.device, z.dtype):
            for a in alphas:
                moved = z + a * n
                dr = render(moved).float() - r0
                dg = base(moved).float() - g0
                num = (dr - dg).square().flatten(1).sum(1)
                errs.append(num / dg.square().flatten(1).sum(1).clamp_min(1e-12))
    return torch.stack(errs).mean(0) if errs else z.new_zeros(len(z))
