"""The interface between the learned-direction trainers and the job runner.

``workers/training_jobs.py`` (with ``workers/trainers.py``) drives a :class:`Trainer` made by
``make_trainer(model, method, params, seed)`` (see :mod:`latentedit.workers.learned`):
it calls :meth:`Trainer.train_step` ``total_steps - step`` times, streams each returned
dict as progress, checkpoints :meth:`Trainer.state_dict` with ``torch.save`` (loadable with
``torch.load(..., weights_only=True)``) and finally stores :meth:`Trainer.result`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

#: The learned methods ``make_trainer`` accepts.
METHODS: tuple[str, ...] = ("linear", "warped", "curvilinear")


@runtime_checkable
class DirectionSet(Protocol):
    """K learned directions in a model's latent space (linear or not), applied batched.

    ``method``: "linear" | "warped" | "curvilinear"; ``num_directions``: K; ``latent_dim``: d.
    """

    method: str
    num_directions: int
    latent_dim: int

    def apply(self, z: Tensor, ks: Tensor, ts: Tensor) -> Tensor:
        """z (N, d), ks (N, E) int64 direction indices, ts (N, E) shifts -> edited z (N, d).

        Row n applies its E edits (k, t) together; t = 0 is a no-op. Linear and curvilinear
        sets commute (curvilinear adds the shifts in f-space before one inverse); warped
        applies the edits one after another in column order.
        """
        ...

    def tangent(self, z: Tensor, k: int) -> Tensor:
        """Unit tangent (N, d) of direction k's path at each row of z (N, d)."""
        ...

    def to_bytes(self) -> bytes:
        """The set's parameters as a safetensors blob (tensors + string metadata)."""
        ...


class Trainer(Protocol):
    total_steps: int
    step: int  # steps done so far (0 .. total_steps)

    def train_step(self) -> dict[str, float]:
        """One optimisation step; loss terms and metrics, e.g. {"loss", "ce", "mae",
        "logdet", "accuracy", "step", "seconds"}. Before the first step it may return
        {"preparing": 1, ...} without stepping (a start computed in slices)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: tensors and python scalars/strings only."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def result(self) -> DirectionSet:
        """The learned direction set (valid at any step; final after total_steps)."""
        ...
