"""Tables of ``bench/throughput.py`` (rich): per round, per load, the ratios, the on/off sweep."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from throughput import Load
    from throughput_local import Local

LOADS = ("on raw", "off raw", "on png")
RATIOS = {
    "service_raw_over_in_process": "service batched RAW / in-process render",
    "service_png_over_in_process": "service batched PNG / in-process render + png",
    "png_over_raw": "service batched PNG / RAW",
    "batching_on_over_off": "batching on / off (RAW)",
    "service_off_over_in_process_unbatched": "service unbatched RAW / in-process per request",
    "in_process_batched_over_unbatched": "in-process render: chosen batch / per request",
    "cpu_service_over_in_process": "CPU s per image: service batched RAW (all) / in-process",
}


def print_report(
    args: argparse.Namespace,
    rates: dict[int, float],
    best_bs: int,
    rounds: list[tuple[Local, dict[str, Load]]],
    figures: dict[str, Any],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    t1 = Table(title=f"in-process sweep: LoadedModel.render of {args.images} latents")
    t1.add_column("render batch", justify="right")
    t1.add_column("images/s", justify="right")
    for bs, rate in rates.items():
        t1.add_row(f"{bs}{' (chosen)' if bs == best_bs else ''}", f"{rate:.1f}")
    console.print(t1)

    t2 = Table(
        title=f"images/s per round (in-process at batch {best_bs}; service: {args.clients} "
        f"clients x {args.requests} requests, 1..{args.rows} latents each)"
    )
    for col in ("round", "in-proc", "+png", "per req", "png enc", "in-proc cpu", *LOADS):
        t2.add_column(col, justify="right")
    for r, (local, loads) in enumerate(rounds):
        t2.add_row(
            str(r + 1),
            f"{local.images_per_s:.1f}",
            f"{local.with_png:.1f}",
            f"{local.per_request_per_s:.1f}",
            f"{local.png_per_s:.0f}",
            f"{local.cpu_s_per_100_images:.2f}",
            *(f"{loads[k].images_per_s:.1f}" for k in LOADS),
        )
    med = figures["median"]
    t2.add_row(
        "median",
        f"{med['in_process']:.1f}",
        f"{med['in_process_png']:.1f}",
        f"{med['in_process_per_request']:.1f}",
        "",
        "",
        *(f"{med[k.replace(' ', '_')]:.1f}" for k in LOADS),
        style="bold",
    )
    console.print(t2)

    t3 = Table(
        title="service loads in detail",
        caption="cpu: CPU seconds per 100 images (in-proc cpu above is the same unit); "
        "busy: worker time inside batches / wall time",
    )
    for col in ("round", "load", "img/s", "p50 ms", "p95 ms", "jobs/batch", "busy"):
        t3.add_column(col, justify="right")
    for col in ("worker", "gateway", "redis", "clients", "total"):
        t3.add_column(f"cpu {col}", justify="right")
    for r, (_, loads) in enumerate(rounds):
        for name in LOADS:
            x = loads[name].summary()
            cpu = x["cpu_s_per_100_images"]
            t3.add_row(
                str(r + 1),
                name,
                f"{x['images_per_s']:.1f}",
                f"{x['p50_ms']:.0f}",
                f"{x['p95_ms']:.0f}",
                f"{x['jobs_per_batch']:.1f}",
                f"{x['worker_busy']:.0%}",
                *(f"{cpu[k]:.2f}" for k in ("worker", "gateway", "redis", "clients")),
                f"{x['cpu_s_per_100_images_total']:.2f}",
            )
    console.print(t3)

    t4 = Table(title="ratios (each round's figures were measured next to each other)")
    for col in ("ratio", "median", "min", "max"):
        t4.add_column(col, justify="right" if col != "ratio" else "left")
    for key, text in RATIOS.items():
        per_round = [r["ratios"][key] for r in figures["rounds"]]
        t4.add_row(
            text, f"{np.median(per_round):.2f}", f"{min(per_round):.2f}", f"{max(per_round):.2f}"
        )
    console.print(t4)


def print_sweep(swept: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="batching on / off by concurrency (RAW images)")
    cols = ("clients", "on img/s", "off img/s", "on/off", "on p50 ms", "off p50 ms", "jobs/batch")
    for col in (*cols, "busy"):
        t.add_column(col, justify="right")
    for clients, x in swept.items():
        t.add_row(
            clients,
            f"{x['on_images_per_s']:.1f}",
            f"{x['off_images_per_s']:.1f}",
            f"{x['on_over_off']:.2f}",
            f"{x['on_p50_ms']:.1f}",
            f"{x['off_p50_ms']:.1f}",
            f"{x['on_jobs_per_batch']:.1f}",
            f"{x['on_busy']:.0%}",
        )
    Console(width=120).print(t)
