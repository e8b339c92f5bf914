"""Every RPC through the SDK against the shared real stack."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from latentedit.client import Client, Direction, NotFound
from latentedit.deploy.stack import Stack
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

MODEL = "dcgan-faces"
LATENT_DIM = 100
RESOLUTION = 64
PREFIX = "rpcs"  # this module's direction names; other modules use their own


def pixels(images: list[Image.Image]) -> np.ndarray:
    """PIL images -> uint8 (N, H, W, 3)."""
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def sefa_dirs(stack: Stack) -> list[Direction]:
    with Client(stack.target, timeout=120) as c:
        return c.discover(MODEL, "sefa", top_k=5, name_prefix=f"{PREFIX}_sefa")


@pytest.fixture(scope="module")
def faces(stack: Stack):
    with Client(stack.target, timeout=120) as c:
        return c.generate(MODEL, seeds=[11, 22, 33])


# ---- models and generate ----------------------------------------------------------------


def test_models_lists_dcgan_faces(client: Client) -> None:
    models = {m.name: m for m in client.models()}
    info = models[MODEL]
    assert len(info.version) == 16
    int(info.version, 16)  # hex
    assert info.latent_dim == LATENT_DIM
    assert info.resolution == RESOLUTION
    assert "optimize" in info.invert_methods
    assert "sefa" in info.discover_methods


def test_generate_from_seeds_is_deterministic(client: Client) -> None:
    a = client.generate(MODEL, seeds=[5, 6, 5])
    b = client.generate(MODEL, seeds=[6, 5])
    assert a.latents.shape == (3, LATENT_DIM) and a.latents.dtype == np.float32
    assert len(a.images) == 3
    assert a.images[0].size == (RESOLUTION, RESOLUTION)
    # Same seed -> same latent and same pixels, within and across calls.
    np.testing.assert_array_equal(a.latents[0], a.latents[2])
    np.testing.assert_array_equal(a.latents[1], b.latents[0])
    np.testing.assert_array_equal(a.latents[0], b.latents[1])
    pa, pb_ = pixels(a.images), pixels(b.images)
    np.testing.assert_array_equal(pa[0], pa[2])
    np.testing.assert_array_equal(pa[[0, 1]], pb_[[1, 0]])
    # Different seeds -> different faces, standard-normal-looking latents.
    assert not np.array_equal(a.latents[0], a.latents[1])
    assert not np.array_equal(pa[0], pa[1])
    assert 0.5 < float(a.latents.std()) < 1.5
    models = client.models()
    assert a.model_version == next(m.version for m in models if m.name == MODEL)


def test_generate_from_latents_matches_seeds(client: Client) -> None:
    from_seeds = client.generate(MODEL, seeds=[101, 202])
    from_latents = client.generate(MODEL, latents=from_seeds.latents)
    np.testing.assert_array_equal(from_latents.latents, from_seeds.latents)
    np.testing.assert_array_equal(pixels(from_latents.images), pixels(from_seeds.images))
    # A single latent (d,) is one row.
    single = client.generate(MODEL, latents=from_seeds.latents[1])
    np.testing.assert_array_equal(pixels(single.images), pixels(from_seeds.images)[1:])


@pytest.mark.parametrize(
    ("fmt", "enum", "lossless"),
    [
        ("png", pb.IMAGE_FORMAT_PNG, True),
        ("raw", pb.IMAGE_FORMAT_RAW, True),
        ("jpeg", pb.IMAGE_FORMAT_JPEG, False),
        ("webp", pb.IMAGE_FORMAT_WEBP, False),
    ],
)
def test_image_formats(
    client: Client, stack: Stack, fmt: str, enum: pb.ImageFormat, lossless: bool
) -> None:
    reference = pixels(client.generate(MODEL, seeds=[7, 8], image_format="raw").images)
    got = pixels(client.generate(MODEL, seeds=[7, 8], image_format=fmt).images)
    assert got.shape == (2, RESOLUTION, RESOLUTION, 3)
    diff = np.abs(got.astype(int) - reference.astype(int))
    if lossless:
        assert diff.max() == 0
    else:
        assert 0 < diff.mean() < 12  # lossy, but the same face
    # On the wire: the asked format, its magic bytes, the right size.
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.LatentEditorStub(channel)
        req = pb.GenerateRequest(model=MODEL, seeds=pb.Seeds(seeds=[7]), image_format=enum)
        image = stub.Generate(req, timeout=60).images[0]
    assert image.format == enum
    assert (image.width, image.height) == (RESOLUTION, RESOLUTION)
    if fmt == "raw":
        assert len(image.data) == RESOLUTION * RESOLUTION * 3
        assert np.frombuffer(image.data, np.uint8).reshape(64, 64, 3).tolist() == (
            reference[0].tolist()
        )
    else:
        opened = Image.open(io.BytesIO(image.data))
        assert opened.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]


# ---- directions ---------------------------------------------------------------------------


def test_discover_sefa_stores_directions(sefa_dirs: list[Direction], client: Client) -> None:
    assert [d.name for d in sefa_dirs] == [f"{PREFIX}_sefa_{i:02d}" for i in range(5)]
    eigen = [d.metrics["eigenvalue"] for d in sefa_dirs]
    assert all(a > b for a, b in itertools.pairwise(eigen)), eigen
    assert all(e > 0 for e in eigen)
    vectors = np.stack([d.vector for d in sefa_dirs])
    assert vectors.shape == (5, LATENT_DIM)
    # Unit norm, mutually orthogonal (eigenvectors of a symmetric matrix).
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(5), atol=1e-5)
    for d in sefa_dirs:
        assert d.method == "sefa"
        assert d.id == f"{MODEL}/{d.name}"
        assert d.model == MODEL
        stored = client.get_direction(d.id)
        np.testing.assert_array_equal(stored.vector, d.vector)
        assert stored.version == d.version


def test_directions_listing(sefa_dirs: list[Direction], client: Client) -> None:
    names = {d.name for d in sefa_dirs}
    listed = {d.name: d for d in client.directions(MODEL) if d.name in names}
    assert set(listed) == names
    assert all(d.vector is None for d in listed.values())
    full = {d.name: d for d in client.directions(MODEL, include_vectors=True) if d.name in names}
    assert set(full) == names
    for d in sefa_dirs:
        np.testing.assert_array_equal(full[d.name].vector, d.vector)
        assert listed[d.name].metrics == pytest.approx(d.metrics)


def test_get_and_delete_direction(client: Client) -> None:
    name = f"{PREFIX}_to_delete"
    v = np.random.default_rng(1).standard_normal(LATENT_DIM)
    put = client.put_direction(MODEL, name, v)
    got = client.get_direction(put.id)
    np.testing.assert_array_equal(got.vector, put.vector)
    assert client.delete_direction(put.id) is True
    assert client.delete_direction(put.id) is False
    with pytest.raises(NotFound, match=name):
        client.get_direction(put.id)
    assert name not in {d.name for d in client.directions(MODEL)}


def test_put_direction_normalises_and_versions(client: Client) -> None:
    name = f"{PREFIX}_put"
    v = np.random.default_rng(2).standard_normal(LATENT_DIM) * 3.7
    first = client.put_direction(MODEL, name, v, params={"source": "test"})
    assert first.vector is not None
    assert first.vector.shape == (LATENT_DIM,)
    assert abs(np.linalg.norm(first.vector) - 1) < 1e-6
    np.testing.assert_allclose(first.vector, unit(v), atol=1e-6)
    assert first.method == "import"
    assert first.params == {"source": "test"}
    second = client.put_direction(MODEL, name, -v)
    assert second.version > first.version
    np.testing.assert_allclose(second.vector, -unit(v), atol=1e-6)
    np.testing.assert_array_equal(client.get_direction(first.id).vector, second.vector)


def test_import_export_round_trip(client: Client, tmp_path: Path) -> None:
    boundary = np.random.default_rng(3).standard_normal((1, LATENT_DIM)).astype(np.float32) * 2
    src = tmp_path / "boundary.npy"
    np.save(src, boundary)
    imported = client.import_direction(MODEL, f"{PREFIX}_ifg", str(src))
    np.testing.assert_allclose(imported.vector, unit(boundary[0]), atol=1e-6)
    dst = tmp_path / "exported.npy"
    exported = client.export_direction(imported.id, str(dst))
    back = np.load(dst, allow_pickle=False)
    assert back.shape == (1, LATENT_DIM)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back[0], exported.vector)
    assert float(unit(back[0]) @ unit(boundary[0])) > 1 - 1e-6
    # Importing the exported file again gives the same direction.
    again = client.import_direction(MODEL, f"{PREFIX}_ifg2", str(dst))
    np.testing.assert_allclose(again.vector, imported.vector, atol=1e-7)


# ---- edits --------------------------------------------------------------------------------


def _vec(client: Client, name: str) -> np.ndarray:
    v = client.get_direction(f"{MODEL}/{name}").vector
    assert v is not None
    return v.astype(np.float64)


def test_edit_one_direction(client: Client, faces, sefa_dirs: list[Direction]) -> None:
    name = sefa_dirs[0].name
    out = client.edit(MODEL, faces.latents, {name: 3.0})
    n = _vec(client, name)
    assert out.latents.shape == (3, 1, LATENT_DIM)
    expected = (faces.latents.astype(np.float64) + 3.0 * n)[:, None, :]
    np.testing.assert_allclose(out.latents, expected, rtol=1e-6, atol=1e-6)
    assert out.multipliers.tolist() == [1.0]
    assert [d.name for d in out.directions] == [name]
    assert len(out.images) == 3 and all(len(row) == 1 for row in out.images)
    before = pixels(faces.images)
    after = np.stack([pixels(row)[0] for row in out.images])
    for i in range(3):
        assert np.abs(after[i].astype(int) - before[i]).mean() > 1.0
    # The edited latents render to exactly the edited images.
    again = client.generate(MODEL, latents=out.latents[:, 0])
    np.testing.assert_array_equal(pixels(again.images), after)


def test_edit_several_directions(client: Client, faces, sefa_dirs: list[Direction]) -> None:
    alphas = {sefa_dirs[0].name: 2.0, sefa_dirs[2].name: -1.5, f"{MODEL}/{sefa_dirs[4].name}": 4}
    out = client.edit(MODEL, faces.latents, alphas)
    offset = (
        2.0 * _vec(client, sefa_dirs[0].name)
        - 1.5 * _vec(client, sefa_dirs[2].name)
        + 4.0 * _vec(client, sefa_dirs[4].name)
    )
    expected = (faces.latents.astype(np.float64) + offset)[:, None, :]
    np.testing.assert_allclose(out.latents, expected, rtol=1e-6, atol=1e-6)
    assert len(out.directions) == 3


def test_edit_sweep(client: Client, faces, sefa_dirs: list[Direction]) -> None:
    name = sefa_dirs[1].name
    z = faces.latents[:2]
    out = client.edit(MODEL, z, {name: 2.5}, sweep=(5, -2, 2))
    n = _vec(client, name)
    ts = np.linspace(-2, 2, 5)
    np.testing.assert_allclose(out.multipliers, ts, atol=1e-7)
    assert out.latents.shape == (2, 5, LATENT_DIM)
    expected = z.astype(np.float64)[:, None, :] + ts[None, :, None] * 2.5 * n[None, None, :]
    np.testing.assert_allclose(out.latents, expected, rtol=1e-6, atol=1e-6)
    assert len(out.images) == 2 and all(len(row) == 5 for row in out.images)
    grid = np.stack([pixels(row) for row in out.images])  # (2, 5, 64, 64, 3)
    before = pixels(faces.images)[:2]
    # t = 0 is the unedited face, every other frame differs from it.
    for i in range(2):
        np.testing.assert_array_equal(grid[i, 2], before[i])
        for k in (0, 1, 3, 4):
            assert np.abs(grid[i, k].astype(int) - before[i]).mean() > 0.5


def _put_correlated(client: Client, tag: str, m: int) -> tuple[str, list[str]]:
    """A primary direction strongly correlated with m random condition directions."""
    rng = np.random.default_rng(100 + m)
    conds = rng.standard_normal((m, LATENT_DIM))
    primary = rng.standard_normal(LATENT_DIM) + 0.8 * conds.sum(0)
    p = client.put_direction(MODEL, f"{PREFIX}_{tag}_primary", primary).name
    c = [client.put_direction(MODEL, f"{PREFIX}_{tag}_c{j}", conds[j]).name for j in range(m)]
    return p, c


@pytest.mark.parametrize("m", [1, 2, 3])
def test_conditional_edit_is_orthogonal_to_conditions(client: Client, faces, m: int) -> None:
    primary, conditions = _put_correlated(client, f"cond{m}", m)
    out = client.conditional_edit(
        MODEL, faces.latents[:2], primary, conditions, strength=3.0, sweep=(3, 0, 1)
    )
    d = out.projected_direction.astype(np.float64)
    assert d.shape == (LATENT_DIM,)
    assert abs(np.linalg.norm(d) - 1) < 1e-6
    # The service's own cosines, and ours from the stored vectors.
    assert out.condition_cosines.shape == (m,)
    assert np.all(np.abs(out.condition_cosines) <= 1e-5)
    n = _vec(client, primary)
    cmat = np.stack([_vec(client, c) for c in conditions])
    ours = cmat @ d / np.linalg.norm(cmat, axis=1)
    assert np.all(np.abs(ours) <= 1e-5), ours
    # Exact projection n - C^T (C C^T)^-1 C n, renormalised.
    expected = n - cmat.T @ np.linalg.solve(cmat @ cmat.T, cmat @ n)
    expected /= np.linalg.norm(expected)
    assert float(expected @ d) > 1 - 1e-6
    assert out.primary_cosine == pytest.approx(float(n @ d), abs=1e-6)
    assert out.primary_cosine < 0.99  # the conditions really were removed from it
    ts = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(out.multipliers, ts)
    z = faces.latents[:2].astype(np.float64)
    expected_z = z[:, None, :] + ts[None, :, None] * 3.0 * d[None, None, :]
    np.testing.assert_allclose(out.latents, expected_z, rtol=1e-6, atol=1e-5)
    grid = [pixels(row) for row in out.images]
    assert len(grid) == 2 and all(g.shape == (3, RESOLUTION, RESOLUTION, 3) for g in grid)
    assert np.abs(grid[0][2].astype(int) - grid[0][0]).mean() > 0.5


# ---- inversion ----------------------------------------------------------------------------


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_invert_reconstructs_held_out_faces(client: Client, sefa_dirs: list[Direction]) -> None:
    held_out = client.generate(MODEL, seeds=[918273, 564738])  # seeds used nowhere else
    inv = client.invert(MODEL, held_out.images)
    assert inv.latents.shape == (2, LATENT_DIM)
    assert inv.method == "optimize"
    assert inv.steps > 0
    assert inv.crops == [(0, 0, RESOLUTION)] * 2
    assert len(inv.reconstructions) == 2
    assert float(np.mean(inv.psnr)) >= 27.0, inv.psnr
    # The reported PSNR is the PSNR of the returned reconstructions against the inputs.
    target, recon = pixels(held_out.images), pixels(inv.reconstructions)
    for i in range(2):
        assert _psnr(recon[i], target[i]) == pytest.approx(inv.psnr[i], abs=0.01)
    # The reconstructions are what the returned latents render to.
    rendered = client.generate(MODEL, latents=inv.latents)
    np.testing.assert_array_equal(pixels(rendered.images), recon)
    # The latents are accepted as they are by edit().
    edited = client.edit(MODEL, inv.latents, {sefa_dirs[0].name: 2.0})
    assert edited.latents.shape == (2, 1, LATENT_DIM)
    np.testing.assert_allclose(
        edited.latents[:, 0], inv.latents + 2.0 * sefa_dirs[0].vector, atol=1e-5
    )
