"""A real redis-server on an ephemeral port, in its own temp dir, for store tests; the
`shapes` model for the learned-direction tests; a small seeded StyleGAN2 for W / W+ ones."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import torch
from redis.asyncio import Redis

from latentedit.workers.models.registry import ModelSpec, get_spec
from latentedit.workers.models.runtime import LoadedModel, load_model
from latentedit.workers.models.stylegan2_ckpt import from_rosinality
from latentedit.workers.models.stylegan2_write import random_rosinality_state


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not on PATH (make test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def shapes() -> Iterator[LoadedModel]:
    """The ``shapes`` testbed on the CPU, with one torch thread for the module (as in a
    worker's training thread; tiny tensors run far faster so on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(get_spec("shapes"), "cpu")
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_stylegan2() -> LoadedModel:
    """A seeded random StyleGAN2 "sg": 32 px, z / w 32, 2 mapping layers, narrow widths."""
    state, w_avg = random_rosinality_state(32, 32, 2, widths={4: 32, 8: 32, 16: 16, 32: 16}, seed=7)
    gen = from_rosinality(state, w_avg).eval().requires_grad_(False)
    spec = ModelSpec(name="sg", architecture="stylegan2", path="seeded.pt", resolution=32)
    return LoadedModel(spec, gen, "test", torch.device("cpu"), torch.float32, 64)


@pytest.fixture(scope="module")
def photos32() -> torch.Tensor:
    """The first two real photos of tests/data/faces at 32 px, (2, 3, 32, 32) in [-1, 1]
    (what the small StyleGAN2 cannot make)."""
    import numpy as np
    from PIL import Image

    from latentedit.workers.methods.preprocess import preprocess
    from latentedit.workers.models.runtime import from_uint8

    files = sorted((Path(__file__).resolve().parents[2] / "data" / "faces").glob("*.png"))[:2]
    pixels = [preprocess(np.asarray(Image.open(f).convert("RGB")), 32)[0] for f in files]
    return from_uint8(np.stack(pixels), "cpu")
