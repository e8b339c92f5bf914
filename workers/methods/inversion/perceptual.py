"""An operator-supplied feature network for a perceptual loss (nothing is downloaded)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from latentedit.workers.methods.inversion.protocol import Features


def load_perceptual(path: str, device: torch.device | str = "cpu") -> Features:
    """An operator-supplied feature network (perceptual loss) as a :data:`Features` callable.

    A ``.pt2`` file is read with ``torch.export.load`` (export it with a dynamic batch
    dimension), anything else with ``torch.jit.load`` (TorchScript; deprecated in torch
    2.13). The module maps images (N, 3, H, W) in [-1, 1] to one feature tensor or a
    list/tuple of them (VGG activations, say). Nothing is downloaded; the file is code as
    well as weights, so load only files the operator trusts.
    """
    module: Callable[[Tensor], Any]
    if str(path).endswith(".pt2"):
        module = torch.export.load(str(path)).module().to(device)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
            )
            module = torch.jit.load(str(path), map_location=device).eval()

    def features(images: Tensor) -> list[Tensor]:
        out = module(images)
        if isinstance(out, Tensor):
            return [out]
        if isinstance(out, list | tuple) and all(isinstance(t, Tensor) for t in out):
            return list(out)
        raise TypeError(f"{path}: feature network returned {type(out).__name__}")

    return features
