"""An independent StyleGAN2 to check ours against: PyPI's ``stylegan2-torch`` (dev extra).

``stylegan2-torch`` 1.3.0 builds CUDA kernels when imported (``cpp_extension.load``);
on a machine without a GPU toolchain we import it with ``load`` stubbed by a module
whose only op is ``upfirdn2d`` written here the textbook way (zero insertion, padding,
2-D correlation with the flipped kernel, subsampling) — a different algorithm from
the transposed convolutions in ``workers/models/stylegan2.py``. Everything else
(mapping, modulation, demodulation, blur paddings, skip wiring, w+ indexing) is the
package's own code. Its ToRGB is single-channel; we give its ToRGB parameters three
output channels (its forward reads the channel count from the weight).
"""

from __future__ import annotations

import importlib
import math
import types
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upfirdn2d_textbook(
    x: Tensor, kernel: Tensor, up_x: int, up_y: int, down_x: int, down_y: int,
    pad_x0: int, pad_x1: int, pad_y0: int, pad_y1: int,
) -> Tensor:  # fmt: skip
    """x (B, 1, H, W): upsample by zero insertion, pad, correlate with flip(kernel), subsample."""
    b, _, h, w = x.shape
    up = x.new_zeros(b, 1, h * up_y, w * up_x)
    up[:, :, ::up_y, ::up_x] = x
    up = F.pad(up, (max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)))
    up = up[
        :,
        :,
        max(-pad_y0, 0) : up.shape[2] - max(-pad_y1, 0),
        max(-pad_x0, 0) : up.shape[3] - max(-pad_x1, 0),
    ]
    out = F.conv2d(up, torch.flip(kernel, [0, 1])[None, None].to(x.dtype))
    return out[:, :, ::down_y, ::down_x]


def import_stylegan2_torch() -> Any:
    """``stylegan2_torch.generator`` with the CUDA build replaced by the textbook op."""
    op = types.SimpleNamespace(upfirdn2d=upfirdn2d_textbook)
    with mock.patch("torch.utils.cpp_extension.load", return_value=op):
        return importlib.import_module("stylegan2_torch.generator")


def reference_from_rosinality(
    state: dict[str, Tensor], resolution: int, z_dim: int, n_mlp: int, widths: dict[int, int]
) -> tuple[nn.Module, list[Tensor]]:
    """A ``stylegan2_torch`` Generator holding rosinality-layout weights, and its noises."""
    gen_mod = import_stylegan2_torch()
    ref = gen_mod.Generator(resolution, z_dim, n_mlp, 0.01, dict(widths))
    for layer in ref.to_rgbs:  # three output channels instead of one
        layer.weight = nn.Parameter(torch.zeros(1, 3, *layer.weight.shape[2:]))
        layer.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
    out: dict[str, Tensor] = {}
    for i in range(1, n_mlp + 1):
        out[f"mapping.{i}.weight"] = state[f"style.{i}.weight"]
        out[f"mapping.{i}.bias"] = state[f"style.{i}.bias"]
    out["input.input"] = state["input.input"]

    def conv(src: str, dst: str) -> None:
        out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        out[f"{dst}.weight"] = state[f"{src}.conv.weight"]
        out[f"{dst}.add_noise.weight"] = state[f"{src}.noise.weight"]
        out[f"{dst}.leaky_relu.bias"] = state[f"{src}.activate.bias"]

    def rgb(src: str, dst: str) -> None:
        out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        out[f"{dst}.weight"] = state[f"{src}.conv.weight"]
        out[f"{dst}.bias"] = state[f"{src}.bias"]

    conv("conv1", "convs.0")
    rgb("to_rgb1", "to_rgbs.0")
    blocks = int(math.log2(resolution)) - 2
    for k in range(blocks):
        conv(f"convs.{2 * k}", f"up_convs.{k}")
        conv(f"convs.{2 * k + 1}", f"convs.{k + 1}")
        rgb(f"to_rgbs.{k}", f"to_rgbs.{k + 1}")
    missing, unexpected = ref.load_state_dict(out, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("kernel") for k in missing), missing
    noises = [state[f"noises.noise_{i}"] for i in range(2 * blocks + 1)]
    return ref.eval(), noises
