"""W / W+ inversion jobs in-process (workers/style_inverter.py): one bad job fails alone; in
the worker's inversion session they run step by step."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from latentedit.codec import encode_image, from_tensor
from latentedit.errors import InvalidArgument
from latentedit.v1 import jobs_pb2
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.inverter import edit_directions
from latentedit.workers.methods.inversion.session import Session
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.registry import ModelSpec, parse_model_arg
from latentedit.workers.models.runtime import LoadedModel, load_model
from latentedit.workers.models.stylegan2 import StyleGAN2Generator
from latentedit.workers.models.stylegan2_write import random_rosinality_state, write_rosinality
from latentedit.workers.spaces import render_codes, seeded_codes
from latentedit.workers.style_inverter import run_style_inversions


async def test_an_image_that_does_not_decode_fails_its_own_job_only(tmp_path: Path) -> None:
    widths = {4: 32, 8: 32, 16: 16, 32: 16}
    state, w_avg = random_rosinality_state(32, 32, 2, widths=widths, seed=7)
    model = load_model(
        parse_model_arg(f"sg=stylegan2:{write_rosinality(tmp_path / 'g.pt', state, w_avg)}")
    )
    w = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    png = encode_image(render_codes(model, w, "w")[0], pb.IMAGE_FORMAT_PNG)
    truncated = pb.Image(format=pb.IMAGE_FORMAT_PNG, data=png.data[: len(png.data) // 2])

    def job(job_id: str, image: pb.Image) -> jobs_pb2.Job:
        req = pb.InvertRequest(model="sg", images=[image], space="w", steps=20)
        return jobs_pb2.Job(id=job_id, invert=req)

    bad, good = await run_style_inversions(
        model, [job("bad", truncated), job("good", png)], Limits()
    )
    assert isinstance(bad, InvalidArgument) and "truncated" in bad.message, bad
    assert isinstance(good, jobs_pb2.JobResult) and len(good.invert.psnr) == 1
    assert good.invert.psnr[0] > 15


async def test_in_a_session_the_projection_runs_step_by_step_with_the_same_result(
    tmp_path: Path,
) -> None:
    """The worker runs w / w+ projections as cohorts of its inversion session (one round per
    Adam step, on its compute thread); the codes are those of the plain call."""
    widths = {4: 32, 8: 32, 16: 16, 32: 16}
    state, w_avg = random_rosinality_state(32, 32, 2, widths=widths, seed=3)
    ckpt = write_rosinality(tmp_path / "g.pt", state, w_avg)
    model = load_model(parse_model_arg(f"sg=stylegan2:{ckpt}"))
    wp = np.random.default_rng(1).standard_normal((1, model.info.num_ws, 32)).astype(np.float32)
    png = encode_image(render_codes(model, wp, "w+")[0], pb.IMAGE_FORMAT_PNG)
    req = pb.InvertRequest(model="sg", images=[png], space="w+", steps=12)
    plain = (await run_style_inversions(model, [jobs_pb2.Job(id="a", invert=req)], Limits()))[0]
    session = Session("sg/w+", executor=ThreadPoolExecutor(1))
    (stepped,) = await run_style_inversions(
        model, [jobs_pb2.Job(id="b", invert=req)], Limits(), session=lambda space: session
    )
    assert isinstance(plain, jobs_pb2.JobResult) and isinstance(stepped, jobs_pb2.JobResult)
    assert session.rounds == 12 + 1  # one round per step, one more to hand the result back
    np.testing.assert_allclose(
        from_tensor(stepped.invert.latents), from_tensor(plain.invert.latents), atol=1e-5
    )


async def test_target_psnr_ends_a_w_projection_early_and_edit_error_is_reported(
    tmp_path: Path,
) -> None:
    state, w_avg = random_rosinality_state(32, 32, 2, widths={4: 32, 8: 32, 16: 16, 32: 16})
    model = load_model(
        parse_model_arg(f"sg=stylegan2:{write_rosinality(tmp_path / 'g.pt', state, w_avg)}")
    )
    z = np.random.default_rng(5).standard_normal((1, 32)).astype(np.float32)
    png = encode_image(
        render_codes(model, seeded_codes(model, z, "w"), "w")[0], pb.IMAGE_FORMAT_PNG
    )
    req = pb.InvertRequest(
        model="sg", images=[png], space="w", steps=300, target_psnr=30, report_edit_error=True
    )
    (res,) = await run_style_inversions(model, [jobs_pb2.Job(id="t", invert=req)], Limits())
    assert isinstance(res, jobs_pb2.JobResult), res
    assert res.invert.steps < 300 and res.invert.psnr[0] >= 30, res.invert
    assert list(res.invert.edit_error) == [0.0]  # a projection renders the base generator


def test_edit_directions_fit_each_space_of_a_style_generator_whose_z_and_w_differ() -> None:
    """SeFa factorises a style generator's W; its z (here 16-d, w 32-d) gets seeded random
    orthonormal directions, so z-space edit errors never meet a w-sized direction."""
    torch.manual_seed(0)
    gen = StyleGAN2Generator(32, z_dim=16, n_mlp=2, w_dim=32, widths={4: 32, 8: 32, 16: 16, 32: 16})
    for p in gen.parameters():
        torch.nn.init.normal_(p)
    spec = ModelSpec(name="zw", architecture="stylegan2", path="x", resolution=32)
    model = LoadedModel(
        spec, gen.eval().requires_grad_(False), "t", torch.device("cpu"), torch.float32, 8
    )
    z_dirs, w_dirs = edit_directions(model, "z"), edit_directions(model, "w+")
    assert z_dirs.shape == (5, 16) and w_dirs.shape == (5, 32)
    for d in (z_dirs, w_dirs):
        torch.testing.assert_close(d @ d.T, torch.eye(5), atol=1e-5, rtol=0)
    sefa_w, _ = sefa(model.sefa_weight().numpy(), 5)
    np.testing.assert_allclose(w_dirs.numpy(), sefa_w, atol=1e-6)
    assert edit_directions(model, "w") is w_dirs  # cached per model
