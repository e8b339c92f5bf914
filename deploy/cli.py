"""``latentedit`` command line: up | gateway | worker | demo | report | train-encoder.

``latentedit up`` runs a whole stack on one machine (a private redis-server
unless ``--redis-url``, one gateway, N workers) until Ctrl-C. ``gateway`` and
``worker`` run one process each, for deployments that scale them apart.
``demo`` drives a running stack through the SDK and writes a picture.
``dead-letters`` lists jobs set aside after too many deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from latentedit.deploy import door_cli


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


def _gateway(args: argparse.Namespace) -> None:
    from latentedit.server.serving import serve
    from latentedit.server.settings import GatewaySettings

    asyncio.run(
        serve(
            GatewaySettings(
                listen=args.listen,
                redis_url=args.redis_url,
                max_queue=args.max_queue,
                default_timeout_s=args.default_timeout,
                metrics_port=args.metrics_port,
                **door_cli.gateway_settings(args),
                max_inflight_bytes=int(args.max_inflight_mb * (1 << 20)),
            )
        )
    )


def _registry(args: argparse.Namespace) -> dict[str, Any]:
    """The operator's model registry from --model / --models-file / --no-default-models."""
    from latentedit.workers.models.registry import build_registry

    try:
        return build_registry(args.model_args, args.models_file or None, not args.no_default_models)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"model configuration: {exc}") from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        action="append",
        dest="model_args",
        default=[],
        metavar="NAME=ARCH:PATH",
        help="serve a checkpoint, e.g. ffhq=stylegan2:/models/ffhq.pt (ARCH: dcgan, stylegan2); "
        "repeatable",
    )
    p.add_argument(
        "--models-file", default="", help="TOML file of [models.NAME] tables (arch, path, ...)"
    )
    p.add_argument(
        "--no-default-models",
        action="store_true",
        help="do not register the built-in dcgan-faces and shapes",
    )


def _model_worker_args(args: argparse.Namespace) -> list[str]:
    out = [f"--model={m}" for m in args.model_args]
    if args.models_file:
        out.append(f"--models-file={os.path.abspath(args.models_file)}")
    if args.no_default_models:
        out.append("--no-default-models")
    return out


def _worker(args: argparse.Namespace) -> None:
    from latentedit.workers.training_jobs import TrainingSettings
    from latentedit.workers.worker import WorkerSettings, serve

    settings = WorkerSettings(
        registry=_registry(args),
        redis_url=args.redis_url,
        device=args.device,
        dtype=args.dtype,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_render_batch=args.max_render_batch,
        metrics_port=args.metrics_port,
        torch_threads=args.torch_threads,
        render_threads=args.render_threads,
    )
    settings.training = TrainingSettings(
        slots=args.training_slots,
        threads=args.training_threads,
        checkpoint_every_s=args.checkpoint_every_s,
        pause_s=args.training_pause_s,
        nice=args.training_nice,
        plugins=args.trainer_plugin,
    )
    if args.models:
        settings.models = args.models.split(",")
        settings.__post_init__()
    for spec in args.scorer:
        model, _, rest = spec.partition(":")
        name, _, path = rest.partition("=")
        if not (model and name and path):
            raise SystemExit(f"--scorer wants MODEL:NAME=PATH, got {spec!r}")
        settings.scorer_files.setdefault(model, {})[name] = path
    asyncio.run(serve(settings))


def _dead_letters(args: argparse.Namespace) -> None:
    from redis.asyncio import Redis
    from rich.console import Console
    from rich.table import Table

    from latentedit.workers.recovery import list_dead_letters

    async def fetch() -> list[dict[str, str]]:
        redis = Redis.from_url(args.redis_url)
        try:
            return await list_dead_letters(redis, args.count)
        finally:
            await redis.aclose()

    rows = asyncio.run(fetch())
    table = Table(title=f"dead letters (newest {args.count})")
    cols = ("id", "job_id", "kind", "stream", "deliveries", "worker", "error")
    for col in cols:
        table.add_column(col, no_wrap=col in ("id", "kind", "deliveries"), overflow="fold")
    for row in rows:
        table.add_row(*(row.get(c, "") for c in cols))
    Console().print(table if rows else "no dead letters")


