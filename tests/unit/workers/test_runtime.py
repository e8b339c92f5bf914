"""latentedit.workers.models.runtime: loading (checksummed), rendering, pixel conversions."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from latentedit.errors import Unavailable
from latentedit.workers.models.registry import PackagedWeights, get_spec
from latentedit.workers.models.runtime import (
    LoadedModel,
    first_projection_matrix,
    from_uint8,
    load_model,
    packaged_weights_path,
    to_uint8,
)

FACES = get_spec("dcgan-faces")


@pytest.fixture(scope="module")
def faces() -> LoadedModel:
    return load_model(FACES)


def _latents(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, FACES.latent_dim)).astype(np.float32)


def _with_weights(**changes: str) -> PackagedWeights:
    assert FACES.weights is not None
    return dataclasses.replace(FACES.weights, **changes)


def test_version_is_the_weights_sha256_prefix(faces: LoadedModel) -> None:
    assert FACES.weights is not None
    digest = hashlib.sha256(packaged_weights_path(FACES.weights).read_bytes()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{16}", faces.version)
    assert faces.version == digest[:16]
    assert faces.name == "dcgan-faces" and faces.latent_dim == 100


def test_a_wrong_checksum_is_refused() -> None:
    spec = dataclasses.replace(FACES, weights=_with_weights(sha256="0" * 64))
    with pytest.raises(Unavailable, match="does not match the registry's 0000"):
        load_model(spec)


def test_missing_package_or_file_is_unavailable() -> None:
    no_pkg = dataclasses.replace(FACES, weights=_with_weights(package="no_such_package_le"))
    with pytest.raises(Unavailable, match="not installed: pip install"):
        load_model(no_pkg)
    no_file = dataclasses.replace(FACES, weights=_with_weights(resource="missing.tar"))
    with pytest.raises(Unavailable, match=r"missing\.tar is missing"):
        load_model(no_file)


def test_procedural_model_version_is_a_stable_digest(faces: LoadedModel) -> None:
    a, b = load_model(get_spec("shapes")), load_model(get_spec("shapes"))
    assert re.fullmatch(r"[0-9a-f]{16}", a.version)
    assert a.version == b.version != faces.version


def test_render_shape_dtype_and_content(faces: LoadedModel) -> None:
    images = faces.render(_latents(3))
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert images.std() > 10  # real pictures, not a flat canvas
    assert not np.array_equal(images[0], images[1])
    assert faces.render(_latents(0)).shape == (0, 64, 64, 3)
    with torch.no_grad():
        np.testing.assert_array_equal(
            images, to_uint8(faces.forward(torch.from_numpy(_latents(3))))
        )


def test_rendering_in_chunks_equals_rendering_at_once(faces: LoadedModel) -> None:
    """Eval-mode BatchNorm: an image depends on its own latent only, not on its batch."""
    z = _latents(7, seed=1)
    whole = faces.render(z)
    chunked = load_model(FACES, max_batch=3).render(z)
    one_by_one = np.concatenate([faces.render(row[None]) for row in z])
    for other in (chunked, one_by_one):
        assert np.abs(whole.astype(int) - other.astype(int)).max() <= 1  # float rounding only


def test_generator_is_frozen_but_differentiable_in_z(faces: LoadedModel) -> None:
    assert not faces.generator.training
    assert not any(p.requires_grad for p in faces.generator.parameters())
    z = torch.from_numpy(_latents(2)).requires_grad_(True)
    out = faces.forward(z)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    out.square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_uint8_round_trip_is_exact() -> None:
    pixels = (np.arange(2 * 16 * 16 * 3) % 256).astype(np.uint8).reshape(2, 16, 16, 3)
    x = from_uint8(pixels)
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    np.testing.assert_array_equal(to_uint8(x), pixels)


def test_to_uint8_keeps_channels_and_clamps() -> None:
    x = torch.full((1, 3, 2, 2), -5.0)
    x[:, 0] = 5.0  # red, out of range
    x[:, 2, 0, 0] = 0.0  # mid-grey blue at one pixel
    out = to_uint8(x)
    assert out.shape == (1, 2, 2, 3)
    assert (out[..., 0] == 255).all() and (out[..., 1] == 0).all()
    assert out[0, 0, 0, 2] in (127, 128) and (out[0, 1, :, 2] == 0).all()


def test_first_projection_of_a_linear_layer() -> None:
    torch.manual_seed(0)
    for out_features in (7, 5):  # square weights are read as Linear too
        layer = nn.Linear(5, out_features, bias=False)
        a = first_projection_matrix(layer.weight, 5)
        assert a.shape == (out_features, 5) and a.dtype == torch.float64
        z = torch.randn(4, 5)
        torch.testing.assert_close((z.double() @ a.T).float(), layer(z))


def test_first_projection_of_a_transposed_convolution() -> None:
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(5, 3, 4, 1, 0, bias=False)  # weight (5, 3, 4, 4)
    a = first_projection_matrix(layer.weight, 5)
    assert a.shape == (48, 5) and a.dtype == torch.float64
    z = torch.randn(4, 5)
    out = F.conv_transpose2d(z[:, :, None, None], layer.weight).flatten(1)
    torch.testing.assert_close((z.double() @ a.T).float(), out)
    with pytest.raises(ValueError, match=r"no axis of size 6 in first projection \(5, 3, 4, 4\)"):
        first_projection_matrix(layer.weight, 6)


def test_model_first_projection_is_the_head_map(faces: LoadedModel) -> None:
    a = faces.first_projection()
    assert a.shape == (8192, 100) and a.dtype == torch.float64
    z = torch.from_numpy(_latents(3, seed=2))
    head = faces.generator.head(z).flatten(1)
    torch.testing.assert_close((z.double() @ a.T).float(), head, rtol=1e-4, atol=1e-4)
