"""Throughput of a served model: the generator in-process vs through the service; batching on/off.

    .venv/bin/python bench/throughput.py [--model dcgan-faces] [--requests 20] [--clients 16]
        [--rows 4] [--rounds 3] [--worker-arg=--torch-threads=2 ...]
    .venv/bin/python bench/throughput.py --sweep 1,2,4,8,16,32,64   # batching on / off per
        concurrency (RAW images), then the usual rounds

``--model`` names any model the worker can serve (default ``dcgan-faces``); ``--worker-arg``
(repeatable) passes flags through to ``latentedit worker`` (e.g. an operator's model
definition; when one of them contains ``--model`` the bench does not add ``--models``);
``--worker-env KEY=VALUE`` (repeatable) sets a variable in the workers' environment only
(e.g. ``OMP_WAIT_POLICY=PASSIVE``; the in-process side keeps this process's).
``SERVED`` below is that model, ``d`` its latent size. ``--torch-threads N`` sets the generator's
intra-op threads in-process and in the workers alike (on a machine shared with other work, 1
avoids threads waiting on each other). Before the rounds, ``--latency-calls`` one-image Generate
calls, one at a time on the batching stack, give the p50 / p99 at concurrency 1.

Everything is measured in this one run, side by side, because the machine is shared and noisy:
read the ratios, not the absolute images/s.

1. in-process sweep: ``LoadedModel.render`` (latents (N, d) float32 -> uint8 (N, H, W, 3))
   of ``--images`` / 2 latents at render batch sizes 1, 8, 16, 32, 64, one pass each; the fastest
   batch size is used below as this machine's ceiling.
2. two stacks (private redis-server, gateway, one worker serving the model, port 0):
   batching on (max_batch 32 jobs, max_wait_ms 5: the defaults) and off (max_batch 1,
   max_wait_ms 0).
3. ``--rounds`` rounds, each measuring next to each other:
   a. in-process, columns "in-proc" .. "in-proc cpu": render at the chosen batch size (best of
      2 passes; images/s and CPU seconds per 100 images); "+png" = render then PNG encode,
      1 / (1/render + 1/encode), with the encode rate "png enc" of those images measured one at
      a time as the worker does (``codec.encode_image``); "per req" = render the first client's
      requests (1..``--rows`` latents) one at a time: what a worker without batching can do.
   b. three service loads: batching on with RAW images, off with RAW, on with PNG. In each,
      ``--clients`` threads, each with its own SDK ``Client`` (retries off), send one warm-up
      request, then together ``--requests`` Generate calls with latents of 1..``--rows`` rows
      (the same seeded sizes and latents in every load). Every reply must carry one image per
      row. images/s = images received between the start signal and the last reply.
4. ratios, per round, then the median, min and max over rounds: service RAW / in-process
   render, service PNG / in-process +png, PNG / RAW, batching on / off (RAW), service
   unbatched / in-process per request, in-process chosen batch / per request (the gain that
   batching can bring at most, to compare with on / off), and CPU seconds per image of the
   whole service (worker + gateway + redis + clients, batched RAW) / in-process render.

Per load it also prints p50/p95 request latency, the CPU seconds per 100 images spent by the
worker, gateway, redis-server and this process (the SDK clients), read from /proc, and the
worker's mean jobs per batch (its Prometheus batch histogram) and busy fraction (wall time
with at least one batch in progress, ``latentedit_worker_busy_seconds``). The clients,
gateway and worker share the machine's cores, so on a small machine service / in-process is
below 1 by construction; the CPU split says where the rest goes. When other processes load the
machine, wall-clock ratios between one process (in-process) and four (service) also measure
the CPU share the scheduler gives each side (per thread), so the CPU-per-image ratio is the
steadier figure of the service's overhead.

The in-process side lives in ``throughput_local.py``, the tables in ``throughput_report.py``.
The last line is one JSON object with every figure. Bounded: fixed request counts, a per-call
deadline (``--call-timeout``) and a per-load deadline (``--load-timeout``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from throughput_local import (
    BATCH_SIZES,
    SERVED,
    Local,
    in_process,
    latents,
    load_generator,
    request_plan,
    sweep,
)
from throughput_report import LOADS, RATIOS, print_report, print_sweep

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig, free_port

log = logging.getLogger("bench.throughput")


# ---- service ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 when /proc is unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> dict[str, float]:
    """The worker's batch histogram sums and counts from its /metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for name in ("batch_jobs_sum", "batch_jobs_count", "busy_seconds_total"):
        m = re.search(rf"^latentedit_worker_{name} (\S+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else float("nan")
    return out


@dataclass
class Service:
    """A running stack and where to read its worker's metrics."""

    label: str
    stack: Stack
    metrics_port: int

    def pids(self) -> dict[str, int]:
        s = self.stack
        assert s.gateway is not None and s.redis is not None
        return {
            "worker": s.workers[0].pid,
            "gateway": s.gateway.pid,
            "redis": s.redis.pid,
            "clients": os.getpid(),
        }


@dataclass
class Load:
    """What one concurrent load through the service measured."""

    label: str
    fmt: str
    images: int
    requests: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]  # process -> CPU seconds during the load
    jobs_per_batch: float
    worker_busy: float  # fraction of the wall time with at least one batch in progress

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000
        return {
            "images_per_s": self.images_per_s,
            "images": self.images,
            "requests": self.requests,
            "seconds": self.seconds,
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "cpu_s_per_100_images": {k: 100 * v / self.images for k, v in self.cpu.items()},
            "cpu_s_per_100_images_total": 100 * sum(self.cpu.values()) / self.images,
            "jobs_per_batch": self.jobs_per_batch,
            "worker_busy": self.worker_busy,
        }


