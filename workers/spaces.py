"""Codes in the latent spaces of one loaded model: spaces, mapping, sampling, rendering.

Spaces (see ``workers/models/contract.py``): ``z`` (N, z_dim); ``w`` (N, w_dim), the
mapping network's output; ``w+`` (N, num_ws, w_dim), one w per style layer. A w code
drives every style layer (it renders as w+ with the code repeated num_ws times).
Models without W (DCGANs, ``shapes``) have only ``z``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from latentedit.validate_spaces import ModelSpaces
from latentedit.workers.models.runtime import LoadedModel


def spaces_of(model: LoadedModel) -> ModelSpaces:
    """The spaces a loaded model serves, from its generator's ``GeneratorInfo``."""
    info = model.info
    if not info.num_ws:
        return ModelSpaces(("z",), "z", info.z_dim)
    return ModelSpaces(tuple(info.spaces), info.default_space, info.z_dim, info.w_dim, info.num_ws)


def map_z(model: LoadedModel, z: Tensor, space: str, psi: float | None = None) -> Tensor:
    """z (N, z_dim) -> codes of ``space``: z itself, w (N, w_dim) or w+ (N, num_ws, w_dim).

    ``psi`` truncates w towards the model's w_avg (None: the model's own psi; 1 = none).
    """
    if space == "z":
        return z
    psi = model.info.truncation_psi if psi is None else psi
    w: Tensor = model.generator.mapping(z.to(model.device, model.dtype), psi=psi).float()
    if space == "w":
        return w
    return w[:, None, :].expand(-1, model.info.num_ws, -1)


def synthesize(model: LoadedModel, codes: Tensor, space: str) -> Tensor:
    """Codes of ``space`` -> images (N, 3, H, W) float32 in [-1, 1]; differentiable."""
    return model.synthesize(codes, space)


def render_codes(model: LoadedModel, codes: np.ndarray, space: str) -> np.ndarray:
    """Codes (N, *shape) of ``space`` -> uint8 RGB (N, H, W, 3), in chunks of max_batch."""
    return model.render(codes.reshape(len(codes), -1) if space == "w+" else codes, space)


@torch.inference_mode()
def seeded_codes(
    model: LoadedModel, z: np.ndarray, space: str, psi: float | None = None, chunk: int = 1024
) -> np.ndarray:
    """z (N, z_dim) float32 -> float32 codes of ``space`` (mapped in chunks)."""
    if space == "z":
        return np.asarray(z, np.float32)
    parts = [
        map_z(model, torch.from_numpy(np.ascontiguousarray(z[s : s + chunk])), space, psi)
        .cpu()
        .numpy()
        for s in range(0, len(z), chunk)
    ]
    return np.concatenate(parts).astype(np.float32)
