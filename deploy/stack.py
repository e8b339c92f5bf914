"""A whole latentedit stack on one machine: redis-server, one gateway, N workers.

Each part is a child process; :class:`Stack` starts them, waits until the
gateway reports SERVING and every model is served, and stops them cleanly
(SIGTERM, then SIGKILL after a grace period). Used by ``latentedit up``, the
demo and the integration tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import latentedit.v1.latentedit_pb2 as pb
import latentedit.v1.latentedit_pb2_grpc as pb_grpc
from latentedit.errors import Unavailable

log = logging.getLogger(__name__)


_HANDED_OUT: set[int] = set()  # ports free_port has returned in this process


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now and that this process has not handed
    out before. The port is free only until someone binds it, and the kernel may offer a
    just-closed port again: one stack's gateway and redis-server once both got 59719."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            if len(_HANDED_OUT) >= 10_000:  # a long-lived process: forget the oldest
                _HANDED_OUT.clear()
            _HANDED_OUT.add(port)
            return port


@dataclass
class StackConfig:
    workers: int = 1
    port: int = 50051  # gateway port; 0 picks a free one
    redis_url: str = ""  # empty: start a private redis-server
    models: list[str] = field(default_factory=list)  # empty: every registered model
    device: str = "cpu"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1000
    log_dir: str = ""  # empty: children log to this process's stderr
    redis_appendonly: bool = False  # private redis-server: AOF persistence (fsync every write)
    extra_gateway_args: list[str] = field(default_factory=list)
    extra_worker_args: list[str] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)  # added to the workers' environment


def _end(proc: subprocess.Popen[bytes], kill: bool, grace: float = 30.0) -> None:
    if proc.poll() is None:
        proc.kill() if kill else proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.redis_url = config.redis_url
        self.redis_port = 0
        self.redis: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._tmp: str | None = None

    # ---- children ----------------------------------------------------------------------

    def _spawn(
        self, name: str, args: list[str], env_extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = None
        if self.config.log_dir:
            Path(self.config.log_dir).mkdir(parents=True, exist_ok=True)
            out = open(Path(self.config.log_dir) / f"{name}.log", "ab")  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
        try:
            return subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT if out else None, env=env
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own copy

    def start_redis(self, port: int = 0) -> None:
        """Start the private redis-server (``port`` 0: a free one; else that port, same dir)."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise Unavailable("redis-server is not on PATH (apt-get install -y redis-server)")
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="latentedit-redis-")
        port = port or free_port()
        aof = ["--appendonly", "yes", "--appendfsync", "always"]
        self.redis = self._spawn(
            "redis",
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self._tmp,
                "--save",
                "",
                *(aof if self.config.redis_appendonly else ["--appendonly", "no"]),
                "--protected-mode",
                "yes",
            ],
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis_port = port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise Unavailable(f"redis-server did not start on port {port}")

    def restart_redis(self, kill: bool = True) -> None:
        """Stop the private redis-server (SIGKILL, or SIGTERM) and start it on the same port.

        Without AOF it comes back empty; with ``redis_appendonly`` it reloads its data.
        """
        if self.redis is None:
            raise RuntimeError("restart_redis needs the stack's own redis-server")
        _end(self.redis, kill)
        self.start_redis(self.redis_port)

    def restart_gateway(self, kill: bool = True) -> None:
        """Stop the gateway (SIGKILL, or SIGTERM: drain) and start a new one on the same port."""
        if self.gateway is not None:
            _end(self.gateway, kill)
        self.start_gateway()
        self.wait_ready(60, expect_models=bool(self.workers))

    def start_gateway(self) -> None:
        self.gateway = self._spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "latentedit.deploy.cli",
                "gateway",
                "--listen",
                self.target,
                "--redis-url",
                self.redis_url,
                "--max-queue",
                str(self.config.max_queue),
                *self.config.extra_gateway_args,
            ],
        )

    def add_worker(self) -> subprocess.Popen[bytes]:
        args = [
            sys.executable,
            "-m",
            "latentedit.deploy.cli",
            "worker",
            "--redis-url",
            self.redis_url,
            "--device",
            self.config.device,
            "--max-batch",
            str(self.config.max_batch),
            "--max-wait-ms",
            str(self.config.max_wait_ms),
            *self.config.extra_worker_args,
        ]
        if self.config.models:
            args += ["--models", ",".join(self.config.models)]
        proc = self._spawn(f"worker{len(self.workers)}", args, self.config.worker_env)
        self.workers.append(proc)
        return proc

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> Stack:
        try:
            if not self.redis_url:
                self.start_redis()
            self.start_gateway()
            for _ in range(self.config.workers):
                self.add_worker()
            self.wait_ready(timeout, expect_models=self.config.workers > 0)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 120.0, expect_models: bool = True) -> None:
        """Until the gateway is SERVING and (``expect_models``) lists at least one model."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            health_stub = health_pb2_grpc.HealthStub(channel)
            stub = pb_grpc.LatentEditorStub(channel)
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(grpc.RpcError):
                    status = health_stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    serving = status == health_pb2.HealthCheckResponse.SERVING
                    if serving and (
                        not expect_models
                        or stub.ListModels(pb.ListModelsRequest(), timeout=1).models
                    ):
                        return
                time.sleep(0.1)
        raise Unavailable(f"the stack at {self.target} was not ready within {timeout}s")

    def _check_alive(self) -> None:
        for name, proc in [("redis-server", self.redis), ("gateway", self.gateway)]:
            if proc is not None and proc.poll() is not None:
                raise Unavailable(f"{name} exited with code {proc.returncode}")
        if self.workers and all(w.poll() is not None for w in self.workers):
            raise Unavailable(f"every worker exited (codes {[w.returncode for w in self.workers]})")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM workers, then the gateway, then redis; SIGKILL whatever outlives ``grace``."""
        for group in (self.workers, [self.gateway], [self.redis]):
            procs = [p for p in group if p is not None and p.poll() is None]
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
