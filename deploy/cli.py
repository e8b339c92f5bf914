"""``latentedit`` command line: up | gateway | worker | demo | report | train-encoder.

``latentedit up`` runs a whole stack on one machine (a private redis-server
unless ``--redis-url``, one gateway, N workers) until Ctrl-C. ``gateway`` and
``worker`` run one process each, for deployments that scale them apart.
``demo`` drives a running stack through the SDK and writes a picture.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

import numpy as np


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


def _gateway(args: argparse.Namespace) -> None:
    from latentedit.server.gateway import serve
    from latentedit.server.settings import GatewaySettings

    asyncio.run(
        serve(
            GatewaySettings(
                listen=args.listen,
                redis_url=args.redis_url,
                max_queue=args.max_queue,
                default_timeout_s=args.default_timeout,
                metrics_port=args.metrics_port,
            )
        )
    )


def _worker(args: argparse.Namespace) -> None:
    from latentedit.workers.worker import WorkerSettings, serve

    settings = WorkerSettings(
        redis_url=args.redis_url,
        device=args.device,
        dtype=args.dtype,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_render_batch=args.max_render_batch,
        metrics_port=args.metrics_port,
        torch_threads=args.torch_threads,
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
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latentedit.workers.methods.encoder import encoder_path, save_encoder, train_encoder
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    model = load_model(get_spec(args.model), args.device)
    model.generator.to(memory_format=torch.channels_last)  # faster CPU convolutions
    path = encoder_path(model.name, model.version)
    with Progress(
        TextColumn("[bold]encoder[/bold] {task.fields[status]}"), BarColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("train", total=args.steps, status="starting")

        def progress(step: int, loss: float, psnr: np.ndarray) -> bool:
            mean = float(np.mean(psnr))
            bar.update(
                task, completed=step, status=f"step {step} loss {loss:.4f} val {mean:.1f} dB"
            )
            return True

        encoder, report = train_encoder(
            model.forward,
            model.latent_dim,
            model.spec.resolution,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=progress,
            max_seconds=args.minutes * 60,
        )
    save_encoder(
        encoder,
        path,
        {
            "steps": report.steps,
            "seconds": report.seconds,
            "val_psnr": report.val_psnr,
            "model_version": model.version,
        },
    )
    logging.info(
        "encoder for %s: %d steps in %.0fs, held-out PSNR %.2f dB -> %s",
        model.name,
        report.steps,
        report.seconds,
        report.val_psnr,
        path,
    )


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
    p.set_defaults(func=_gateway)

    p = sub.add_parser("worker", help="run one batching worker")
    p.add_argument("--redis-url", default=redis_default)
    p.add_argument("--models", default="", help="comma-separated; default: every registered model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--max-batch", type=int, default=32, help="jobs gathered into one batch")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="wait for more jobs once one arrived"
    )
    p.add_argument("--max-render-batch", type=int, default=64, help="images per generator pass")
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=0, help="0: one per core")
    p.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="MODEL:NAME=PATH",
        help="register an operator's TorchScript scorer (images (N,3,H,W) in [-1,1] -> (N,))",
    )
    p.set_defaults(func=_worker)

    p = sub.add_parser("demo", help="drive a stack through the SDK and write out/demo.png")
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--out", default="out/demo.png")
    p.add_argument("--with-stack", action="store_true", help="start a private stack for the demo")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_demo)

    p = sub.add_parser("train-encoder", help="train a model's inversion encoder on its own samples")
    p.add_argument("model")
    p.add_argument("--minutes", type=float, default=14.0, help="wall-clock budget")
    p.add_argument("--steps", type=int, default=20000, help="at most this many steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
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
    p.set_defaults(func=_report)

    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
