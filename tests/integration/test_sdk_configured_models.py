"""Models the operator configures (--model NAME=ARCH:PATH) serve through the SDK.

A DCGAN with other key names and another latent size, and a small seeded StyleGAN2
(rosinality .pt and the same weights as an NVIDIA .pkl), on a private stack; images
through the service equal the in-process render of the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentedit.client import Client
from latentedit.deploy.stack import Stack
from latentedit.workers.latent_math import seeded_latents
from latentedit.workers.models.dcgan import random_dcgan_state
from latentedit.workers.models.registry import build_registry
from latentedit.workers.models.runtime import load_model
from latentedit.workers.models.stylegan2_write import (
    random_rosinality_state,
    write_nvidia_pickle,
    write_rosinality,
)

WIDTHS = {4: 64, 8: 64, 16: 32, 32: 32}


def pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    state = random_dcgan_state(latent_dim=64, widths=(128, 64, 32), seed=5)  # 32 px, ngf 32
    renamed = {f"net.l{i}.{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(state.items())}
    torch.save({"netG_state_dict": renamed, "epoch": 9}, tmp_path / "small-dcgan.pt")
    grey = random_dcgan_state(latent_dim=100, widths=(128, 64, 32), channels=1, seed=6)
    torch.save(grey, tmp_path / "grey-dcgan.pt")  # an MNIST-style 1-channel generator
    sg, w_avg = random_rosinality_state(32, 64, 2, widths=WIDTHS, seed=11)
    return {
        "small": tmp_path / "small-dcgan.pt",
        "grey": tmp_path / "grey-dcgan.pt",
        "sg": write_rosinality(tmp_path / "sg.pt", sg, w_avg),
        "sgnv": write_nvidia_pickle(tmp_path / "sg.pkl", sg, w_avg),
    }


def test_configured_models_serve_through_the_sdk(
    make_stack: Callable[..., Stack], files: dict[str, Path]
) -> None:
    args = [
        f"--model=small=dcgan:{files['small']}",
        f"--model=grey=dcgan:{files['grey']}",
        f"--model=sg=stylegan2:{files['sg']}",
        f"--model=sgnv=stylegan2:{files['sgnv']}",
    ]
    stack = make_stack(models=["small", "grey", "sg", "sgnv"], extra_worker_args=args)
    registry = build_registry([a.removeprefix("--model=") for a in args], defaults=False)
    with Client(stack.target, timeout=120) as client:
        infos = {m.name: m for m in client.models()}
        assert set(infos) == {"small", "grey", "sg", "sgnv"}
        small, sg = infos["small"], infos["sg"]
        assert (small.architecture, small.resolution, small.latent_dim) == ("dcgan", 32, 64)
        assert small.spaces == ["z"] and small.num_ws == 0 and small.feature_shape == (128, 4, 4)
        assert (sg.architecture, sg.resolution, sg.latent_dim, sg.w_dim) == (
            "stylegan2",
            32,
            64,
            64,
        )
        assert sg.spaces == ["z", "w", "w+"] and sg.num_ws == 8 and sg.default_space == "w"
        assert sg.sefa_layers[0] == "conv1" and len(sg.sefa_layers) == 7
        assert "sefa" in sg.discover_methods and sg.bytes_per_image > 0
        assert len(sg.sha256) == 64 and sg.version == sg.sha256[:16]
        assert infos["sgnv"].sha256 != sg.sha256  # another file, the same weights

        seeds = [1, 2, 3]
        for name in ("small", "grey", "sg", "sgnv"):
            out = client.generate(name, seeds)
            assert out.model_version == infos[name].version
            got = pixels(out.images)
            assert got.shape == (3, 32, 32, 3) and got.std() > 2
            local = load_model(registry[name])
            want = local.render(seeded_latents(seeds, local.latent_dim))
            np.testing.assert_array_equal(got, want)
        a = pixels(client.generate("sg", seeds).images)
        b = pixels(client.generate("sgnv", seeds).images)
        np.testing.assert_array_equal(a, b)  # rosinality .pt == NVIDIA .pkl
        # the grey model: RGB images with R = G = B, and it inverts its own images
        assert infos["grey"].channels == 1
        made = client.generate("grey", [4, 5])
        assert (pixels(made.images) == pixels(made.images)[..., :1]).all()
        inv = client.invert("grey", made.images, steps=100)
        assert inv.psnr.min() >= 30, inv.psnr
