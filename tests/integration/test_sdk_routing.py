"""Client-side round robin over several gateway addresses, and retries past a dead one."""

from __future__ import annotations

import numpy as np
import pytest

from latentedit.client import Client, Unavailable
from latentedit.deploy.stack import Stack, free_port

MODEL = "dcgan-faces"


def test_round_robin_over_two_addresses(stack: Stack) -> None:
    with Client(f"{stack.target},{stack.target}", timeout=60) as c:
        assert c.targets == [stack.target, stack.target]
        results = [c.generate(MODEL, seeds=[3]) for _ in range(4)]
        assert MODEL in {m.name for m in c.models()}
    for r in results[1:]:
        np.testing.assert_array_equal(r.latents, results[0].latents)


def test_dead_address_first_is_retried_for_idempotent_calls(stack: Stack) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with Client(stack.target, timeout=60) as good:
        expected = good.generate(MODEL, seeds=[12])
        direction = good.put_direction(MODEL, "routing_dir", np.ones(100))
    with Client(f"{dead},{stack.target}", timeout=60, retries=3) as c:
        # Every call starts on the next address; those starting on the dead one retry.
        for _ in range(3):
            assert MODEL in {m.name for m in c.models()}
            got = c.generate(MODEL, seeds=[12])
            np.testing.assert_array_equal(got.latents, expected.latents)
            assert c.get_direction(direction.id).version == direction.version
            assert "routing_dir" in {d.name for d in c.directions(MODEL)}


def test_only_dead_addresses_is_unavailable() -> None:
    dead = f"127.0.0.1:{free_port()}"
    with Client(dead, timeout=20, retries=2) as c, pytest.raises(Unavailable):
        c.models()
    with Client(dead, timeout=20) as c, pytest.raises(Unavailable):
        c.discover(MODEL, "sefa", top_k=1)  # not idempotent: not retried, still UNAVAILABLE
