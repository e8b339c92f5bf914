"""asyncio SDK client, the twin of :class:`latentedit.client.Client`.

The source of truth for both: ``client/sync_client.py`` is generated from this file by
``scripts/gen_sync_client.py`` (``make sync-client``; a test fails when it is stale).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, TypeVar, overload

import grpc

from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

from . import _transport as tr
from . import _wire as w
from . import jobs as _jobs
from ._base import ClientBase, JobRef, Op, to_error
from .async_jobs import AsyncTrainingJob
from .evaluation import Evaluation
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


class AsyncClient(ClientBase):
    """A client of the latentedit gateway(s); a context manager that closes its channel.

    Arguments: see :class:`ClientBase` (target, timeout, retries, api_key, tls). Errors
    raise :mod:`latentedit.errors` classes, one per gRPC status.
    """

    def __init__(self, target: str | Sequence[str] = "127.0.0.1:50051", **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._channel = tr.aio_channel(self.target, self.tls, self.options)
        self._stub = pb_grpc.LatentEditorStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the channel is connected (UNAVAILABLE after ``timeout`` seconds)."""
        await tr.aio_ready(self._channel, self.target, timeout)

    async def _call(self, op: Op[T], timeout: float | None) -> T:
        try:
            response = await getattr(self._stub, op.rpc)(
                op.request, timeout=self._timeout(timeout), metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise to_error(exc) from None
        return op.parse(response)

    async def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Models the pool serves now."""
        return await self._call(self._op_models(), timeout)

    async def generate(
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
        return await self._call(
            self._in_space(
                self._op_generate(model, seeds, latents, image_format),
                space,
                truncation_psi=truncation_psi,
            ),
            timeout,
        )

    async def edit(
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
        return await self._call(
            self._in_space(
                self._op_edit(model, latents, edits, sweep, image_format, mode),
                space,
                layers=layers,
            ),
            timeout,
        )

    async def conditional_edit(
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
        return await self._call(
            self._in_space(
                self._op_conditional_edit(
                    model, latents, direction, conditions, strength, sweep, image_format
                ),
                space,
                layers=layers,
            ),
            timeout,
        )

    async def invert(
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
        return await self._call(self._in_space(op, space), timeout)

    async def invert_stream(
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
    ) -> AsyncIterator[InvertProgress | Inverted]:
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
            async for event in call:
                yield w.invert_event(event)
        except grpc.RpcError as exc:
            raise to_error(exc) from None
        finally:
            call.cancel()

    @overload
    async def discover(  # type: ignore[overload-overlap]
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
    ) -> AsyncTrainingJob: ...

    @overload
    async def discover(
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

    async def discover(
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
    ) -> list[Direction] | AsyncTrainingJob:
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
        found = await self._call(self._in_space(op, space), timeout)
        return AsyncTrainingJob(self, found.job_id) if isinstance(found, JobRef) else found

    async def score(
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
        return w.concat_scores([await self._call(self._in_space(op, space), timeout) for op in ops])

    async def analyze(
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
        return await self._call(self._in_space(op, space, layers=layers), timeout)

    async def evaluate(
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
        return await self._call(op, timeout)

    async def directions(
        self,
        model: str,
        *,
        include_vectors: bool = False,
        space: str = "",
        timeout: float | None = None,
    ) -> list[Direction]:
        """Stored directions of a model."""
        return await self._call(
            self._in_space(self._op_directions(model, include_vectors), space), timeout
        )

    async def get_direction(self, direction_id: str, *, timeout: float | None = None) -> Direction:
        """One direction (``"<model>/<name>"``) with its vector."""
        return await self._call(self._op_get_direction(direction_id), timeout)

    async def delete_direction(self, direction_id: str, *, timeout: float | None = None) -> bool:
        """Delete; True if it existed."""
        return await self._call(self._op_delete_direction(direction_id), timeout)

    async def put_direction(
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
        return await self._call(
            self._in_space(self._op_put_direction(model, name, vector, method, params), space),
            timeout,
        )

    async def import_direction(
        self, model: str, name: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Store an InterFaceGAN ``.npy`` boundary ((1, d) or (d,); read without pickle)."""
        return await self.put_direction(model, name, w.load_boundary(path), timeout=timeout)

    async def export_direction(
        self, direction_id: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Write a direction as an InterFaceGAN ``.npy`` boundary, float32 (1, d), unit norm."""
        d = await self.get_direction(direction_id, timeout=timeout)
        w.save_boundary(path, d)
        return d

    # ---- jobs (branch `jobs`): training jobs ---------------------------------------------

    def job(self, job_id: str) -> AsyncTrainingJob:
        """A handle on a training job by id (e.g. from :meth:`jobs`)."""
        return AsyncTrainingJob(self, job_id)

    async def job_status(self, job_id: str, *, timeout: float | None = None) -> _jobs.JobStatus:
        """A training job's status now."""
        return await self._call(self._op_job_status(job_id), timeout)

    async def cancel_job(
        self, job_id: str, *, wait_seconds: float = 5.0, timeout: float | None = None
    ) -> _jobs.JobStatus:
        """Cancel a training job; returns its status once stopped (or after ``wait_seconds``)."""
        return await self._call(self._op_cancel_job(job_id, wait_seconds), timeout)

    async def jobs(
        self,
        model: str,
        *,
        states: Sequence[str] = (),
        limit: int = 0,
        timeout: float | None = None,
    ) -> list[_jobs.JobStatus]:
        """A model's training jobs, newest first (``states``: e.g. ["running", "queued"])."""
        return await self._call(self._op_jobs(model, states, limit), timeout)
