"""Loading a registered model once and rendering codes with it.

A :class:`LoadedModel` owns the generator on its device and dtype, the model
version (first 16 hex digits of the weights' SHA-256; ``info.version`` has all
of it), the generator's :class:`GeneratorInfo`, and renders float32 codes in
any of its spaces to uint8 RGB images (N, H, W, 3) in chunks of at most
``max_batch`` images. On CUDA the largest batch that fits is measured at load
time (binary search on out-of-memory) and caps ``max_batch``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from latentedit.errors import Unavailable
from latentedit.workers.models.contract import SERVED_CHANNELS, GeneratorInfo, is_style
from latentedit.workers.models.dcgan import dcgan_from_state_dict, find_state_dict
from latentedit.workers.models.registry import ARCHITECTURES, ModelSpec, PackagedWeights
from latentedit.workers.models.safe_pickle import load_torch_file
from latentedit.workers.models.stylegan2_ckpt import load_stylegan2

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelLoadError(ValueError):
    """A configured model's weights do not load (the message names the model, file and key)."""


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
    spec: ModelSpec  # with resolution, latent_dim (z) and first_projection filled in
    generator: nn.Module  # implements contract.Generator (StyleGenerator for stylegan2)
    version: str  # first 16 hex digits of info.version
    device: torch.device
    dtype: torch.dtype
    max_batch: int  # images per generator pass
    info: GeneratorInfo = dataclasses.field(default=None)
    bytes_per_image: int = 0  # device memory per image in a batch (CUDA: measured)
    # values derived once per loaded model (w statistics, code renderers), by their key
    memo: dict[Hashable, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.info is None:
            self.info = self.generator.info

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def latent_dim(self) -> int:
        """Size of z (ModelInfo.latent_dim)."""
        return self.info.z_dim

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def forward(self, z: Tensor) -> Tensor:
        """z (N, d) float32, any device -> (N, C, H, W) float32 in [-1, 1]; differentiable."""
        x: Tensor = self.generator(z.to(self.device, self.dtype))
        return x.float()

    def synthesize(self, codes: Tensor, space: str = "z") -> Tensor:
        """Codes in ``space`` -> (N, C, H, W) float32; differentiable.

        z: (N, z_dim); w: (N, w_dim); w+: (N, num_ws, w_dim) or flattened (N, num_ws * w_dim).
        """
        if space == "z":
            return self.forward(codes)
        if space not in self.info.spaces:
            raise ValueError(f"model {self.name} has no {space!r} space; it has {self.info.spaces}")
        g = self.generator
        x = codes.to(self.device, self.dtype)
        n, d = self.info.num_ws, self.info.w_dim
        ws = x[:, None].expand(-1, n, -1) if space == "w" else x.reshape(-1, n, d)
        out: Tensor = g.synthesis(ws)  # type: ignore[operator]
        return out.float()

    @torch.inference_mode()
    def render(self, latents: np.ndarray, space: str = "z") -> np.ndarray:
        """Codes (N, dim of ``space``) -> uint8 RGB (N, H, W, 3), in chunks of ``max_batch``."""
        out = []
        for start in range(0, len(latents), self.max_batch):
            c = torch.from_numpy(np.ascontiguousarray(latents[start : start + self.max_batch]))
            out.append(to_uint8(self.synthesize(c.float(), space)))
        if not out:
            r = self.resolution
            return np.zeros((0, r, r, 3), np.uint8)
        return np.concatenate(out)

    def first_projection(self) -> Tensor:
        """SeFa's A (out_features, d) in Z, float64 (z-only models)."""
        if self.spec.first_projection:
            weight = dict(self.generator.named_parameters())[self.spec.first_projection]
            return first_projection_matrix(weight, self.latent_dim)
        return self.sefa_weight()

    def sefa_weight(self, layers: list[int] | None = None) -> Tensor:
        """The generator's stacked SeFa weights (out_total, dim of the default space), float64."""
        w: Tensor = self.generator.sefa_weight(layers)  # type: ignore[operator]
        return w.detach().to(torch.float64).cpu()


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(pixels: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def _weights_file(spec: ModelSpec) -> tuple[Path, str]:
    """The spec's weights file and its SHA-256, checked against the expected digest."""
    if spec.weights is not None:
        path, expected = packaged_weights_path(spec.weights), spec.weights.sha256
    else:
        path, expected = Path(spec.path).expanduser(), spec.sha256
        if not path.is_file():
            raise Unavailable(f"model {spec.name}: weights file {path} does not exist")
    digest = _sha256(path)
    if expected and digest != expected:
        raise Unavailable(f"{path}: SHA-256 {digest} does not match the registry's {expected}")
    return path, digest


def build_generator(spec: ModelSpec) -> tuple[nn.Module, str]:
    """The spec's generator with its weights (``weights_only=True`` / safe pickle) and digest."""
    if spec.weights is None and not spec.path:
        procedural = ARCHITECTURES[spec.architecture](**spec.arch_kwargs)
        return procedural, _state_dict_digest(procedural)
    path, digest = _weights_file(spec)
    try:
        if spec.architecture == "stylegan2":
            generator: nn.Module = load_stylegan2(path)
        elif spec.architecture == "dcgan":
            checkpoint = load_torch_file(path)
            if spec.weights is not None:
                checkpoint = checkpoint[spec.weights.state_dict_key]
            generator = dcgan_from_state_dict(find_state_dict(checkpoint))
        else:
            raise ValueError(f"architecture {spec.architecture!r} takes no weights file")
    except (ValueError, KeyError, RuntimeError, OSError, UnpicklingError) as exc:
        raise ModelLoadError(f"model {spec.name} ({spec.architecture}, {path}): {exc}") from exc
    return generator, digest


def load_model(
    spec: ModelSpec, device: str = "cpu", dtype: str = "float32", max_batch: int = 64
) -> LoadedModel:
    """Build the architecture, load and verify weights, eval mode, on ``device`` in ``dtype``.

    CUDA: channels-last, and ``max_batch`` capped by the largest batch that fits.
    """
    torch_device, torch_dtype = torch.device(device), DTYPES[dtype]
    generator, digest = build_generator(spec)
    info: GeneratorInfo = generator.info
    info = dataclasses.replace(info, version=digest, truncation_psi=spec.truncation_psi)
    generator.info = info
    if info.channels not in SERVED_CHANNELS:
        raise ModelLoadError(
            f"model {spec.name}: the checkpoint makes {info.channels}-channel images; the "
            f"service serves {' or '.join(map(str, SERVED_CHANNELS))} (grey or RGB)"
        )
    if spec.truncation_psi != 1.0 and not is_style(generator):
        raise ModelLoadError(f"model {spec.name}: truncation_psi needs a style generator")
    generator.eval().requires_grad_(False).to(torch_device, torch_dtype)
    if torch_device.type == "cuda":  # cuDNN: faster (fp16/bf16 tensor cores) in NHWC
        generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if hasattr(generator, "channels_last"):
            setattr(generator, "channels_last", True)  # noqa: B010 (nn.Module attribute typing)
    spec = dataclasses.replace(
        spec,
        resolution=info.resolution,
        latent_dim=info.z_dim,
        first_projection=spec.first_projection or _first_projection_name(spec.architecture),
    )
    model = LoadedModel(spec, generator, digest[:16], torch_device, torch_dtype, max_batch, info)
    if torch_device.type == "cuda":
        model.max_batch, model.bytes_per_image = measure_max_batch(model, max_batch)
    else:
        model.bytes_per_image = activation_bytes_per_image(model)
    log.info(
        "loaded %s (%s %dpx, spaces %s) version %s on %s (%s), batch cap %d, %.1f MB/image",
        spec.name,
        info.architecture,
        info.resolution,
        ",".join(info.spaces),
        model.version,
        torch_device,
        dtype,
        model.max_batch,
        model.bytes_per_image / 1e6,
    )
    return model


def _first_projection_name(architecture: str) -> str:
    return {"dcgan": "main.0.weight", "shapes": "mixing.weight"}.get(architecture, "")


def activation_bytes_per_image(model: LoadedModel) -> int:
    """CPU estimate: bytes of every module's output for one image (a forward with hooks)."""
    total = 0

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal total
        if isinstance(out, Tensor):
            total += out.numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in model.generator.modules()]
    try:
        with torch.inference_mode():
            model.forward(torch.zeros(1, model.latent_dim))
    finally:
        for h in handles:
            h.remove()
    return total


def measure_max_batch(model: LoadedModel, limit: int) -> tuple[int, int]:
    """CUDA only: the largest batch <= ``limit`` whose forward fits, and bytes per image."""
    dev = model.device

    def peak(n: int) -> int | None:
        """Peak bytes allocated by a forward of ``n`` images; None on out-of-memory."""
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        try:
            with torch.inference_mode():
                model.forward(torch.zeros(n, model.latent_dim, device=dev))
            torch.cuda.synchronize(dev)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return None
        return int(torch.cuda.max_memory_allocated(dev) - base)

    try:
        return search_max_batch(peak, limit)
    except ValueError as exc:
        raise ModelLoadError(f"model {model.name} on {dev}: {exc}") from None


def search_max_batch(peak: Callable[[int], int | None], limit: int) -> tuple[int, int]:
    """Largest n in [1, limit] with ``peak(n)`` not None (binary search), and bytes per image.

    Bytes per image is the slope of the peak between batch 1 and that batch (batch 1's peak
    when it is 1). ``peak`` must be monotone: a batch that fails means every larger one does.
    """
    one = peak(1)
    if one is None:
        raise ValueError("one image does not fit")
    lo, hi = 1, limit
    top = peak(limit) if limit > 1 else one
    if top is not None:
        lo = limit
    else:
        while hi - lo > 1:  # invariant: lo fits, hi does not
            mid = (lo + hi) // 2
            if peak(mid) is None:
                hi = mid
            else:
                lo = mid
        top = peak(lo) if lo > 1 else one
        if top is None:
            raise ValueError(f"batch {lo} fitted once, then not")
    per_image = (top - one) // (lo - 1) if lo > 1 else one
    return lo, int(per_image)


def _state_dict_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
