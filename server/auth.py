"""The gateway's door: a ``grpc.aio`` server interceptor in front of every LatentEditor RPC.

For each call it (in this order)

1. decodes the request itself: bytes that are not the RPC's protobuf message get
   INVALID_ARGUMENT (gRPC's own deserializer would fail the call as UNKNOWN/INTERNAL);
2. with a key file, checks ``authorization: Bearer <key>`` (UNAUTHENTICATED), the models
   the key may use (PERMISSION_DENIED), its request rate (token bucket, per gateway) and
   its calls in flight across all gateways on the Redis (RESOURCE_EXHAUSTED);
3. runs the handler with :data:`CALLER` set, so the job records who asked (directions are
   owned by the key that stored them; the worker enforces it).

Health and reflection stay open: load balancers probe them without keys.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError

from latentedit.errors import clip
from latentedit.server.auth_inflight import Inflight, LocalInflight
from latentedit.server.auth_keys import ApiKey, KeyRing
from latentedit.v1 import latentedit_pb2 as pb

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"].full_name
CALLER: contextvars.ContextVar[ApiKey | None] = contextvars.ContextVar("caller", default=None)


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return _Undecodable()

    return parse


def model_of(request: Any) -> str:
    """The model a request is about ("" when none, e.g. ListModels)."""
    model = getattr(request, "model", None)
    if isinstance(model, str):
        return model
    direction_id = getattr(request, "id", "")
    return direction_id.partition("/")[0] if isinstance(direction_id, str) else ""


@dataclass
class _Bucket:
    """Token bucket: ``rate`` tokens per second up to ``size``."""

    rate: float
    size: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when a token was taken, else seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Door:
    """Authentication and per-key limits (``keys`` None: open, no checks but decoding)."""

    def __init__(
        self, keys: KeyRing | None, inflight: Inflight | None = None, max_timeout_s: float = 3600
    ) -> None:
        self.keys = keys
        self.inflight = inflight if inflight is not None else LocalInflight()
        self.max_timeout_s = max_timeout_s
        self._buckets: dict[str, _Bucket] = {}

    def replace_keys(self, keys: KeyRing) -> None:
        """Serve ``keys`` from the next call on (a re-read key file); the rate buckets of
        keys that are gone or changed start afresh. Calls in flight keep their admission."""
        if self.keys is None:
            raise ValueError("this gateway was started without --auth-file: it stays open")
        old = self.keys.keys
        self.keys = keys
        for name in list(self._buckets):
            if keys.keys.get(name) != old.get(name):
                del self._buckets[name]

    def authenticate(self, metadata: Any) -> tuple[ApiKey | None, grpc.StatusCode, str]:
        """-> (key, OK, "") or (None, status, message)."""
        if self.keys is None:
            return None, grpc.StatusCode.OK, ""
        header = ""
        for k, v in metadata or ():
            if k == "authorization":
                header = v if isinstance(v, str) else v.decode("latin-1")
        scheme, _, token = header.strip().partition(" ")
        if not header:
            return None, grpc.StatusCode.UNAUTHENTICATED, "an API key is required"
        if scheme.lower() != "bearer" or not token.strip():
            return None, grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'Bearer <key>'"
        key = self.keys.authenticate(token.strip())
        if key is None:
            return None, grpc.StatusCode.UNAUTHENTICATED, "unknown API key"
        return key, grpc.StatusCode.OK, ""

    async def admit(
        self, key: ApiKey | None, request: Any, ttl_s: float | None = None
    ) -> tuple[grpc.StatusCode, str, str | None]:
        """Model permission, rate and in-flight cap -> (status, message, slot token).

        On OK with a ``max_inflight`` key, the token names the slot :meth:`release` frees;
        a slot also lapses after ``ttl_s`` (the call's deadline).
        """
        if key is None:
            return grpc.StatusCode.OK, "", None
        model = model_of(request)
        if model and not key.may_use(model):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"key {key.name!r} may not use model {clip(model, 100)!r}; "
                f"it may use {sorted(key.models)}",
                None,
            )
        if key.rate > 0:
            bucket = self._buckets.get(key.name)
            if bucket is None:
                size = key.burst or max(1.0, key.rate)
                bucket = self._buckets[key.name] = _Bucket(key.rate, size, size)
            wait = bucket.take()
            if wait:
                return (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"key {key.name!r} is over its rate of {key.rate:g} requests/s; "
                    f"retry in {wait:.2f}s",
                    None,
                )
        if not key.max_inflight:
            return grpc.StatusCode.OK, "", None
        ttl = ttl_s if ttl_s is not None else self.max_timeout_s
        try:
            token, n = await self.inflight.acquire(key.name, key.max_inflight, ttl)
        except RedisError:
            return grpc.StatusCode.UNAVAILABLE, "the job queue (Redis) is unreachable", None
        if token is None:
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"key {key.name!r} has {n} calls in flight (max_inflight {key.max_inflight}); "
                "retry when one finishes",
                None,
            )
        return grpc.StatusCode.OK, "", token

    async def release(self, key: ApiKey | None, token: str | None) -> None:
        if key is not None and token is not None:
            try:
                await self.inflight.release(key.name, token)
            except RedisError:  # the slot lapses at the call's deadline
                log.warning("could not release an in-flight slot of key %s", key.name)


async def _internal(exc: Exception, context: grpc.aio.ServicerContext, rpc: str) -> None:
    """A bug in a handler: logged with its traceback; the caller gets INTERNAL without reprs
    (gRPC would answer UNKNOWN with the exception's text)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    log.exception("%s failed", rpc)
    await context.abort(grpc.StatusCode.INTERNAL, f"{rpc} failed in the gateway (see its log)")


class DoorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every LatentEditor handler with decoding, authentication and limits."""

    def __init__(self, door: Door) -> None:
        self.door = door

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.split("/")[1:2] != [SERVICE]:
            return handler
        key, status, message = self.door.authenticate(handler_call_details.invocation_metadata)
        rpc = method.rpartition("/")[2]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, key, status, message, rpc),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, key, status, message, rpc),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _enter(
        self,
        request: Any,
        context: grpc.aio.ServicerContext,
        key: ApiKey | None,
        status: grpc.StatusCode,
        message: str,
        rpc: str,
    ) -> str | None:
        """Abort unless admitted; -> the in-flight slot token to release."""
        if status != grpc.StatusCode.OK:
            await context.abort(status, message)
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {rpc} message"
            )
        status, message, slot = await self.door.admit(key, request, context.time_remaining())
        if status != grpc.StatusCode.OK:
            await context.abort(status, message)
        return slot

    def _unary(
        self,
        behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        key: ApiKey | None,
        status: grpc.StatusCode,
        message: str,
        rpc: str,
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            slot = await self._enter(request, context, key, status, message, rpc)
            token = CALLER.set(key)
            try:
                return await behaviour(request, context)
            except Exception as exc:
                await _internal(exc, context, rpc)
            finally:
                CALLER.reset(token)
                await self.door.release(key, slot)

        return call

    def _stream(
        self,
        behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
        key: ApiKey | None,
        status: grpc.StatusCode,
        message: str,
        rpc: str,
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            slot = await self._enter(request, context, key, status, message, rpc)
            CALLER.set(key)  # each RPC runs in its own task: nothing to reset
            try:
                async for item in behaviour(request, context):
                    yield item
            except Exception as exc:
                await _internal(exc, context, rpc)
            finally:
                await self.door.release(key, slot)

        return call
