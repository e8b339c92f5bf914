"""A learned direction set <-> bytes (safetensors: the weights plus string metadata).

Metadata: ``method`` and ``config`` (JSON of the constructor arguments). Loading never
unpickles: safetensors holds only raw tensors, and the method picks the class.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from latentedit.errors import InvalidArgument
from latentedit.workers.learned.curvilinear import CurvilinearDirections
from latentedit.workers.learned.directions import (
    LearnedDirections,
    LinearDirections,
    WarpedDirections,
)

CLASSES: dict[str, type[LearnedDirections]] = {
    "linear": LinearDirections,
    "warped": WarpedDirections,
    "curvilinear": CurvilinearDirections,
}


def build(method: str, config: dict[str, Any]) -> LearnedDirections:
    """A fresh model of ``method`` from its config; InvalidArgument for an unknown method."""
    try:
        cls = CLASSES[method]
    except KeyError:
        raise InvalidArgument(
            f"unknown learned method {method!r}; choose one of {sorted(CLASSES)}"
        ) from None
    return cls(**config)


def set_to_bytes(model: LearnedDirections) -> bytes:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"method": model.method, "config": json.dumps(model.config(), sort_keys=True)}
    return bytes(st_save(tensors, metadata=meta))


def _metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header length, JSON)."""
    if len(blob) < 8:
        raise InvalidArgument("direction set blob is truncated")
    (n,) = struct.unpack("<Q", blob[:8])
    try:
        header = json.loads(blob[8 : 8 + n])
    except ValueError as exc:
        raise InvalidArgument(f"direction set blob has a bad header: {exc}") from exc
    meta = header.get("__metadata__") or {}
    if "method" not in meta or "config" not in meta:
        raise InvalidArgument("direction set blob has no method/config metadata")
    return dict(meta)


def set_from_bytes(blob: bytes) -> LearnedDirections:
    """Rebuild a set (eval mode, no grad) from :func:`set_to_bytes` output."""
    meta = _metadata(blob)
    model = build(meta["method"], json.loads(meta["config"]))
    model.load_state_dict(st_load(blob))
    return model.eval().requires_grad_(False)


def state_copy(model: LearnedDirections) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
