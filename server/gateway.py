"""The ``LatentEditor`` gRPC service (``grpc.aio``): validate, queue, wait, answer.

Every field is checked before anything is queued (``latentedit.validate``);
the caller's deadline travels inside the job; worker errors come back as the
gRPC status and message the worker chose. Standard health and reflection
services are registered beside it.
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
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from latentedit import validate
from latentedit.errors import InvalidArgument, LatentEditError, error_for
from latentedit.server.job_queue import JobQueue
from latentedit.server.settings import GatewaySettings
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DEADLINE_MARGIN_S = 0.05
SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"].full_name
RPCS = Counter("latentedit_gateway_rpcs_total", "RPCs answered", ["rpc", "code"])
LATENCY = Histogram(
    "latentedit_gateway_rpc_seconds",
    "RPC latency",
    ["rpc"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def _require_model(model: str) -> str:
    if not model:
        raise InvalidArgument("model is required (see ListModels)")
    return model


class LatentEditorService(pb_grpc.LatentEditorServicer):
    def __init__(self, settings: GatewaySettings, queue: JobQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.limits = settings.limits

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
            await context.abort(err.code, err.message)
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
        return job, timeout

    # ---- RPCs ------------------------------------------------------------------------------

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        try:
            catalogue, alive = await self.queue.models()
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        return pb.ListModelsResponse(models=[catalogue[n] for n in sorted(alive) if n in catalogue])

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        return await self._run(
            "Generate",
            context,
            request.model,
            "generate",
            request,
            lambda info: validate.generate(request, info.latent_dim, self.limits),
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
            lambda info: validate.edit(request, info.latent_dim, self.limits),
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
            lambda info: validate.conditional_edit(request, info.latent_dim, self.limits),
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
            lambda info: validate.invert(request, list(info.invert_methods), self.limits),
        )

    async def DiscoverDirections(
        self, request: pb.DiscoverDirectionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DiscoverDirectionsResponse:
        return await self._run(
            "DiscoverDirections",
            context,
            request.model,
            "discover",
            request,
            lambda info: validate.discover(
                request,
                list(info.discover_methods),
                info.latent_dim,
                list(info.scorers),
                self.limits,
            ),
        )

    async def ListDirections(
        self, request: pb.ListDirectionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDirectionsResponse:
        return await self._run(
            "ListDirections", context, request.model, "list_directions", request, lambda info: None
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
            lambda info: validate.put_direction(request, info.latent_dim),
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
            lambda info: validate.score(request, info.latent_dim, list(info.scorers), self.limits),
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
            lambda info: validate.analyze(request, list(info.scorers), self.limits),
        )

    async def InvertStream(
        self, request: pb.InvertRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InvertEvent]:
        """Progress events, then the result; a cancelled call cancels the job."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            info = await self.queue.model(_require_model(request.model))
            validate.invert(request, list(info.invert_methods), self.limits)
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
            await context.abort(err.code, err.message)
        finally:
            RPCS.labels("InvertStream", code.name).inc()
            LATENCY.labels("InvertStream").observe(time.perf_counter() - start)

    async def _model_of(self, direction_id: str, context: grpc.aio.ServicerContext) -> str:
        try:
            return validate.direction_id(direction_id)[0]
        except LatentEditError as err:
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")


async def _watch_health(queue: JobQueue, servicer: health.aio.HealthServicer) -> None:
    """SERVING while Redis answers, NOT_SERVING while it does not (checked every second)."""
    while True:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if await queue.ping()
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await servicer.set(name, status)
        await asyncio.sleep(1.0)


async def create_server(
    settings: GatewaySettings,
) -> tuple[grpc.aio.Server, int, Callable[[], Any]]:
    """Build and start the server; returns (server, bound port, async close function)."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    server = grpc.aio.server(options=options)
    queue = JobQueue(
        settings.redis_url, settings.gateway_id, settings.max_queue, settings.catalogue_ttl_s
    )
    await queue.start()
    pb_grpc.add_LatentEditorServicer_to_server(LatentEditorService(settings, queue), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"could not bind {settings.listen}")
    await server.start()
    watcher = asyncio.create_task(_watch_health(queue, health_servicer))

    async def close(grace: float = 5.0) -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await server.stop(grace)
        await queue.close()

    return server, port, close


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway until SIGTERM/SIGINT; in-flight calls get a grace period."""
    import signal

    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    _, port, close = await create_server(settings)
    log.info("gateway %s listening on port %d", settings.gateway_id, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await close()
