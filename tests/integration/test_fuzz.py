"""Hypothesis fuzz of every RPC's fields against a real private stack (bench/fuzz.py's
strategies, fewer examples): no INTERNAL or UNKNOWN, nothing dies, and a normal call works
afterwards. ``make fuzz`` runs >= 10,000 such calls."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from latentedit.deploy.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_PER_RPC = 120


def _fuzz_module():  # type: ignore[no-untyped-def]
    if str(ROOT / "bench") not in sys.path:  # its sibling fuzz_requests.py, as when run
        sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("latentedit_fuzz", ROOT / "bench/fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fuzz_every_rpc(make_stack: Callable[..., Stack]) -> None:
    fuzz = _fuzz_module()
    stack = make_stack()
    tally = fuzz.run(stack.target, EXAMPLES_PER_RPC, timeout=3.0, derandomize=True)
    rpcs = {m.name for m in fuzz.SERVICE.methods}
    assert set(tally.per_rpc) == rpcs
    assert all(sum(c.values()) >= EXAMPLES_PER_RPC // 2 for c in tally.per_rpc.values())
    assert tally.codes["INTERNAL"] + tally.codes["UNKNOWN"] == 0, "\n".join(tally.bad)
    assert tally.codes["INVALID_ARGUMENT"] > 0 and tally.codes["OK"] > 0  # it reached both
    procs = [stack.redis, stack.gateway, *stack.workers]
    assert all(p is not None and p.poll() is None for p in procs)
    assert fuzz.normal_call_works(stack.target)
