"""Malformed calls to every LatentEditor RPC; prints the gRPC status histogram.

    .venv/bin/python bench/fuzz.py [--calls 10000] [--target host:port] [--call-timeout 3]

Without ``--target`` it starts a private stack (redis-server, gateway, one worker). Requests
are drawn by hypothesis from the RPC's protobuf descriptor, field by field: random bytes
instead of a message, wrong and overflowing tensor shapes and counts, unknown dtypes and
enum values, long and odd strings (16 KB names), NaN / inf / extreme numbers, bad images
(garbage, truncated, trailing bytes, decompression-bomb headers, RAW size mismatches),
extras with wrong residual shapes, mixed with valid values so that checks deeper than the
first field are reached too. Every call has a deadline. Done when: no INTERNAL or UNKNOWN,
no process died, every call returned, and a normal Generate works afterwards.

The requests come from ``fuzz_requests.py``; ``tests/integration/test_fuzz.py`` runs
:func:`run` with a few hundred examples per RPC.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from fuzz_requests import message, mutated, prepare, templates
from google.protobuf import descriptor as _d
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from latentedit.v1 import latentedit_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"]
SHOW: set[str] = set()
BAD = {"INTERNAL", "UNKNOWN"}  # statuses whose calls are printed (--show adds more)

# ---- calls -------------------------------------------------------------------------------


@dataclass
class Tally:
    codes: Counter[str] = field(default_factory=Counter)
    per_rpc: dict[str, Counter[str]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # first offending calls, for the report
    shown: list[str] = field(default_factory=list)  # first calls with a --show status
    slowest_s: float = 0.0

    def add(self, rpc: str, code: str, details: str, payload: str, seconds: float) -> None:
        self.codes[code] += 1
        self.per_rpc.setdefault(rpc, Counter())[code] += 1
        self.slowest_s = max(self.slowest_s, seconds)
        line = f"{rpc} -> {code}: {details[:300]!r} for {payload[:500]}"
        if code in BAD and len(self.bad) < 20:
            self.bad.append(line)
        elif code in SHOW and len(self.shown) < 20:
            self.shown.append(line)

    @property
    def total(self) -> int:
        return sum(self.codes.values())


def call(
    channel: grpc.Channel, method: _d.MethodDescriptor, body: bytes, timeout: float
) -> tuple[str, str]:
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path)(body, timeout=timeout):
                pass
        else:
            channel.unary_unary(path)(body, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""  # type: ignore[attr-defined]
    return "OK", ""


def fuzz_rpc(
    channel: grpc.Channel,
    method: _d.MethodDescriptor,
    examples: int,
    timeout: float,
    tally: Tally,
    derandomize: bool = False,
) -> None:
    """``examples`` hypothesis-drawn malformed calls of one RPC, added to ``tally``."""
    template = templates()[method.name]
    payloads = st.one_of(
        st.binary(max_size=512).map(lambda b: ("bytes", b)),
        message(method.input_type).map(lambda m: ("message", m)),
        mutated(template).map(lambda m: ("message", m)),
        mutated(template).map(lambda m: ("message", m)),
        mutated(template).map(lambda m: ("message", m)),
        mutated(template).map(lambda m: ("message", m)),
    )

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=derandomize,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads)
    def one(payload: tuple[str, Any]) -> None:
        kind, value = payload
        body = value if kind == "bytes" else value.SerializeToString()
        start = time.perf_counter()
        code, details = call(channel, method, body, timeout)
        shown = repr(body[:200]) if kind == "bytes" else str(value)[:500]
        tally.add(method.name, code, details, shown, time.perf_counter() - start)

    one()


def run(
    target: str, examples_per_rpc: int, timeout: float = 3.0, derandomize: bool = False
) -> Tally:
    tally = Tally()
    opts = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ]
    prepare(target)
    with grpc.insecure_channel(target, options=opts) as channel:
        for method in SERVICE.methods:
            fuzz_rpc(channel, method, examples_per_rpc, timeout, tally, derandomize)
    return tally


def normal_call_works(target: str) -> bool:
    from latentedit.client import Client

    with Client(target, timeout=60) as c:
        return c.generate("shapes", seeds=[1]).latents.shape == (1, 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--target", default="", help="a running gateway; default: a private stack")
    parser.add_argument("--call-timeout", type=float, default=3.0)
    parser.add_argument("--show", default="", help="also print calls with these statuses (a,b)")
    args = parser.parse_args(argv)
    SHOW.update(c for c in args.show.split(",") if c)
    logging.basicConfig(level=logging.WARNING)
    from latentedit.deploy.stack import Stack, StackConfig

    stack = None
    target = args.target
    if not target:
        stack = Stack(StackConfig(port=0, workers=1, log_dir=tempfile.mkdtemp(prefix="fuzz-logs-")))
        stack.start(timeout=180)
        target = stack.target
    try:
        start = time.perf_counter()
        tally = Tally()
        per_rpc = -(-args.calls // len(SERVICE.methods))
        while tally.total < args.calls:
            part = run(target, per_rpc, args.call_timeout)
            for rpc, counts in part.per_rpc.items():
                tally.per_rpc.setdefault(rpc, Counter()).update(counts)
            tally.codes.update(part.codes)
            tally.bad.extend(part.bad[: 20 - len(tally.bad)])
            tally.shown.extend(part.shown[: 20 - len(tally.shown)])
            tally.slowest_s = max(tally.slowest_s, part.slowest_s)
        seconds = time.perf_counter() - start
        alive = True
        if stack is not None:
            procs = [stack.redis, stack.gateway, *stack.workers]
            alive = all(p is not None and p.poll() is None for p in procs)
        ok_after = normal_call_works(target)
    finally:
        if stack is not None:
            stack.stop()
    print(f"{tally.total} malformed calls in {seconds:.0f} s; slowest {tally.slowest_s:.2f} s")
    for rpc, counts in sorted(tally.per_rpc.items()):
        print(f"  {rpc:20s} " + "  ".join(f"{c}={n}" for c, n in counts.most_common()))
    print("total: " + "  ".join(f"{c}={n}" for c, n in tally.codes.most_common()))
    for line in tally.shown:
        print("SHOW", line)
    for line in tally.bad:
        print("BAD", line)
    internal = sum(tally.codes[c] for c in ("INTERNAL", "UNKNOWN"))
    print(f"INTERNAL/UNKNOWN: {internal}; processes alive: {alive}; normal call after: {ok_after}")
    print(
        json.dumps(
            {
                "calls": tally.total,
                "seconds": round(seconds, 1),
                "codes": dict(tally.codes),
                "internal_or_unknown": internal,
                "processes_alive": alive,
                "normal_call_after": ok_after,
                "slowest_call_s": round(tally.slowest_s, 2),
            }
        )
    )
    return 0 if internal == 0 and alive and ok_after else 1


if __name__ == "__main__":
    sys.exit(main())
