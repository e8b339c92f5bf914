"""Inversion bench (issue 10): PSNR, SSIM and relative edit error of every method, and
continuous batching, measured through the service as a client sees them.

    .venv/bin/python bench/inversion.py --service [--threads 2] [--picture docs/inversion_edits.jpg]
        [--photo-dir DIR]   # other photos: every PNG / JPEG / WebP in DIR

A private stack (redis-server, gateway, one worker with ``--threads`` torch threads)
serves ``dcgan-faces``. Printed:

- real face photos (tests/data/faces or ``--photo-dir``, inverted together in one request)
  and held-out generated faces (seeds 50000..): per method mean PSNR, SSIM, median / mean relative
  edit error (alpha = +-2 along the top-5 SeFa directions, ``report_edit_error``), stored
  delta bytes and seconds per image; per image for auto / tune / extended the code PSNR (the
  plain generator at the returned codes: far below the PSNR, edits can show a doubled face);
  ``auto`` with its defaults (30 dB, edit error <= 0.3);
- continuous batching: a 50-step inversion alone, then sent while another client's
  3000-step inversion runs (ratio; the long one is cancelled afterwards);
- ``--picture``: real photos, their reconstructions and three SeFa edits per photo for
  each method, rendered through the SDK's Edit with each inversion's extras.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from latentedit.codec import pil_to_rgb

FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces"
METHODS = ("optimize", "extended", "tune", "auto", "encoder", "hybrid")
log = logging.getLogger("bench.inversion")


def row(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<34} {value:>44}  {target:<22}{mark}", flush=True)


def measure(client: Any, images: list[Any], label: str, methods: tuple[str, ...]) -> dict[str, Any]:
    from latentedit.errors import Unavailable

    out = {}
    print(f"\n{label} (n={len(images)}, one request per method)")
    for method in methods:
        t0 = time.perf_counter()
        try:
            res = client.invert(
                "dcgan-faces", images, method=method, report_edit_error=True, timeout=3600
            )
        except Unavailable as exc:
            row(method, "n/a", str(exc)[:40])
            continue
        s_img = (time.perf_counter() - t0) / len(images)
        err = res.edit_error
        kib = np.mean(res.tuning_bytes) / 1024 if res.tuning_bytes else 0.0
        row(
            method,
            f"{res.psnr.mean():5.2f} dB SSIM {res.ssim.mean():.3f} edit {np.median(err):.3f}"
            f"/{err.mean():.3f}",
            f"{s_img:6.3f} s/img" + (f" {kib:.0f} KiB" if kib else ""),
        )
        if method == "auto":
            print("    auto per image: " + ", ".join(res.methods), flush=True)
        if method in ("auto", "tune", "extended"):  # how far the bare codes are, per image
            print(f"    {method} code PSNR: " + " ".join(f"{v:.1f}" for v in res.code_psnr))
        out[method] = res
    return out


def concurrency(client_a: Any, client_b: Any, photo: Any) -> float:
    """Seconds of a 50-step inversion alone and beside a 3000-step one; returns the ratio."""
    kw = {"method": "optimize", "restarts": 1, "timeout": 3600}
    client_a.invert("dcgan-faces", [photo], steps=50, **kw)  # warm-up
    t0 = time.perf_counter()
    client_a.invert("dcgan-faces", [photo], steps=50, **kw)
    alone = time.perf_counter() - t0
    started = threading.Event()
    stop = threading.Event()

    def long_call() -> None:
        stream = client_b.invert_stream(
            "dcgan-faces", [photo], method="optimize", steps=3000, restarts=1, timeout=3600
        )
        for _ in stream:
            started.set()
            if stop.is_set():
                stream.close()  # cancels the call and the work
                return

    th = threading.Thread(target=long_call, daemon=True)
    th.start()
    started.wait(600)
    t0 = time.perf_counter()
    client_a.invert("dcgan-faces", [photo], steps=50, **kw)
    beside = time.perf_counter() - t0
    stop.set()
    th.join(600)
    ratio = beside / alone
    print("\ncontinuous batching (optimize, 1 image, restarts 1)")
    row("50 steps alone", f"{alone:.2f} s")
    row("50 steps beside a 3000-step call", f"{beside:.2f} s", "<= 3x alone", ratio <= 3)
    row("ratio", f"{ratio:.2f}")
    return ratio


def picture(
    client: Any, photos: list[Any], results: dict[str, Any], path: Path, k: int, alpha: float
) -> None:
    """Rows: per photo and method, [photo, reconstruction, three SeFa edits of +-alpha]."""
    client.discover("dcgan-faces", "sefa", top_k=5, name_prefix="benchsefa")
    edits = [("benchsefa_00", alpha), ("benchsefa_01", -alpha), ("benchsefa_02", alpha)]
    size = 64
    methods = [m for m in METHODS if m in results]
    rows = []
    for i, photo in enumerate(photos[:k]):
        target = photo.resize((size, size), Image.Resampling.LANCZOS)
        for m in methods:
            res = results[m]
            one = _select(res, i)
            tiles = [target, res.reconstructions[i]]
            for name, strength in edits:
                out = client.edit("dcgan-faces", one, {name: strength})
                tiles.append(out.images[0][0])
            rows.append((m, tiles))
    label_w = 72
    canvas = Image.new("RGB", (label_w + size * 5, size * len(rows)), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    for r, (m, tiles) in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), m, fill="black")
        for c, tile in enumerate(tiles):
            canvas.paste(tile.convert("RGB").resize((size, size)), (label_w + c * size, r * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=90)
    print(
        f"\npicture {path} ({path.stat().st_size / 1024:.0f} KB): columns photo, "
        f"reconstruction, {', '.join(f'{n} {a:+g}' for n, a in edits)}"
    )


def _select(res: Any, i: int) -> Any:
    """One image of an Inverted result, with its extras, to pass as latents."""
    from dataclasses import replace

    from latentedit.client.types import CodeExtras

    ex = res.extras
    extras = CodeExtras(
        residual=None if ex.residual is None else ex.residual[i : i + 1],
        tuning_ids=ex.tuning_ids[i : i + 1] if ex.tuning_ids else [],
    )
    return replace(res, latents=res.latents[i : i + 1], extras=extras)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--service", action="store_true", help="measure through the SDK (required)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-gen", type=int, default=4, help="held-out generated faces")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--picture", type=Path, help="write the edit grid here (.jpg / .png)")
    ap.add_argument("--picture-photos", type=int, default=4)
    ap.add_argument("--picture-alpha", type=float, default=1.0, help="edit strength shown")
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--photos", type=int, default=0, help="use the first N real photos (0: all)")
    ap.add_argument(
        "--photo-dir",
        type=Path,
        default=FACES,
        help="the real photos: every PNG / JPEG / WebP file in this folder, in name order "
        "(default: tests/data/faces)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if not args.service:
        ap.error("run with --service (the figures are what a client sees)")
    from latentedit.client import Client
    from latentedit.deploy.stack import Stack, StackConfig

    methods = tuple(m for m in args.methods.split(",") if m)
    print(
        f"dcgan-faces through SDK -> gateway -> Redis -> 1 worker ({args.threads} torch threads); "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    config = StackConfig(
        workers=1,
        port=0,
        models=["dcgan-faces"],
        extra_worker_args=["--torch-threads", str(args.threads)],
    )
    kinds = {".png", ".jpg", ".jpeg", ".webp"}
    files = sorted(f for f in args.photo_dir.iterdir() if f.suffix.lower() in kinds)
    if not files:
        ap.error(f"--photo-dir {args.photo_dir}: no PNG / JPEG / WebP files")
    # as the service reads them (upright by EXIF, transparency over white), for the grid too
    photos = [Image.fromarray(pil_to_rgb(Image.open(f))) for f in files]
    photos = photos[: args.photos or len(photos)]
    with Stack(config) as stack, Client(stack.target) as client, Client(stack.target) as other:
        if not args.skip_concurrency:
            concurrency(client, other, photos[0])
        real = measure(client, photos, "real face photos", methods)
        auto = real.get("auto")
        if auto is not None:
            s = auto.seconds / len(photos)
            ok = auto.psnr.mean() >= 30 and np.median(auto.edit_error) <= 0.3
            row(
                "auto: mean PSNR / median edit error",
                f"{auto.psnr.mean():.2f} dB / {np.median(auto.edit_error):.3f}",
                ">= 30 dB, <= 0.3",
                bool(ok),
            )
            row("auto: worker seconds per image", f"{s:.2f} s", "<= 3 s", s <= 3)
        for m, bound, floor in (("tune", 0.25, 30.0), ("extended", 0.5, 24.0)):
            if m in real:
                r = real[m]
                row(
                    f"{m}: median edit error / mean PSNR",
                    f"{np.median(r.edit_error):.3f} / {r.psnr.mean():.2f} dB",
                    f"<= {bound}, >= {floor:.0f} dB",
                    bool(np.median(r.edit_error) <= bound and r.psnr.mean() >= floor),
                )
        if args.n_gen:
            seeds = list(range(50000, 50000 + args.n_gen))
            faces = client.generate("dcgan-faces", seeds=seeds).images
            gen = measure(client, faces, "held-out generated faces", methods)
            if "encoder" in gen:  # timed again without the edit error's extra renders
                t0 = time.perf_counter()
                client.invert("dcgan-faces", faces, method="encoder", timeout=600)
                ms = (time.perf_counter() - t0) / len(faces) * 1000
                p = gen["encoder"].psnr.mean()
                ok = p >= 24 and ms <= 50
                row("encoder: mean PSNR / ms per image", f"{p:.2f} dB / {ms:.1f} ms",
                    ">= 24 dB, <= 50 ms", ok)  # fmt: skip
            if "hybrid" in gen:
                p = gen["hybrid"].psnr.mean()
                row("hybrid: mean PSNR", f"{p:.2f} dB", ">= 33 dB", bool(p >= 33))
        if args.picture:
            picture(client, photos, real, args.picture, args.picture_photos, args.picture_alpha)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (timings are wall clock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
