"""Blocking SDK client; its methods mirror AsyncClient one for one, both built on ClientBase."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import grpc

from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

from . import _wire as w
from ._base import ClientBase, Op, backoff_s, channel_options, to_error
from .types import (
    Analysis,
    ConditionallyEdited,
    Direction,
    Edited,
    Generated,
    Inverted,
    InvertProgress,
    ModelInfo,
    Scores,
)

T = TypeVar("T")


class Client(ClientBase):
    """Blocking client; a context manager that closes its channels.

    ``target`` is ``"host:port"`` or several, comma-separated (client-side round
    robin). ``timeout`` is the default deadline per call in seconds; each call
    may override it. Idempotent calls retry UNAVAILABLE ``retries`` times with
    jittered exponential backoff. Errors raise :mod:`latentedit.errors` classes.
    """

    def __init__(self, target: str | Sequence[str] = "127.0.0.1:50051", **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        opts = channel_options(self.max_message_bytes)
        self._channels = [grpc.insecure_channel(t, options=opts) for t in self.targets]
        self._stubs = [pb_grpc.LatentEditorStub(c) for c in self._channels]

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until every gateway channel is connected (UNAVAILABLE after ``timeout``)."""
        try:
            for channel in self._channels:
                grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            from latentedit.errors import Unavailable

            raise Unavailable(f"no gateway reachable at {self.targets} within {timeout}s") from None

    def _call(self, op: Op[T], timeout: float | None) -> T:
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            stub = self._stubs[next(self._next)]
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                return op.parse(getattr(stub, op.rpc)(op.request, timeout=remaining))
            except grpc.RpcError as exc:
                err = to_error(exc)
                if not self._should_retry(err, op, attempt):
                    raise err from None
            time.sleep(backoff_s(attempt))
            attempt += 1

    def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Models the pool serves now."""
        return self._call(self._op_models(), timeout)

    def generate(
        self,
        model: str,
        seeds: Sequence[int] | None = None,
        *,
        latents: Any = None,
        image_format: str = "png",
        timeout: float | None = None,
    ) -> Generated:
        """Render from seeds (one N(0, I) latent each) or from latents (N, d)."""
        return self._call(self._op_generate(model, seeds, latents, image_format), timeout)

    def edit(
        self,
        model: str,
        latents: Any,
        edits: w.Edits,
        *,
        sweep: w.Sweep = None,
        mode: str = "relative",
        image_format: str = "png",
        timeout: float | None = None,
    ) -> Edited:
        """z' = z + t * sum_i alpha_i n_i.

        ``edits`` maps direction name -> alpha; ``sweep`` = (frames, t_start, t_stop).
        """
        return self._call(self._op_edit(model, latents, edits, sweep, image_format, mode), timeout)

    def conditional_edit(
        self,
        model: str,
        latents: Any,
        direction: str,
        conditions: Sequence[str] = (),
        *,
        strength: float = 1.0,
        sweep: w.Sweep = None,
        image_format: str = "png",
        timeout: float | None = None,
    ) -> ConditionallyEdited:
        """Edit along ``direction`` projected orthogonally to every condition direction."""
        return self._call(
            self._op_conditional_edit(
                model, latents, direction, conditions, strength, sweep, image_format
            ),
            timeout,
        )

    def invert(
        self,
        model: str,
        images: Sequence[Any],
        *,
        method: str = "optimize",
        steps: int = 0,
        restarts: int = 0,
        seed: int = 0,
        prior_weight: float = 0.0,
        target_psnr: float = 0.0,
        timeout: float | None = None,
    ) -> Inverted:
        """Images (PIL, uint8 (H, W, 3) arrays or encoded bytes) -> latent codes.

        ``method``: optimize | encoder | hybrid | extended | tune | auto (escalates until
        ``target_psnr`` dB, default 30). Pass the result as ``latents`` to edit it.
        """
        op = self._op_invert(
            model, images, method, steps, restarts, seed, prior_weight, target_psnr
        )
        return self._call(op, timeout)

    def invert_stream(
        self,
        model: str,
        images: Sequence[Any],
        *,
        method: str = "optimize",
        steps: int = 0,
        restarts: int = 0,
        seed: int = 0,
        prior_weight: float = 0.0,
        target_psnr: float = 0.0,
        timeout: float | None = None,
    ) -> Iterator[InvertProgress | Inverted]:
        """Like :meth:`invert`, yielding InvertProgress events, then the Inverted result.

        Closing the iterator early (``break``) cancels the call and stops the work.
        """
        req = w.invert_request(
            model, images, method, steps, restarts, seed, prior_weight, target_psnr
        )
        timeout = self.timeout if timeout is None else timeout
        call = self._stubs[next(self._next)].InvertStream(req, timeout=timeout)
        try:
            for event in call:
                yield w.invert_event(event)
        except grpc.RpcError as exc:
            raise to_error(exc) from None
        finally:
            call.cancel()

    def discover(
        self,
        model: str,
        method: str = "sefa",
        *,
        top_k: int = 5,
        name_prefix: str = "",
        params: dict[str, str] | None = None,
        latents: Any = None,
        scores: Any = None,
        scorer: str = "",
        samples: int = 0,
        seed: int = 0,
        timeout: float | None = None,
    ) -> list[Direction]:
        """Find and store directions; returns them with their vectors.

        ``sefa`` and ``ganspace`` store ``top_k`` directions ``<prefix>_NN``;
        ``interfacegan`` learns one boundary from ``latents`` (N, d) + ``scores`` (N,),
        or from ``samples`` codes scored by the model's ``scorer``.
        """
        op = self._op_discover(
            model, method, top_k, name_prefix, params, latents, scores, scorer, samples, seed
        )
        return self._call(op, timeout)

    def score(
        self,
        model: str,
        latents: Any = None,
        *,
        images: Sequence[Any] | None = None,
        scorers: Sequence[str] = (),
        timeout: float | None = None,
    ) -> Scores:
        """Score latents (N, d) (rendered first) or images with named scorers (empty: all)."""
        return self._call(self._op_score(model, latents, images, scorers), timeout)

    def analyze(
        self,
        model: str,
        directions: Sequence[str],
        scorers: Sequence[str] = (),
        *,
        samples: int = 64,
        strength: float = 3.0,
        seed: int = 0,
        timeout: float | None = None,
    ) -> Analysis:
        """Cosines between directions, score correlations, and the re-scoring matrix."""
        op = self._op_analyze(model, directions, scorers, samples, strength, seed)
        return self._call(op, timeout)

    def directions(
        self, model: str, *, include_vectors: bool = False, timeout: float | None = None
    ) -> list[Direction]:
        """Stored directions of a model."""
        return self._call(self._op_directions(model, include_vectors), timeout)

    def get_direction(self, direction_id: str, *, timeout: float | None = None) -> Direction:
        """One direction (``"<model>/<name>"``) with its vector."""
        return self._call(self._op_get_direction(direction_id), timeout)

    def delete_direction(self, direction_id: str, *, timeout: float | None = None) -> bool:
        """Delete; True if it existed."""
        return self._call(self._op_delete_direction(direction_id), timeout)

    def put_direction(
        self,
        model: str,
        name: str,
        vector: Any,
        *,
        method: str = "import",
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Direction:
        """Store a direction from its vector (d,); it is normalised to unit norm."""
        return self._call(self._op_put_direction(model, name, vector, method, params), timeout)

    def import_direction(
        self, model: str, name: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Store an InterFaceGAN ``.npy`` boundary ((1, d) or (d,); read without pickle)."""
        return self.put_direction(model, name, w.load_boundary(path), timeout=timeout)

    def export_direction(
        self, direction_id: str, path: str, *, timeout: float | None = None
    ) -> Direction:
        """Write a direction as an InterFaceGAN ``.npy`` boundary, float32 (1, d), unit norm."""
        d = self.get_direction(direction_id, timeout=timeout)
        w.save_boundary(path, d)
        return d
