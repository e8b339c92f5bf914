"""The blocking SDK (sync_client.py, sync_jobs.py) is what scripts/gen_sync_client.py generates
from the asyncio one."""

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
    assert len(gen.FILES) == 2
    for source, target, header in gen.FILES:
        expected = gen.render(source, target, header)
        for word in ("async def", "async for", "await ", "asyncio"):
            assert word not in expected, (target.name, word)
        assert target.read_text() == expected, f"{target.name} is stale: run `make sync-client`"
