"""Voynov & Babenko's reconstructor: from an image pair, which direction and how far.

A small CNN (no pretrained weights) reads the 6-channel pair (G(z), G(z')) at ``size`` px
and predicts the direction index (K logits) and the shift eps (a scalar). Stand-in for the
paper's ResNet-18: four stride-2 conv blocks, so it trains in minutes on a CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
    )


class Reconstructor(nn.Module):
    """(x (N, 3, H, W), x' (N, 3, H, W)) in [-1, 1] -> (logits (N, K), eps (N,))."""

    def __init__(self, num_directions: int, size: int = 32, width: int = 32) -> None:
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            _block(6, width),
            _block(width, 2 * width),
            _block(2 * width, 4 * width),
            _block(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(16 * width, 256), nn.LeakyReLU(0.2), nn.Linear(256, num_directions + 1)
        )

    def forward(self, x: Tensor, x_shifted: Tensor) -> tuple[Tensor, Tensor]:
        pair = torch.cat([x, x_shifted], dim=1)
        if pair.shape[-1] != self.size:
            pair = F.interpolate(pair, size=(self.size, self.size), mode="area")
        out = self.head(self.features(pair))
        return out[:, :-1], out[:, -1]
