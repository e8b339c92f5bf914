"""Rendering with per-image generator deltas: a private copy of the generator in which every
row of a batch gets its own delta (grouped convolutions), so B images tune or render
together and the shared generator is never modified; the trainable factors of a tuning run.

Codes may come in k blocks of the factors' M rows (row j uses the delta of row j mod M):
the codes near the pivot that the locality term renders share the pivot's delta, and
the grouped convolutions then run a batch of k instead of k copies of every delta.
"""

from __future__ import annotations

import copy
import math
import threading
import weakref
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentedit.workers.methods.inversion.deltas import tunable_parameters
from latentedit.workers.methods.inversion.protocol import DeltaTunable, Renderer, generate


class Tuner:
    """A private copy of the generator whose conv/linear/BatchNorm layers add per-image deltas.

    ``factors`` holds, per tuned parameter, the per-row tensors of the rows being run:
    "<name>.u" (M, a, r) and "<name>.v" (M, r, rest) for a low-rank weight delta
    u @ v (reshaped like the weight), or "<name>.d" (M, *shape) for a full delta. The
    codes of a call are (k * M, ...): k blocks of M rows, row j with the delta of j mod M.
    The shared generator is never modified, and the factors of a call live in its thread,
    so one Tuner serves concurrent calls (:func:`shared_tuner` keeps one per generator).
    """

    def __init__(self, generator: nn.Module, layers: tuple[str, ...] = ()) -> None:
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.params = tunable_parameters(self.module, layers)
        self._local = threading.local()
        by_module: dict[int, list[str]] = {}
        for name, (_, module) in self.params.items():
            by_module.setdefault(id(module), []).append(name)
        for _, module in self.module.named_modules():
            names = by_module.get(id(module))
            if names:
                module.register_forward_hook(self._hook(module, names))
                weight_name = next((n for n in names if n.endswith("weight")), None)
                if isinstance(module, nn.Conv2d | nn.ConvTranspose2d) and weight_name:
                    self._merge_full_delta(module, f"{weight_name}.d")

    def _merge_full_delta(self, conv: nn.Conv2d | nn.ConvTranspose2d, key: str) -> None:
        """Rows with a full delta of ``conv``'s weight run one grouped convolution with
        weight + delta instead of the shared convolution plus a grouped one of the delta."""
        plain = conv.forward

        def forward(x: Tensor, *args: object) -> Tensor:
            full = self.factors.get(key)
            if full is None or args:
                return plain(x, *args)
            m, shape = full.shape[0], conv.weight.shape
            k = x.shape[0] // m
            w = (conv.weight.float() + full).reshape(m * shape[0], *shape[1:])
            out = _grouped_conv(conv, x.float().reshape(k, -1, *x.shape[2:]), w, m)
            if conv.bias is not None:
                out = out + conv.bias.float().repeat(m)[None, :, None, None]
            return out.reshape(x.shape[0], -1, *out.shape[2:]).to(x.dtype)

        conv.forward = forward  # type: ignore[method-assign,assignment]

    def _hook(self, module: nn.Module, names: list[str]) -> Callable[..., Tensor]:
        weight_name = next((n for n in names if n.endswith("weight")), None)
        bias_name = next((n for n in names if n.endswith("bias")), None)

        def hook(mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            factors = self.factors
            if not factors:
                return output
            if isinstance(mod, DeltaTunable):
                assert weight_name is not None
                blocks = _blocks(inputs[0], factors)
                if blocks > 1:  # its own per-row maths: give it one delta per row (its own)
                    factors = {
                        k: v.repeat(blocks, *[1] * (v.ndim - 1))
                        for k, v in factors.items()
                        if k.rsplit(".", 1)[0] == weight_name
                    }
                delta: Tensor | tuple[Tensor, Tensor] | None = _lowrank_weight(
                    factors, weight_name
                )  # the layer can use the factors themselves (cheaper than u @ v)
                if delta is None:
                    delta = _row_delta(factors, weight_name, mod.weight.shape)
                if delta is None:
                    return output
                return output + mod.delta_output(*inputs, output, delta).to(output.dtype)
            x = inputs[0]
            merged = isinstance(mod, nn.Conv2d | nn.ConvTranspose2d) and (
                f"{weight_name}.d" in factors  # already in the output: see _merge_full_delta
            )
            extra = _module_delta(mod, x, factors, None if merged else weight_name, bias_name)
            return output if extra is None else output + extra.to(output.dtype)

        return hook

    @property
    def factors(self) -> dict[str, Tensor]:
        """The factors of the call running in this thread ({} outside a call)."""
        factors: dict[str, Tensor] = getattr(self._local, "factors", {})
        return factors

    def __call__(self, z: Tensor, residual: Tensor | None, factors: dict[str, Tensor]) -> Tensor:
        """Images (k * M, 3, H, W) of z (k * M, d) [+ residual]; factors of M rows."""
        rows = {v.shape[0] for v in factors.values()}
        if len(rows) > 1 or (rows and z.shape[0] % rows.pop()):
            raise ValueError(f"{z.shape[0]} codes for factors of {sorted(rows)} rows")
        self._local.factors = factors
        try:
            return generate(self.module, z, residual)
        finally:
            self._local.factors = {}


#: one private copy per (generator, tuned parameters): rendering tuned rows copied the
#: generator on every call before (30-130 ms for a 256-px StyleGAN2 on CPU; memory on a GPU)
_TUNERS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], Tuner]] = (
    weakref.WeakKeyDictionary()
)
_TUNERS_LOCK = threading.Lock()


