"""The worker side of the Evaluate RPC: stored directions -> the paper's measures."""

from __future__ import annotations

import asyncio

import numpy as np
import torch

from latentedit import validate
from latentedit.codec import encode_image, to_tensor
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.discovery import ModelTools
from latentedit.workers.learned.editing import LearnedSets, is_learned
from latentedit.workers.learned.evaluation import exact_ranges
from latentedit.workers.learned.measures import (
    EditFn,
    Evaluation,
    combine,
    evaluate,
    linear_edit,
    set_edit,
)
from latentedit.workers.models.runtime import to_uint8


async def evaluate_request(
    tools: ModelTools,
    store: DirectionStore,
    sets: LearnedSets,
    req: pb.EvaluateRequest,
    limits: Limits,
) -> pb.EvaluateResponse:
    """Validate, look the directions up (learned ones through their sets), measure."""
    model = tools.model
    names, scorers, samples, strength, figure = validate.evaluate(
        req, sorted(tools.scorers), limits
    )
    dirs = await store.get_many(model.name, names)
    edits: list[tuple[EditFn, int]] = []
    for d in dirs:
        if is_learned(d.meta):
            dset, k = await sets.get(model.name, d.meta)
            edits.append((set_edit(dset, [k]), 0))
        else:
            edits.append((linear_edit(d.vector[None]), 0))
    edit = combine(edits)
    ranges = exact_ranges(tools, scorers)

    def run() -> tuple[Evaluation, list[pb.Image], tuple[int, int]]:
        ev = evaluate(
            names,
            edit,
            lambda z: tools.score_latents(z.float().numpy(), scorers),
            scorers,
            model.latent_dim,
            samples=samples,
            strength=strength,
            seed=req.seed,
            ranges=ranges,
            render=model.forward,
        )
        i, j = np.unravel_index(int(np.argmax(ev.commutativity)), ev.commutativity.shape)
        images: list[pb.Image] = []
        if figure:
            gen = torch.Generator().manual_seed(req.seed + 1)
            z = torch.randn(figure, model.latent_dim, generator=gen)
            a, b = edit(int(i), z, strength), edit(int(j), z, strength)
            codes = [z, a, edit(int(j), a, strength), edit(int(i), b, strength), b]
            with torch.no_grad():
                pix = np.stack([to_uint8(model.forward(c)) for c in codes], axis=1)  # (F, 5, ...)
            images = [encode_image(p, req.image_format) for p in pix.reshape(-1, *pix.shape[2:])]
        return ev, images, (int(i), int(j))

    ev, images, pair = await asyncio.to_thread(run)
    return pb.EvaluateResponse(
        model_version=model.version,
        directions=names,
        scorers=scorers,
        ranges=to_tensor(ev.ranges),
        exact_ranges=ranges is not None,
        targets=[int(t) for t in ev.targets],
        change=to_tensor(ev.change),
        side_effect=to_tensor(ev.side_effect),
        commutativity=to_tensor(ev.commutativity),
        reversibility=to_tensor(ev.reversibility),
        identity=to_tensor(ev.identity),
        alignment=to_tensor(ev.alignment),
        image_change=to_tensor(ev.image_change),
        summary=ev.summary(),
        worst_pair=list(pair),
        pair_images=images,
        samples=samples,
        strength=strength,
    )
