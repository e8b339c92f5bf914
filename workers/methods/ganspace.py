"""GANSpace (Härkönen et al., NeurIPS 2020): PCA of sampled latents or activations.

Two modes, after harskish/ganspace ``decomposition.py``:

- ``space="latent"``: incremental PCA of the latents themselves (StyleGAN's W);
  the principal axes are the latent directions.
- ``space="activation"``: incremental PCA of a layer's activations, then a least
  squares regression of latents on the whitened PCA coordinates (from a second,
  independently seeded pass), whose rows are the latent directions: direction i is
  how z moves, on average, per standard deviation of principal coordinate i.

The caller supplies ``sample_fn(rng, n) -> (latents (n, d), activations (n, ...))``;
:func:`layer_sampler` builds one from a generator and a layer name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.decomposition import IncrementalPCA
from torch import Tensor, nn

from latentedit.errors import InvalidArgument

SampleFn = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray | None]]
"""(rng, n) -> latents (n, d) and activations (n, ...) (None allowed in latent mode)."""

Space = Literal["latent", "activation"]


@dataclass(frozen=True)
class GanSpaceResult:
    """Principal directions.

    Attributes:
        components: (k, d) float64 unit rows in latent space, ordered by explained variance.
        stds: (k,) standard deviation of the latents projected on each component (sigma
            units for edit strengths; about 1 for Gaussian Z).
        explained_variance_ratio: (k,) of each principal axis in the PCA'd space.
        activation_components: (k, D) unit rows in the flattened activation space (None in
            latent mode).
        activation_stds: (k,) std of the activations along each principal axis (None in
            latent mode).
        space: "latent" or "activation".
        n_samples: samples used for the PCA (and, in activation mode, for the regression).
    """

    components: np.ndarray
    stds: np.ndarray
    explained_variance_ratio: np.ndarray
    activation_components: np.ndarray | None
    activation_stds: np.ndarray | None
    space: Space
    n_samples: int


def _batches(n_samples: int, batch_size: int) -> list[int]:
    sizes = [batch_size] * (n_samples // batch_size)
    if n_samples % batch_size:
        sizes.append(n_samples % batch_size)
    return sizes


def _flat(array: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if array is None:
        raise InvalidArgument(f"sample_fn returned no {what}")
    a = np.asarray(array, dtype=np.float64).reshape(len(array), -1)
    if len(a) != n:
        raise InvalidArgument(f"sample_fn returned {len(a)} {what} for a batch of {n}")
    return a


def _fit_pca(
    sample_fn: SampleFn,
    rng: np.random.Generator,
    n_samples: int,
    n_components: int,
    batch_size: int,
    space: Space,
) -> IncrementalPCA:
    """Stream n_samples through IncrementalPCA in chunks of >= max(batch, 3k) rows."""
    pca = IncrementalPCA(n_components=n_components)
    chunk = max(batch_size, 3 * n_components)
    buffer: list[np.ndarray] = []
    buffered, remaining = 0, n_samples
    for size in _batches(n_samples, batch_size):
        latents, activations = sample_fn(rng, size)
        data = activations if space == "activation" else latents
        buffer.append(_flat(data, size, space + "s"))
        buffered += size
        remaining -= size
        # Every partial_fit needs >= n_components rows, the last one included.
        if buffered >= chunk and (remaining == 0 or remaining >= n_components):
            pca.partial_fit(np.concatenate(buffer))
            buffer, buffered = [], 0
    if buffer:
        pca.partial_fit(np.concatenate(buffer))
    return pca


def ganspace(
    sample_fn: SampleFn,
    n_samples: int,
    n_components: int,
    batch_size: int = 256,
    seed: int = 0,
    space: Space = "activation",
) -> GanSpaceResult:
    """Principal latent directions by PCA of sampled latents or activations.

    Args:
        sample_fn: (rng, n) -> (latents (n, d), activations (n, ...)); must draw its
            randomness from ``rng`` so that the result is reproducible.
        n_samples: samples for the PCA (and as many again for the regression in
            activation mode); more than ``n_components``.
        n_components: k, at most the PCA'd dimension.
        batch_size: rows per ``sample_fn`` call.
        seed: seeds the PCA pass (``seed``) and the regression pass (``seed + 1``).
        space: "latent" (PCA of the latents) or "activation" (PCA of the activations,
            regressed back to latent space).
    Returns:
        :class:`GanSpaceResult`.
    """
    if space not in ("latent", "activation"):
        raise InvalidArgument(f"space must be 'latent' or 'activation', got {space!r}")
    if n_components < 1 or batch_size < 1:
        raise InvalidArgument("n_components and batch_size must be >= 1")
    if n_samples <= n_components:
        raise InvalidArgument(f"n_samples ({n_samples}) must exceed n_components ({n_components})")
    try:
        pca = _fit_pca(
            sample_fn, np.random.default_rng(seed), n_samples, n_components, batch_size, space
        )
    except ValueError as exc:  # e.g. more components than the PCA'd dimension
        raise InvalidArgument(f"PCA failed: {exc}") from exc
    ratio = np.asarray(pca.explained_variance_ratio_, dtype=np.float64)
    axes = np.asarray(pca.components_, dtype=np.float64)  # (k, D) orthonormal rows
    axis_stds = np.sqrt(np.maximum(np.asarray(pca.explained_variance_, np.float64), 0.0))
    if space == "latent":
        return GanSpaceResult(
            components=axes, stds=axis_stds, explained_variance_ratio=ratio,
            activation_components=None, activation_stds=None, space=space, n_samples=n_samples,
        )  # fmt: skip

    # Regression pass: z ~ M^T a + c on whitened coordinates a, via streamed moments.
    mean = np.asarray(pca.mean_, dtype=np.float64)
    whiten = np.where(axis_stds > 0, axis_stds, 1.0)
    rng = np.random.default_rng(seed + 1)
    k = len(axes)
    sum_a, sum_z = np.zeros(k), None
    aa = np.zeros((k, k))
    az: np.ndarray | None = None
    zz: np.ndarray | None = None
    for size in _batches(n_samples, batch_size):
        latents, activations = sample_fn(rng, size)
        z = _flat(latents, size, "latents")
        a = ((_flat(activations, size, "activations") - mean) @ axes.T) / whiten
        if az is None or zz is None or sum_z is None:
            az, zz, sum_z = np.zeros((k, z.shape[1])), np.zeros((z.shape[1],) * 2), 0.0
        sum_a += a.sum(0)
        sum_z = sum_z + z.sum(0)
        aa += a.T @ a
        az += a.T @ z
        zz += z.T @ z
    assert az is not None and zz is not None and sum_z is not None
    n = n_samples
    mean_a, mean_z = sum_a / n, np.asarray(sum_z) / n
    cov_aa = aa / n - np.outer(mean_a, mean_a)
    cov_az = az / n - np.outer(mean_a, mean_z)
    cov_zz = zz / n - np.outer(mean_z, mean_z)
    coef = np.linalg.lstsq(cov_aa, cov_az, rcond=None)[0]  # (k, d)
    norms = np.linalg.norm(coef, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise InvalidArgument("a principal axis does not depend on the latent (zero regression)")
    components = coef / norms
    stds = np.sqrt(np.maximum(np.einsum("kd,de,ke->k", components, cov_zz, components), 0.0))
    return GanSpaceResult(
        components=components,
        stds=stds,
        explained_variance_ratio=ratio,
        activation_components=axes,
        activation_stds=axis_stds,
        space=space,
        n_samples=n_samples,
    )


class _Captured(Exception):
    """Raised from a forward hook to stop the generator once the layer ran."""


def layer_sampler(
    generator: nn.Module,
    layer: str | None,
    latent_dim: int,
    device: str | torch.device = "cpu",
) -> SampleFn:
    """A :data:`SampleFn` drawing z ~ N(0, I) from the rng and capturing a layer's output.

    Args:
        generator: maps z (n, latent_dim) to images; run under ``torch.inference_mode``.
        layer: a name from ``generator.named_modules()`` whose output is captured (and the
            forward pass stopped there); None returns no activations (latent mode).
        latent_dim: d.
        device: where the generator lives.
    Returns:
        (rng, n) -> (latents (n, d) float32, activations (n, D) float32 or None).
    """
    module = dict(generator.named_modules()).get(layer) if layer is not None else None
    if layer is not None and module is None:
        raise InvalidArgument(f"no layer {layer!r} in the generator")
    dtype = next((p.dtype for p in generator.parameters()), torch.float32)

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        z = rng.standard_normal((n, latent_dim)).astype(np.float32)
        if module is None:
            return z, None
        captured: list[Tensor] = []

        def hook(_m: nn.Module, _inputs: object, output: Tensor) -> None:
            captured.append(output.detach())
            raise _Captured

        handle = module.register_forward_hook(hook)
        try:
            with torch.inference_mode():
                generator(torch.from_numpy(z).to(device, dtype))
        except _Captured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise InvalidArgument(f"layer {layer!r} did not run in the forward pass")
        return z, captured[0].float().reshape(n, -1).cpu().numpy()

    return sample
