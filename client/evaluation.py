"""The Evaluate RPC's result in the SDK: the curvilinear-editing paper's measures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from latentedit.codec import from_tensor, to_pil
from latentedit.v1 import latentedit_pb2 as pb


@dataclass(frozen=True)
class Evaluation:
    """Measures of D directions against S scorers (differences in % of attribute range)."""

    model_version: str
    directions: list[str]
    scorers: list[str]
    ranges: np.ndarray  # (S,) attribute ranges
    exact_ranges: bool
    targets: list[int]  # (D,) index of each direction's target scorer
    change: np.ndarray  # (D, S) mean |change| of one edit, % range
    side_effect: np.ndarray  # (D, S) % of the target's change
    commutativity: np.ndarray  # (D, D) |s(B(A z)) - s(A(B z))|, % range
    reversibility: np.ndarray  # (D,) ||A_-t(A_t z) - z|| / ||z||
    identity: np.ndarray  # (D,) attribute change of +t then -t, % range
    alignment: np.ndarray  # (D,) share of the largest attribute change
    image_change: np.ndarray  # (D,) RMS pixel change
    summary: dict[str, float]
    worst_pair: tuple[int, int]
    pair_images: list[list[Image.Image]]  # rows of [z, A, A->B, B->A, B]
    samples: int
    strength: float


def evaluation(r: pb.EvaluateResponse) -> Evaluation:
    flat = [to_pil(i) for i in r.pair_images]
    pair = (int(r.worst_pair[0]), int(r.worst_pair[1])) if len(r.worst_pair) == 2 else (0, 1)
    return Evaluation(
        r.model_version,
        list(r.directions),
        list(r.scorers),
        from_tensor(r.ranges),
        r.exact_ranges,
        list(r.targets),
        from_tensor(r.change),
        from_tensor(r.side_effect),
        from_tensor(r.commutativity),
        from_tensor(r.reversibility),
        from_tensor(r.identity),
        from_tensor(r.alignment),
        from_tensor(r.image_change),
        dict(r.summary),
        pair,
        [flat[i : i + 5] for i in range(0, len(flat), 5)],
        r.samples,
        r.strength,
    )
