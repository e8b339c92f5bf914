"""client/sync_client.py is what scripts/gen_sync_client.py generates from the async client."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sync_client_is_generated_from_the_async_one() -> None:
    pytest.importorskip("unasync")
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts/gen_sync_client.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = gen.render()
    assert "async def" not in expected and "await " not in expected
    assert (ROOT / "client/sync_client.py").read_text() == expected, (
        "client/sync_client.py is stale: run `make sync-client`"
    )