def _up(args: argparse.Namespace) -> None:
    from latentedit.deploy.stack import Stack, StackConfig

    stack = Stack(
        StackConfig(
            workers=args.workers,
            port=args.port,
            redis_url=args.redis_url or "",
            device=args.device,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            log_dir=args.log_dir or "",
            extra_worker_args=[*_model_worker_args(args), f"--dtype={args.dtype}"],
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with stack:
        logging.info(
            "latentedit is up at %s (redis %s, %d worker(s)); Ctrl-C stops it",
            stack.target,
            stack.redis_url,
            args.workers,
        )
        try:
            while not stop.is_set():
                stack._check_alive()
                stop.wait(1.0)
        except KeyboardInterrupt:
            pass
        logging.info("stopping")


def _demo(args: argparse.Namespace) -> None:
    from latentedit.deploy.demo import run_demo

    if args.with_stack:
        from latentedit.deploy.stack import Stack, StackConfig

        with Stack(StackConfig(workers=args.workers, port=0, log_dir="out/logs")) as stack:
            run_demo(stack.target, args.out)
    else:
        run_demo(args.target, args.out)


def _train_encoder(args: argparse.Namespace) -> None:
    from latentedit.deploy.train_encoder_cli import train_encoder_command

    train_encoder_command(args, _registry(args))


def _report(args: argparse.Namespace) -> None:
    from latentedit.deploy.report import run_report

    split = lambda text: [t for t in text.split(",") if t]  # noqa: E731

    def go(target: str) -> None:
        run_report(
            target,
            args.model,
            split(args.directions),
            split(args.scorers),
            args.out,
            samples=args.samples,
            strength=args.strength,
            seed=args.seed,
            discover=args.discover,
        )

    if args.evaluate:  # learned: the curvilinear paper's measures
        from latentedit.deploy.evaluate_report import run_evaluate

        def go(target: str) -> None:
            run_evaluate(
                target,
                args.model,
                split(args.evaluate),
                args.out if args.out != "out/rescoring.png" else "out/commutativity.png",
                top=args.top,
                samples=args.samples,
                strength=args.strength if args.strength != 3.0 else 2.0,
                seed=args.seed,
            )

    if args.with_stack:
        from latentedit.deploy.stack import Stack, StackConfig

        with Stack(StackConfig(workers=1, port=0, log_dir="out/logs")) as stack:
            go(stack.target)
    else:
        go(args.target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="latentedit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-level", default=os.environ.get("LATENTEDIT_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)
    redis_default = os.environ.get("LATENTEDIT_REDIS_URL", "redis://127.0.0.1:6379/0")

    p = sub.add_parser("up", help="run redis-server + gateway + N workers until Ctrl-C")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--port", type=int, default=50051, help="gateway port")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of a private one")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--log-dir", default=None, help="write each child's log here")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    _add_model_args(p)
    p.set_defaults(func=_up)

    p = sub.add_parser("gateway", help="run one gRPC gateway")
    p.add_argument("--listen", default="0.0.0.0:50051")
    p.add_argument("--redis-url", default=redis_default)
    p.add_argument(
        "--max-queue", type=int, default=1000, help="jobs per model before RESOURCE_EXHAUSTED"
    )
    p.add_argument(
        "--default-timeout", type=float, default=120.0, help="seconds, when the caller sets none"
    )
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus /metrics port (0: off)")
    door_cli.add_gateway_flags(p)
    p.add_argument(
        "--max-inflight-mb", type=float, default=512, help="MiB of waiting jobs in Redis"
    )
    p.set_defaults(func=_gateway)
    door_cli.add_keys_parser(sub)

    p = sub.add_parser("worker", help="run one batching worker")
    p.add_argument("--redis-url", default=redis_default)
    p.add_argument("--models", default="", help="comma-separated; default: every registered model")
    _add_model_args(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--max-batch", type=int, default=32, help="jobs gathered into one batch")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="wait for more jobs once one arrived"
    )
    p.add_argument("--max-render-batch", type=int, default=64, help="images per generator pass")
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=0, help="0: one per core")
    p.add_argument(
        "--render-threads",
        type=int,
        default=0,
        help="intra-op threads of Generate / Edit renders (0: --torch-threads; inversion keeps "
        "those); 1 spends less CPU per image where the worker shares its cores with the gateway",
    )
    p.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="MODEL:NAME=PATH",
        help="register an operator's TorchScript scorer (images (N,3,H,W) in [-1,1] -> (N,))",
    )
    # jobs: the training lane (learned directions run as jobs beside interactive traffic)
    p.add_argument("--training-slots", type=int, default=1, help="training jobs run at once")
    p.add_argument("--training-threads", type=int, default=1, help="torch threads per job")
    p.add_argument("--checkpoint-every-s", type=float, default=180.0)
    p.add_argument("--training-pause-s", type=float, default=0.0, help="sleep after each step")
    p.add_argument("--training-nice", type=int, default=10, help="niceness of training threads")
    p.add_argument(
        "--trainer-plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="import a module that registers extra trainers (register_trainer)",
    )
    p.set_defaults(func=_worker)

    p = sub.add_parser("dead-letters", help="list jobs set aside after too many deliveries")
    p.add_argument("--redis-url", default=redis_default)
    p.add_argument("--count", type=int, default=50)
    p.set_defaults(func=_dead_letters)

    p = sub.add_parser("demo", help="drive a stack through the SDK and write out/demo.png")
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--out", default="out/demo.png")
    p.add_argument("--with-stack", action="store_true", help="start a private stack for the demo")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_demo)

    p = sub.add_parser("train-encoder", help="train a model's inversion encoder on its own samples")
    p.add_argument("model")
    _add_model_args(p)
    p.add_argument(
        "--space",
        choices=("z", "w", "w+"),
        default=None,
        help="the encoder's space (w and w+ share one W encoder; default: the model's)",
    )
    p.add_argument("--minutes", type=float, default=14.0, help="wall-clock budget")
    p.add_argument("--steps", type=int, default=20000, help="at most this many steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--shell-weight",
        type=float,
        default=3.0,
        help="weight of the term keeping predicted codes on the prior's shell (0: off)",
    )
    p.add_argument("--reuse", type=int, default=4, help="pairs per fresh generator sample")
    p.add_argument(
        "--resume", action="store_true", help="go on from the encoder in use (trained or shipped)"
    )
    p.add_argument("--pixel-batch", type=int, default=4, help="images per batch in the pixel loss")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--out", type=Path, default=None, help="write here instead of $LATENTEDIT_HOME's file"
    )
    p.set_defaults(func=_train_encoder)

    p = sub.add_parser("report", help="re-scoring matrix of directions x scorers, printed + drawn")
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--model", default="shapes")
    p.add_argument("--directions", default="", help="comma-separated; default: the discovered ones")
    p.add_argument("--scorers", default="", help="comma-separated; default: all of the model's")
    p.add_argument(
        "--discover",
        default="",
        choices=["", "interfacegan", "sefa", "ganspace"],
        help="discover directions first (interfacegan: one per scorer)",
    )
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--strength", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/rescoring.png")
    p.add_argument("--with-stack", action="store_true", help="start a private stack for it")
    p.add_argument(
        "--evaluate",
        default="",
        help="comma-separated direction-name prefixes: commutativity / side-effect / "
        "reversibility tables per group (Evaluate RPC), picture at --out",
    )
    p.add_argument("--top", type=int, default=8, help="--evaluate: directions per group")
    p.set_defaults(func=_report)

    args = parser.parse_args(argv)
    if argv is None and args.command == "worker":  # a worker process started from the shell
        from latentedit.deploy.malloc_env import reexec_with_worker_malloc

        reexec_with_worker_malloc()  # glibc reads its malloc settings at start only
    _setup_logging(args.log_level)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
