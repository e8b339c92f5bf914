"""Latent-space checks of requests: which spaces a model has (z; w and w+ for style
generators), the space a request asks for, a direction's space, W+ layer ranges.

Shared by the gateway (before queueing) and the worker, like :mod:`latentedit.validate`;
numpy only, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import finite

SPACES = ("z", "w", "w+")
_LAYER_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*\Z")


@dataclass(frozen=True)
class ModelSpaces:
    """The latent spaces of one model: z (N, z_dim); w (N, w_dim); w+ (N, num_ws, w_dim)."""

    spaces: tuple[str, ...] = ("z",)
    default: str = "z"
    z_dim: int = 0
    w_dim: int = 0  # 0: no w
    num_ws: int = 0  # 0: no w+

    def shape(self, space: str) -> tuple[int, ...]:
        """Shape of one code of ``space`` (after :func:`space`)."""
        if space == "z":
            return (self.z_dim,)
        if space == "w":
            return (self.w_dim,)
        return (self.num_ws, self.w_dim)

    def direction_dim(self, space: str) -> int:
        return self.z_dim if space == "z" else self.w_dim


def model_spaces(info: pb.ModelInfo) -> ModelSpaces:
    """ModelSpaces from a ModelInfo (models published before spaces have only z)."""
    # getattr: the fields come from the model-contract branch (`stylegan`).
    spaces = tuple(getattr(info, "spaces", ())) or ("z",)
    return ModelSpaces(
        spaces=spaces,
        default=getattr(info, "default_space", "") or spaces[0],
        z_dim=info.latent_dim,
        w_dim=int(getattr(info, "w_dim", 0)),
        num_ws=int(getattr(info, "num_ws", 0)),
    )


def space(asked: str, sp: ModelSpaces, field: str = "space") -> str:
    """The request's space ("" = the model's default); INVALID_ARGUMENT lists the model's."""
    value = asked or sp.default
    if value not in sp.spaces:
        known = f"; spaces are {list(SPACES)}" if value not in SPACES else ""
        raise InvalidArgument(
            f"{field} {value!r} is not a space of this model: it has {list(sp.spaces)}{known}"
        )
    return value


def direction_space(space_name: str) -> str:
    """The space a direction of a ``space_name`` request lives in: z, or w for w and w+."""
    return "z" if space_name == "z" else "w"


def check_direction_space(direction_id: str, stored: str, space_name: str) -> None:
    """A direction is used in the space it was found in (a w direction also edits w+)."""
    have = stored or "z"
    if have != direction_space(space_name):
        raise InvalidArgument(
            f"direction {direction_id} lives in space {have!r}; "
            f"it cannot edit {space_name!r} codes (ask with space={have!r}"
            + (" or 'w+'" if have == "w" else "")
            + ")"
        )


def layer_mask(spec: str, num_ws: int, field: str = "layers") -> np.ndarray:
    """``"all"`` / ``""`` / ``"0-1"`` / ``"0,3,6-8"`` -> bool mask (num_ws,) of style layers."""
    text = spec.replace(" ", "")
    mask = np.zeros(num_ws, bool)
    if text in ("", "all"):
        mask[:] = True
        return mask
    if not _LAYER_RE.match(text):
        raise InvalidArgument(f"{field}: {spec!r}; use 'all', a range '0-1' or a list '0,3,6-8'")
    for part in text.split(","):
        low, _, high = part.partition("-")
        a, b = int(low), int(high or low)
        if not 0 <= a <= b < num_ws:
            raise InvalidArgument(
                f"{field}: {part!r} is outside the style layers 0-{num_ws - 1} (or reversed)"
            )
        mask[a : b + 1] = True
    return mask


def space_request(req: object, sp: ModelSpaces) -> tuple[str, tuple[int, ...]]:
    """Resolve ``req.space`` and check the space-only fields of any request.

    Layer ranges need w+; truncation needs w / w+ seeds; a residual (extras) needs z.
    Returns (space, shape of one code).
    """
    value = space(getattr(req, "space", ""), sp)
    layer_fields = []
    if hasattr(req, "layers"):
        layer_fields.append(("layers", req.layers))
    for i, term in enumerate(getattr(req, "edits", [])):
        layer_fields.append((f"edits[{i}].layers", term.layers))
    for field_name, spec in layer_fields:
        if spec and value != "w+":
            raise InvalidArgument(
                f"{field_name}: layer ranges need space 'w+' (a {value} code drives all layers)"
            )
        if spec:
            layer_mask(spec, sp.num_ws, field_name)
    if isinstance(req, pb.GenerateRequest) and req.HasField("truncation_psi"):
        if value == "z" or req.WhichOneof("source") != "seeds":
            raise InvalidArgument(
                "truncation_psi applies when seeds are mapped to 'w' or 'w+' codes"
            )
        finite(req.truncation_psi, "truncation_psi")
    extras_msg = getattr(req, "extras", None)
    if value != "z" and extras_msg is not None and extras_msg.HasField("residual"):
        raise InvalidArgument(
            f"extras.residual applies to z codes, not {value!r} (tuning ids apply to any space)"
        )
    if isinstance(req, pb.DiscoverDirectionsRequest) and "layers" in req.params:
        if value == "z":
            raise InvalidArgument("params.layers: layer ranges need space 'w' or 'w+'")
        layer_mask(req.params["layers"], sp.num_ws, "params.layers")
    return value, sp.shape(value)


def invert_methods(req: pb.InvertRequest, info: pb.ModelInfo) -> list[str]:
    """The invert methods of the request's space: ModelInfo's ``invert_methods`` (z) or
    ``w_invert_methods`` (w, w+); a z-only method asked in w / w+ is InvalidArgument."""
    value = space(req.space, model_spaces(info))
    if value == "z":
        return list(info.invert_methods)
    methods = list(info.w_invert_methods) or ["optimize"]  # a worker from before the field
    method = req.method or "optimize"
    if method not in methods and method in info.invert_methods:
        raise InvalidArgument(
            f"method {method!r} inverts to z codes; in {value!r} use one of {methods}"
        )
    return methods


def direction_space_filter(value: str) -> str:
    """ListDirections' space filter: "" (all), "z" or "w"."""
    if value not in ("", "z", "w"):
        raise InvalidArgument(f"space {value!r}: directions live in 'z' or 'w' ('' for all)")
    return value
