"""Encoder bench: accuracy, speed and editability of ``dcgan-faces`` encoders on held-out faces.

    .venv/bin/python bench/encoder.py [--encoder FILE ...] [--n 32] [--service]

For each encoder file (default: the one the service would use, i.e. a trained file under
``$LATENTEDIT_HOME`` or else the shipped one), on generated faces x = G(z) from seeds that
training never draws (``--seed``, default 2024; training draws from seed 0):

- PSNR of one pass G(E(x)) and of the service's ``encoder`` method (feedback passes, then
  a few Adam steps: ``FeedbackConfig``), ms per image in a batch (rendering included);
- where the codes lie: |E(x)| / sqrt(d) (the prior's shell is 1) and |E(x) - z|^2 / |z|^2;
- editability: the relative edit error ||(G(c + a n) - G(c)) - (G(z + a n) - G(z))||^2 /
  ||G(z + a n) - G(z)||^2 of the predicted code c against the true z, over the top-k SeFa
  directions n at a = +-alpha (median and mean over images, directions and signs).

``--service`` also inverts faces the service generates (seeds 50000..) through the SDK against
a private stack (redis-server, gateway, one worker) with an EMPTY ``$LATENTEDIT_HOME`` (a fresh
temp dir), so it measures what a fresh clone serves: ``encoder`` and ``hybrid`` PSNR and
round-trip ms per image.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentedit.workers.methods import inversion as inv
from latentedit.workers.methods.encoder import (
    effective_encoder_path,
    encoder_meta,
    load_encoder,
    psnr,
)
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model

log = logging.getLogger("bench.encoder")


def edit_error(
    model: LoadedModel, codes: torch.Tensor, z: torch.Tensor, dirs: torch.Tensor, alpha: float
) -> np.ndarray:
    """Relative edit error per (image, direction, sign): (n, k, 2)."""
    out = np.zeros((len(z), len(dirs), 2))
    with torch.no_grad():
        g_c, g_z = model.forward(codes), model.forward(z)
        for k, n in enumerate(dirs):
            for s, a in enumerate((alpha, -alpha)):
                d_c = model.forward(codes + a * n) - g_c
                d_z = model.forward(z + a * n) - g_z
                num = (d_c - d_z).square().flatten(1).sum(1)
                den = d_z.square().flatten(1).sum(1).clamp_min(1e-12)
                out[:, k, s] = (num / den).numpy()
    return out


def measure(model: LoadedModel, path: Path, args: argparse.Namespace) -> None:
    enc = load_encoder(path)
    g = model.generator
    d = model.latent_dim
    meta = encoder_meta(path)
    print(f"\n{path} ({path.stat().st_size / 1e6:.2f} MB)")
    print("  meta: " + ", ".join(f"{k}={v}" for k, v in meta.items()))
    z = torch.randn(args.n, d, generator=torch.Generator().manual_seed(args.seed))
    cfg = inv.InvertConfig(steps=inv.FeedbackConfig.polish_steps)  # the worker's defaults
    with torch.no_grad():
        x = model.forward(z)
        t0 = time.perf_counter()
        e1 = inv.encode(enc, x)
        p1 = psnr(model.forward(e1), x)
        t_one = (time.perf_counter() - t0) / args.n * 1e3
    inv.invert("encoder", g, x[:2], cfg, encoder=enc)  # warm-up
    t0 = time.perf_counter()
    zf = torch.from_numpy(inv.invert("encoder", g, x, cfg, encoder=enc).latents)
    t_fb = (time.perf_counter() - t0) / args.n * 1e3
    with torch.no_grad():
        pf = psnr(model.forward(zf), x)
    dirs_np, _ = sefa(model.first_projection().numpy(), args.top_k)
    dirs = torch.from_numpy(dirs_np).float()
    root_d = d**0.5
    print(f"  held-out generated faces: n={args.n}, seed {args.seed}")
    for name, codes, p, ms in (("one pass", e1, p1, t_one), ("encoder method", zf, pf, t_fb)):
        err = edit_error(model, codes, z, dirs, args.alpha)
        shell = (codes.norm(dim=1) / root_d).numpy()
        lat = ((codes - z).square().sum(1) / z.square().sum(1)).numpy()
        print(
            f"  {name:<19} PSNR {p.mean():6.2f} dB (min {p.min():5.2f})  {ms:5.1f} ms/img  "
            f"|c|/sqrt(d) {shell.mean():.3f} (|z|/sqrt(d) {(z.norm(dim=1) / root_d).mean():.3f})"
            f"  |c-z|^2/|z|^2 {lat.mean():.3f}  edit error median {np.median(err):.3f} "
            f"mean {err.mean():.3f}"
        )


def service(n: int, hybrid_n: int) -> None:
    """encoder and hybrid through the SDK, against a private stack with an empty model home."""
    from latentedit.client import Client
    from latentedit.deploy.stack import Stack, StackConfig

    with tempfile.TemporaryDirectory(prefix="latentedit-home-") as home:
        os.environ["LATENTEDIT_HOME"] = home  # the worker inherits it: no trained encoder
        print(f"\nthrough the service (SDK -> gateway -> Redis -> 1 worker), model home {home}")
        config = StackConfig(workers=1, port=0, models=["dcgan-faces"])
        with Stack(config) as stack, Client(stack.target) as client:
            faces = client.generate("dcgan-faces", seeds=list(range(50000, 50000 + n))).images
            client.invert("dcgan-faces", faces[:2], method="encoder")  # warm-up
            for method, count, target in (("encoder", n, 24.0), ("hybrid", hybrid_n, 33.0)):
                t0 = time.perf_counter()
                res = client.invert("dcgan-faces", faces[:count], method=method, timeout=900)
                ms = (time.perf_counter() - t0) / count * 1e3
                ok = "ok" if res.psnr.mean() >= target else "MISSED"
                print(
                    f"  {method:<8} n={count:<3} PSNR {res.psnr.mean():6.2f} dB "
                    f"(min {res.psnr.min():5.2f})  {ms:8.1f} ms/img round trip  "
                    f"target >= {target:.0f} dB: {ok}"
                )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", type=Path, action="append", help="encoder file(s) to measure")
    ap.add_argument("--n", type=int, default=32, help="held-out generated faces")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--alpha", type=float, default=2.0)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--service", action="store_true", help="also measure through the SDK")
    ap.add_argument("--hybrid-n", type=int, default=16, help="faces for hybrid via the SDK")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    model = load_model(get_spec("dcgan-faces"))
    model.generator.to(memory_format=torch.channels_last)  # faster CPU convolutions
    print(
        f"dcgan-faces {model.version}, {args.threads} CPU threads, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    paths = args.encoder or [effective_encoder_path(model.name, model.version)]
    for path in paths:
        if path is None:
            print("no encoder: none trained and none shipped")
            return 1
        measure(model, path, args)
    if args.service:
        service(args.n, args.hybrid_n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
