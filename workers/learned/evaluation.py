"""Running the measures on direction sets of a loaded model: tables and the A->B / B->A figure.

Used by the worker's Evaluate handler, ``bench/learned.py`` and ``latentedit report
--evaluate`` (which draws from the RPC's result, not from here).
A :class:`NamedSet` is D directions to evaluate: a set (learned, or a fixed linear one
holding SeFa/GANSpace/InterFaceGAN vectors), which of its directions, their names, and
optionally the attribute each one targets (InterFaceGAN: its scorer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from latentedit.workers.discovery import ModelTools
from latentedit.workers.learned.directions import LearnedDirections, LinearDirections
from latentedit.workers.learned.measures import Evaluation, evaluate, set_edit
from latentedit.workers.learned.store import rank_directions
from latentedit.workers.methods.interfacegan import train_boundary
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.runtime import to_uint8


@dataclass
class NamedSet:
    dset: LearnedDirections
    indices: list[int]
    names: list[str]
    targets: list[int] | None = None  # index into the scorer names, per direction


def fixed_linear(vectors: np.ndarray) -> LinearDirections:
    """A frozen linear set holding the rows of ``vectors`` (D, d) (normalised)."""
    d = len(vectors)
    lin = LinearDirections(max(d, 1), vectors.shape[1])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.asarray(vectors, np.float32)))
    return lin.eval().requires_grad_(False)


def exact_ranges(tools: ModelTools, scorers: Sequence[str]) -> np.ndarray | None:
    """The factors' exact (max - min) when every scorer is an exact testbed factor."""
    g = tools.model.generator
    names = getattr(g, "factor_names", None)
    if names is None or not all(s in names and tools.scorers[s].exact for s in scorers):
        return None
    spread = (g.factor_high - g.factor_low).detach().double().cpu().numpy()
    return np.array([spread[list(names).index(s)] for s in scorers])


def top_directions(tools: ModelTools, dset: LearnedDirections, top: int, name: str) -> NamedSet:
    """The ``top`` directions of a learned set that change the image most."""
    order, _, _ = rank_directions(tools.model, dset)
    chosen = [int(k) for k in order[:top]]
    return NamedSet(dset, chosen, [f"{name}_{r:02d}" for r in range(len(chosen))])


def baseline_sets(
    tools: ModelTools, top: int, seed: int = 0, samples: int = 0
) -> dict[str, NamedSet]:
    """SeFa's top directions and one InterFaceGAN normal per scorer (for comparison).

    InterFaceGAN scores ``samples`` codes (0: 20 000 for latent scorers, 3 000 for image ones).
    """
    model, scorers = tools.model, sorted(tools.scorers)
    vectors, _ = sefa(model.first_projection().cpu().numpy(), min(top, model.latent_dim))
    k = len(vectors)
    out = {
        "sefa": NamedSet(fixed_linear(vectors), list(range(k)), [f"sefa_{i:02d}" for i in range(k)])
    }
    n = samples or (20_000 if all(not tools.scorers[s].needs_images for s in scorers) else 3_000)
    z = np.random.default_rng(seed).standard_normal((n, model.latent_dim)).astype(np.float32)
    scores = tools.score_latents(z, scorers)
    normals = np.stack(
        [train_boundary(z, scores[:, i], seed=seed).normal for i in range(len(scorers))]
    )
    out["interfacegan"] = NamedSet(
        fixed_linear(normals),
        list(range(len(scorers))),
        [f"ifg_{s}" for s in scorers],
        list(range(len(scorers))),
    )
    return out


def evaluate_set(
    tools: ModelTools,
    named: NamedSet | LearnedDirections,
    top: int = 8,
    samples: int = 256,
    strength: float = 2.0,
    seed: int = 0,
    scorers: Sequence[str] | None = None,
) -> Evaluation:
    """The measures of a named set (or the ``top`` directions of a learned set)."""
    if isinstance(named, LearnedDirections):
        named = top_directions(tools, named, top, named.method)
    names = list(scorers or sorted(tools.scorers))
    return evaluate(
        named.names,
        set_edit(named.dset, named.indices),
        lambda z: tools.score_latents(z.float().numpy(), names),
        names,
        tools.model.latent_dim,
        samples=samples,
        strength=strength,
        seed=seed,
        ranges=exact_ranges(tools, names),
        targets=named.targets,
        render=tools.model.forward,
    )


