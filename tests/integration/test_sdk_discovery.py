"""Direction discovery through the SDK, on a private stack: Score, DiscoverDirections
(InterFaceGAN, SeFa, GANSpace), absolute and conditional edits, Analyze, the report CLI.

Measured on ``shapes``, whose true factor directions and exact factors are known: the truth
comes from :mod:`latentedit.workers.models.shapes`, everything else goes through the SDK.
Budgets are smaller than ``bench/directions.py``'s; the properties asserted are the same.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.linalg import subspace_angles
from scipy.stats import spearmanr

from latentedit.client import Client, Direction, InvalidArgument, NotFound
from latentedit.deploy.stack import Stack, StackConfig
from latentedit.errors import LatentEditError
from latentedit.workers.models.shapes import (
    FACTOR_NAMES,
    FACTOR_RANGES,
    LATENT_DIM,
    ShapesGenerator,
)

SHAPES = "shapes"
FACES = "dcgan-faces"
PREFIX = "disc"  # this module's direction names: disc_<factor>, disc_sefa_NN, ...
PROXIES = {"brightness", "warmth", "background_green", "asymmetry"}
MAX_ROWS = 256  # latents per Score request (Limits.max_latents)
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def dstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("discovery-stack-logs")
    s = Stack(StackConfig(port=0, workers=1, log_dir=str(log_dir)))
    try:
        s.start(timeout=180)
    except Exception as exc:
        logs = "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(log_dir.glob("*.log"))
        )
        raise RuntimeError(f"stack failed to start: {exc}\n{logs}") from exc
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def sdk(dstack: Stack) -> Iterator[Client]:
    with Client(dstack.target, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def generator() -> ShapesGenerator:
    return ShapesGenerator()


@pytest.fixture(scope="module")
def truth(generator: ShapesGenerator) -> np.ndarray:
    """(6, 16) true unit factor directions, rows in FACTOR_NAMES order."""
    return generator.true_directions().numpy()


def exact_factors(generator: ShapesGenerator, z: np.ndarray) -> np.ndarray:
    """(N, 16) -> (N, 6) float64 factors, computed here from the testbed's weights."""
    import torch

    return generator.factors(torch.from_numpy(np.asarray(z, np.float32))).numpy()


def score_rows(client: Client, model: str, latents: np.ndarray, scorer: str) -> np.ndarray:
    """(M, d) -> (M,) scores through the SDK, in requests of at most MAX_ROWS rows."""
    return np.concatenate(
        [
            client.score(model, latents[i : i + MAX_ROWS], scorers=[scorer])[scorer]
            for i in range(0, len(latents), MAX_ROWS)
        ]
    )


