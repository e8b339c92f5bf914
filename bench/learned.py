"""Learned directions side by side with SeFa and InterFaceGAN: the curvilinear paper's tables.

Trains the three learned methods in-process (``make_trainer``, the same code the job
runner drives), timing wall and CPU, then evaluates every direction set with the model's
scorers (workers/learned/measures.py) and prints the tables; ``--figure`` draws rows of
A->B vs B->A. Trained sets are cached (``--cache``), so a second run only evaluates.

    .venv/bin/python bench/learned.py --model shapes --figure docs/commutativity.png
    .venv/bin/python bench/learned.py --model dcgan-faces --steps 1500
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from latentedit.workers.discovery import ModelTools
from latentedit.workers.learned import make_trainer
from latentedit.workers.learned.evaluation import (
    baseline_sets,
    draw_commutativity,
    evaluate_set,
    print_tables,
)
from latentedit.workers.learned.serialize import set_from_bytes
from latentedit.workers.models.registry import get_spec
from latentedit.workers.models.runtime import load_model
from latentedit.workers.scorers import scorers_for

log = logging.getLogger("bench.learned")
METHODS = ("linear", "warped", "curvilinear")


def train(
    tools: ModelTools, method: str, params: dict[str, str], cache: Path, console: Console,
    seed: int = 0,
):  # fmt: skip
    """(direction set, {"wall_s", "cpu_s", "steps", "accuracy"}): cached or trained now."""
    model = tools.model
    tag = "_".join(f"{k}-{v}" for k, v in sorted(params.items()))
    blob_path = cache / f"{model.name}_{method}_{tag}_seed-{seed}.safetensors"
    meta_path = blob_path.with_suffix(".json")
    if blob_path.is_file() and meta_path.is_file():
        return set_from_bytes(blob_path.read_bytes()), json.loads(meta_path.read_text())
    trainer = make_trainer(model, method, params, seed=seed)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out: dict[str, float] = {}
    every = max(1, trainer.total_steps // 20)
    while trainer.step < trainer.total_steps:
        out = trainer.train_step()
        if "preparing" in out:
            continue
        if trainer.step % every == 0 or trainer.step == trainer.total_steps:
            extra = f" logdet {out['logdet']:.3f}" if "logdet" in out else ""
            console.print(
                f"[dim]{model.name} {method}[/] step {trainer.step}/{trainer.total_steps} "
                f"loss {out['loss']:.3f} ce {out['ce']:.3f} mae {out['mae']:.3f}{extra} "
                f"acc {out['accuracy_ema']:.2f}  wall {time.perf_counter() - wall0:.0f}s "
                f"cpu {time.process_time() - cpu0:.0f}s"
            )
    meta = {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "steps": trainer.total_steps,
        "accuracy": out.get("accuracy_ema", float("nan")),
    }
    dset = trainer.result()
    cache.mkdir(parents=True, exist_ok=True)
    blob_path.write_bytes(dset.to_bytes())
    meta_path.write_text(json.dumps(meta))
    return dset, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=0, help="0: each method's default")
    ap.add_argument("--param", action="append", default=[], help="key=value trainer param")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--strength", type=float, default=2.0)
    ap.add_argument("--top", type=int, default=8, help="directions per set (by image change)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="training seed of the learned sets")
    ap.add_argument("--ifg-samples", type=int, default=0, help="InterFaceGAN samples; 0: auto")
    ap.add_argument("--cache", type=Path, default=Path(".cache/bench_learned"))
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    console = Console(width=160)
    model = load_model(get_spec(args.model))
    tools = ModelTools(model, scorers_for(model.name, model.generator))
    params = dict(p.split("=", 1) for p in args.param)
    if args.steps:
        params["steps"] = str(args.steps)
    learned, timings = {}, {}
    for method in [m for m in args.methods.split(",") if m]:
        learned[method], timings[method] = train(
            tools, method, params, args.cache, console, args.seed
        )
    if args.train_only:
        return
    sets = {**baseline_sets(tools, args.top, samples=args.ifg_samples), **learned}
    results = {}
    for name, dset in sets.items():
        results[name] = evaluate_set(
            tools, dset, args.top, samples=args.samples, strength=args.strength
        )
    print_tables(results, timings, console, title=f"{model.name} (strength {args.strength})")
    if args.figure:
        draw_commutativity(tools, {m: (sets[m], results[m]) for m in learned}, args.figure)
        console.print(f"wrote {args.figure}")
    np.set_printoptions(precision=2, suppress=True)


if __name__ == "__main__":
    main()
