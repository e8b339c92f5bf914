"""The ``LatentEditor`` gRPC servicer (``grpc.aio``): validate, queue, wait, answer.

Every field is checked before anything is queued (``latentedit.validate``);
the caller's deadline travels inside the job; worker errors come back as the
gRPC status and message the worker chose. :mod:`.serving` builds the server around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from latentedit import validate, validate_spaces
from latentedit.errors import InvalidArgument, LatentEditError, clip, error_for
from latentedit.server.auth import CALLER
from latentedit.server.job_queue import JobQueue
from latentedit.server.jobs_api import JobsServicer
from latentedit.server.settings import GatewaySettings
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DEADLINE_MARGIN_S = 0.05
RPCS = Counter("latentedit_gateway_rpcs_total", "RPCs answered", ["rpc", "code"])
LATENCY = Histogram(
    "latentedit_gateway_rpc_seconds",
    "RPC latency",
    ["rpc"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def _shape(request: Any, info: pb.ModelInfo) -> tuple[int, ...]:
    """Check the request's latent space against the model's; -> the shape of one code."""
    return validate_spaces.space_request(request, validate_spaces.model_spaces(info))[1]


def _direction_dim(request: Any, info: pb.ModelInfo) -> int:
    """Size of a direction in the request's space (z_dim, or w_dim for w and w+)."""
    sp = validate_spaces.model_spaces(info)
    validate_spaces.space_request(request, sp)
    return sp.direction_dim(
        validate_spaces.direction_space(validate_spaces.space(request.space, sp))
    )


def _require_model(model: str) -> str:
    if not model:
        raise InvalidArgument("model is required (see ListModels)")
    return validate.name(model, "model")


def _feature_shape(info: pb.ModelInfo) -> tuple[int, ...]:
    return tuple(int(s) for s in info.feature_shape)


