"""StyleGAN2 generator (Karras et al. 2020, config E/F, "skip" output), pure PyTorch.

Parameter names follow rosinality's ``stylegan2-pytorch`` ``g_ema`` layout, so its
checkpoints load as they are (see :mod:`.checkpoints`):

- ``style.{1..n_mlp}``: mapping MLP (equalised lr, lr multiplier 0.01, leaky ReLU x sqrt 2),
  after pixel norm of z.
- ``input.input`` (1, C4, 4, 4): the learned constant.
- ``conv1``, ``convs.{2k}`` (upsampling), ``convs.{2k+1}``: styled 3x3 convolutions
  (``conv.weight`` (1, out, in, 3, 3), ``conv.modulation`` style affine, ``noise.weight``,
  ``activate.bias``); ``to_rgb1``, ``to_rgbs.{k}``: 1x1 modulated, not demodulated.
- ``noises.noise_{i}`` (1, 1, r, r): the stored noise inputs, used for every render
  (deterministic).

Equalised-lr scales are applied at run time. Modulation is applied to activations
(x * s, shared weight, x * demod), which equals modulating the weights per sample and
batches as an ordinary convolution. Upsampling: stride-2 transposed convolution + FIR
blur [1, 3, 3, 1]; the skip image is upsampled by zero insertion + the same FIR.

w+ index of each layer: conv1 -> 0, to_rgb1 -> 1; block k (k = 0..): convs.{2k} -> 2k+1,
convs.{2k+1} -> 2k+2, to_rgbs.{k} -> 2k+3. num_ws = 2 log2(resolution) - 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentedit.workers.models.contract import (
    DISCOVER_REQUIRES,
    STYLE_SPACES,
    GeneratorInfo,
    as_rgb,
    invert_methods,
    supported_methods,
    w_invert_methods,
)

SQRT2 = math.sqrt(2.0)
BLUR = (1.0, 3.0, 3.0, 1.0)


def channels_for(resolution: int, channel_multiplier: int = 2) -> dict[int, int]:
    """Feature maps per resolution (rosinality's table)."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm}
    table.update({512: 32 * cm, 1024: 16 * cm})
    return {r: c for r, c in table.items() if r <= resolution}


def fir_kernel(taps: Sequence[float] = BLUR, gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR (k, k), normalised to sum ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = k[:, None] * k[None, :]
    return k2 / k2.sum() * gain


def _depthwise(x: Tensor, kernel: Tensor) -> Tensor:
    c = x.shape[1]
    weight = kernel.flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    return F.conv2d(x, weight, groups=c)


class EqualLinear(nn.Module):
    """y = x (W * lr / sqrt(in))^T + b * lr; optionally leaky ReLU(0.2) x sqrt 2."""

    def __init__(
        self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias * self.lr_mul, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class PixelNorm(nn.Module):
    def forward(self, z: Tensor) -> Tensor:
        return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv(nn.Module):
    """Modulated (and optionally demodulated) k x k convolution, optional 2x upsampling.

    ``weight`` (1, out, in, k, k); ``modulation``: w (N, w_dim) -> style (N, in).
    """

    blur_kernel: Tensor

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        w_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, out_ch, in_ch, kernel, kernel))
        self.modulation = EqualLinear(w_dim, in_ch)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel // 2
        # Blur after the transposed conv; x4 compensates the inserted zeros.
        self.register_buffer("blur_kernel", fir_kernel(BLUR, 4.0), persistent=False)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        style = self.modulation(w)  # (N, in)
        if self.demodulate:  # demodulation cancels any per-sample scale: keep fp16 in range
            style = style / style.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
        weight = self.weight[0] * self.scale  # (out, in, k, k)
        x = x * style[:, :, None, None].to(x.dtype)
        if self.upsample:
            # (in, out, k, k) for conv_transpose2d; output 2H + 1, blurred back to 2H.
            x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            x = _depthwise(F.pad(x, (1, 1, 1, 1)), self.blur_kernel)
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # d[n, o] = 1 / sqrt(sum_{i,k} (w[o, i, k] s[n, i])^2 + 1e-8)
            sq = weight.float().pow(2).sum(dim=(2, 3))  # (out, in)
            demod = torch.rsqrt(style.float().pow(2) @ sq.T + 1e-8)  # (N, out)
            x = x * demod[:, :, None, None].to(x.dtype)
        return x

    def delta_output(
        self, x: Tensor, w: Tensor, output: Tensor, delta: Tensor | tuple[Tensor, Tensor]
    ) -> Tensor:
        """How the output changes when row m's weight is ``weight + delta[m]`` (pivotal tuning).

        x (M, in, H, W), w (M, w_dim): this layer's inputs; output: ``forward(x, w)``;
        delta: (M, 1, out, in, k, k) in the units of ``weight``, or its low-rank factors
        (u (M, out, r), v (M, r, in * k * k)) with delta[m] = u[m] @ v[m]: then the extra
        convolution has r output channels instead of ``out`` (rank 8 of 512: ~2 % of the
        layer's cost instead of 100 %). Exact, demodulation included (it is recomputed from
        the tuned weight). -> (M, out, H', W') float32.
        """
        m = x.shape[0]
        style = self.modulation(w).float()
        if self.demodulate:
            style = style / style.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
        weight = self.weight[0].float() * self.scale  # (out, in, k, k)
        xs = (x.float() * style[:, :, None, None]).reshape(1, -1, *x.shape[2:])
        if isinstance(delta, tuple):  # conv with v's r filters, then mix them with u
            u, v = delta[0].float(), delta[1].float()
            dw = (u @ v).reshape(m, *weight.shape) * self.scale
            extra = self._grouped(xs, v.reshape(m, -1, *weight.shape[1:]) * self.scale)
            extra = torch.einsum("mor,mrhw->mohw", u, extra)
        else:
            dw = delta.reshape(m, *weight.shape).float() * self.scale  # (M, out, in, k, k)
            extra = self._grouped(xs, dw)
        if not self.demodulate:
            return extra
        s2 = style.pow(2)
        old = torch.rsqrt(s2 @ weight.pow(2).sum(dim=(2, 3)).T + 1e-8)  # (M, out)
        new = torch.rsqrt(
            torch.einsum("mi,moi->mo", s2, (weight + dw).pow(2).sum(dim=(3, 4))) + 1e-8
        )
        raw = output.float() / old[:, :, None, None]  # conv(x s, weight) before demodulation
        return (raw + extra) * new[:, :, None, None] - output.float()

    def _grouped(self, xs: Tensor, filters: Tensor) -> Tensor:
        """Row m's input (rows stacked as groups: xs (1, M * in, H, W)) through its own
        filters (M, c, in, k, k), upsampled and blurred as ``forward`` -> (M, c, H', W')."""
        m = filters.shape[0]
        if self.upsample:
            out = F.conv_transpose2d(xs, filters.transpose(1, 2).flatten(0, 1), stride=2, groups=m)
            return _depthwise(
                F.pad(out.view(m, -1, *out.shape[2:]), (1, 1, 1, 1)), self.blur_kernel
            )
        out = F.conv2d(xs, filters.flatten(0, 1), padding=self.padding, groups=m)
        return out.view(m, -1, *out.shape[2:])


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.weight.to(x.dtype) * noise.to(x.dtype)


class BiasLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2) * sqrt 2, optionally clamped to +-clamp (NVIDIA's conv_clamp)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], 0.2) * SQRT2
        return out if self.clamp is None else out.clamp(-self.clamp, self.clamp)


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, w_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = BiasLeakyReLU(out_ch)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) + bias, plus the upsampled skip image."""

    up_kernel: Tensor

    def __init__(self, in_ch: int, w_dim: int, channels: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.clamp: float | None = None
        self.register_buffer("up_kernel", fir_kernel(BLUR, 4.0), persistent=False)

    def forward(self, x: Tensor, w: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, w) + self.bias.to(x.dtype)
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            # Zero insertion + FIR (pad 2, 1) == depthwise stride-2 transposed conv, padding 1.
            c = skip.shape[1]
            k = self.up_kernel.to(skip.dtype)[None, None].expand(c, 1, -1, -1)
            out = out + F.conv_transpose2d(skip, k, stride=2, padding=1, groups=c)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.zeros(1, channels, 4, 4))


class Noises(nn.Module):
    """Buffers ``noise_{i}`` (1, 1, r, r), i = 0 .. 2 log2(resolution) - 4."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        log_size = int(math.log2(resolution))
        for i in range((log_size - 2) * 2 + 1):
            r = 2 ** ((i + 5) // 2)
            self.register_buffer(f"noise_{i}", torch.zeros(1, 1, r, r))

    def get(self, i: int) -> Tensor:
        out: Tensor = getattr(self, f"noise_{i}")
        return out


class StyleGAN2Generator(nn.Module):
    """z (N, z_dim) -> image (N, channels, R, R) in ~[-1, 1] (unclamped; the runtime clamps).

    Args:
        resolution: 8 .. 1024, a power of two.
        z_dim: size of z (rosinality: ``style_dim``).
        n_mlp: mapping layers.
        channel_multiplier: 1 or 2 (config F); picks the feature maps unless ``widths``.
        channels: image channels.
        w_dim: size of w (default: z_dim, as in rosinality's layout).
        widths: feature maps per resolution {4: c4, 8: c8, ...} (default: rosinality's table).
    """

    w_avg: Tensor

    def __init__(
        self,
        resolution: int = 256,
        z_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channels: int = 3,
        w_dim: int = 0,
        widths: dict[int, int] | None = None,
        lr_mlp: float = 0.01,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(resolution))
        if 2**log_size != resolution or not 8 <= resolution <= 1024:
            raise ValueError(f"resolution must be a power of two in [8, 1024], got {resolution}")
        if n_mlp < 1:
            raise ValueError(f"n_mlp must be >= 1, got {n_mlp}")
        w_dim = w_dim or z_dim
        ch = dict(widths) if widths else channels_for(resolution, channel_multiplier)
        if widths and widths != channels_for(resolution, channel_multiplier):
            channel_multiplier = 0  # not one of rosinality's tables
        self.widths = {r: ch[r] for r in sorted(ch) if r <= resolution}
        self.style = nn.Sequential(
            PixelNorm(),
            *[
                EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mlp, activate=True)
                for i in range(n_mlp)
            ],
        )
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], w_dim)
        self.to_rgb1 = ToRGB(ch[4], w_dim, channels)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        prev = ch[4]
        for i in range(3, log_size + 1):
            out = ch[2**i]
            self.convs.append(StyledConv(prev, out, w_dim, upsample=True))
            self.convs.append(StyledConv(out, out, w_dim))
            self.to_rgbs.append(ToRGB(out, w_dim, channels))
            prev = out
        self.noises = Noises(resolution)
        self.register_buffer("w_avg", torch.zeros(w_dim), persistent=False)
        self.channels_last = False  # NHWC activations (set on CUDA by the runtime)
        num_ws = log_size * 2 - 2
        conv_names = ("conv1", *(f"convs.{i}" for i in range(len(self.convs))))
        self.info = GeneratorInfo(
            resolution=resolution,
            channels=channels,
            z_dim=z_dim,
            w_dim=w_dim,
            num_ws=num_ws,
            spaces=STYLE_SPACES,
            default_space="w",
            sefa_layers=conv_names,
            architecture="stylegan2",
            feature_shape=(ch[4], 4, 4),
            num_noises=len(conv_names),
            n_mlp=n_mlp,
            channel_multiplier=channel_multiplier,
        )
        self.info = GeneratorInfo(
            **{
                **self.info.__dict__,
                "invert_methods": invert_methods(self),
                "w_invert_methods": w_invert_methods(self),
                "discover_methods": supported_methods(self, DISCOVER_REQUIRES),
            }
        )

    @property
    def latent_dim(self) -> int:
        return self.info.z_dim

    def set_conv_clamp(self, clamp: float | None) -> None:
        """NVIDIA's ``conv_clamp``: clamp activations (x sqrt 2 gain) and ToRGB outputs."""
        for m in self.modules():
            if isinstance(m, BiasLeakyReLU):
                m.clamp = None if clamp is None else clamp * SQRT2
            elif isinstance(m, ToRGB):
                m.clamp = clamp

    def mapping(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """z (N, z_dim) -> w (N, w_dim); w_avg + psi (w - w_avg)."""
        if z.ndim != 2 or z.shape[1] != self.info.z_dim:
            raise ValueError(f"z must be (N, {self.info.z_dim}), got {tuple(z.shape)}")
        w: Tensor = self.style(z)
        if psi != 1.0:
            avg = self.w_avg.to(w.dtype)
            w = avg + psi * (w - avg)
        return w

    def _check_ws(self, ws: Tensor) -> None:
        n, d = self.info.num_ws, self.info.w_dim
        if ws.ndim != 3 or ws.shape[1:] != (n, d):
            raise ValueError(f"w+ must be (N, {n}, {d}), got {tuple(ws.shape)}")

    def head(self, ws: Tensor) -> Tensor:
        """w+ (N, num_ws, w_dim) -> first feature map (N, C4, 4, 4), after ``conv1``."""
        self._check_ws(ws)
        x = self.input.input.to(ws.dtype).expand(ws.shape[0], -1, -1, -1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.conv1(x, ws[:, 0], self.noises.get(0))

    def tail(self, h: Tensor, ws: Tensor | None = None) -> Tensor:
        """First feature map (N, C4, 4, 4) + w+ (N, num_ws, w_dim) -> RGB image (N, 3, R, R)
        (a grey checkpoint's channel in all three)."""
        if ws is None:
            raise ValueError("StyleGAN2's tail needs the w+ code as well: tail(h, ws)")
        self._check_ws(ws)
        x = h
        skip = self.to_rgb1(x, ws[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            up, conv = self.convs[2 * k], self.convs[2 * k + 1]
            x = up(x, ws[:, 2 * k + 1], self.noises.get(2 * k + 1))
            x = conv(x, ws[:, 2 * k + 2], self.noises.get(2 * k + 2))
            skip = to_rgb(x, ws[:, 2 * k + 3], skip)
        return as_rgb(skip)

    def synthesis(self, ws: Tensor) -> Tensor:
        """w+ (N, num_ws, w_dim) -> RGB image (N, 3, R, R)."""
        return self.tail(self.head(ws), ws)

    def forward(self, z: Tensor) -> Tensor:
        w = self.mapping(z, self.info.truncation_psi)
        return self.synthesis(w[:, None].expand(-1, self.info.num_ws, -1))

    def sefa_weight(self, layers: Sequence[int] | None = None) -> Tensor:
        """Style-affine weights of ``info.sefa_layers[i]`` stacked: (sum in_ch, w_dim), scaled."""
        names = self.info.sefa_layers
        idx = range(len(names)) if layers is None else layers
        mods = dict(self.named_modules())
        out = []
        for i in idx:
            if not 0 <= i < len(names):
                raise ValueError(f"SeFa layer {i} out of range 0..{len(names) - 1}")
            lin = mods[names[i]].conv.modulation
            out.append(lin.weight.detach() * lin.scale)
        return torch.cat(out)

    @torch.no_grad()
    def compute_w_avg(self, samples: int = 4096, seed: int = 0) -> Tensor:
        """Mean of mapping(z) over seeded z ~ N(0, I) (for checkpoints that store none)."""
        g = torch.Generator().manual_seed(seed)
        p = self.input.input
        z = torch.randn(samples, self.info.z_dim, generator=g).to(p.device, p.dtype)
        return self.style(z).float().mean(0)