def run_load(
    service: Service,
    fmt: str,
    clients: int,
    requests: int,
    rows: int,
    call_timeout: float,
    load_timeout: float,
) -> Load:
    """``clients`` threads x ``requests`` Generate calls, started together; bounded in time."""
    target = service.stack.target
    plans = [request_plan(i, requests, rows) for i in range(clients)]
    ready = threading.Barrier(clients + 1, timeout=load_timeout)
    go = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    received = [0] * clients
    errors: list[BaseException] = []

    def client_thread(i: int) -> None:
        try:
            with Client(target, timeout=call_timeout, retries=0) as client:
                client.generate(
                    SERVED.model, latents=plans[i][0], image_format=fmt
                )  # connect, warm up
                ready.wait()
                if not go.wait(load_timeout):
                    return
                for z in plans[i]:
                    start = time.perf_counter()
                    result = client.generate(SERVED.model, latents=z, image_format=fmt)
                    latencies[i].append(time.perf_counter() - start)
                    if len(result.images) != len(z):
                        raise RuntimeError(f"{len(z)} latents sent, {len(result.images)} images")
                    received[i] += len(result.images)
        except BaseException as exc:
            errors.append(exc)
            ready.abort()

    threads = [
        threading.Thread(target=client_thread, args=(i,), daemon=True) for i in range(clients)
    ]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"{service.label}/{fmt}: warm-up failed: {errors[:1]!r}") from None
    pids = service.pids()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    m0 = scrape(service.metrics_port)
    start = time.perf_counter()
    go.set()
    deadline = start + load_timeout
    for t in threads:
        t.join(max(deadline - time.perf_counter(), 0))
    seconds = time.perf_counter() - start
    m1 = scrape(service.metrics_port)
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
    if any(t.is_alive() for t in threads):
        raise TimeoutError(f"{service.label}/{fmt}: load not done within {load_timeout}s")
    if errors:
        raise RuntimeError(f"{service.label}/{fmt}: a client failed") from errors[0]
    batches = m1["batch_jobs_count"] - m0["batch_jobs_count"]
    return Load(
        label=service.label,
        fmt=fmt,
        images=sum(received),
        requests=sum(len(x) for x in latencies),
        seconds=seconds,
        latencies=[x for per in latencies for x in per],
        cpu=cpu,
        jobs_per_batch=(m1["batch_jobs_sum"] - m0["batch_jobs_sum"]) / max(batches, 1),
        worker_busy=(m1["busy_seconds_total"] - m0["busy_seconds_total"]) / seconds,
    )


def start_service(
    label: str, max_batch: int, max_wait_ms: float, logs: str, exits: contextlib.ExitStack
) -> Service:
    metrics_port = free_port()
    config = StackConfig(
        workers=1,
        port=0,
        models=[] if any("--model" in a for a in SERVED.worker_args) else [SERVED.model],
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        log_dir=os.path.join(logs, label),
        extra_worker_args=["--metrics-port", str(metrics_port), *SERVED.worker_args],
        worker_env=SERVED.worker_env,
    )
    stack = exits.enter_context(Stack(config))
    return Service(label, stack, metrics_port)


