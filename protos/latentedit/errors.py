"""One error hierarchy and one table mapping each error to one gRPC status.

::

    LatentEditError
    ├── InvalidArgument      INVALID_ARGUMENT   bad field, shape, value or image
    ├── NotFound             NOT_FOUND          unknown model or direction
    ├── ResourceExhausted    RESOURCE_EXHAUSTED queue full, budget or rate exceeded
    ├── Unauthenticated      UNAUTHENTICATED    no API key, or an unknown one
    ├── PermissionDenied     PERMISSION_DENIED  the key may not do this (model, owner)
    ├── DeadlineExceeded     DEADLINE_EXCEEDED  the caller's deadline passed
    ├── FailedPrecondition   FAILED_PRECONDITION the service lacks what the call needs
    │                                           (e.g. a model with no encoder); retrying won't help
    ├── Unavailable          UNAVAILABLE        no gateway, Redis or worker reachable
    ├── Cancelled            CANCELLED          the caller cancelled
    └── Internal             INTERNAL           a bug; the message says where

The gateway raises these, workers send them back as ``JobError`` (code +
message), and the SDK raises the same classes from the status it receives.
"""

from __future__ import annotations

import grpc


class LatentEditError(Exception):
    """Base class; ``code`` is the gRPC status the error travels as."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LatentEditError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(LatentEditError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(LatentEditError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(LatentEditError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(LatentEditError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(LatentEditError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(LatentEditError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(LatentEditError):
    code = grpc.StatusCode.UNAVAILABLE


class Cancelled(LatentEditError):
    code = grpc.StatusCode.CANCELLED


class Internal(LatentEditError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[LatentEditError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        DeadlineExceeded,
        FailedPrecondition,
        Unavailable,
        Cancelled,
        Internal,
    )
}
_BY_VALUE: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def clip(text: object, limit: int = 200) -> str:
    """``repr``-free, bounded echo of caller-supplied text: at most ``limit`` characters.

    Status messages travel as HTTP/2 trailers (gRPC caps metadata at ~8-16 KB), so a caller's
    16 KB name must never be echoed whole.
    """
    s = text if isinstance(text, str) else str(text)
    if len(s) <= limit:
        return s
    return f"{s[: limit - 20]}... ({len(s)} chars)"


def error_for(code: grpc.StatusCode | int, message: str) -> LatentEditError:
    """The exception instance for a status (a ``grpc.StatusCode`` or its int value)."""
    status = _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN) if isinstance(code, int) else code
    cls = _BY_CODE.get(status)
    if cls is None:
        err = LatentEditError(message)
        err.code = status
        return err
    return cls(message)
