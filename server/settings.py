"""Gateway settings: one typed dataclass, from flags and environment, checked at start."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from latentedit.validate import Limits


@dataclass
class GatewaySettings:
    listen: str = "127.0.0.1:50051"  # host:port; port 0 picks a free one
    redis_url: str = field(
        default_factory=lambda: os.environ.get("LATENTEDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    max_queue: int = 1000  # jobs waiting per model stream before RESOURCE_EXHAUSTED
    max_message_bytes: int = 64 * 1024 * 1024  # both directions
    default_timeout_s: float = 120.0  # when the caller sets no deadline
    max_timeout_s: float = 3600.0
    max_inflight_bytes: int = 512 << 20  # bytes of jobs waiting in Redis, per gateway
    catalogue_ttl_s: float = 1.0  # how long the model list read from Redis is reused
    metrics_port: int = 0  # 0: no /metrics endpoint
    gateway_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    limits: Limits = field(default_factory=Limits)
    # The door (see README "Security"): API keys, TLS, reflection.
    auth_file: str = ""  # TOML of hashed API keys (`latentedit keys add`); empty: open
    tls_cert: str = ""  # PEM certificate chain; empty: plaintext
    tls_key: str = ""  # PEM private key of tls_cert
    tls_client_ca: str = ""  # PEM CA bundle: clients must present a certificate it signed (mTLS)
    reflection: bool = True  # gRPC server reflection

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"listen must be host:port, got {self.listen!r}")
        if self.max_queue < 1 or self.max_message_bytes < 1024 or self.default_timeout_s <= 0:
            raise ValueError("max_queue >= 1, max_message_bytes >= 1024, default_timeout_s > 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