# ---- report ----------------------------------------------------------------------------------


def ratios(local: Local, loads: dict[str, Load]) -> dict[str, float]:
    """The ratios of one round (measurements taken next to each other)."""
    on_raw, off_raw, on_png = (loads[k].images_per_s for k in LOADS)
    return {
        "service_raw_over_in_process": on_raw / local.images_per_s,
        "service_png_over_in_process": on_png / local.with_png,
        "png_over_raw": on_png / on_raw,
        "batching_on_over_off": on_raw / off_raw,
        "service_off_over_in_process_unbatched": off_raw / local.per_request_per_s,
        "in_process_batched_over_unbatched": local.images_per_s / local.per_request_per_s,
        "cpu_service_over_in_process": loads["on raw"].summary()["cpu_s_per_100_images_total"]
        / local.cpu_s_per_100_images,
    }


def concurrency_sweep(
    on: Service, off: Service, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Batching on / off (RAW) at each concurrency of ``--sweep``, side by side.

    ``--sweep-rounds`` rounds per concurrency, the order of on and off alternating between
    rounds (whichever runs second meets a warmer machine); medians over the rounds.
    """
    out = {}
    for clients in (int(c) for c in args.sweep.split(",")):
        requests = max(args.sweep_calls // clients, 2)
        rounds: list[dict[str, Load]] = []
        for r in range(args.sweep_rounds):
            order = (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on))
            rounds.append(
                {
                    label: run_load(
                        svc,
                        "raw",
                        clients,
                        requests,
                        args.rows,
                        args.call_timeout,
                        args.load_timeout,
                    )
                    for label, svc in order
                }
            )

        def median(
            f: Callable[[dict[str, Load]], float], rounds: list[dict[str, Load]] = rounds
        ) -> float:
            return float(np.median([f(x) for x in rounds]))

        out[str(clients)] = {
            "on_images_per_s": median(lambda x: x["on"].images_per_s),
            "off_images_per_s": median(lambda x: x["off"].images_per_s),
            "on_over_off": median(lambda x: x["on"].images_per_s / x["off"].images_per_s),
            "on_p50_ms": median(lambda x: x["on"].summary()["p50_ms"]),
            "off_p50_ms": median(lambda x: x["off"].summary()["p50_ms"]),
            "on_jobs_per_batch": median(lambda x: x["on"].jobs_per_batch),
            "on_busy": median(lambda x: x["on"].worker_busy),
        }
        log.info(
            "sweep %d clients: on/off %.2f (rounds: %s)",
            clients,
            out[str(clients)]["on_over_off"],
            " ".join(f"{x['on'].images_per_s / x['off'].images_per_s:.2f}" for x in rounds),
        )
    return out


def single_latency(service: Service, model: Any, calls: int) -> dict[str, float]:
    """One client, one image per Generate, one call at a time: p50/p99 ms. Then, apart (an
    in-process render beside each call would compete with the worker for the cores, torch's
    threads spinning after each render): ListModels (the round trip without a job) and
    ``model.render`` of one latent in this process (the generator's own share), p50 ms."""
    z = latents(1)
    with Client(service.stack.target, timeout=30, retries=0) as client:
        for seed in range(10):
            client.generate(SERVED.model, seeds=[seed], image_format="raw")  # warm up
        gen, listing, render = [], [], []
        for seed in range(calls):
            start = time.perf_counter()
            client.generate(SERVED.model, seeds=[seed], image_format="raw")
            gen.append(time.perf_counter() - start)
        for _ in range(calls):
            start = time.perf_counter()
            client.models()
            listing.append(time.perf_counter() - start)
    for _ in range(10):
        model.render(z)  # warm up
    for _ in range(calls):
        start = time.perf_counter()
        model.render(z)
        render.append(time.perf_counter() - start)
    ms = np.array(gen) * 1000
    return {
        "generate_p50_ms": float(np.percentile(ms, 50)),
        "generate_p99_ms": float(np.percentile(ms, 99)),
        "list_models_p50_ms": float(np.median(listing) * 1000),
        "in_process_render_p50_ms": float(np.median(render) * 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=20, help="timed requests per client")
    parser.add_argument("--clients", type=int, default=16, help="concurrent SDK clients")
    parser.add_argument("--rows", type=int, default=4, help="latents per request: 1..rows")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians (0: latency/sweep only)"
    )
    parser.add_argument("--images", type=int, default=256, help="in-process latents per pass")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="seconds per call")
    parser.add_argument("--load-timeout", type=float, default=300.0, help="seconds per load")
    parser.add_argument("--model", default=SERVED.model, help="the served model to bench")
    parser.add_argument(
        "--worker-arg", action="append", default=[], help="extra `latentedit worker` flag"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in the workers' environment only (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    parser.add_argument(
        "--sweep", default="", help="concurrencies for batching on / off, e.g. 1,2,4,8,16,32,64"
    )
    parser.add_argument("--sweep-calls", type=int, default=128, help="calls per sweep load")
    parser.add_argument(
        "--sweep-rounds", type=int, default=3, help="sweep rounds (order alternating); medians"
    )
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching on: gathering")
    parser.add_argument(
        "--latency-calls", type=int, default=200, help="one-image Generate calls, one at a time"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="in-process and workers (0: torch default)"
    )
    args = parser.parse_args()
    SERVED.model, SERVED.worker_args = args.model, list(args.worker_arg)
    for item in args.worker_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--worker-env takes KEY=VALUE, got {item!r}")
        SERVED.worker_env[key] = value
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
        SERVED.worker_args += ["--torch-threads", str(args.torch_threads)]
    if min(args.requests, args.clients, args.rows, args.images, args.rounds + 1) < 1:
        parser.error("--requests, --clients, --rows and --images must be >= 1, --rounds >= 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    began = time.perf_counter()

    model = load_generator()
    SERVED.dim = model.latent_dim
    rates = {1: 0.0}
    if args.rounds:
        log.info("in-process sweep over render batch sizes %s", BATCH_SIZES)
        rates = sweep(model, max(args.images // 2, *BATCH_SIZES))
    best_bs = max(rates, key=lambda b: rates[b])

    rounds: list[tuple[Local, dict[str, Load]]] = []
    load_args = (args.clients, args.requests, args.rows, args.call_timeout, args.load_timeout)
    with tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as exits:
        log.info("starting two stacks (batching on, batching off)")
        on = start_service("batching on", 32, args.max_wait_ms, logs, exits)
        off = start_service("batching off", 1, 0.0, logs, exits)
        services = {"on raw": (on, "raw"), "off raw": (off, "raw"), "on png": (on, "png")}
        latency = single_latency(on, model, args.latency_calls) if args.latency_calls else {}
        if latency:
            log.info("concurrency 1, one image: %s", latency)
        swept = concurrency_sweep(on, off, args) if args.sweep else {}
        for r in range(args.rounds):
            local = in_process(model, best_bs, args.images, args.rows)
            log.info("round %d: in-process %.1f images/s", r + 1, local.images_per_s)
            loads = {}
            for name in LOADS:
                loads[name] = run_load(*services[name], *load_args)
                log.info("round %d: %s %.1f images/s", r + 1, name, loads[name].images_per_s)
            rounds.append((local, loads))
        log.info("stopping the stacks")
    if not rounds:  # --rounds 0: only the latency and the sweep
        if swept:
            print_sweep(swept)
        print(json.dumps({"single_image_latency": latency, "sweep": swept}, sort_keys=True))
        return

    def median(values: list[float]) -> float:
        return float(np.median(values))

    per_round = [
        {
            "in_process": asdict(local) | {"with_png": local.with_png},
            "loads": {k.replace(" ", "_"): v.summary() for k, v in loads.items()},
            "ratios": ratios(local, loads),
        }
        for local, loads in rounds
    ]
    figures: dict[str, Any] = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "rows_max": args.rows,
        "in_process_sweep_images_per_s": {str(k): v for k, v in rates.items()},
        "in_process_batch": best_bs,
        "rounds": per_round,
        "median": {
            "in_process": median([x.images_per_s for x, _ in rounds]),
            "in_process_png": median([x.with_png for x, _ in rounds]),
            "in_process_per_request": median([x.per_request_per_s for x, _ in rounds]),
            **{
                k.replace(" ", "_"): median([loads[k].images_per_s for _, loads in rounds])
                for k in LOADS
            },
            **{f"ratio_{k}": median([r["ratios"][k] for r in per_round]) for k in RATIOS},
        },
        "bench_seconds": time.perf_counter() - began,
        "sweep": swept,
        "single_image_latency": latency,
    }
    print_report(args, rates, best_bs, rounds, figures)
    if swept:
        print_sweep(swept)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
