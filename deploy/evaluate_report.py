"""``latentedit report --evaluate``: the curvilinear paper's tables for stored direction sets.

Each group is the first ``top`` stored directions (sorted by name) whose names start with a
prefix (``sefa`` -> sefa_00, sefa_01, ...; a learned set ``cur`` -> cur_00 ... ranked by image
change). One Evaluate call per group (through the SDK); the summary table, each group's
side-effect matrix, and a picture of z | A | A->B | B->A | B rows for each group's least
commutative pair.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from latentedit.client import Client, Evaluation, InvalidArgument

log = logging.getLogger(__name__)
TILE = 64
LEFT = 170


def print_tables(results: dict[str, Evaluation], console: Console | None = None) -> None:
    """Summary (one row per group), then each group's side effects (% of the target's)."""
    console = console or Console()
    first = next(iter(results.values()))
    unit = "exact factor range" if first.exact_ranges else "1st-99th percentile spread"
    table = Table(title=f"strength {first.strength}, {first.samples} samples, % of {unit}")
    for col in (
        "set",
        "commutativity %",
        "side effect %",
        "reversibility",
        "identity %",
        "aligned ≥60%",
    ):
        table.add_column(col, justify="left" if col == "set" else "right")
    for label, ev in results.items():
        s = ev.summary
        table.add_row(
            label,
            f"{s['commutativity']:.3f}",
            f"{s['side_effect']:.1f}",
            f"{s['reversibility']:.1e}",
            f"{s['identity']:.3f}",
            f"{int((ev.alignment >= 0.6).sum())}/{len(ev.directions)}",
        )
    console.print(table)
    for label, ev in results.items():
        side = Table(title=f"{label}: change of each attribute, % of the target's (*)")
        side.add_column("direction")
        side.add_column("Δtarget %", justify="right")
        for s in ev.scorers:
            side.add_column(s, justify="right")
        for j, d in enumerate(ev.directions):
            t = ev.targets[j]
            cells = [
                ("*" if i == t else "") + f"{ev.side_effect[j, i]:.0f}"
                for i in range(len(ev.scorers))
            ]
            side.add_row(d, f"{ev.change[j, t]:.1f}", *cells)
        console.print(side)


def draw(results: dict[str, Evaluation], path: Path) -> None:
    """Rows of z | A | A->B | B->A | B per group (its least commutative pair)."""
    rows = [(label, ev, row) for label, ev in results.items() for row in ev.pair_images]
    cols = ("z", "A", "A then B", "B then A", "B")
    canvas = Image.new("RGB", (LEFT + TILE * len(cols), 18 + TILE * len(rows)), "white")
    pen = ImageDraw.Draw(canvas)
    for c, name in enumerate(cols):
        pen.text((LEFT + c * TILE + 2, 3), name, fill="black")
    for r, (label, ev, tiles) in enumerate(rows):
        y = 18 + r * TILE
        a, b = ev.worst_pair
        err = ev.commutativity[a, b]
        text = f"{label}\nA={ev.directions[a]}\nB={ev.directions[b]}\nerror {err:.2f} %"
        pen.multiline_text((4, y + 4), text, fill="black")
        for c, im in enumerate(tiles):
            canvas.paste(im.convert("RGB").resize((TILE, TILE)), (LEFT + c * TILE, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    log.info("wrote %s", path)


def run_evaluate(
    target: str,
    model: str,
    prefixes: list[str],
    out: str,
    top: int = 8,
    samples: int = 128,
    strength: float = 2.0,
    seed: int = 0,
    figure_samples: int = 2,
) -> dict[str, Evaluation]:
    """Evaluate each prefix group through the SDK, print the tables, draw ``out``."""
    results: dict[str, Evaluation] = {}
    with Client(target, timeout=1800) as client:
        stored = sorted(d.name for d in client.directions(model))
        for prefix in prefixes:
            names = [n for n in stored if n.startswith(prefix)][:top]
            if len(names) < 2:
                raise InvalidArgument(
                    f"--evaluate {prefix!r}: {len(names)} stored direction(s) start with it; "
                    "need 2 or more"
                )
            results[prefix] = client.evaluate(
                model,
                names,
                samples=samples,
                strength=strength,
                seed=seed,
                figure_samples=figure_samples,
            )
    print_tables(results)
    draw(results, Path(out))
    return results
