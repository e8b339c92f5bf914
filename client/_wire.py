"""Request builders and response parsers shared by Client and AsyncClient (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from latentedit.codec import FORMAT_NAMES, from_pil_or_array, from_tensor, to_pil, to_tensor
from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb

from .types import (
    Analysis,
    CodeExtras,
    ConditionallyEdited,
    Direction,
    Edited,
    Generated,
    Inverted,
    InvertProgress,
    ModelInfo,
    Scores,
)

# {name: alpha}, or (name, alpha) / (name, alpha, "relative" | "absolute") /
# (name, alpha, mode, layers) terms; layers: a w+ layer range such as "0-1".
Edits = (
    Mapping[str, float]
    | Sequence[tuple[str, float] | tuple[str, float, str] | tuple[str, float, str, str]]
)
MODES = {"relative": pb.EDIT_MODE_RELATIVE, "absolute": pb.EDIT_MODE_ABSOLUTE}
Sweep = tuple[int, float, float] | None  # (frames, start, stop)


def image_format(name: str) -> pb.ImageFormat:
    try:
        return FORMAT_NAMES[name.lower()]
    except KeyError:
        raise InvalidArgument(
            f"image_format {name!r}; choose from {sorted(FORMAT_NAMES)}"
        ) from None


def latents_array(latents: Any, field: str = "latents") -> np.ndarray:
    """Codes as float32 (N, d), or (N, L, d) in w+: an array-like, or any SDK result holding
    codes (Generated, Inverted as they are; Edited / ConditionallyEdited (N, K, ...) ->
    (N*K, ...), every frame of the sweep one code)."""
    if isinstance(latents, Edited):
        z = np.asarray(latents.latents, np.float32)
        return z.reshape(-1, *z.shape[2:])
    if isinstance(latents, Generated | Inverted):
        return np.asarray(latents.latents, np.float32)
    if latents is None or isinstance(latents, str | bytes | bytearray):
        raise InvalidArgument(f"{field}: expected numbers (N, d), got {type(latents).__name__}")
    try:
        z = np.asarray(latents, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{field}: expected numbers (N, d)") from None
    if z.size == 0 or z.ndim == 0:
        raise InvalidArgument(f"{field}: expected a non-empty (N, d) array, got shape {z.shape}")
    return z


def latents_tensor(latents: Any, field: str = "latents") -> pb.Tensor:
    return to_tensor(latents_array(latents, field))


def sweep_msg(sweep: Sweep) -> pb.Sweep | None:
    if sweep is None:
        return None
    frames, start, stop = sweep
    return pb.Sweep(frames=int(frames), start=float(start), stop=float(stop))


def edit_terms(edits: Edits, mode: str = "relative") -> list[pb.DirectionStrength]:
    items = list(edits.items()) if isinstance(edits, Mapping) else list(edits)
    terms = []
    for item in items:
        parts: list[Any] = [*item, mode, ""][:4] if len(item) == 2 else [*item, ""][:4]
        name, strength, term_mode, layers = parts
        if term_mode not in MODES:
            raise InvalidArgument(f"edit mode {term_mode!r}; choose from {sorted(MODES)}")
        terms.append(
            pb.DirectionStrength(
                direction=name, strength=float(strength), mode=MODES[term_mode], layers=layers
            )
        )
    return terms


def scores(r: pb.ScoreResponse) -> Scores:
    return Scores(r.model_version, list(r.scorers), from_tensor(r.scores))


def concat_scores(parts: list[Scores]) -> Scores:
    """Scores of consecutive row chunks -> one Scores (N, S)."""
    first = parts[0]
    return Scores(first.model_version, first.scorers, np.concatenate([p.scores for p in parts]))


def analysis(r: pb.AnalyzeResponse) -> Analysis:
    return Analysis(
        r.model_version,
        list(r.directions),
        list(r.scorers),
        from_tensor(r.cosine),
        from_tensor(r.correlation),
        from_tensor(r.rescoring),
        from_tensor(r.rescoring_std),
        from_tensor(r.score_std),
    )


def model_info(m: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(
        name=m.name,
        version=m.version,
        resolution=m.resolution,
        latent_dim=m.latent_dim,
        description=m.description,
        invert_methods=list(m.invert_methods),
        w_invert_methods=list(m.w_invert_methods),
        discover_methods=list(m.discover_methods),
        scorers=list(m.scorers),
        max_batch=m.max_batch,
        training_methods=list(m.training_methods),
        architecture=m.architecture,
        spaces=list(m.spaces) or ["z"],
        default_space=m.default_space or "z",
        w_dim=m.w_dim,
        num_ws=m.num_ws,
        sefa_layers=list(m.sefa_layers),
        channels=m.channels or 3,
        sha256=m.sha256,
        truncation_psi=m.truncation_psi or 1.0,
        bytes_per_image=m.details.bytes_per_image,
        render_batch=m.details.render_batch,
        feature_shape=tuple(m.feature_shape) or tuple(m.details.feature_shape),
        num_noises=m.details.num_noises,
        device=m.details.device,
        dtype=m.details.dtype,
    )


def direction(d: pb.Direction) -> Direction:
    return Direction(
        id=d.id,
        model=d.model,
        name=d.name,
        method=d.method,
        version=d.version,
        created_unix_ms=d.created_unix_ms,
        model_version=d.model_version,
        vector=from_tensor(d.vector, "vector") if d.HasField("vector") else None,
        params=dict(d.params),
        metrics=dict(d.metrics),
        space=d.space or "z",
        owner=d.owner,
    )


def generated(r: pb.GenerateResponse) -> Generated:
    return Generated(r.model_version, from_tensor(r.latents), [to_pil(i) for i in r.images])


def _grid(images: Iterable[pb.Image], rows: int, cols: int) -> list[list[Any]]:
    flat = [to_pil(i) for i in images]
    return [flat[r * cols : (r + 1) * cols] for r in range(rows)]


def edited(r: pb.EditResponse) -> Edited:
    z = from_tensor(r.latents)
    return Edited(
        r.model_version,
        z,
        _grid(r.images, z.shape[0], z.shape[1]),
        np.array(r.multipliers),
        [direction(d) for d in r.directions],
    )


def conditionally_edited(r: pb.ConditionalEditResponse) -> ConditionallyEdited:
    z = from_tensor(r.latents)
    return ConditionallyEdited(
        r.model_version,
        z,
        _grid(r.images, z.shape[0], z.shape[1]),
        np.array(r.multipliers),
        [],
        projected_direction=from_tensor(r.projected_direction),
        condition_cosines=np.array(r.condition_cosines),
        primary_cosine=r.primary_cosine,
    )


def code_extras(m: pb.CodeExtras) -> CodeExtras:
    residual = from_tensor(m.residual, "residual") if m.HasField("residual") else None
    return CodeExtras(residual, list(m.tuning_ids))


def extras_msg(extras: CodeExtras | None) -> pb.CodeExtras | None:
    if not extras:
        return None
    msg = pb.CodeExtras(tuning_ids=list(extras.tuning_ids))
    if extras.residual is not None:
        msg.residual.CopyFrom(to_tensor(np.asarray(extras.residual, np.float32)))
    return msg


def split_code(latents: Any) -> tuple[pb.Tensor, pb.CodeExtras | None]:
    """latents (N, d), or an SDK result holding codes -> (Tensor, CodeExtras or None).

    An Inverted brings its extras (residuals, tuning ids) along.
    """
    if isinstance(latents, Inverted):
        return latents_tensor(latents.latents), extras_msg(latents.extras)
    return latents_tensor(latents), None


def invert_event(e: pb.InvertEvent) -> InvertProgress | Inverted:
    if e.WhichOneof("event") == "progress":
        p = e.progress
        return InvertProgress(p.step, p.total_steps, p.loss, np.array(p.psnr), p.method)
    return inverted(e.result)


def inverted(r: pb.InvertResponse) -> Inverted:
    return Inverted(
        r.model_version,
        from_tensor(r.latents),
        [to_pil(i) for i in r.reconstructions],
        np.array(r.psnr),
        r.steps,
        r.seconds,
        r.method,
        [(c.left, c.top, c.size) for c in r.crops],
        ssim=np.array(r.ssim),
        methods=list(r.methods),
        extras=code_extras(r.extras),
        tuning_bytes=list(r.tuning_bytes),
        edit_error=np.array(r.edit_error),
        code_psnr=np.array(r.code_psnr),
    )


def invert_request(
    model: str,
    images: Sequence[Any],
    method: str,
    steps: int,
    restarts: int,
    seed: int,
    prior_weight: float,
    target_psnr: float = 0.0,
    report_edit_error: bool = False,
    max_edit_error: float = 0.0,
) -> pb.InvertRequest:
    return pb.InvertRequest(
        target_psnr=target_psnr,
        report_edit_error=report_edit_error,
        max_edit_error=max_edit_error,
        model=model,
        images=[from_pil_or_array(i) for i in images],
        method=method,
        steps=steps,
        restarts=restarts,
        seed=seed,
        prior_weight=prior_weight,
    )


def load_boundary(path: str) -> np.ndarray:
    """An InterFaceGAN ``.npy`` boundary, (1, d) or (d,), read without unpickling."""
    arr = np.load(path, allow_pickle=False)
    return np.asarray(arr, dtype=np.float32).reshape(-1)


def save_boundary(path: str, d: Direction) -> None:
    """Write a direction as an InterFaceGAN boundary: float32 (1, d), unit norm."""
    if d.vector is None:
        raise InvalidArgument(f"direction {d.id} has no vector")
    np.save(path, np.asarray(d.vector, np.float32).reshape(1, -1))
