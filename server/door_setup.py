"""What ``create_server`` needs for the door: the interceptor and the (TLS) listening port."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import grpc
from redis.asyncio import Redis

from latentedit.server.auth import Door, DoorInterceptor
from latentedit.server.auth_inflight import RedisInflight
from latentedit.server.auth_keys import KeyRing
from latentedit.server.settings import GatewaySettings

log = logging.getLogger(__name__)


def _is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def interceptor(settings: GatewaySettings) -> DoorInterceptor:
    """Keys from ``settings.auth_file``; without one the door is open (warned off loopback).

    Calls in flight per key are counted in Redis, across gateways (its own connection).
    """
    keys = None
    if settings.auth_file:
        keys = KeyRing.load(settings.auth_file)
        log.info("API keys required: %d key(s) from %s", len(keys.keys), settings.auth_file)
    elif not _is_loopback(settings.listen):
        log.warning(
            "no --auth-file: anyone who reaches %s may call every RPC and overwrite any "
            "direction; create keys with `latentedit keys add NAME`",
            settings.listen,
        )
    inflight = RedisInflight(Redis.from_url(settings.redis_url)) if keys else None
    return DoorInterceptor(Door(keys, inflight, settings.max_timeout_s))


def reload_keys(door: Door, path: str) -> bool:
    """Re-read the key file into ``door`` (SIGHUP); a file that does not parse changes nothing.

    Returns True when the new keys are in use.
    """
    try:
        keys = KeyRing.load(path)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        log.error("key file %s not reloaded, the old keys stay in use: %s", path, exc)
        return False
    door.replace_keys(keys)
    log.info("API keys reloaded: %d key(s) from %s", len(keys.keys), path)
    return True


def add_port(server: grpc.aio.Server, settings: GatewaySettings) -> int:
    """Bind ``settings.listen``: TLS with --tls-cert/--tls-key, mutual TLS with --tls-client-ca."""
    if settings.tls_cert:
        creds = grpc.ssl_server_credentials(
            [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())],
            root_certificates=(
                Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
            ),
            require_client_auth=bool(settings.tls_client_ca),
        )
        port = server.add_secure_port(settings.listen, creds)
    else:
        if not _is_loopback(settings.listen):
            log.warning("no --tls-cert: keys and images cross the network in clear text")
        port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"could not bind {settings.listen}")
    return port
