"""What Client and AsyncClient share: targets, channel options, retries, and every operation.

An operation is (rpc name, request, parser, idempotent); each client only
supplies how to send it (blocking or ``await``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import numpy as np

from latentedit.codec import from_pil_or_array, to_tensor
from latentedit.errors import LatentEditError, Unavailable, error_for
from latentedit.v1 import latentedit_pb2 as pb

from . import _wire as w
from .types import (
    Analysis,
    ConditionallyEdited,
    Direction,
    Edited,
    Generated,
    Inverted,
    ModelInfo,
    Scores,
)

T = TypeVar("T")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Op(Generic[T]):
    rpc: str
    request: Any
    parse: Callable[[Any], T]
    idempotent: bool = True


def parse_targets(target: str | Sequence[str]) -> list[str]:
    """``"host:port"``, ``"h1:p1,h2:p2"`` or a list -> list of addresses (round robin)."""
    items = target.split(",") if isinstance(target, str) else list(target)
    targets = [t.strip() for t in items if t.strip()]
    if not targets:
        raise ValueError("at least one gateway address is needed")
    return targets


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def to_error(exc: grpc.RpcError) -> LatentEditError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return error_for(code, details or str(code))


def backoff_s(attempt: int, base: float = 0.1, cap: float = 2.0) -> float:
    """Exponential backoff with full jitter for retry ``attempt`` (0-based)."""
    return random.uniform(0, min(cap, base * 2**attempt))


class ClientBase:
    """Settings and operations; subclasses send them."""

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:50051",
        *,
        timeout: float | None = 60.0,
        retries: int = 3,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.targets = parse_targets(target)
        self.timeout = timeout
        self.retries = retries
        self.max_message_bytes = max_message_bytes
        self._next = itertools.cycle(range(len(self.targets)))

    def _should_retry(self, err: LatentEditError, op: Op[Any], attempt: int) -> bool:
        return isinstance(err, Unavailable) and op.idempotent and attempt < self.retries

    # ---- operations (one place for every request) ---------------------------------------

    @staticmethod
    def _op_models() -> Op[list[ModelInfo]]:
        return Op(
            "ListModels", pb.ListModelsRequest(), lambda r: [w.model_info(m) for m in r.models]
        )

    @staticmethod
    def _op_generate(
        model: str, seeds: Sequence[int] | None, latents: Any, image_format: str
    ) -> Op[Generated]:
        req = pb.GenerateRequest(model=model, image_format=w.image_format(image_format))
        if latents is not None:
            tensor, extras = w.split_code(latents)
            req.latents.CopyFrom(tensor)
            if extras is not None:
                req.extras.CopyFrom(extras)
        else:
            req.seeds.seeds.extend(int(s) for s in (seeds or []))
        return Op("Generate", req, w.generated)

    @staticmethod
    def _op_edit(
        model: str, latents: Any, edits: w.Edits, sweep: w.Sweep, image_format: str, mode: str
    ) -> Op[Edited]:
        tensor, extras = w.split_code(latents)
        req = pb.EditRequest(
            model=model,
            latents=tensor,
            extras=extras,
            edits=w.edit_terms(edits, mode),
            sweep=w.sweep_msg(sweep),
            image_format=w.image_format(image_format),
        )
        return Op("Edit", req, w.edited)

    @staticmethod
    def _op_conditional_edit(
        model: str,
        latents: Any,
        direction: str,
        conditions: Sequence[str],
        strength: float,
        sweep: w.Sweep,
        image_format: str,
    ) -> Op[ConditionallyEdited]:
        tensor, extras = w.split_code(latents)
        req = pb.ConditionalEditRequest(
            model=model,
            latents=tensor,
            extras=extras,
            direction=direction,
            conditions=list(conditions),
            strength=strength,
            sweep=w.sweep_msg(sweep),
            image_format=w.image_format(image_format),
        )
        return Op("ConditionalEdit", req, w.conditionally_edited)

    @staticmethod
    def _op_invert(
        model: str,
        images: Sequence[Any],
        method: str,
        steps: int,
        restarts: int,
        seed: int,
        prior_weight: float,
        target_psnr: float,
    ) -> Op[Inverted]:
        req = w.invert_request(
            model, images, method, steps, restarts, seed, prior_weight, target_psnr
        )
        return Op("Invert", req, w.inverted)

    @staticmethod
    def _op_discover(
        model: str,
        method: str,
        top_k: int,
        name_prefix: str,
        params: dict[str, str] | None,
        latents: Any,
        scores: Any,
        scorer: str,
        samples: int,
        seed: int,
    ) -> Op[list[Direction]]:
        req = pb.DiscoverDirectionsRequest(
            model=model,
            method=method,
            top_k=top_k,
            name_prefix=name_prefix,
            params=params or {},
            scorer=scorer,
            samples=samples,
            seed=seed,
        )
        if latents is not None:
            req.latents.CopyFrom(w.latents_tensor(latents))
        if scores is not None:
            req.scores.CopyFrom(to_tensor(np.asarray(scores, np.float64).reshape(-1)))
        return Op(
            "DiscoverDirections",
            req,
            lambda r: [w.direction(d) for d in r.directions],
            idempotent=False,
        )

    @staticmethod
    def _op_score(
        model: str, latents: Any, images: Sequence[Any] | None, scorers: Sequence[str]
    ) -> Op[Scores]:
        req = pb.ScoreRequest(model=model, scorers=list(scorers))
        if images is not None:
            req.images.images.extend(from_pil_or_array(i) for i in images)
        else:
            req.latents.CopyFrom(w.latents_tensor(latents))
        return Op("Score", req, w.scores)

    @staticmethod
    def _op_analyze(
        model: str,
        directions: Sequence[str],
        scorers: Sequence[str],
        samples: int,
        strength: float,
        seed: int,
    ) -> Op[Analysis]:
        req = pb.AnalyzeRequest(
            model=model,
            directions=list(directions),
            scorers=list(scorers),
            samples=samples,
            strength=strength,
            seed=seed,
        )
        return Op("Analyze", req, w.analysis)

    @staticmethod
    def _op_directions(model: str, include_vectors: bool) -> Op[list[Direction]]:
        req = pb.ListDirectionsRequest(model=model, include_vectors=include_vectors)
        return Op("ListDirections", req, lambda r: [w.direction(d) for d in r.directions])

    @staticmethod
    def _op_get_direction(direction_id: str) -> Op[Direction]:
        return Op("GetDirection", pb.GetDirectionRequest(id=direction_id), w.direction)

    @staticmethod
    def _op_delete_direction(direction_id: str) -> Op[bool]:
        return Op(
            "DeleteDirection", pb.DeleteDirectionRequest(id=direction_id), lambda r: r.deleted
        )

    @staticmethod
    def _op_put_direction(
        model: str, name: str, vector: Any, method: str, params: dict[str, str] | None
    ) -> Op[Direction]:
        req = pb.PutDirectionRequest(
            model=model,
            name=name,
            method=method,
            params=params or {},
            vector=w.latents_tensor(np.asarray(vector).reshape(-1)),
        )
        return Op("PutDirection", req, w.direction)
