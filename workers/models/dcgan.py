"""DCGAN generator (Radford et al. 2016) of any latent size, width and resolution.

Layout of the PyTorch DCGAN tutorial: ``main`` is a Sequential of
ConvTranspose2d(4, stride 1 then 2) + BatchNorm2d + ReLU blocks ending in a
ConvTranspose2d + Tanh, so tutorial checkpoints (``main.{i}.*``) load as they are.
:func:`dcgan_from_state_dict` loads one whatever its key names: tensors are matched
to layers by order and shape (names decide where they carry the roles), sizes inferred
from the shapes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from latentedit.workers.models.contract import (
    DISCOVER_REQUIRES,
    GeneratorInfo,
    as_rgb,
    invert_methods,
    supported_methods,
)


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> RGB image (N, 3, R, R) in [-1, 1], R = 4 * 2^(len(widths) - 1).

    Args:
        latent_dim: size of z.
        channels: image channels: 3 (RGB) or 1 (grey, rendered in R, G and B).
        width: ``ngf``; with ``widths`` unset, layers use 8/4/2/1 x width (64 px).
        widths: feature maps of each hidden layer, first (4x4) to last; overrides ``width``.
        conv_bias: which transposed convolutions have a bias (default: none).
    """

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 3,
        width: int = 64,
        widths: Sequence[int] | None = None,
        conv_bias: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        hidden = list(widths) if widths else [width * 8, width * 4, width * 2, width]
        sizes = [latent_dim, *hidden, channels]
        bias = list(conv_bias) if conv_bias else [False] * (len(sizes) - 1)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(itertools.pairwise(sizes)):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=bias[i]))
            if i < len(sizes) - 2:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)
        resolution = 4 * 2 ** (len(hidden))
        info = GeneratorInfo(
            resolution=resolution,
            channels=channels,
            z_dim=latent_dim,
            sefa_layers=("main.0",),
            architecture="dcgan",
            feature_shape=(hidden[0], 4, 4),
        )
        self.info = GeneratorInfo(
            **{
                **info.__dict__,
                "invert_methods": invert_methods(self),
                "discover_methods": supported_methods(self, DISCOVER_REQUIRES),
            }
        )

    def head(self, z: Tensor) -> Tensor:
        """z (N, latent_dim) -> first feature map (N, widths[0], 4, 4), before its BatchNorm.

        Linear in z; the extended (W+-like) inversion adds a residual here.
        """
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}")
        out: Tensor = self.main[0](z[:, :, None, None])
        return out

    def tail(self, h: Tensor) -> Tensor:
        """First feature map (N, widths[0], 4, 4) -> RGB image (N, 3, R, R) in [-1, 1]."""
        out: Tensor = self.main[1:](h)
        return as_rgb(out)

    def forward(self, z: Tensor) -> Tensor:
        return self.tail(self.head(z))

    def sefa_weight(self, layers: Sequence[int] | None = None) -> Tensor:
        """The first projection as (out_features, latent_dim) = (widths[0] * 16, d)."""
        if layers is not None and list(layers) not in ([], [0]):
            raise ValueError(f"DCGAN has one SeFa layer (0), got {list(layers)}")
        first: nn.ConvTranspose2d = self.main[0]  # type: ignore[assignment]
        w = first.weight.detach()  # (d, c0, 4, 4)
        return w.reshape(self.latent_dim, -1).T


# ---- loading any DCGAN state dict ---------------------------------------------------------

STATE_KEYS = (
    "netG_state_dict",
    "generator_state_dict",
    "G_state_dict",
    "gen_state_dict",
    "state_dict",
    "model_state_dict",
    "g_ema",
    "generator",
    "netG",
    "gen",
    "G",
    "model",
)


def find_state_dict(checkpoint: object) -> dict[str, Tensor]:
    """A state dict alone, or inside a dict under one of :data:`STATE_KEYS`."""
    if isinstance(checkpoint, dict):
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return dict(checkpoint)
        for key in STATE_KEYS:
            inner = checkpoint.get(key)
            if isinstance(inner, dict):
                return find_state_dict(inner)
    raise ValueError(
        "no generator state dict found: expected tensors, or a dict holding them under one "
        f"of {list(STATE_KEYS)}"
    )


BN_ROLES = ("weight", "bias", "running_mean", "running_var")


def dcgan_from_state_dict(state: dict[str, Tensor]) -> DCGANGenerator:
    """Build a :class:`DCGANGenerator` from ``state`` by tensor order and shape.

    Each 4-D tensor (in, out, 4, 4) is a transposed convolution; the 1-D tensors after
    it (scalars such as ``num_batches_tracked`` skipped) are, by count: 0 none,
    1 a conv bias, 4 BatchNorm (weight, bias, running mean, running var), 5 both; where
    their names end in those roles (``.bias`` of the convolution's own module, the
    BatchNorm's ``.weight`` ... ``.running_var``) the names decide, else their order.
    Tensors are taken in the state dict's order; if that does not fit, in the natural
    order of their modules' names (``main.2`` before ``main.10``, a module's 4-D weight
    first: a safetensors file stores its keys sorted). Raises ValueError naming the first
    key that does not fit (in the given order).
    """
    items = [(k, v) for k, v in state.items() if v.ndim > 0]
    try:
        return _from_ordered(items)
    except ValueError as given:
        natural = sorted(
            items, key=lambda kv: (_natural_key(_module(kv[0])), kv[1].ndim != 4, kv[0])
        )
        if natural == items:
            raise
        try:
            return _from_ordered(natural)
        except ValueError:
            raise given from None


