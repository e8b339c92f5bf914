"""DCGAN generator (Radford et al. 2016), the layout of the PyTorch DCGAN tutorial.

State-dict keys are ``main.{i}.*`` so that tutorial-style checkpoints (such as
``gan-face-generate``'s) load as they are.
"""

from __future__ import annotations

from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> image (N, channels, 64, 64) in [-1, 1].

    Args:
        latent_dim: size of z.
        channels: image channels (3 for RGB).
        width: feature maps of the last hidden layer (``ngf``); layers use 8/4/2/1 x width.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        w = width
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w * 8, 4, 1, 0, bias=False),  # 4x4
            nn.BatchNorm2d(w * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 8, w * 4, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(w * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False),  # 16x16
            nn.BatchNorm2d(w * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 2, w, 4, 2, 1, bias=False),  # 32x32
            nn.BatchNorm2d(w),
            nn.ReLU(True),
            nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False),  # 64x64
            nn.Tanh(),
        )

    def head(self, z: Tensor) -> Tensor:
        """z (N, latent_dim) -> first feature map (N, 8 * width, 4, 4), before its BatchNorm.

        Linear in z; the extended (W+-like) inversion adds a residual here.
        """
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}")
        out: Tensor = self.main[0](z[:, :, None, None])
        return out

    def tail(self, h: Tensor) -> Tensor:
        """First feature map (N, 8 * width, 4, 4) -> image (N, channels, 64, 64) in [-1, 1]."""
        out: Tensor = self.main[1:](h)
        return out

    def forward(self, z: Tensor) -> Tensor:
        return self.tail(self.head(z))
