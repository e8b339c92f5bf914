"""What Client and AsyncClient share: settings, the channel, and every operation.

An operation is (rpc name, request, parser); each client only supplies how to send it
(blocking or ``await``). Retries and round robin are gRPC's (see ``_transport``).
What the SDK checks itself (latents that are not numbers, empty images, ...) raises
:class:`InvalidArgument` before anything is sent.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import numpy as np

from latentedit.codec import from_pil_or_array, to_tensor
from latentedit.errors import InvalidArgument, LatentEditError, error_for
from latentedit.v1 import latentedit_pb2 as pb

from . import _transport as tr
from . import _wire as w
from .evaluation import Evaluation, evaluation
from .jobs import JobStatus, job_status, list_request
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


@dataclass(frozen=True)
class JobRef:
    """DiscoverDirections answered with a training job (the clients wrap it in a handle)."""

    job_id: str


MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 256  # rows per Score call (the gateway's max_latents); larger calls are split


@dataclass(frozen=True)
class Op(Generic[T]):
    rpc: str
    request: Any
    parse: Callable[[Any], T]
    idempotent: bool = True  # informational: retries follow _transport.NON_IDEMPOTENT


def checked(build: Callable[..., Any]) -> Callable[..., Any]:
    """Request builders raise InvalidArgument (not ValueError/TypeError) for bad arguments."""

    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return build(*args, **kwargs)
        except LatentEditError:
            raise
        except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:
            raise InvalidArgument(f"{build.__name__.removeprefix('_op_')}: {exc}") from None

    return wrapper


def to_error(exc: grpc.RpcError) -> LatentEditError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return error_for(code, details or str(code))


class ClientBase:
    """Settings and operations; subclasses send them.

    ``target``: ``"host:port"``, ``"dns:///name:port"`` (round robin over what the name
    resolves to), or several ``"ip:port"`` comma-separated / as a list (round robin).
    ``api_key``: sent as ``authorization: Bearer <key>``. ``tls``: None (plaintext), True
    (system CAs), a CA path, or ``TLS(ca, cert, key)`` for mutual TLS. ``retries``: extra
    attempts of idempotent calls on UNAVAILABLE, with gRPC's jittered exponential backoff.
    """

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:50051",
        *,
        timeout: float | None = 60.0,
        retries: int = 3,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        api_key: str | None = None,
        tls: tr.TLSArg = None,
    ) -> None:
        self.targets = tr.parse_targets(target)
        self.target = tr.channel_target(self.targets)
        self.timeout = timeout
        self.retries = retries
        self.max_message_bytes = max_message_bytes
        self.tls = tr.tls_settings(tls)
        self.options = tr.options(max_message_bytes, retries, self.tls)
        key = api_key if api_key is not None else os.environ.get("LATENTEDIT_API_KEY")
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {key}"),) if key else ()
        )

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    @staticmethod
    def _in_space(op: Op[T], space: str, **fields: Any) -> Op[T]:
        """Set the latent-space fields (branch `spaces`, numbers 60-69) of ``op``'s request.

        ``space``: "z", "w" or "w+" ("" = the model's default); ``fields``: ``layers`` (a w+
        layer range such as "0-1") and ``truncation_psi``, where given (None / "" = unset).
        """
        op.request.space = space
        for key, value in fields.items():
            if value is not None and value != "":
                setattr(op.request, key, value)
        return op

    # ---- operations (one place for every request) ---------------------------------------

    @staticmethod
    @checked
    def _op_models() -> Op[list[ModelInfo]]:
        return Op(
            "ListModels", pb.ListModelsRequest(), lambda r: [w.model_info(m) for m in r.models]
        )

    @staticmethod
    @checked
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
    @checked
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
    @checked
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
    @checked
    def _op_invert(
        model: str,
        images: Sequence[Any],
        method: str,
        steps: int,
        restarts: int,
        seed: int,
        prior_weight: float,
        target_psnr: float,
        report_edit_error: bool = False,
        max_edit_error: float = 0.0,
    ) -> Op[Inverted]:
        req = w.invert_request(
            model, images, method, steps, restarts, seed, prior_weight, target_psnr,
            report_edit_error, max_edit_error,
        )  # fmt: skip
        return Op("Invert", req, w.inverted)

    @staticmethod
    @checked
    def _op_discover(  # jobs: a learned method answers with a JobRef (see client/jobs.py)
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
    ) -> Op[list[Direction] | JobRef]:
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
            lambda r: JobRef(r.job_id) if r.job_id else [w.direction(d) for d in r.directions],
            idempotent=False,
        )

    @staticmethod
    @checked
    def _ops_score(
        model: str, latents: Any, images: Sequence[Any] | None, scorers: Sequence[str]
    ) -> list[Op[Scores]]:
        """One Score op per MAX_ROWS rows (the gateway refuses more in one call)."""
        ops = []
        if images is not None:
            items = list(images)
            if not items:
                raise InvalidArgument("images: at least one image is needed")
            for start in range(0, len(items), MAX_ROWS):
                req = pb.ScoreRequest(model=model, scorers=list(scorers))
                chunk = items[start : start + MAX_ROWS]
                req.images.images.extend(from_pil_or_array(i) for i in chunk)
                ops.append(Op("Score", req, w.scores))
            return ops
        z = w.latents_array(latents)
        for start in range(0, max(len(z), 1), MAX_ROWS):
            req = pb.ScoreRequest(model=model, scorers=list(scorers))
            req.latents.CopyFrom(to_tensor(z[start : start + MAX_ROWS]))
            ops.append(Op("Score", req, w.scores))
        return ops

    @staticmethod
    @checked
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
    @checked
    def _op_evaluate(
        model: str,
        directions: Sequence[str],
        scorers: Sequence[str],
        samples: int,
        strength: float,
        seed: int,
        figure_samples: int,
    ) -> Op[Evaluation]:
        req = pb.EvaluateRequest(
            model=model,
            directions=list(directions),
            scorers=list(scorers),
            samples=samples,
            strength=strength,
            seed=seed,
            figure_samples=figure_samples,
        )
        return Op("Evaluate", req, evaluation)

    @staticmethod
    @checked
    def _op_directions(model: str, include_vectors: bool) -> Op[list[Direction]]:
        req = pb.ListDirectionsRequest(model=model, include_vectors=include_vectors)
        return Op("ListDirections", req, lambda r: [w.direction(d) for d in r.directions])

    @staticmethod
    @checked
    def _op_get_direction(direction_id: str) -> Op[Direction]:
        return Op("GetDirection", pb.GetDirectionRequest(id=direction_id), w.direction)

    @staticmethod
    @checked
    def _op_delete_direction(direction_id: str) -> Op[bool]:
        return Op(
            "DeleteDirection", pb.DeleteDirectionRequest(id=direction_id), lambda r: r.deleted
        )

    @staticmethod
    @checked
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

    # ---- jobs (branch `jobs`): training jobs ---------------------------------------------

    @staticmethod
    def _op_job_status(job_id: str) -> Op[JobStatus]:
        return Op("GetJob", pb.GetJobRequest(job_id=job_id), job_status)

    @staticmethod
    def _op_cancel_job(job_id: str, wait_seconds: float) -> Op[JobStatus]:
        req = pb.CancelJobRequest(job_id=job_id, wait_seconds=wait_seconds)
        return Op("CancelJob", req, lambda r: job_status(r.status))

    @staticmethod
    def _op_jobs(model: str, states: Sequence[str], limit: int) -> Op[list[JobStatus]]:
        req = list_request(model, states, limit)
        return Op("ListJobs", req, lambda r: [job_status(j) for j in r.jobs])
