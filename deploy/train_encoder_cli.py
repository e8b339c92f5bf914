"""``latentedit train-encoder NAME [--space z|w]``: train a model's encoder
(``workers/methods/encoder.py``; a style model's W encoder, ``style_encoding.py``) towards
editable codes, show its progress and store it where workers load it from."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from functools import partial
from typing import Any

import numpy as np


def train_encoder_command(args: argparse.Namespace, registry: dict[str, Any]) -> None:
    """Train ``args.model``'s encoder with a progress bar and save it (safetensors, fp16)
    where the worker looks first, logging its SHA-256 (to pin it when shipping the file)."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latentedit.workers.methods.encoder import (
        effective_encoder_path,
        encoder_meta,
        encoder_path,
        load_encoder,
        save_encoder,
        train_encoder,
    )
    from latentedit.workers.methods.style_encoding import train_w_encoder
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(get_spec(args.model, registry), args.device)
    if not model.info.w_dim:  # faster CPU convolutions (StyleGAN2's weights are 5-d)
        model.generator.to(memory_format=torch.channels_last)
    space = "w" if (args.space or model.info.default_space) != "z" else "z"
    if space == "w" and not model.info.w_dim:
        raise SystemExit(f"--space {args.space}: {model.name} has only z")
    path = args.out or encoder_path(model.name, model.version, space)
    start, prior_steps = None, 0
    if args.resume:  # go on from the encoder in use (trained file, else the shipped one)
        start_path = effective_encoder_path(model.name, model.version, space)
        if start_path is None:
            raise SystemExit(f"--resume: {model.name} has no encoder to resume from")
        start = load_encoder(start_path).requires_grad_(True)
        prior_steps = int(encoder_meta(start_path).get("total_steps", 0)) or int(
            encoder_meta(start_path).get("steps", 0)
        )
        logging.info("resuming from %s (%d steps)", start_path, prior_steps)
    load_before = os.getloadavg()[0]
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

        trainer: Any = (
            partial(train_w_encoder, model)
            if space == "w"
            else partial(train_encoder, model.forward, model.latent_dim, model.spec.resolution)
        )
        encoder, report = trainer(
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=progress,
            max_seconds=args.minutes * 60,
            shell_weight=args.shell_weight,
            lr=2e-4 if start is not None else 4e-4,  # a restart from a trained encoder: gentler
            pixel_start=0.0 if start is not None else 0.2,
            encoder=start,
            reuse=args.reuse,
            pixel_batch=args.pixel_batch,
            progress_every=100,  # validation costs ~3 steps; every 25 steps it took ~10 %
        )
    save_encoder(
        encoder,
        path,
        {
            "model": model.name,
            "model_version": model.version,
            "space": space,
            "steps": report.steps,
            "total_steps": prior_steps + report.steps,
            "seconds": round(report.seconds, 1),
            "val_psnr": round(report.val_psnr, 3),
            "shell_weight": args.shell_weight,
            "reuse": args.reuse,
            "pixel_batch": args.pixel_batch,
            "seed": args.seed,
            "threads": torch.get_num_threads(),
            "load_average": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()}",
            "torch": torch.__version__,
            "command": " ".join(["latentedit", *sys.argv[1:]]),
        },
    )
    with path.open("rb") as f:  # to pin it in the registry when shipping the file
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    logging.info(
        "encoder for %s: %d steps in %.0fs, held-out PSNR %.2f dB -> %s (SHA-256 %s)",
        model.name,
        report.steps,
        report.seconds,
        report.val_psnr,
        path,
        digest,
    )