def shared_tuner(generator: nn.Module, names: tuple[str, ...]) -> Tuner:
    """The cached :class:`Tuner` of ``generator`` for the parameters ``names`` (sorted);
    a few sets per generator at most (older ones are dropped)."""
    with _TUNERS_LOCK:
        per_generator = _TUNERS.setdefault(generator, {})
        tuner = per_generator.get(names)
        if tuner is None:
            while len(per_generator) >= 4:
                per_generator.pop(next(iter(per_generator)))
            tuner = per_generator[names] = Tuner(generator, names)
        return tuner


def _blocks(x: Tensor, factors: dict[str, Tensor]) -> int:
    """How many blocks of the factors' rows the batch ``x`` holds (k of k * M rows)."""
    return x.shape[0] // next(iter(factors.values())).shape[0]


def _row_delta(factors: dict[str, Tensor], name: str, shape: torch.Size) -> Tensor | None:
    """Per-row weight deltas (M, *shape) of parameter ``name`` from its factors, or None."""
    full = factors.get(f"{name}.d")
    if full is not None:
        return full.reshape(-1, *shape)
    lr = _lowrank_weight(factors, name)
    if lr is None:
        return None
    u, v = lr
    return (u @ v).reshape(-1, *shape)


def _lowrank_weight(factors: dict[str, Tensor], name: str) -> tuple[Tensor, Tensor] | None:
    u = factors.get(f"{name}.u")
    v = factors.get(f"{name}.v")
    return None if u is None or v is None else (u, v)


def _module_delta(
    mod: nn.Module,
    x: Tensor,
    factors: dict[str, Tensor],
    weight_name: str | None,
    bias_name: str | None,
) -> Tensor | None:
    """The per-row change of ``mod``'s output caused by the deltas in ``factors``.

    x (k * M, ...) in k blocks of the factors' M rows -> (k * M, ...) or None.
    """
    k = _blocks(x, factors)
    x = x.float()
    extra: Tensor | None = None
    if isinstance(mod, nn.BatchNorm2d):
        mean = cast(Tensor, mod.running_mean).float()
        var = cast(Tensor, mod.running_var).float()
        x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + mod.eps)
        dw = factors.get(f"{weight_name}.d") if weight_name else None
        db = factors.get(f"{bias_name}.d") if bias_name else None
        if dw is not None:
            extra = x_hat * dw.repeat(k, 1)[:, :, None, None]
        if db is not None:
            e = db.repeat(k, 1)[:, :, None, None].expand_as(x_hat)
            extra = e if extra is None else extra + e
        return extra
    assert isinstance(mod, nn.ConvTranspose2d | nn.Conv2d | nn.Linear)
    weight = mod.weight
    if weight_name is not None:
        lr_w = _lowrank_weight(factors, weight_name)
        full = factors.get(f"{weight_name}.d")
        if isinstance(mod, nn.Linear):
            xk = x.reshape(k, -1, *x.shape[1:])  # (k, M, in)
            if lr_w is not None:
                u, v = lr_w  # (M, out, r), (M, r, in)
                extra = torch.einsum("mor,kmr->kmo", u, torch.einsum("mri,kmi->kmr", v, xk))
            elif full is not None:
                extra = torch.einsum("moi,kmi->kmo", full, xk)
            extra = None if extra is None else extra.flatten(0, 1)
        else:
            extra = _conv_delta(mod, x, k, lr_w, full, weight.shape)
    if bias_name is not None and f"{bias_name}.d" in factors:
        db = factors[f"{bias_name}.d"].repeat(k, 1)
        b = db.view(x.shape[0], -1, *([1] * (x.ndim - 2)))
        extra = b if extra is None else extra + b
    return extra


def _grouped_conv(
    mod: nn.ConvTranspose2d | nn.Conv2d, x: Tensor, weight: Tensor, groups: int
) -> Tensor:
    """``mod``'s convolution (stride, padding, ...) of x (k, groups * c, H, W) with one
    filter bank per group: weight (groups * c, c', kh, kw) -> (k, groups * c', H', W')."""
    if isinstance(mod, nn.ConvTranspose2d):
        return F.conv_transpose2d(
            x,
            weight,
            stride=mod.stride,
            padding=mod.padding,  # type: ignore[arg-type]
            output_padding=mod.output_padding,
            groups=groups,
            dilation=mod.dilation,
        )
    return F.conv2d(
        x, weight, stride=mod.stride, padding=mod.padding, dilation=mod.dilation, groups=groups
    )


