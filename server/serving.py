"""The gateway process: the gRPC server around :class:`.gateway.LatentEditorService`,
standard health (per model, from the queue's monitor) and reflection services, drain on
SIGTERM, key reload on SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from latentedit.server import door_setup
from latentedit.server.gateway import LatentEditorService
from latentedit.server.job_queue import JobQueue
from latentedit.server.settings import GatewaySettings
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DRAIN_NOTICE_S = 0.5  # on SIGTERM: NOT_SERVING this long before refusing new calls
SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"].full_name


async def _watch_health(
    queue: JobQueue, servicer: health.aio.HealthServicer, draining: asyncio.Event
) -> None:
    """Health from the queue's monitor, refreshed twice a second.

    ``""``: SERVING while Redis answers; the LatentEditor service: also at least one model
    served; each model's name: SERVING while a live worker serves it. All NOT_SERVING
    once draining.
    """
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    while True:
        up = queue.reachable and not draining.is_set()
        await servicer.set("", serving if up else not_serving)
        await servicer.set(SERVICE, serving if up and any(queue.served.values()) else not_serving)
        for model, alive in queue.served.items():
            await servicer.set(model, serving if up and alive else not_serving)
        if draining.is_set():
            return
        await asyncio.sleep(0.5)


async def create_server(
    settings: GatewaySettings,
) -> tuple[grpc.aio.Server, int, Callable[[], Any]]:
    """Build and start the server; returns (server, bound port, async close function)."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    door = door_setup.interceptor(settings)
    server = grpc.aio.server(options=options, interceptors=[door])
    queue = JobQueue(
        settings.redis_url,
        settings.gateway_id,
        settings.max_queue,
        settings.catalogue_ttl_s,
        settings.max_inflight_bytes,
    )
    await queue.start()
    service = LatentEditorService(settings, queue)
    pb_grpc.add_LatentEditorServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection(
            (
                SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    port = door_setup.add_port(server, settings)
    if port == 0:
        raise OSError(f"could not bind {settings.listen}")
    await server.start()
    draining = service.draining
    watcher = asyncio.create_task(_watch_health(queue, health_servicer, draining))

    if settings.auth_file:  # `latentedit keys add` then SIGHUP: no restart needed
        path = settings.auth_file
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, door_setup.reload_keys, door.door, path
            )

    async def close(grace: float = 30.0) -> None:
        """Drain: health NOT_SERVING, new calls refused, calls in flight get ``grace`` s."""
        log.info("draining: health NOT_SERVING, open watches end")
        draining.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(watcher, 2.0)
        await asyncio.sleep(DRAIN_NOTICE_S)  # health checkers see NOT_SERVING before we go
        log.info("stopping: calls in flight get %.0f s", grace)
        await server.stop(grace)
        log.info("gRPC server stopped; closing the queue")
        await queue.close()
        log.info("gateway closed")

    return server, port, close


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway until SIGTERM/SIGINT (SIGHUP re-reads the key file); in-flight calls
    get a grace period."""
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
