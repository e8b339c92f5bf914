"""Per-image generator deltas: which parameters tuning may change, and the stored form.

A delta is a dict of tensors keyed ``<param>.u`` / ``<param>.v`` (low-rank factors, delta =
u @ v reshaped like the parameter) or ``<param>.d`` (a full delta), fp16 when stored.
:func:`apply_delta` adds one to a generator's weights in place; :mod:`.tuner` renders many
at once without touching the shared generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from latentedit.workers.methods.inversion.protocol import DeltaTunable

_TUNABLE = (nn.ConvTranspose2d, nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def tunable_parameters(
    generator: nn.Module, layers: tuple[str, ...] = ()
) -> dict[str, tuple[str, nn.Module]]:
    """Parameter name -> (kind, owning module) for the tensors tuning may change.

    kind is "lowrank" for 2-D+ weights of conv/linear layers, "full" for vectors
    (biases, BatchNorm affine). ``layers``: parameter-name prefixes to keep (() = all).
    """
    out: dict[str, tuple[str, nn.Module]] = {}
    for mod_name, module in generator.named_modules():
        if isinstance(module, DeltaTunable):
            out[f"{mod_name}.weight" if mod_name else "weight"] = ("lowrank", module)
            continue
        if not isinstance(module, _TUNABLE):
            continue
        if isinstance(module, nn.ConvTranspose2d | nn.Conv2d) and module.groups != 1:
            continue
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if layers and not any(name.startswith(prefix) for prefix in layers):
                continue
            out[name] = ("lowrank" if p.ndim >= 2 else "full", module)
    return out


def delta_nbytes(delta: dict[str, Tensor]) -> int:
    """Bytes of a delta's tensors as stored (fp16)."""
    return sum(t.numel() * t.element_size() for t in delta.values())


def _delta_tensor(delta: dict[str, Tensor], name: str, shape: torch.Size) -> Tensor | None:
    if f"{name}.d" in delta:
        return delta[f"{name}.d"].float().reshape(shape)
    if f"{name}.u" in delta:
        u, v = delta[f"{name}.u"].float(), delta[f"{name}.v"].float()
        return (u @ v).reshape(shape)
    return None


@contextmanager
def apply_delta(generator: nn.Module, delta: dict[str, Tensor]) -> Iterator[nn.Module]:
    """Add a tuning delta to ``generator``'s weights in place, restoring them exactly on exit.

    Mutates the shared module: hold it exclusively meanwhile (no concurrent renders);
    :func:`render` gives the same images without mutation.
    """
    named = dict(generator.named_parameters())
    saved: dict[str, Tensor] = {}
    try:
        with torch.no_grad():
            for name, p in named.items():
                d = _delta_tensor(delta, name, p.shape)
                if d is None:
                    continue
                saved[name] = p.detach().clone()
                p.copy_((p.float() + d.to(p.device)).to(p.dtype))
        unknown = {k.rsplit(".", 1)[0] for k in delta} - set(named)
        if unknown:
            raise KeyError(f"delta names unknown parameters: {sorted(unknown)}")
        yield generator
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                named[name].copy_(value)
