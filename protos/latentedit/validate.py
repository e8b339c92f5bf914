"""Request checks shared by the gateway (before queueing) and the worker (authoritative).

Each function raises :class:`InvalidArgument` with a message naming the field,
and returns the parsed value. numpy only, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from latentedit import keys
from latentedit.codec import from_tensor, latents_from, probe_image
from latentedit.errors import InvalidArgument, NotFound
from latentedit.v1 import latentedit_pb2 as pb

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")


@dataclass(frozen=True)
class Limits:
    max_latents: int = 256  # rows per request
    max_frames: int = 64  # sweep frames
    max_images: int = 1024  # images rendered per request (rows x frames)
    max_invert_images: int = 32
    max_invert_steps: int = 5000
    max_restarts: int = 64
    max_pixels: int = 4096 * 4096  # per input image, checked from the header
    max_top_k: int = 512
    max_samples: int = 100_000  # discovery / analysis samples
    max_directions: int = 64  # per Analyze


def name(value: str, field: str = "name") -> str:
    if not NAME_RE.match(value):
        raise InvalidArgument(f"{field} {value!r} must be 1-128 of letters, digits, '_', '.', '-'")
    return value


def direction_names(refs: list[str], model: str, field: str = "direction") -> list[str]:
    """``"name"`` or ``"model/name"`` references -> names; the model part must be ``model``."""
    names = []
    for ref in refs:
        owner, nm = keys.split_direction_id(ref, model)
        if owner != model:
            raise InvalidArgument(f"{field} {ref!r} belongs to model {owner!r}, not {model!r}")
        names.append(name(nm, field))
    return names


def sweep(s: pb.Sweep, rows: int, limits: Limits) -> np.ndarray:
    """Sweep -> multipliers (K,): linspace(start, stop, frames), or [1.0] without frames."""
    if not 0 <= s.frames <= limits.max_frames:
        raise InvalidArgument(f"sweep.frames: {s.frames}; allowed 0..{limits.max_frames}")
    if not (np.isfinite(s.start) and np.isfinite(s.stop)):
        raise InvalidArgument("sweep.start and sweep.stop must be finite")
    ts = np.linspace(s.start, s.stop, s.frames) if s.frames else np.ones(1)
    if rows * len(ts) > limits.max_images:
        raise InvalidArgument(
            f"{rows} latents x {len(ts)} frames = {rows * len(ts)} images; "
            f"at most {limits.max_images} per request"
        )
    return ts


def finite(value: float, field: str) -> float:
    if not np.isfinite(value):
        raise InvalidArgument(f"{field} must be finite, got {value}")
    return float(value)


def seeds(values: list[int], limits: Limits) -> list[int]:
    if not 1 <= len(values) <= limits.max_latents:
        raise InvalidArgument(f"seeds: {len(values)} given; allowed 1..{limits.max_latents}")
    return list(values)


def generate(req: pb.GenerateRequest, dim: int, limits: Limits) -> np.ndarray | list[int]:
    """Seeds (list) or latents (N, d)."""
    source = req.WhichOneof("source")
    if source == "seeds":
        return seeds(list(req.seeds.seeds), limits)
    if source == "latents":
        return latents_from(req.latents, dim, limits.max_latents)
    raise InvalidArgument("generate needs seeds or latents")


def edit(
    req: pb.EditRequest, dim: int, limits: Limits
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """-> latents (N, d), direction names, strengths (M,), multipliers (K,)."""
    z = latents_from(req.latents, dim, limits.max_latents)
    if not req.edits:
        raise InvalidArgument("edits: at least one direction is needed")
    names = direction_names([e.direction for e in req.edits], req.model, "edits.direction")
    strengths = np.array([finite(e.strength, "edits.strength") for e in req.edits])
    if len(set(names)) != len(names):
        raise InvalidArgument("edits: each direction may appear once")
    for e in req.edits:
        if e.mode not in (pb.EDIT_MODE_RELATIVE, pb.EDIT_MODE_ABSOLUTE):
            raise InvalidArgument(f"edits.mode: unknown mode {e.mode}")
    extras(req.extras, len(z))
    return z, names, strengths, sweep(req.sweep, len(z), limits)


def extras(msg: pb.CodeExtras, rows: int) -> tuple[np.ndarray | None, list[str]]:
    """Residual (rows, ...) or None, and per-row tuning ids (empty strings for none)."""
    residual = None
    if msg.HasField("residual"):
        residual = from_tensor(msg.residual, "extras.residual")
        if residual.ndim < 2 or residual.shape[0] != rows or residual.dtype.kind != "f":
            raise InvalidArgument(
                f"extras.residual: expected a float tensor with {rows} rows, "
                f"got {residual.dtype.name} {tuple(residual.shape)}"
            )
        if not np.isfinite(residual).all():
            raise InvalidArgument("extras.residual: non-finite values")
    ids = list(msg.tuning_ids)
    if ids and len(ids) != rows:
        raise InvalidArgument(f"extras.tuning_ids: {len(ids)} ids for {rows} latents")
    for i in ids:
        if i and not NAME_RE.match(i):
            raise InvalidArgument(f"extras.tuning_ids: malformed id {i!r}")
    return residual, ids or [""] * rows


def conditional_edit(
    req: pb.ConditionalEditRequest, dim: int, limits: Limits
) -> tuple[np.ndarray, list[str], float, np.ndarray]:
    """-> latents (N, d), [primary, *conditions] names, strength, multipliers (K,)."""
    z = latents_from(req.latents, dim, limits.max_latents)
    if not req.direction:
        raise InvalidArgument("direction: the primary direction is required")
    names = direction_names([req.direction, *req.conditions], req.model)
    if len(set(names)) != len(names):
        raise InvalidArgument("the primary direction and the conditions must all be distinct")
    if len(names) - 1 >= dim:
        raise InvalidArgument(f"{len(names) - 1} conditions leave no freedom in {dim} dimensions")
    strength = finite(req.strength, "strength") or 1.0
    extras(req.extras, len(z))
    return z, names, strength, sweep(req.sweep, len(z), limits)


def invert(req: pb.InvertRequest, methods: list[str], limits: Limits) -> str:
    """Checks counts, budgets and every image header; -> method name."""
    method = req.method or "optimize"
    if method not in methods:
        raise InvalidArgument(f"method {method!r} is not available; choose from {methods}")
    if not 1 <= len(req.images) <= limits.max_invert_images:
        raise InvalidArgument(
            f"images: {len(req.images)} given; allowed 1..{limits.max_invert_images}"
        )
    if not 0 <= req.steps <= limits.max_invert_steps:
        raise InvalidArgument(
            f"steps: {req.steps}; allowed 0 (default) ..{limits.max_invert_steps}"
        )
    if not 0 <= req.restarts <= limits.max_restarts:
        raise InvalidArgument(
            f"restarts: {req.restarts}; allowed 0 (default) ..{limits.max_restarts}"
        )
    if req.prior_weight < 0 or not np.isfinite(req.prior_weight):
        raise InvalidArgument("prior_weight must be finite and >= 0")
    if not 0 <= req.target_psnr <= 100 or not np.isfinite(req.target_psnr):
        raise InvalidArgument("target_psnr must be in 0..100 dB (0: default)")
    for i, image in enumerate(req.images):
        probe_image(image, limits.max_pixels, f"images[{i}]")
    return method


def discover(
    req: pb.DiscoverDirectionsRequest,
    methods: list[str],
    dim: int,
    scorers: list[str],
    limits: Limits,
) -> tuple[str, int, str]:
    """-> method, top_k, name prefix. InterFaceGAN needs latents + scores, or a scorer."""
    method = req.method or "sefa"
    if method not in methods:
        raise InvalidArgument(f"method {method!r} is not available; choose from {methods}")
    top_k = req.top_k or min(5, dim)
    if method != "interfacegan" and not 1 <= top_k <= min(dim, limits.max_top_k):
        raise InvalidArgument(f"top_k: {top_k}; allowed 1..{min(dim, limits.max_top_k)}")
    if not 0 <= req.samples <= limits.max_samples:
        raise InvalidArgument(f"samples: {req.samples}; allowed 0 (default) ..{limits.max_samples}")
    for key, value in req.params.items():
        param(key, value)
    prefix = req.name_prefix or method
    if method == "interfacegan":
        has_data = req.HasField("latents") or req.HasField("scores")
        if has_data == bool(req.scorer):
            raise InvalidArgument("interfacegan needs either latents + scores, or a scorer name")
        if has_data:
            z = latents_from(req.latents, dim, limits.max_samples)
            scores = from_tensor(req.scores, "scores").reshape(-1)
            if scores.shape[0] != z.shape[0] or not np.isfinite(scores).all():
                raise InvalidArgument(
                    f"scores: need {z.shape[0]} finite values, got {scores.shape[0]}"
                )
            if z.shape[0] < 20:
                raise InvalidArgument(
                    f"interfacegan needs at least 20 scored latents, got {z.shape[0]}"
                )
        else:
            scorer_names([req.scorer], scorers)
            prefix = req.name_prefix or req.scorer
    return method, top_k, name(prefix, "name_prefix")


_PARAMS = {"ratio": (1e-4, 0.5), "split": (0.05, 0.95)}
_TEXT_PARAMS = {"layer", "space"}


def param(key: str, value: str) -> str | float:
    """Discovery params: ratio in (0, 0.5], split in (0, 1), layer / space as text."""
    if key in _TEXT_PARAMS:
        return value
    if key not in _PARAMS:
        raise InvalidArgument(
            f"params: unknown key {key!r}; known: {sorted([*_PARAMS, *_TEXT_PARAMS])}"
        )
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgument(f"params.{key}: {value!r} is not a number") from None
    low, high = _PARAMS[key]
    if not low <= number <= high:
        raise InvalidArgument(f"params.{key}: {number} outside [{low}, {high}]")
    return number


def scorer_names(asked: list[str], available: list[str]) -> list[str]:
    """Asked scorer names (empty: all available); NotFound lists what the model has."""
    if not asked:
        if not available:
            raise InvalidArgument("this model has no scorers")
        return list(available)
    unknown = [a for a in asked if a not in available]
    if unknown:
        raise NotFound(f"unknown scorer(s) {unknown}; this model has {available}")
    if len(set(asked)) != len(asked):
        raise InvalidArgument("scorers: each scorer may appear once")
    return list(asked)


def score(req: pb.ScoreRequest, dim: int, available: list[str], limits: Limits) -> list[str]:
    """Checks the source (latents or image headers); -> scorer names."""
    source = req.WhichOneof("source")
    if source == "latents":
        latents_from(req.latents, dim, limits.max_latents)
    elif source == "images":
        if not 1 <= len(req.images.images) <= limits.max_latents:
            raise InvalidArgument(
                f"images: {len(req.images.images)}; allowed 1..{limits.max_latents}"
            )
        for i, image in enumerate(req.images.images):
            probe_image(image, limits.max_pixels, f"images[{i}]")
    else:
        raise InvalidArgument("score needs latents or images")
    return scorer_names(list(req.scorers), available)


def analyze(
    req: pb.AnalyzeRequest, available: list[str], limits: Limits
) -> tuple[list[str], list[str], int, float]:
    """-> direction names, scorer names, samples, strength."""
    if not 1 <= len(req.directions) <= limits.max_directions:
        raise InvalidArgument(
            f"directions: {len(req.directions)}; allowed 1..{limits.max_directions}"
        )
    names = direction_names(list(req.directions), req.model, "directions")
    if len(set(names)) != len(names):
        raise InvalidArgument("directions: each direction may appear once")
    scorers = scorer_names(list(req.scorers), available)
    samples = req.samples or 64
    if not 2 <= samples <= min(limits.max_samples, 4096):
        raise InvalidArgument(f"samples: {samples}; allowed 2..{min(limits.max_samples, 4096)}")
    strength = finite(req.strength, "strength") or 3.0
    if strength <= 0:
        raise InvalidArgument("strength must be > 0")
    return names, scorers, samples, strength


def direction_id(value: str, field: str = "id") -> tuple[str, str]:
    """``"model/name"`` -> (model, name)."""
    model, sep, nm = value.partition("/")
    if not sep or not model:
        raise InvalidArgument(f"{field} {value!r} must be '<model>/<name>'")
    return model, name(nm, field)


def put_direction(req: pb.PutDirectionRequest, dim: int) -> tuple[str, np.ndarray]:
    """-> name, vector (d,) (not yet normalised; must be finite and non-zero)."""
    vector = latents_from(req.vector, dim, 1, "vector")[0]
    if not np.any(vector):
        raise InvalidArgument("vector must be non-zero")
    return name(req.name), vector
