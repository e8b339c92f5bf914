"""Workers cache directions, but an overwritten or deleted direction is never served stale.

A private stack with two workers, so the edits land on either worker's cache while the
overwrite may be handled by the other one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from latentedit.client import Client, NotFound
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"
EDITS = 8  # per phase, enough for both workers to serve some


def test_overwrite_and_delete_are_seen_by_every_worker(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(workers=2)
    rng = np.random.default_rng(9)
    v1, v2 = rng.standard_normal((2, 100))
    with Client(stack.target, timeout=60) as c:
        z = c.generate(MODEL, seeds=[5, 6]).latents.astype(np.float64)
        first = c.put_direction(MODEL, "cache_x", v1)
        n1 = first.vector.astype(np.float64)
        for _ in range(EDITS):  # fills the caches
            out = c.edit(MODEL, z, {"cache_x": 2.0})
            np.testing.assert_allclose(out.latents[:, 0], z + 2.0 * n1, atol=1e-5)
            assert out.directions[0].version == first.version

        second = c.put_direction(MODEL, "cache_x", v2)
        assert second.version > first.version
        n2 = second.vector.astype(np.float64)
        assert abs(float(n1 @ n2)) < 0.5
        for _ in range(EDITS):
            out = c.edit(MODEL, z, {"cache_x": 2.0})
            np.testing.assert_allclose(out.latents[:, 0], z + 2.0 * n2, atol=1e-5)
            assert out.directions[0].version == second.version
            cond = c.conditional_edit(MODEL, z, "cache_x", strength=2.0)
            np.testing.assert_allclose(cond.projected_direction, n2, atol=1e-6)

        assert c.delete_direction(f"{MODEL}/cache_x") is True
        for _ in range(EDITS):
            with pytest.raises(NotFound, match="cache_x"):
                c.edit(MODEL, z, {"cache_x": 2.0})

        # Re-created under the same name: a new version, the new vector.
        third = c.put_direction(MODEL, "cache_x", v1)
        assert third.version > second.version
        for _ in range(EDITS):
            out = c.edit(MODEL, z, {"cache_x": 2.0})
            np.testing.assert_allclose(out.latents[:, 0], z + 2.0 * n1, atol=1e-5)
