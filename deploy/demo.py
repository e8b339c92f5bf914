"""The demo: drive a running stack through the SDK only and write one picture.

Rows of ``out/demo.png``: generated samples | SeFa edits (three directions,
sweeps from -a to +a) | a conditional edit against the plain edit | an
inversion of a held-out face, its reconstruction and an edit of the inverted
code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rich.progress import Progress

from latentedit.client import Client

log = logging.getLogger(__name__)

MODEL = "dcgan-faces"
TILE = 96
LABEL_H = 18


def _row(label: str, images: list[Image.Image]) -> Image.Image:
    row = Image.new("RGB", (max(1, len(images)) * TILE, TILE + LABEL_H), "white")
    ImageDraw.Draw(row).text((4, 3), label, fill="black")
    for i, img in enumerate(images):
        row.paste(img.resize((TILE, TILE), Image.Resampling.NEAREST), (i * TILE, LABEL_H))
    return row


def _stack(rows: list[Image.Image]) -> Image.Image:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + 4 * len(rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 4
    return out


def run_demo(target: str, out: str, strength: float = 4.0) -> Path:
    """Run every RPC once through the SDK; returns the path of the written picture."""
    rows: list[Image.Image] = []
    with Client(target, timeout=600) as client, Progress() as progress:
        task = progress.add_task("demo", total=6)
        models = {m.name: m for m in client.models()}
        model = models[MODEL]
        progress.update(task, advance=1, description=f"{MODEL} v{model.version}: samples")

        faces = client.generate(MODEL, seeds=list(range(8)))
        rows.append(_row("samples (seeds 0-7)", faces.images))
        progress.update(task, advance=1, description="SeFa directions")

        found = client.discover(MODEL, "sefa", top_k=5)
        ev = ", ".join(f"{d.name}={d.metrics['eigenvalue']:.1f}" for d in found)
        log.info("SeFa eigenvalues: %s", ev)
        for d in found[:3]:
            swept = client.edit(MODEL, faces.latents[:2], {d.name: strength}, sweep=(5, -1, 1))
            rows.append(
                _row(
                    f"SeFa {d.name}: t*{strength:g}, t in -1..1, two faces",
                    swept.images[0] + swept.images[1],
                )
            )
        progress.update(task, advance=1, description="conditional edit")

        # A direction entangled with sefa_01 (cos 0.71); conditioning on sefa_01 removes that part.
        mixed = found[0].vector + found[1].vector
        client.put_direction(MODEL, "demo_mixed", mixed, method="demo")
        plain = client.edit(MODEL, faces.latents[2:3], {"demo_mixed": strength}, sweep=(5, -1, 1))
        cond = client.conditional_edit(
            MODEL,
            faces.latents[2:3],
            "demo_mixed",
            ["sefa_01"],
            strength=strength,
            sweep=(5, -1, 1),
        )
        rows.append(
            _row(
                "plain edit along mixed | conditional (sefa_01 held): "
                f"cos={cond.condition_cosines[0]:.1e}",
                plain.images[0] + cond.images[0],
            )
        )
        progress.update(task, advance=1, description="inversion (optimisation, ~20 s)")

        held_out = client.generate(MODEL, seeds=[10_001, 10_002])
        inv = client.invert(MODEL, held_out.images)
        progress.update(task, advance=1, description="edit of the inverted code")
        edit_inv = client.edit(MODEL, inv.latents[:1], {found[0].name: strength}, sweep=(4, -1, 1))
        rows.append(
            _row(
                f"held-out face | inversion ({inv.psnr[0]:.1f} dB) | edits of the inverted code",
                [held_out.images[0], inv.reconstructions[0], *edit_inv.images[0]],
            )
        )
        progress.update(task, advance=1, description="done")
        log.info("inversion PSNR: %s dB in %.1fs", np.round(inv.psnr, 2).tolist(), inv.seconds)

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    _stack(rows).save(path)
    log.info("wrote %s", path)
    return path
