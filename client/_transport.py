"""Channels for both clients: TLS, API key metadata, and gRPC's own retries and balancing.

Retries (``retryPolicy``: exponential backoff with jitter, on UNAVAILABLE, for every RPC
but DiscoverDirections) and round robin over several gateways (``round_robin`` over a
``dns:///`` name or a static ``ipv4:``/``ipv6:`` list) come from gRPC's service config;
the clients have no retry or balancing loop of their own.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from latentedit.errors import Unavailable
from latentedit.v1 import latentedit_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"]
# Not retried: a retry could store directions twice (or with bumped versions).
NON_IDEMPOTENT = frozenset({"DiscoverDirections"})


@dataclass(frozen=True)
class TLS:
    """TLS settings: ``ca`` (PEM path; None: system roots), and for mutual TLS the client's
    ``cert`` and ``key`` (PEM paths). ``server_name`` overrides the name checked against the
    gateway's certificate."""

    ca: str | os.PathLike[str] | None = None
    cert: str | os.PathLike[str] | None = None
    key: str | os.PathLike[str] | None = None
    server_name: str | None = None


TLSArg = bool | str | os.PathLike[str] | TLS | None


def tls_settings(tls: TLSArg) -> TLS | None:
    """``None``/``False``: plaintext; ``True``: system CAs; a path: that CA; or a TLS."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return TLS()
    if isinstance(tls, TLS):
        if bool(tls.cert) != bool(tls.key):
            raise ValueError("TLS(cert=..., key=...) go together (mutual TLS)")
        return tls
    return TLS(ca=tls)


def _read(path: str | os.PathLike[str] | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def parse_targets(target: str | Sequence[str]) -> list[str]:
    """``"host:port"``, ``"h1:p1,h2:p2"`` or a list -> list of addresses."""
    items = target.split(",") if isinstance(target, str) else list(target)
    targets = [t.strip() for t in items if t.strip()]
    if not targets:
        raise ValueError("at least one gateway address is needed")
    return targets


def channel_target(targets: list[str]) -> str:
    """One gRPC target: as given for one address (``dns:///`` names work), else a static
    ``ipv4:``/``ipv6:`` list (gRPC takes IP literals only there; use ``dns:///name`` for a
    name that resolves to several gateways)."""
    if len(targets) == 1:
        return targets[0]
    hosts = []
    for t in targets:
        host, sep, port = t.rpartition(":")
        host = host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"several targets must be IP:port (got {t!r}); for host names use one "
                "'dns:///name:port' that resolves to every gateway"
            ) from None
        if not sep or not port.isdigit():
            raise ValueError(f"target {t!r} must be host:port")
        hosts.append((ip.version, f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"))
    versions = {v for v, _ in hosts}
    if len(versions) != 1:
        raise ValueError("a static list of gateways must be all IPv4 or all IPv6")
    return f"ipv{versions.pop()}:" + ",".join(h for _, h in hosts)


def service_config(retries: int) -> str:
    """gRPC service config JSON: round robin, and retries for the idempotent methods."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retries > 0:
        names = [
            {"service": SERVICE.full_name, "method": m.name}
            for m in SERVICE.methods
            if m.name not in NON_IDEMPOTENT
        ]
        config["methodConfig"] = [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": min(retries + 1, 5),  # gRPC caps attempts at 5
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def options(max_message_bytes: int, retries: int, tls: TLS | None) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
        ("grpc.service_config", service_config(retries)),
    ]
    if tls is not None and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return opts


def credentials(tls: TLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca),
        private_key=_read(tls.key),
        certificate_chain=_read(tls.cert),
    )


def aio_channel(target: str, tls: TLS | None, opts: list[tuple[str, Any]]) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=opts)
    return grpc.aio.secure_channel(target, credentials(tls), options=opts)


def sync_channel(target: str, tls: TLS | None, opts: list[tuple[str, Any]]) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target, options=opts)
    return grpc.secure_channel(target, credentials(tls), options=opts)


async def aio_ready(channel: grpc.aio.Channel, target: str, timeout: float) -> None:
    import asyncio

    try:
        await asyncio.wait_for(channel.channel_ready(), timeout)
    except TimeoutError:
        raise Unavailable(f"no gateway reachable at {target} within {timeout}s") from None


def sync_ready(channel: grpc.Channel, target: str, timeout: float) -> None:
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise Unavailable(f"no gateway reachable at {target} within {timeout}s") from None