def _natural_key(key: str) -> list[str | int]:
    """``"main.10.weight"`` -> ["main.", 10, ".weight"]: numbers compare as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0]


def _roles(
    conv_key: str, vectors: list[tuple[str, Tensor]], last: bool
) -> tuple[Tensor | None, list[Tensor]]:
    """(conv bias or None, BatchNorm (weight, bias, mean, var) or []) of a layer's vectors."""
    n = len(vectors)
    allowed = (0, 1) if last else (4, 5)
    if n not in allowed:
        raise ValueError(
            f"{conv_key}: followed by {n} vectors; expected "
            + ("0 or 1 (bias)" if last else "4 (BatchNorm) or 5 (bias + BatchNorm)")
        )
    bias_at, bias = None, None
    if n in (1, 5):  # the conv's own ``.bias`` by name, else the first vector
        own = [i for i, (k, _) in enumerate(vectors) if k == f"{_module(conv_key)}.bias"]
        bias_at = own[0] if own else 0
        bias = vectors[bias_at][1]
    bn = [kv for i, kv in enumerate(vectors) if i != bias_at]
    suffixes = [k.rsplit(".", 1)[-1] for k, _ in bn]
    if sorted(suffixes) == sorted(BN_ROLES):
        bn = [bn[suffixes.index(role)] for role in BN_ROLES]
    return bias, [v for _, v in bn]


def _from_ordered(items: list[tuple[str, Tensor]]) -> DCGANGenerator:
    groups: list[tuple[str, Tensor, list[tuple[str, Tensor]]]] = []
    for key, value in items:
        if value.ndim == 4:
            groups.append((key, value, []))
        elif value.ndim == 1 and groups:
            groups[-1][2].append((key, value))
        else:
            raise ValueError(f"{key}: shape {tuple(value.shape)} fits no DCGAN layer")
    if len(groups) < 2:
        raise ValueError("a DCGAN needs at least two transposed convolutions (4-D tensors)")
    latent_dim = int(groups[0][1].shape[0])
    widths, conv_bias, mapped = [], [], {}
    prev = latent_dim
    for i, (key, weight, vectors) in enumerate(groups):
        c_in, c_out = int(weight.shape[0]), int(weight.shape[1])
        if c_in != prev or weight.shape[2:] != (4, 4):
            raise ValueError(f"{key}: expected shape ({prev}, *, 4, 4), got {tuple(weight.shape)}")
        last = i == len(groups) - 1
        for vkey, v in vectors:
            if v.shape != (c_out,):
                raise ValueError(f"{vkey}: expected shape ({c_out},), got {tuple(v.shape)}")
        bias, bn = _roles(key, vectors, last)
        conv_bias.append(bias is not None)
        base = 3 * i
        mapped[f"main.{base}.weight"] = weight
        if bias is not None:
            mapped[f"main.{base}.bias"] = bias
        if not last:
            for name, v in zip(BN_ROLES, bn, strict=True):
                mapped[f"main.{base + 1}.{name}"] = v
            widths.append(c_out)
        prev = c_out
    channels = prev
    generator = DCGANGenerator(latent_dim, channels, widths=widths, conv_bias=conv_bias)
    missing, unexpected = generator.load_state_dict(
        {k: v.float() for k, v in mapped.items()}, strict=False
    )
    assert not unexpected, unexpected
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"missing tensors for {missing}")
    return generator


def random_dcgan_state(
    latent_dim: int = 64,
    widths: Sequence[int] = (128, 64, 32),
    channels: int = 3,
    seed: int = 0,
    conv_bias: Sequence[bool] | None = None,
) -> dict[str, Tensor]:
    """Seeded random DCGAN weights in the tutorial's ``main.{i}`` names (tests, benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    model = DCGANGenerator(latent_dim, channels, widths=widths, conv_bias=conv_bias)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
        elif ".weight" in key and value.ndim == 1:  # BatchNorm gamma
            state[key] = 1 + 0.02 * torch.randn(value.shape, generator=g)
        elif value.ndim == 4:  # (in, out, 4, 4): ~unit-variance outputs (4 taps per pixel)
            state[key] = torch.randn(value.shape, generator=g) / (4 * value.shape[0]) ** 0.5
        else:
            state[key] = 0.02 * torch.randn(value.shape, generator=g)
    return state