def print_tables(
    results: dict[str, Evaluation],
    timings: dict[str, dict[str, float]],
    console: Console,
    title: str = "",
) -> None:
    """The paper's tables: one summary row per method, then each side-effect matrix."""
    table = Table(title=f"direction sets compared {title}")
    for col in (
        "method",
        "train wall s",
        "train CPU s",
        "commutativity %",
        "side effect %",
        "reversibility",
        "identity %",
        "aligned ≥60%",
    ):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, ev in results.items():
        s, t = ev.summary(), timings.get(name, {})
        table.add_row(
            name,
            f"{t['wall_s']:.0f}" if t else "-",
            f"{t['cpu_s']:.0f}" if t else "-",
            f"{s['commutativity']:.3f}",
            f"{s['side_effect']:.1f}",
            f"{s['reversibility']:.1e}",
            f"{s['identity']:.3f}",
            f"{int((ev.alignment >= 0.6).sum())}/{len(ev.directions)}",
        )
    console.print(table)
    for name, ev in results.items():
        side = Table(title=f"{name}: side effects, % of the target's change (target: *)")
        side.add_column("direction")
        side.add_column("Δtarget %", justify="right")
        for s in ev.scorers:
            side.add_column(s, justify="right")
        for j, d in enumerate(ev.directions):
            cells = [
                f"*{ev.side_effect[j, i]:.0f}"
                if i == ev.targets[j]
                else f"{ev.side_effect[j, i]:.0f}"
                for i in range(len(ev.scorers))
            ]
            side.add_row(d, f"{ev.change[j, ev.targets[j]]:.1f}", *cells)
        console.print(side)


@torch.no_grad()
def draw_commutativity(
    tools: ModelTools,
    sets: dict[str, tuple[NamedSet | LearnedDirections, Evaluation]],
    path: Path,
    samples: int = 2,
    strength: float = 2.0,
    top: int = 8,
) -> None:
    """Rows of z | A(z) | B(A(z)) | A(B(z)) | B(z) | 4x|difference|, per set its worst pair."""
    tile, left, head = 64, 150, 18
    rows: list[tuple[str, list[np.ndarray]]] = []
    z = torch.randn(samples, tools.model.latent_dim, generator=torch.Generator().manual_seed(7))
    for name, (given, ev) in sets.items():
        named = (
            top_directions(tools, given, top, given.method)
            if isinstance(given, LearnedDirections)
            else given
        )
        comm = ev.commutativity.copy()
        i, j = np.unravel_index(int(np.argmax(comm)), comm.shape)
        edit = set_edit(named.dset, named.indices)
        a, b = edit(int(i), z, strength), edit(int(j), z, strength)
        ab, ba = edit(int(j), a, strength), edit(int(i), b, strength)
        imgs = [tools.model.forward(x) for x in (z, a, ab, ba, b)]
        diff = ((imgs[2] - imgs[3]).abs() * 4 - 1).clamp(-1, 1)
        pix = [to_uint8(x) for x in (*imgs, diff)]
        for n in range(samples):
            label = f"{name}\n{named.names[i]}, {named.names[j]}\nerr {comm[i, j]:.2f} %"
            rows.append((label, [p[n] for p in pix]))
    cols = ("z", "A", "A then B", "B then A", "B", "4x |AB-BA|")
    canvas = Image.new("RGB", (left + tile * len(cols), head + tile * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(cols):
        draw.text((left + c * tile + 2, 3), label, fill="black")
    for r, (label, tiles) in enumerate(rows):
        y = head + r * tile
        draw.multiline_text((4, y + 6), label, fill="black")
        for c, im in enumerate(tiles):
            pic = Image.fromarray(im)
            if pic.size[0] != tile:
                pic = pic.resize((tile, tile))
            canvas.paste(pic, (left + c * tile, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