def codes(n: int, seed: int, dim: int = LATENT_DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def captured(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of span(truth) inside span(found): mean cos^2 of the principal angles."""
    return float(np.mean(np.cos(subspace_angles(truth.T, found.T)) ** 2))


@pytest.fixture(scope="module")
def factor_dirs(sdk: Client) -> dict[str, Direction]:
    """InterFaceGAN from each exact factor scorer (stored as disc_<factor>), by factor."""
    return {
        f: sdk.discover(
            SHAPES,
            "interfacegan",
            scorer=f,
            samples=20000,
            seed=0,
            name_prefix=f"{PREFIX}_{f}",
        )[0]
        for f in FACTOR_NAMES
    }


def unit_vector(direction: Direction) -> np.ndarray:
    assert direction.vector is not None
    v = np.asarray(direction.vector, np.float64)
    return v / np.linalg.norm(v)


# ---- models and scoring ------------------------------------------------------------------


def test_models_list_the_scorers(sdk: Client) -> None:
    models = {m.name: m for m in sdk.models()}
    assert set(models[SHAPES].scorers) == set(FACTOR_NAMES)
    assert len(models[SHAPES].scorers) == 6
    assert set(models[FACES].scorers) == PROXIES
    for name in (SHAPES, FACES):
        assert {"sefa", "interfacegan", "ganspace"} <= set(models[name].discover_methods)
    assert models[SHAPES].latent_dim == LATENT_DIM


def test_score_latents_gives_the_exact_factors(sdk: Client, generator: ShapesGenerator) -> None:
    z = codes(12, seed=11)
    every = sdk.score(SHAPES, z)
    assert sorted(every.scorers) == sorted(FACTOR_NAMES)
    assert every.scores.shape == (12, 6)
    expected = exact_factors(generator, z)
    for i, f in enumerate(FACTOR_NAMES):
        np.testing.assert_allclose(every[f], expected[:, i], rtol=1e-6, atol=1e-7)
        low, high = FACTOR_RANGES[i]
        assert np.all((every[f] >= low) & (every[f] <= high))
    two = sdk.score(SHAPES, z, scorers=["hue", "x"])
    assert two.scorers == ["hue", "x"]
    np.testing.assert_allclose(two.scores, expected[:, [4, 0]], rtol=1e-6, atol=1e-7)


def test_score_images_with_a_proxy_scorer(sdk: Client) -> None:
    rendered = sdk.generate(SHAPES, seeds=[3, 4]).images
    pngs = []
    for im in rendered:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        pngs.append(buf.getvalue())
    flat = np.zeros((64, 64, 3), np.uint8) + np.array([200, 100, 50], np.uint8)
    out = sdk.score(FACES, images=[*pngs, flat], scorers=["brightness"])
    assert out.scorers == ["brightness"] and out.scores.shape == (3, 1)
    expected = [float((np.asarray(im.convert("RGB")) / 255.0 @ LUMA).mean()) for im in rendered]
    expected.append(float(np.array([200, 100, 50]) / 255.0 @ LUMA))
    np.testing.assert_allclose(out["brightness"], expected, rtol=0, atol=1e-5)
    # shapes' exact scorers read the latent; an image cannot be scored by them.
    with pytest.raises(InvalidArgument, match="latents"):
        sdk.score(SHAPES, images=pngs[:1], scorers=["x"])


# ---- InterFaceGAN ------------------------------------------------------------------------


def test_interfacegan_from_each_scorer_finds_the_true_direction(
    factor_dirs: dict[str, Direction], truth: np.ndarray
) -> None:
    for i, f in enumerate(FACTOR_NAMES):
        d = factor_dirs[f]
        cos = float(unit_vector(d) @ truth[i])
        assert cos >= 0.95, f"{f}: cos {cos:.4f}"
        assert d.metrics["val_accuracy"] >= 0.95, f"{f}: {d.metrics}"
        assert d.params["scorer"] == f
        assert d.method == "interfacegan"
        assert d.name == f"{PREFIX}_{f}"


def test_interfacegan_from_client_latents_and_scores(sdk: Client, truth: np.ndarray) -> None:
    z = codes(2000, seed=21)
    scores = score_rows(sdk, SHAPES, z, "rotation")

    def learn(seed: int, name: str) -> np.ndarray:
        (d,) = sdk.discover(
            SHAPES, "interfacegan", latents=z, scores=scores, seed=seed, name_prefix=name
        )
        assert {"val_accuracy", "remaining_accuracy", "n_train", "n_val"} <= set(d.metrics)
        assert d.metrics["n_train"] + d.metrics["n_val"] == 2 * int(2000 * 0.02)
        assert d.params["scorer"] == "client" and d.params["samples"] == "2000"
        assert d.metrics["val_accuracy"] >= 0.95
        return d.vector.astype(np.float64)

    first = learn(4, f"{PREFIX}_client_a")
    again = learn(4, f"{PREFIX}_client_b")
    other = learn(5, f"{PREFIX}_client_c")
    np.testing.assert_array_equal(first, again)  # same data, same seed: same direction
    assert not np.array_equal(first, other)  # another train/validation split
    rotation = truth[FACTOR_NAMES.index("rotation")]
    for v in (first, other):
        assert float(v @ rotation) / np.linalg.norm(v) >= 0.95


# ---- SeFa and GANSpace -------------------------------------------------------------------


def test_sefa_and_ganspace_top6_capture_the_factor_subspace(sdk: Client, truth: np.ndarray) -> None:
    sefa = sdk.discover(SHAPES, "sefa", top_k=6, name_prefix=f"{PREFIX}_sefa")
    ganspace = sdk.discover(
        SHAPES,
        "ganspace",
        top_k=6,
        params={"layer": "mixing"},
        samples=2000,
        name_prefix=f"{PREFIX}_ganspace",
    )
    for found in (sefa, ganspace):
        assert len(found) == 6
        basis = np.stack([d.vector for d in found]).astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(basis, axis=1), 1.0, atol=1e-5)
        assert captured(basis, truth) >= 0.9, found[0].method
    assert ganspace[0].params["layer"] == "mixing"
    # A random 6-dim subspace of R^16 captures about 6/16 of it: the figure discriminates.
    assert captured(codes(6, seed=99).astype(np.float64), truth) < 0.9


# ---- edits -------------------------------------------------------------------------------


def test_absolute_edit_places_codes_at_the_signed_distance(
    sdk: Client, factor_dirs: dict[str, Direction]
) -> None:
    z = codes(8, seed=31).astype(np.float64)
    x, scale, hue = (unit_vector(factor_dirs[f]) for f in ("x", "scale", "hue"))
    x_name, scale_name, hue_name = (f"{PREFIX}_{f}" for f in ("x", "scale", "hue"))

    one = sdk.edit(SHAPES, z, {x_name: 1.5}, sweep=(3, -2, 2), mode="absolute").latents
    assert one.shape == (8, 3, LATENT_DIM)
    np.testing.assert_allclose(one @ x, np.broadcast_to([-3.0, 0.0, 3.0], (8, 3)), atol=1e-4)
    moved = one - z[:, None, :]  # only along x: the orthogonal part is kept
    np.testing.assert_allclose(moved - (moved @ x)[..., None] * x, 0.0, atol=1e-4)

    # Two absolute terms on entangled directions (cos 0.6): both distances hold at once.
    both = sdk.edit(SHAPES, z, [(scale_name, 1.0, "absolute"), (hue_name, -0.5, "absolute")])
    np.testing.assert_allclose(both.latents[:, 0] @ scale, 1.0, atol=1e-4)
    np.testing.assert_allclose(both.latents[:, 0] @ hue, -0.5, atol=1e-4)

    relative = sdk.edit(SHAPES, z, {x_name: 1.5}).latents[:, 0]
    np.testing.assert_allclose(relative, z + 1.5 * x, atol=1e-5)
    np.testing.assert_allclose(relative @ x - z @ x, 1.5, atol=1e-5)


def test_conditional_edit_holds_the_correlated_factor(
    sdk: Client, factor_dirs: dict[str, Direction]
) -> None:
    z = codes(64, seed=41)
    scale_name, hue_name = f"{PREFIX}_scale", f"{PREFIX}_hue"
    hue_range = FACTOR_RANGES[FACTOR_NAMES.index("hue")]
    sweep = (2, -3.0, 3.0)  # the ends of a -3..+3 sigma edit on a unit direction

    def hue_change(latents: np.ndarray) -> np.ndarray:
        s = score_rows(sdk, SHAPES, latents.reshape(-1, LATENT_DIM), "hue").reshape(len(z), 2)
        return np.abs(s[:, 1] - s[:, 0]) / (hue_range[1] - hue_range[0])

    cond = sdk.conditional_edit(SHAPES, z, scale_name, [hue_name], strength=1.0, sweep=sweep)
    plain = sdk.edit(SHAPES, z, {scale_name: 1.0}, sweep=sweep)
    assert hue_change(cond.latents).mean() <= 0.02
    assert hue_change(plain.latents).mean() >= 0.20

    scale, hue = unit_vector(factor_dirs["scale"]), unit_vector(factor_dirs["hue"])
    p = cond.projected_direction.astype(np.float64)
    assert abs(np.linalg.norm(p) - 1) < 1e-5 and abs(p @ hue) < 1e-5
    assert abs(cond.condition_cosines[0]) < 1e-6
    assert cond.primary_cosine == pytest.approx(np.sqrt(1 - (scale @ hue) ** 2), abs=1e-4)
    # The edit still moves scale (the primary) a lot.
    sc = score_rows(sdk, SHAPES, cond.latents.reshape(-1, LATENT_DIM), "scale").reshape(64, 2)
    assert np.mean(sc[:, 1] - sc[:, 0]) / (0.48 - 0.18) >= 0.3


def test_brightness_direction_is_monotone_on_faces(sdk: Client) -> None:
    (d,) = sdk.discover(
        FACES, "interfacegan", scorer="brightness", samples=600, name_prefix=f"{PREFIX}_bright"
    )
    z = codes(8, seed=51, dim=100)
    out = sdk.edit(FACES, z, {d.name: 1.0}, sweep=(7, -3.0, 3.0), image_format="raw")
    b = sdk.score(FACES, out.latents.reshape(-1, 100), scorers=["brightness"])["brightness"]
    rhos = [spearmanr(out.multipliers, row).statistic for row in b.reshape(8, 7)]
    assert float(np.mean(rhos)) >= 0.95, rhos


# ---- Analyze -----------------------------------------------------------------------------


def test_analyze_reports_cosines_correlations_and_rescoring(
    sdk: Client, factor_dirs: dict[str, Direction]
) -> None:
    names = [f"{PREFIX}_{f}" for f in FACTOR_NAMES]
    a = sdk.analyze(SHAPES, names, samples=256, strength=3.0, seed=1)
    assert a.directions == names
    assert sorted(a.scorers) == sorted(FACTOR_NAMES)
    vectors = np.stack([unit_vector(factor_dirs[f]) for f in FACTOR_NAMES])
    assert a.cosine.shape == (6, 6)
    np.testing.assert_allclose(np.diag(a.cosine), 1.0, atol=1e-6)
    np.testing.assert_allclose(a.cosine, vectors @ vectors.T, atol=1e-5)
    assert a.correlation.shape == (6, 6)
    np.testing.assert_allclose(np.diag(a.correlation), 1.0, atol=1e-9)
    si, hi = a.scorers.index("scale"), a.scorers.index("hue")
    off = np.abs(a.correlation - np.eye(6))
    assert a.correlation[si, hi] > 0.4 and off.max() == pytest.approx(off[si, hi])
    assert a.rescoring.shape == a.rescoring_std.shape == (6, 6)
    assert a.score_std.shape == (6,) and np.all(a.score_std > 0)
    rel = a.relative_rescoring()
    own = [a.scorers.index(f) for f in FACTOR_NAMES]
    np.testing.assert_array_equal(np.argmax(np.abs(rel), axis=1), own)
    assert np.all(rel[np.arange(6), own] > 0)  # each direction raises its own factor


# ---- bad input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(sdk: Client, generator: ShapesGenerator) -> Callable[[], None]:
    z = codes(4, seed=61)
    expected = exact_factors(generator, z)

    def check() -> None:
        got = sdk.score(SHAPES, z)
        order = [FACTOR_NAMES.index(s) for s in got.scorers]
        np.testing.assert_allclose(got.scores, expected[:, order], rtol=1e-6, atol=1e-7)

    return check


@pytest.mark.parametrize(
    ("error", "case", "words"),
    [
        (NotFound, "unknown_scorer_discover", ("nope",)),
        (NotFound, "unknown_scorer_score", ("nope",)),
        (InvalidArgument, "neither_scorer_nor_data", ("interfacegan", "scorer")),
        (InvalidArgument, "mismatched_scores", ("scores",)),
        (InvalidArgument, "bad_ratio", ("ratio",)),
        (NotFound, "unknown_direction", ("no_such_direction",)),
    ],
)
def test_bad_input_is_refused_and_the_service_keeps_working(
    sdk: Client,
    healthy: Callable[[], None],
    factor_dirs: dict[str, Direction],
    error: type[LatentEditError],
    case: str,
    words: tuple[str, ...],
) -> None:
    z = codes(40, seed=71)
    calls: dict[str, Callable[[], object]] = {
        "unknown_scorer_discover": lambda: sdk.discover(
            SHAPES, "interfacegan", scorer="nope", samples=100
        ),
        "unknown_scorer_score": lambda: sdk.score(SHAPES, z, scorers=["x", "nope"]),
        "neither_scorer_nor_data": lambda: sdk.discover(SHAPES, "interfacegan"),
        "mismatched_scores": lambda: sdk.discover(
            SHAPES, "interfacegan", latents=z, scores=np.zeros(39)
        ),
        "bad_ratio": lambda: sdk.discover(
            SHAPES, "interfacegan", scorer="x", samples=200, params={"ratio": "2"}
        ),
        "unknown_direction": lambda: sdk.analyze(
            SHAPES, [f"{PREFIX}_x", "no_such_direction"], samples=8
        ),
    }
    with pytest.raises(LatentEditError) as info:
        calls[case]()
    err = info.value
    assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
    for word in words:
        assert word.lower() in err.message.lower(), f"{word!r} not in {err.message!r}"
    healthy()


# ---- the report command ------------------------------------------------------------------


def test_report_cli_prints_the_matrix_and_writes_a_png(dstack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentedit.deploy.cli",
            "report",
            "--target",
            dstack.target,
            "--model",
            SHAPES,
            "--discover",
            "interfacegan",
            "--samples",
            "32",
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "re-scoring" in proc.stdout
    assert "cosine similarity" in proc.stdout
    for f in FACTOR_NAMES:
        assert f in proc.stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100
