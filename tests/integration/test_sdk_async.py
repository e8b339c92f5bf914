"""AsyncClient: the same calls as Client, awaited, against the shared stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from latentedit.client import AsyncClient, Client, InvalidArgument, NotFound
from latentedit.deploy.stack import Stack

MODEL = "dcgan-faces"


def pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


async def test_async_client_basic_calls(stack: Stack, client: Client, tmp_path: Path) -> None:
    sync_faces = client.generate(MODEL, seeds=[61, 62])
    async with AsyncClient(stack.target, timeout=120) as ac:
        models = await ac.models()
        assert any(m.name == MODEL and m.latent_dim == 100 for m in models)

        faces = await ac.generate(MODEL, seeds=[61, 62])
        np.testing.assert_array_equal(faces.latents, sync_faces.latents)
        np.testing.assert_array_equal(pixels(faces.images), pixels(sync_faces.images))
        again = await ac.generate(MODEL, latents=faces.latents, image_format="raw")
        np.testing.assert_array_equal(pixels(again.images), pixels(faces.images))

        found = await ac.discover(MODEL, "sefa", top_k=3, name_prefix="async_sefa")
        assert [d.name for d in found] == ["async_sefa_00", "async_sefa_01", "async_sefa_02"]
        listed = {d.name for d in await ac.directions(MODEL)}
        assert {d.name for d in found} <= listed
        got = await ac.get_direction(found[0].id)
        np.testing.assert_array_equal(got.vector, found[0].vector)

        n = found[0].vector.astype(np.float64)
        edited = await ac.edit(MODEL, faces.latents, {found[0].name: 2.0}, sweep=(3, -1, 1))
        assert edited.latents.shape == (2, 3, 100)
        np.testing.assert_allclose(edited.latents[:, 2], faces.latents + 2.0 * n, atol=1e-5)

        cond = await ac.conditional_edit(
            MODEL, faces.latents, found[0].name, [found[1].name], strength=2.0
        )
        assert np.all(np.abs(cond.condition_cosines) <= 1e-5)

        put = await ac.put_direction(MODEL, "async_put", np.arange(100.0) - 50)
        assert abs(np.linalg.norm(put.vector) - 1) < 1e-6
        path = tmp_path / "async.npy"
        exported = await ac.export_direction(put.id, str(path))
        imported = await ac.import_direction(MODEL, "async_put2", str(path))
        np.testing.assert_allclose(imported.vector, exported.vector, atol=1e-7)
        assert await ac.delete_direction(put.id) is True
        assert await ac.delete_direction(put.id) is False
        with pytest.raises(NotFound, match="async_put"):
            await ac.get_direction(put.id)
        with pytest.raises(InvalidArgument, match="latents"):
            await ac.generate(MODEL, latents=np.zeros((1, 99), np.float32))

        inv = await ac.invert(MODEL, faces.images[:1], steps=60, restarts=2)
        assert inv.latents.shape == (1, 100) and inv.steps == 60
        assert float(inv.psnr[0]) > 15

        # Concurrent calls on one client.
        many = await asyncio.gather(*(ac.generate(MODEL, seeds=[s]) for s in (61, 62, 63)))
        np.testing.assert_array_equal(many[0].latents[0], sync_faces.latents[0])
        np.testing.assert_array_equal(many[1].latents[0], sync_faces.latents[1])
