"""Loading a registered model once and rendering latents with it.

A :class:`LoadedModel` owns the generator on its device, the model version
(first 16 hex digits of the weights' SHA-256), and renders float32 latents
(N, d) to uint8 RGB images (N, H, W, 3) in chunks of at most ``max_batch``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from latentedit.errors import Unavailable
from latentedit.workers.models.registry import ARCHITECTURES, ModelSpec, PackagedWeights

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def packaged_weights_path(weights: PackagedWeights) -> Path:
    """Path of a file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(weights.package)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"package {weights.package!r} is not installed: {weights.pip_spec}")
    path = Path(next(iter(spec.submodule_search_locations))) / weights.resource
    if not path.is_file():
        raise Unavailable(f"{path} is missing: reinstall with {weights.pip_spec}")
    return path


def first_projection_matrix(weight: Tensor, latent_dim: int) -> Tensor:
    """A (out_features, d) float64 from a Linear (out, d) or ConvTranspose (d, ...) weight."""
    if weight.ndim == 2 and weight.shape[1] == latent_dim:
        return weight.detach().to(torch.float64)
    if weight.shape[0] == latent_dim:
        return weight.detach().reshape(latent_dim, -1).T.to(torch.float64)
    raise ValueError(f"no axis of size {latent_dim} in first projection {tuple(weight.shape)}")


@dataclass
class LoadedModel:
    spec: ModelSpec
    generator: nn.Module
    version: str
    device: torch.device
    dtype: torch.dtype
    max_batch: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    def forward(self, z: Tensor) -> Tensor:
        """z (N, d) float32, any device -> (N, 3, H, W) float32 in [-1, 1]; differentiable."""
        x: Tensor = self.generator(z.to(self.device, self.dtype))
        return x.float()

    @torch.inference_mode()
    def render(self, latents: np.ndarray) -> np.ndarray:
        """latents (N, d) -> uint8 RGB (N, H, W, 3), in chunks of ``max_batch``."""
        out = []
        for start in range(0, len(latents), self.max_batch):
            z = torch.from_numpy(np.ascontiguousarray(latents[start : start + self.max_batch]))
            out.append(to_uint8(self.forward(z.float())))
        if not out:
            r = self.spec.resolution
            return np.zeros((0, r, r, 3), np.uint8)
        return np.concatenate(out)

    def first_projection(self) -> Tensor:
        """SeFa's A (out_features, d), float64, from the spec's named parameter."""
        weight = dict(self.generator.named_parameters())[self.spec.first_projection]
        return first_projection_matrix(weight, self.latent_dim)


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(pixels: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def load_model(
    spec: ModelSpec, device: str = "cpu", dtype: str = "float32", max_batch: int = 64
) -> LoadedModel:
    """Build the architecture, load and verify weights (``weights_only=True``), eval mode."""
    torch_device = torch.device(device)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        dtype
    ]
    generator = ARCHITECTURES[spec.architecture](**spec.arch_kwargs)
    if spec.weights is not None:
        path = packaged_weights_path(spec.weights)
        digest = _sha256(path)
        if digest != spec.weights.sha256:
            raise Unavailable(
                f"{path}: SHA-256 {digest} does not match the registry's {spec.weights.sha256}"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        generator.load_state_dict(checkpoint[spec.weights.state_dict_key])
        version = digest[:16]
    else:
        version = _state_dict_digest(generator)[:16]
    generator.eval().requires_grad_(False).to(torch_device, torch_dtype)
    log.info("loaded %s version %s on %s (%s)", spec.name, version, torch_device, dtype)
    return LoadedModel(spec, generator, version, torch_device, torch_dtype, max_batch)


def _state_dict_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
