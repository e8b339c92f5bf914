"""Blocking SDK client: :class:`Client`, the twin of :class:`AsyncClient`.

GENERATED from client/async_client.py by scripts/gen_sync_client.py (`make sync-client`);
do not edit by hand: edit the async client and regenerate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeVar, overload

import grpc

from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

from . import _transport as tr
from . import _wire as w
from . import jobs as _jobs
from ._base import ClientBase, JobRef, Op, to_error
from .evaluation import Evaluation
from .sync_jobs import TrainingJob
from .types import (
    Analysis,
    ConditionallyEdited,
    Direction,
    Edited,
    Generated,
    Inverted,
    InvertProgress,
    ModelInfo,
    Scores,
)

T = TypeVar("T")
LearnedMethod = Literal["linear", "warped", "curvilinear"]  # jobs: methods that train


class Client(ClientBase):
    """A client of the latentedit gateway(s); a context manager that closes its channel.

    Arguments: see :class:`ClientBase` (target, timeout, retries, api_key, tls). Errors
    raise :mod:`latentedit.errors` classes, one per gRPC status.
    """

    def __init__(self, target: str | Sequence[str] = "127.0.0.1:50051", **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._channel = tr.sync_channel(self.target, self.tls, self.options)
        self._stub = pb_grpc.LatentEditorStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the channel is connected (UNAVAILABLE after ``timeout`` seconds)."""
        tr.sync_ready(self._channel, self.target, timeout)

    def _call(self, op: Op[T], timeout: float | None) -> T:
        try:
            response = getattr(self._stub, op.rpc)(
                op.request, timeout=self._timeout(timeout), metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise to_error(exc) from None
        return op.parse(response)

    def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Models the pool serves now."""
        return self._call(self._op_models(), timeout)

    def generate(
        self,
        model: str,
        seeds: Sequence[int] | None = None,
        *,
        latents: Any = None,
        image_format: str = "png",
        space: str = "",
        truncation_psi: float | None = None,
        timeout: float | None = None,
    ) -> Generated:
        """Render from seeds (one N(0, I) latent each) or from latents (N, d)."""
        return self._call(
            self._in_space(
                self._op_generate(model, seeds, latents, image_format),
                space,
                truncation_psi=truncation_psi,
            ),
            timeout,
        )

    def edit(
        self,
        model: str,
        latents: Any,
        edits: w.Edits,
        *,
        sweep: w.Sweep = None,
        mode: str = "relative",
        image_format: str = "png",
        space: str = "",
        layers: str = "",
        timeout: float | None = None,
    ) -> Edited:
        """z' = z + t * sum_i alpha_i n_i.

        ``edits`` maps direction name -> alpha; ``sweep`` = (frames, t_start, t_stop).
        """
        return self._call(
            self._in_space(
                self._op_edit(model, latents, edits, sweep, image_format, mode),
                space,
                layers=layers,
            ),
            timeout,
        )

    def conditional_edit(
        self,
        model: str,
        latents: Any,
        direction: str,
        conditions: Sequence[str] = (),
        *,
        strength: float = 1.0,
        sweep: w.Sweep = None,
        image_format: str = "png",
        space: str = "",
        layers: str = "",
        timeout: float | None = None,
    ) -> ConditionallyEdited:
        """Edit along ``direction`` projected orthogonally to every condition direction."""
        return self._call(
            self._in_space(
                self._op_conditional_edit(
                    model, latents, direction, conditions, strength, sweep, image_format
                ),
                space,
                layers=layers,
            ),
            timeout,
        )

    def invert(
        self,
        model: str,
        images: Sequence[Any],
        *,
        method: str = "optimize",
        steps: int = 0,
        restarts: int = 0,
        seed: int = 0,
        prior_weight: float = 0.0,
        target_psnr: float = 0.0,
        space: str = "",
        report_edit_error: bool = False,
        max_edit_error: float = 0.0,
        timeout: float | None = None,
    ) -> Inverted:
        """Images (PIL images, uint8 arrays (H, W[, 3 | 4]), encoded bytes or file paths) -> codes.

        ``method``: optimize | encoder | hybrid | extended | tune | auto (escalates until
        ``target_psnr`` dB, default 30, keeping the relative edit error under
        ``max_edit_error``, default 0.3). ``report_edit_error``: fill ``edit_error`` (how far
        edits of each inverted photo differ from the generator's own edits; 0 = identical).
        Pass the result as ``latents`` to edit it.
        """
        op = self._op_invert(
            model,
            images,
            method,
            steps,
            restarts,
            seed,
            prior_weight,
            target_psnr,
            report_edit_error,
            max_edit_error,
        )
        return self._call(self._in_space(op, space), timeout)

    def invert_stream(
        self,
        model: str,
        images: Sequence[Any],
        *,
        method: str = "optimize",
        steps: int = 0,
        restarts: int = 0,
        seed: int = 0,
        prior_weight: float = 0.0,
        target_psnr: float = 0.0,
        space: str = "",
        report_edit_error: bool = False,
        max_edit_error: float = 0.0,
        timeout: float | None = None,
    ) -> Iterator[InvertProgress | Inverted]:
        """Like :meth:`invert`, yielding InvertProgress events, then the Inverted result.

        Leaving the loop early cancels the call and stops the work.
        """
        req = self._op_invert(
            model,
            images,
            method,
            steps,
            restarts,
            seed,
            prior_weight,
            target_psnr,
            report_edit_error,
            max_edit_error,
        ).request
        req.space = space
        call = self._stub.InvertStream(req, timeout=self._timeout(timeout), metadata=self.metadata)
        try:
            for event in call:
                yield w.invert_event(event)
        except grpc.RpcError as exc:
            raise to_error(exc) from None
        finally:
            call.cancel()

    @overload
    def discover(  # type: ignore[overload-overlap]
        self,
        model: str,
        method: LearnedMethod,
        *,
        top_k: int = 5,
        name_prefix: str = "",
        params: dict[str, str] | None = None,
        latents: Any = None,
        scores: Any = None,
        scorer: str = "",
        samples: int = 0,
        seed: int = 0,
        timeout: float | None = None,
    ) -> TrainingJob: ...

    @overload
    def discover(
        self,
        model: str,
        method: str = "sefa",
        *,
        top_k: int = 5,
        name_prefix: str = "",
        params: dict[str, str] | None = None,
        latents: Any = None,
        scores: Any = None,
        scorer: str = "",
        samples: int = 0,
        seed: int = 0,
        timeout: float | None = None,
    ) -> list[Direction]: ...

    def discover(
        self,
        model: str,
        method: str = "sefa",
        *,
        top_k: int = 5,
        name_prefix: str = "",
        params: dict[str, str] | None = None,
        latents: Any = None,
        scores: Any = None,
        scorer: str = "",
        samples: int = 0,
        seed: int = 0,
        space: str = "",
        timeout: float | None = None,
    ) -> list[Direction] | TrainingJob:
        """Find and store directions; returns them with their vectors.

        ``sefa`` and ``ganspace`` store ``top_k`` directions ``<prefix>_NN``;
        ``interfacegan`` learns one boundary from ``latents`` (N, d) + ``scores`` (N,),
        or from ``samples`` codes scored by the model's ``scorer``. Learned methods
        (``linear``, ``warped``, ``curvilinear``: ModelInfo.training_methods) train as a
        job: the call returns a job handle at once (``wait()``, iterate for progress,
        ``cancel()``); ``top_k`` is the number of directions unless ``params`` says.
        """
        op = self._op_discover(
            model, method, top_k, name_prefix, params, latents, scores, scorer, samples, seed
        )
        found = self._call(self._in_space(op, space), timeout)
        return TrainingJob(self, found.job_id) if isinstance(found, JobRef) else found

    def score(
        self,
        model: str,
        latents: Any = None,
        *,
        images: Sequence[Any] | None = None,
        scorers: Sequence[str] = (),
        space: str = "",
        timeout: float | None = None,
    ) -> Scores:
        """Score latents (N, d) (rendered first) or images with named scorers (empty: all).

        More than 256 rows are sent as several calls, one after the other, and joined.
        """
        ops = self._ops_score(model, latents, images, scorers)
        return w.concat_scores([self._call(self._in_space(op, space), timeout) for op in ops])

    def analyze(
        self,
        model: str,
        directions: Sequence[str],
        scorers: Sequence[str] = (),
        *,
        samples: int = 64,
        strength: float = 3.0,
        seed: int = 0,
        space: str = "",
        layers: str = "",
        timeout: float | None = None,
    ) -> Analysis:
        """Cosines between directions, score correlations, and the re-scoring matrix."""
        op = self._op_analyze(model, directions, scorers, samples, strength, seed)
        return self._call(self._in_space(op, space, layers=layers), timeout)

    def evaluate(
        self,
        model: str,
        directions: Sequence[str],
        scorers: Sequence[str] = (),
        *,
        samples: int = 128,
        strength: float = 2.0,
        seed: int = 0,
        figure_samples: int = 0,
        timeout: float | None = None,
    ) -> Evaluation:
        """Commutativity, side effects and reversibility of 2..16 stored directions
        (linear or learned), with the model's scorers; ``figure_samples`` rows of
        z, A, A->B, B->A, B images for the least commutative pair."""
        op = self._op_evaluate(model, directions, scorers, samples, strength, seed, figure_samples)
        return self._call(op, timeout)

    def directions(
        self,
        model: str,
        *,
        include_vectors: bool = False,
        space: str = "",
        timeout: float | None = None,
    ) -> list[Direction]:
        """Stored directions of a model."""
        return self._call(
            self._in_space(self._op_directions(model, include_vectors), space), timeout
        )

    def get_direction(self, direction_id: str, *, timeout: float | None = None) -> Direction:
        """One direction (``"<model>/<name>"``) with its vector."""
        return self._call(self._op_get_direction(direction_id), timeout)

    def delete_direction(self, direction_id: str, *, timeout: float | None = None) -> bool:
        """Delete; True if it existed."""
        return self._call(self._op_delete_direction(direction_id), timeout)

    def put_direction(
        self,
        model: str,
        name: str,
        vector: Any,
        *,
        method: str = "import",
        params: dict[str, str] | None = None,
        space: str = "",
        timeout: float | None = None,
    ) -> Direction:
        """Store a direction from its vector (d,); it is normalised to unit norm."""
        return self._call(
            self._in_space(self._op_put_direction(model, name, vector, method, params), space),
            timeout,
        )

    def import_direction(
        self, model: str, name: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Store an InterFaceGAN ``.npy`` boundary ((1, d) or (d,); read without pickle)."""
        return self.put_direction(model, name, w.load_boundary(path), timeout=timeout)

    def export_direction(
        self, direction_id: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Write a direction as an InterFaceGAN ``.npy`` boundary, float32 (1, d), unit norm."""
        d = self.get_direction(direction_id, timeout=timeout)
        w.save_boundary(path, d)
        return d

    # ---- jobs (branch `jobs`): training jobs ---------------------------------------------

    def job(self, job_id: str) -> TrainingJob:
        """A handle on a training job by id (e.g. from :meth:`jobs`)."""
        return TrainingJob(self, job_id)

    def job_status(self, job_id: str, *, timeout: float | None = None) -> _jobs.JobStatus:
        """A training job's status now."""
        return self._call(self._op_job_status(job_id), timeout)

    def cancel_job(
        self, job_id: str, *, wait_seconds: float = 5.0, timeout: float | None = None
    ) -> _jobs.JobStatus:
        """Cancel a training job; returns its status once stopped (or after ``wait_seconds``)."""
        return self._call(self._op_cancel_job(job_id, wait_seconds), timeout)

    def jobs(
        self,
        model: str,
        *,
        states: Sequence[str] = (),
        limit: int = 0,
        timeout: float | None = None,
    ) -> list[_jobs.JobStatus]:
        """A model's training jobs, newest first (``states``: e.g. ["running", "queued"])."""
        return self._call(self._op_jobs(model, states, limit), timeout)