def _conv_delta(
    mod: nn.ConvTranspose2d | nn.Conv2d,
    x: Tensor,
    k: int,
    lowrank: tuple[Tensor, Tensor] | None,
    full: Tensor | None,
    shape: torch.Size,
) -> Tensor | None:
    """Per-row conv(x_j, delta_(j mod M)) as one grouped convolution over the M rows.

    x (k * M, C, H, W): its k blocks are the grouped convolution's batch of k.
    """
    if lowrank is None and full is None:
        return None
    rows = x.shape[0]
    m = rows // k
    transposed = isinstance(mod, nn.ConvTranspose2d)

    def grouped(inp: Tensor, w: Tensor) -> Tensor:
        return _grouped_conv(mod, inp, w, m)

    if lowrank is not None:
        u, v = lowrank
        r = u.shape[2]
        w = v.reshape(m * r, *shape[1:])
        xk = x.reshape(k, m, *x.shape[1:])
        if transposed:
            # W (Cin, Cout, k, k) ~ u (Cin, r) @ v (r, Cout*k*k): convT(u^T x, v)
            y = torch.einsum("kmchw,mcr->kmrhw", xk, u)
            out = grouped(y.reshape(k, m * r, *y.shape[3:]), w)
            return out.reshape(rows, shape[1], *out.shape[2:])
        # W (Cout, Cin, k, k) ~ u (Cout, r) @ v (r, Cin*k*k): u conv(x, v)
        y = grouped(x.reshape(k, -1, *x.shape[2:]), w)
        y = y.reshape(k, m, r, *y.shape[2:])
        return torch.einsum("kmrhw,mor->kmohw", y, u).flatten(0, 1)
    assert full is not None
    out = grouped(x.reshape(k, -1, *x.shape[2:]), full.reshape(m * shape[0], *shape[1:]))
    return out.reshape(rows, -1, *out.shape[2:])


def init_factors(
    tuner: Tuner, rows: int, rank: int, device: torch.device
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Trainable per-row factors (in relative units) and their scales to generator units.

    Low-rank: u = 0, v ~ N(0, 1) (one fixed draw shared by all rows, so an image's
    result does not depend on its batch mates); full deltas start at 0.
    """
    gen = torch.Generator().manual_seed(0)
    factors: dict[str, Tensor] = {}
    scales: dict[str, Tensor] = {}
    named = dict(tuner.module.named_parameters())
    for name, (kind, _) in tuner.params.items():
        p = named[name].detach().float()
        rms = p.square().mean().sqrt().clamp_min(1e-3)
        if kind == "lowrank" and rank > 0:
            core = p.reshape(p.shape[1:]) if p.shape[0] == 1 and p.ndim > 2 else p
            a, rest = core.shape[0], core[0].numel()  # (out, everything else)
            v = torch.randn(rank, rest, generator=gen).to(device)
            factors[f"{name}.u"] = torch.zeros(rows, a, rank, device=device)
            factors[f"{name}.v"] = v.expand(rows, rank, rest).clone()
            scales[f"{name}.u"] = rms / math.sqrt(rank)
            scales[f"{name}.v"] = torch.ones((), device=device)
        else:
            factors[f"{name}.d"] = torch.zeros(rows, *p.shape, device=device)
            scales[f"{name}.d"] = rms
    return factors, scales


def scaled(factors: dict[str, Tensor], scales: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v * scales[k] for k, v in factors.items()}


def render(
    generator: Renderer,
    z: Tensor,
    residual: Tensor | None = None,
    deltas: list[dict[str, Tensor] | None] | None = None,
) -> Tensor:
    """Images of codes: z (N, d), optional residuals (N, C, h, w) and per-row tuning deltas.

    -> (N, 3, H, W) float32 in [-1, 1]; no grad. Rows with a None delta use the plain
    generator. The shared generator is not modified.
    """
    with torch.no_grad():
        if not deltas or all(d is None for d in deltas):
            return generate(generator, z, residual)
        if not isinstance(generator, nn.Module):
            raise TypeError("tuning deltas need an nn.Module generator")
        if len(deltas) != len(z):
            raise ValueError(f"{len(deltas)} deltas for {len(z)} codes")
        keys = sorted({k for d in deltas if d is not None for k in d})
        names = {k.rsplit(".", 1)[0] for k in keys}
        tuner = shared_tuner(generator, tuple(sorted(names)))
        missing = names - set(tuner.params)
        if missing:
            raise KeyError(f"delta names untunable parameters: {sorted(missing)}")
        template = next(d for d in deltas if d is not None)
        factors = {}
        for k in keys:
            ref = template[k] if k in template else next(d[k] for d in deltas if d and k in d)
            rows = [
                (d[k] if d is not None and k in d else torch.zeros_like(ref)).float()
                for d in deltas
            ]
            factors[k] = torch.stack(rows).to(z.device)
        return tuner(z, residual, factors)
