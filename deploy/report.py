"""The re-scoring report: a direction x scorer matrix, printed and drawn, through the SDK only.

For each direction, N seeded samples are edited by +-alpha and every scorer is
re-applied; the mean change (in units of each score's spread) is the matrix
(diagonal: the target attribute; off-diagonal: side effects). The picture puts
that heatmap beside a grid of edits (-alpha, 0, +alpha) of a few samples.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from latentedit.client import Analysis, Client

log = logging.getLogger(__name__)
CELL = 56
TILE = 64


def print_matrix(analysis: Analysis, console: Console | None = None) -> None:
    """Rich table of the relative re-scoring matrix and the direction cosines."""
    console = console or Console()
    rel = analysis.relative_rescoring()
    table = Table(
        title=f"re-scoring: mean change per ±edit, in score std units ({analysis.model_version})"
    )
    table.add_column("direction \\ scorer")
    for s in analysis.scorers:
        table.add_column(s, justify="right")
    for d, row in zip(analysis.directions, rel, strict=True):
        table.add_row(d, *[f"{v:+.2f}" for v in row])
    console.print(table)
    cos = Table(title="cosine similarity of the directions")
    cos.add_column("")
    for d in analysis.directions:
        cos.add_column(d, justify="right")
    for d, row in zip(analysis.directions, analysis.cosine, strict=True):
        cos.add_row(d, *[f"{v:+.2f}" for v in row])
    console.print(cos)


def _heatmap(analysis: Analysis) -> Image.Image:
    rel = analysis.relative_rescoring()
    scale = max(float(np.abs(rel).max()), 1e-9)
    left, top = 110, 40
    img = Image.new(
        "RGB",
        (left + CELL * len(analysis.scorers) + 10, top + CELL * len(analysis.directions) + 10),
        "white",
    )
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), "re-scoring (std units): rows = edited direction", fill="black")
    for j, s in enumerate(analysis.scorers):
        draw.text((left + j * CELL + 4, top - 14), s[:9], fill="black")
    for i, d in enumerate(analysis.directions):
        draw.text((4, top + i * CELL + CELL // 2 - 6), d[:16], fill="black")
        for j, v in enumerate(rel[i]):
            t = min(abs(v) / scale, 1.0)
            shade = (
                (255, int(255 * (1 - t)), int(255 * (1 - t)))
                if v > 0
                else (int(255 * (1 - t)), int(255 * (1 - t)), 255)
            )
            x, y = left + j * CELL, top + i * CELL
            draw.rectangle((x, y, x + CELL - 2, y + CELL - 2), fill=shade)
            draw.text((x + 8, y + CELL // 2 - 6), f"{v:+.2f}", fill="black")
    return img


def _edit_grid(
    client: Client, model: str, directions: list[str], strength: float, seed: int, samples: int = 3
) -> Image.Image:
    z = (
        np.random.default_rng(seed + 1)
        .standard_normal((samples, {m.name: m for m in client.models()}[model].latent_dim))
        .astype(np.float32)
    )
    width = samples * 3 * TILE + (samples - 1) * 8 + 110
    img = Image.new("RGB", (width, len(directions) * (TILE + 4) + 20), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), f"edits: -{strength:g}, 0, +{strength:g} per sample", fill="black")
    for i, d in enumerate(directions):
        out = client.edit(model, z, {d: strength}, sweep=(3, -1, 1))
        y = 20 + i * (TILE + 4)
        draw.text((4, y + TILE // 2 - 6), d[:16], fill="black")
        for n in range(samples):
            for k in range(3):
                x = 110 + n * (3 * TILE + 8) + k * TILE
                img.paste(out.images[n][k].resize((TILE, TILE)), (x, y))
    return img


def run_report(
    target: str,
    model: str,
    directions: list[str],
    scorers: list[str],
    out: str,
    samples: int = 128,
    strength: float = 3.0,
    seed: int = 0,
    discover: str = "",
) -> Analysis:
    """Optionally discover directions first (``interfacegan``: one per scorer), then report."""
    with Client(target, timeout=600) as client:
        if discover == "interfacegan":
            names = scorers or list({m.name: m for m in client.models()}[model].scorers)
            for s in names:
                client.discover(model, "interfacegan", scorer=s, seed=seed)
            directions = directions or names
        elif discover:
            found = client.discover(model, discover, top_k=len(directions) or 6, seed=seed)
            directions = [d.name for d in found]
        analysis = client.analyze(
            model, directions, scorers, samples=samples, strength=strength, seed=seed
        )
        print_matrix(analysis)
        heat = _heatmap(analysis)
        grid = _edit_grid(client, model, analysis.directions, strength, seed)
    picture = Image.new(
        "RGB", (heat.width + grid.width + 10, max(heat.height, grid.height)), "white"
    )
    picture.paste(heat, (0, 0))
    picture.paste(grid, (heat.width + 10, 0))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    log.info("wrote %s", path)
    return analysis
