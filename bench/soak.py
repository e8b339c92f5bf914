"""Soak: M clients x N Generate calls through a loopback stack while faults strike.

    .venv/bin/python bench/soak.py [--clients 8] [--requests 60] [--workers 2]

Faults, each once the load has reached a share of its calls (so they land mid-load):
worker SIGKILL (a fresh worker is started), Redis restart without persistence (same
port, the stack's processes are not restarted), gateway SIGKILL and restart (same port),
worker SIGKILL again. Clients use the SDK with its retries (UNAVAILABLE), 30 s deadlines.

Every reply is checked against an in-process recomputation: the seeds' latents
(``latent_math.seeded_latents``) and the pixels of ``LoadedModel.render`` of them, rendered
in this process after the load. It prints, and ends with one JSON line:

- lost: calls that finally failed; wrong: replies whose latents or pixels differ (pixels:
  max abs difference > 1 level); duplicate: replies carrying another call's seeds (each
  call's seeds are unique in the run);
- deadline: calls that ran out their deadline (or took >= 90 % of it);
- recovery time after each fault: from the fault until the first success of a probe
  (a one-image Generate every 50 ms, 2 s deadline, no retries) started after it.

Bounded: M x N calls, ``--max-seconds`` for the whole load; loopback only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig

MODEL = "dcgan-faces"
TIMEOUT_S = 30.0
FAULTS = ("worker SIGKILL", "redis restart (no persistence)", "gateway restart", "worker SIGKILL")
AT_SHARE = (0.15, 0.35, 0.55, 0.75)  # of all calls answered, when each fault strikes

log = logging.getLogger("bench.soak")


@dataclass
class Tally:
    done: int = 0
    replies: dict[tuple[int, int], Any] = field(default_factory=dict)  # (client, i) -> latents..
    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def plan(client: int, requests: int, rows: int) -> list[list[int]]:
    """Unique seeds per call: 1..rows of them."""
    rng = np.random.default_rng(client)
    sizes = rng.integers(1, rows + 1, size=requests)
    return [[client * 1_000_000 + i * 16 + k for k in range(int(n))] for i, n in enumerate(sizes)]


def run_client(target: str, client: int, calls: list[list[int]], tally: Tally) -> None:
    with Client(target, timeout=TIMEOUT_S, retries=12) as c:
        for i, seeds in enumerate(calls):
            start = time.monotonic()
            try:
                out = c.generate(MODEL, seeds=seeds)
                pixels = np.stack([np.asarray(im.convert("RGB")) for im in out.images])
                result: Any = (out.latents, pixels)
                err = ""
            except Exception as exc:
                result, err = None, f"{type(exc).__name__}: {exc}"
            with tally.lock:
                tally.seconds.append(time.monotonic() - start)
                tally.done += 1
                if result is None:
                    tally.errors[(client, i)] = err
                else:
                    tally.replies[(client, i)] = result


def probe(target: str, stop: threading.Event, log_: list[tuple[float, float, bool]]) -> None:
    with Client(target, timeout=2.0, retries=0) as c:
        while not stop.is_set():
            start = time.monotonic()
            try:
                c.generate(MODEL, seeds=[7])
                ok = True
            except Exception:
                ok = False
            log_.append((start, time.monotonic(), ok))
            time.sleep(0.05)


def strike(stack: Stack, fault: str) -> None:
    if fault == "worker SIGKILL":
        victim = next(w for w in stack.workers if w.poll() is None)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        stack.add_worker()
    elif fault.startswith("redis"):
        stack.restart_redis(kill=True)
    else:
        stack.restart_gateway(kill=True)


def check(
    tally: Tally, plans: dict[int, list[list[int]]], model: Any
) -> tuple[int, int, list[str]]:
    """(wrong, duplicate, examples) of the replies against an in-process recomputation."""
    from latentedit.workers.latent_math import seeded_latents

    owner = {seeds[0]: key for c, calls in plans.items() for key, seeds in enumerate(calls)}
    wrong = duplicate = 0
    examples = []
    for (client, i), (latents, pixels) in sorted(tally.replies.items()):
        seeds = plans[client][i]
        expected = seeded_latents(seeds, model.latent_dim)
        if latents.shape != expected.shape or not np.array_equal(latents, expected):
            got_first = next(
                (s for s in owner if np.array_equal(latents[:1], seeded_latents([s], 100))), None
            )
            if got_first is not None and got_first != seeds[0]:
                duplicate += 1
            wrong += 1
            examples.append(f"client {client} call {i}: latents differ")
            continue
        ref = model.render(expected)
        diff = int(np.abs(ref.astype(np.int16) - pixels.astype(np.int16)).max())
        if diff > 1:
            wrong += 1
            examples.append(f"client {client} call {i}: pixels differ by {diff}")
    return wrong, duplicate, examples[:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60, help="calls per client")
    parser.add_argument("--rows", type=int, default=4, help="seeds per call: 1..rows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=400.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from latentedit.workers.models.registry import get_spec
    from latentedit.workers.models.runtime import load_model

    model = load_model(get_spec(MODEL))
    plans = {c: plan(c, args.requests, args.rows) for c in range(args.clients)}
    total = args.clients * args.requests
    tally = Tally()
    probes: list[tuple[float, float, bool]] = []
    struck: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as logs:
        config = StackConfig(
            workers=args.workers, port=0, models=[MODEL], log_dir=os.path.join(logs, "stack")
        )
        with Stack(config) as stack:
            stop = threading.Event()
            prober = threading.Thread(target=probe, args=(stack.target, stop, probes), daemon=True)
            threads = [
                threading.Thread(
                    target=run_client, args=(stack.target, c, plans[c], tally), daemon=True
                )
                for c in plans
            ]
            began = time.monotonic()
            prober.start()
            for t in threads:
                t.start()
            for fault, share in zip(FAULTS, AT_SHARE, strict=True):
                while tally.done < share * total and any(t.is_alive() for t in threads):
                    if time.monotonic() - began > args.max_seconds:
                        raise TimeoutError(f"soak not done within {args.max_seconds}s")
                    time.sleep(0.02)
                log.info("fault: %s (%d/%d calls answered)", fault, tally.done, total)
                struck.append((fault, time.monotonic()))
                strike(stack, fault)
            for t in threads:
                t.join(max(args.max_seconds - (time.monotonic() - began), 1))
            stop.set()
            prober.join(5)
            if any(t.is_alive() for t in threads):
                raise TimeoutError(f"soak not done within {args.max_seconds}s")
            seconds = time.monotonic() - began
    wrong, duplicate, examples = check(tally, plans, model)
    recovery = {}
    for n, (fault, at) in enumerate(struck):
        after = [end for start, end, ok in probes if ok and start >= at]
        recovery[f"{n + 1}. {fault}"] = round(min(after) - at, 2) if after else None
    deadline = sum(s >= 0.9 * TIMEOUT_S for s in tally.seconds)
    figures = {
        "calls": total,
        "answered": len(tally.replies),
        "lost": len(tally.errors),
        "wrong": wrong,
        "duplicate": duplicate,
        "deadline": deadline,
        "max_call_seconds": round(max(tally.seconds), 2),
        "p50_call_seconds": round(float(np.median(tally.seconds)), 3),
        "recovery_seconds": recovery,
        "seconds": round(seconds, 1),
        "errors": sorted(set(tally.errors.values()))[:5],
        "wrong_examples": examples,
    }
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]soak[/bold]: {total} calls, {args.clients} clients, {args.workers} workers, "
        f"{seconds:.0f} s -> lost {figures['lost']}, wrong {wrong}, duplicate {duplicate}, "
        f"deadline {deadline}, max call {figures['max_call_seconds']} s"
    )
    for name, value in recovery.items():
        console.print(f"  recovery after {name}: {value} s")
    print(json.dumps(figures, sort_keys=True))
    if figures["lost"] or wrong or duplicate or deadline:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