class LatentEditorService(JobsServicer, pb_grpc.LatentEditorServicer):
    def __init__(self, settings: GatewaySettings, queue: JobQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.limits = settings.limits
        self.draining = asyncio.Event()  # set by close(): long watches end, the SDK re-opens

    async def _run(
        self,
        rpc: str,
        context: grpc.aio.ServicerContext,
        model: str,
        kind: str,
        request: Any,
        check: Callable[[pb.ModelInfo], object],
    ) -> Any:
        """Validate, queue as a ``kind`` job on ``model``'s stream, wait, unwrap or abort."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            info = await self.queue.model(_require_model(model))
            check(info)
            job, timeout = self._job(context)
            getattr(job, kind).CopyFrom(request)
            result = await self.queue.submit(model, job, timeout)
            if result.HasField("error"):
                raise error_for(result.error.code, result.error.message)
            return getattr(result, result.WhichOneof("outcome"))
        except LatentEditError as err:
            code = err.code
            await context.abort(err.code, clip(err.message, 1000))
        finally:
            RPCS.labels(rpc, code.name).inc()
            LATENCY.labels(rpc).observe(time.perf_counter() - start)

    def _job(self, context: grpc.aio.ServicerContext) -> tuple[jobs_pb2.Job, float]:
        """A new job carrying the caller's deadline (or the default), and that timeout in s."""
        remaining = context.time_remaining()
        timeout = min(
            remaining if remaining is not None else self.settings.default_timeout_s,
            self.settings.max_timeout_s,
        )
        # Answer a little before the caller's deadline, so the caller gets our message.
        timeout = max(timeout - DEADLINE_MARGIN_S, 0.001)
        job = jobs_pb2.Job(
            id=uuid.uuid4().hex,
            deadline_unix_ms=int((time.time() + timeout) * 1000),
            enqueued_unix_ms=int(time.time() * 1000),
        )
        caller = CALLER.get()
        if caller is not None:  # who asked: the worker records and checks direction owners
            job.caller, job.caller_admin = caller.name, caller.admin
        return job, timeout

    # ---- RPCs ------------------------------------------------------------------------------

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        try:
            catalogue, alive = await self.queue.models()
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        caller = CALLER.get()
        return pb.ListModelsResponse(
            models=[
                catalogue[n]
                for n in sorted(alive)
                if n in catalogue and (caller is None or caller.may_use(n))
            ]
        )

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        return await self._run(
            "Generate",
            context,
            request.model,
            "generate",
            request,
            lambda info: validate.generate(
                request, _shape(request, info), self.limits, _feature_shape(info)
            ),
        )

    async def Edit(
        self, request: pb.EditRequest, context: grpc.aio.ServicerContext
    ) -> pb.EditResponse:
        return await self._run(
            "Edit",
            context,
            request.model,
            "edit",
            request,
            lambda info: validate.edit(
                request, _shape(request, info), self.limits, _feature_shape(info)
            ),
        )

    async def ConditionalEdit(
        self, request: pb.ConditionalEditRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConditionalEditResponse:
        return await self._run(
            "ConditionalEdit",
            context,
            request.model,
            "conditional_edit",
            request,
            lambda info: validate.conditional_edit(
                request, _shape(request, info), self.limits, _feature_shape(info)
            ),
        )

    async def Invert(
        self, request: pb.InvertRequest, context: grpc.aio.ServicerContext
    ) -> pb.InvertResponse:
        return await self._run(
            "Invert",
            context,
            request.model,
            "invert",
            request,
            lambda info: (
                _shape(request, info),
                validate.invert(
                    request, validate_spaces.invert_methods(request, info), self.limits
                ),
            ),
        )

    async def DiscoverDirections(
        self, request: pb.DiscoverDirectionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DiscoverDirectionsResponse:
        try:  # jobs: learned methods are queued as training jobs and answer with a job id
            info = await self.queue.model(_require_model(request.model))
            job = await self.training_job(request, info)
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        if job is not None:
            RPCS.labels("DiscoverDirections", grpc.StatusCode.OK.name).inc()
            return job
        return await self._run(
            "DiscoverDirections",
            context,
            request.model,
            "discover",
            request,
            lambda info: validate.discover(
                request,
                list(info.discover_methods),
                _direction_dim(request, info),
                list(info.scorers),
                self.limits,
            ),
        )

    async def ListDirections(
        self, request: pb.ListDirectionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDirectionsResponse:
        return await self._run(
            "ListDirections",
            context,
            request.model,
            "list_directions",
            request,
            lambda info: validate_spaces.direction_space_filter(request.space),
        )

    async def GetDirection(
        self, request: pb.GetDirectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Direction:
        model = await self._model_of(request.id, context)
        return await self._run(
            "GetDirection", context, model, "get_direction", request, lambda info: None
        )

    async def DeleteDirection(
        self, request: pb.DeleteDirectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteDirectionResponse:
        model = await self._model_of(request.id, context)
        return await self._run(
            "DeleteDirection", context, model, "delete_direction", request, lambda info: None
        )

    async def PutDirection(
        self, request: pb.PutDirectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Direction:
        return await self._run(
            "PutDirection",
            context,
            request.model,
            "put_direction",
            request,
            lambda info: validate.put_direction(request, _direction_dim(request, info)),
        )

    async def Score(
        self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScoreResponse:
        return await self._run(
            "Score",
            context,
            request.model,
            "score",
            request,
            lambda info: validate.score(
                request, _shape(request, info), list(info.scorers), self.limits
            ),
        )

    async def Analyze(
        self, request: pb.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnalyzeResponse:
        return await self._run(
            "Analyze",
            context,
            request.model,
            "analyze",
            request,
            lambda info: (
                _shape(request, info),
                validate.analyze(request, list(info.scorers), self.limits),
            ),
        )

    async def Evaluate(  # learned (issue 12)
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        return await self._run(
            "Evaluate",
            context,
            request.model,
            "evaluate",
            request,
            lambda info: validate.evaluate(request, list(info.scorers), self.limits),
        )

    async def InvertStream(
        self, request: pb.InvertRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvertEvent]:
        """Progress events, then the result; a cancelled call cancels the job."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            info = await self.queue.model(_require_model(request.model))
            _shape(request, info)
            validate.invert(request, validate_spaces.invert_methods(request, info), self.limits)
            job, timeout = self._job(context)
            job.invert.CopyFrom(request)
            job.stream_progress = True
            async with contextlib.aclosing(
                self.queue.submit_stream(request.model, job, timeout)
            ) as events:
                async for result in events:
                    outcome = result.WhichOneof("outcome")
                    if outcome == "progress":
                        yield pb.InvertEvent(progress=result.progress)
                    elif outcome == "invert":
                        yield pb.InvertEvent(result=result.invert)
                    else:
                        raise error_for(result.error.code, result.error.message)
        except LatentEditError as err:
            code = err.code
            await context.abort(err.code, clip(err.message, 1000))
        finally:
            RPCS.labels("InvertStream", code.name).inc()
            LATENCY.labels("InvertStream").observe(time.perf_counter() - start)

    async def _model_of(self, direction_id: str, context: grpc.aio.ServicerContext) -> str:
        try:
            return validate.direction_id(direction_id)[0]
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")
