"""Serialisation of per-inversion generator tuning deltas (pivotal tuning), for Redis.

A delta is a plain dict of tensors keyed by parameter name plus a suffix:
``<param>.u`` / ``<param>.v`` low-rank factors (delta = u @ v, reshaped like the
parameter) or ``<param>.d`` a full delta. Stored as fp16 with ``torch.save`` and
read back with ``weights_only=True``: bytes in, bytes out, no pickled code.
"""

from __future__ import annotations

import io
import re

import torch
from torch import Tensor

_KEY = re.compile(r"^[A-Za-z0-9_.]+\.(u|v|d)$")
MAX_TENSORS = 1024


def delta_to_bytes(delta: dict[str, Tensor]) -> bytes:
    """Delta -> bytes (fp16, contiguous, CPU)."""
    _check(delta)
    plain = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in delta.items()}
    buf = io.BytesIO()
    torch.save(plain, buf)
    return buf.getvalue()


def delta_from_bytes(data: bytes) -> dict[str, Tensor]:
    """Bytes written by :func:`delta_to_bytes` -> delta (fp16 CPU tensors).

    Raises ValueError for anything that is not a dict of named tensors.
    """
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"not a tuning delta: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"not a tuning delta: {type(obj).__name__}")
    _check(obj)
    return obj


def delta_nbytes(delta: dict[str, Tensor]) -> int:
    """Bytes of the delta's tensor data at fp16 (what the stored form holds, less headers)."""
    return sum(t.numel() * 2 for t in delta.values())


def _check(delta: dict[str, Tensor]) -> None:
    if not delta or len(delta) > MAX_TENSORS:
        raise ValueError(f"a delta holds 1..{MAX_TENSORS} tensors, got {len(delta)}")
    for k, v in delta.items():
        if not isinstance(k, str) or not _KEY.match(k):
            raise ValueError(f"bad delta key {k!r}")
        if not isinstance(v, Tensor) or not v.is_floating_point():
            raise ValueError(f"delta entry {k!r} is not a float tensor")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"delta entry {k!r} is not finite")
    for k in delta:
        if k.endswith(".u") and k[:-2] + ".v" not in delta:
            raise ValueError(f"{k!r} without its .v factor")
        if k.endswith(".v") and k[:-2] + ".u" not in delta:
            raise ValueError(f"{k!r} without its .u factor")
