"""Direction-discovery bench: the issue's Done-when figures, measured through the SDK.

    .venv/bin/python bench/directions.py [--samples 20000] [--edit-samples 256] [--seed 0]

Starts a private stack (redis-server, gateway, one worker, port 0) and measures, on the
``shapes`` testbed with its exact factor scorers and on ``dcgan-faces``:

1. InterFaceGAN from each exact factor scorer: cosine to the true factor direction
   (row of ``mixing.weight``, taken from :mod:`latentedit.workers.models.shapes`) and
   the validation accuracy the service reports.
2. ConditionalEdit of ``scale`` holding ``hue`` (and the reverse) over a -3..+3 edit on the
   discovered unit directions (sigma units: the signed distance n.z of N(0, I) codes has
   std 1): mean |change| of the held factor in % of its range, against the plain edit.
3. SeFa and GANSpace (``layer=mixing``, and the model's default layer) top-6: principal
   angles to the true 6-dim factor subspace and the captured fraction
   mean(cos^2 angle) = ||P_found T||_F^2 / 6 for the orthonormalised true basis T.
4. dcgan-faces: InterFaceGAN from the ``brightness`` proxy, 32 samples swept over
   alpha in linspace(-3, 3, 9); Spearman rho of brightness vs alpha per sample, averaged.
5. The re-scoring matrix of the shapes InterFaceGAN directions (``Analyze``), printed.

Prints a table (figure, value, threshold, PASS/FAIL), then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from typing import Any

import numpy as np
from scipy.linalg import subspace_angles
from scipy.stats import spearmanr

from latentedit.client import Client
from latentedit.deploy.report import print_matrix
from latentedit.deploy.stack import Stack, StackConfig
from latentedit.workers.models.shapes import (
    CORRELATED,
    FACTOR_NAMES,
    FACTOR_RANGES,
    ShapesGenerator,
)

SHAPES = "shapes"
FACES = "dcgan-faces"
PREFIX = "bench"
MAX_ROWS = 256  # latents per request (Limits.max_latents)
EDIT_SIGMA = 3.0  # the +-3 sigma edit (unit directions: sigma = 1)

Row = tuple[str, float, str, bool | None]  # figure, value, threshold text, passed


def true_directions() -> np.ndarray:
    """(6, 16) float64 unit rows, one per factor of FACTOR_NAMES."""
    return ShapesGenerator().true_directions().numpy()


def capture(found: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    """found (k, d), truth (m, d) -> (captured fraction of span(truth) in span(found), angles°).

    The fraction is mean(cos^2) of the principal angles: 1 when span(truth) lies in span(found).
    """
    angles = subspace_angles(truth.T, found.T)
    return float(np.mean(np.cos(angles) ** 2)), np.degrees(angles)


def interfacegan_factors(
    client: Client, truth: np.ndarray, samples: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    """One boundary per exact factor scorer -> (vectors, cosine to truth, val accuracy)."""
    vectors, cosines, accuracy = {}, {}, {}
    for i, factor in enumerate(FACTOR_NAMES):
        (d,) = client.discover(
            SHAPES,
            "interfacegan",
            scorer=factor,
            samples=samples,
            seed=seed,
            name_prefix=f"{PREFIX}_{factor}",
        )
        assert d.vector is not None
        v = d.vector.astype(np.float64)
        vectors[factor] = v / np.linalg.norm(v)
        cosines[factor] = float(vectors[factor] @ truth[i])
        accuracy[factor] = float(d.metrics["val_accuracy"])
    return vectors, cosines, accuracy


def score_rows(client: Client, model: str, latents: np.ndarray, scorer: str) -> np.ndarray:
    """latents (M, d) -> (M,) scores, in requests of at most MAX_ROWS rows."""
    return np.concatenate(
        [
            client.score(model, latents[i : i + MAX_ROWS], scorers=[scorer])[scorer]
            for i in range(0, len(latents), MAX_ROWS)
        ]
    )


def factor_change(client: Client, latents: np.ndarray, factor: str) -> np.ndarray:
    """latents (N, 2, d) at -3 sigma and +3 sigma -> |factor change| / range (N,)."""
    n, k, d = latents.shape
    assert k == 2
    s = score_rows(client, SHAPES, latents.reshape(-1, d), factor).reshape(n, k)
    low, high = FACTOR_RANGES[FACTOR_NAMES.index(factor)]
    return np.abs(s[:, 1] - s[:, 0]) / (high - low)


def conditional(client: Client, z: np.ndarray, primary: str, held: str) -> dict[str, float]:
    """Mean |change| (fraction of range) of held and primary factors, conditional vs plain."""
    sweep = (2, -EDIT_SIGMA, EDIT_SIGMA)  # the two ends of the edit
    cond = client.conditional_edit(
        SHAPES,
        z,
        f"{PREFIX}_{primary}",
        [f"{PREFIX}_{held}"],
        strength=1.0,
        sweep=sweep,
        image_format="raw",
    )
    plain = client.edit(SHAPES, z, {f"{PREFIX}_{primary}": 1.0}, sweep=sweep, image_format="raw")
    cond_held = factor_change(client, cond.latents, held)
    plain_held = factor_change(client, plain.latents, held)
    return {
        "held_conditional_mean": float(cond_held.mean()),
        "held_conditional_max": float(cond_held.max()),
        "held_plain_mean": float(plain_held.mean()),
        "primary_conditional_mean": float(factor_change(client, cond.latents, primary).mean()),
        "primary_plain_mean": float(factor_change(client, plain.latents, primary).mean()),
        "condition_cosine": float(np.abs(cond.condition_cosines).max()),
    }


def brightness_monotonicity(
    client: Client, samples: int, n_edit: int, seed: int
) -> tuple[float, float, float]:
    """InterFaceGAN from ``brightness`` on dcgan-faces -> (mean rho, min rho, val accuracy)."""
    (d,) = client.discover(
        FACES,
        "interfacegan",
        scorer="brightness",
        samples=samples,
        seed=seed,
        name_prefix=f"{PREFIX}_brightness",
    )
    dim = {m.name: m for m in client.models()}[FACES].latent_dim
    z = np.random.default_rng(seed + 7).standard_normal((n_edit, dim)).astype(np.float32)
    out = client.edit(FACES, z, {d.name: 1.0}, sweep=(9, -3.0, 3.0), image_format="raw")
    n, k, _ = out.latents.shape
    b = score_rows(client, FACES, out.latents.reshape(n * k, dim), "brightness").reshape(n, k)
    rhos = np.array([spearmanr(out.multipliers, row).statistic for row in b])
    return float(rhos.mean()), float(rhos.min()), float(d.metrics["val_accuracy"])


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    truth = true_directions()
    rows: list[Row] = []
    figures: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-directions-") as logs,
        Stack(StackConfig(port=0, workers=1, log_dir=logs)) as stack,
        Client(stack.target, timeout=600) as client,
    ):
        start = time.perf_counter()
        # 1. InterFaceGAN per exact factor.
        vectors, cosines, accuracy = interfacegan_factors(client, truth, args.samples, args.seed)
        for f in FACTOR_NAMES:
            rows.append((f"interfacegan cos({f}, true)", cosines[f], ">= 0.95", cosines[f] >= 0.95))
            rows.append(
                (f"interfacegan val_accuracy({f})", accuracy[f], ">= 0.95", accuracy[f] >= 0.95)
            )
        figures["interfacegan_cosine"] = cosines
        figures["interfacegan_val_accuracy"] = accuracy
        figures["interfacegan_samples"] = args.samples

        # 2. Conditional edits of the correlated pair.
        z = np.random.default_rng(args.seed + 1).standard_normal((args.edit_samples, 16))
        z = z.astype(np.float32)
        a, b = CORRELATED
        figures["conditional"] = {}
        for primary, held in ((a, b), (b, a)):
            c = conditional(client, z, primary, held)
            figures["conditional"][f"{primary}|{held}"] = c
            rows.append(
                (
                    f"cond. edit {primary} ±3σ: Δ{held} mean (of range)",
                    c["held_conditional_mean"],
                    "<= 0.02",
                    c["held_conditional_mean"] <= 0.02,
                )
            )
            rows.append(
                (
                    f"plain edit {primary} ±3σ: Δ{held} mean (of range)",
                    c["held_plain_mean"],
                    ">= 0.20",
                    c["held_plain_mean"] >= 0.20,
                )
            )
            rows.append(
                (
                    f"cond. edit {primary} ±3σ: Δ{primary} mean (of range)",
                    c["primary_conditional_mean"],
                    "(info)",
                    None,
                )
            )
        figures["cosine_true_scale_hue"] = float(
            truth[FACTOR_NAMES.index(a)] @ truth[FACTOR_NAMES.index(b)]
        )
        figures["cosine_found_scale_hue"] = float(vectors[a] @ vectors[b])

        # 3. SeFa and GANSpace subspaces.
        figures["subspace"] = {}
        variants: list[tuple[str, str, dict[str, str] | None]] = [
            ("sefa", "sefa", None),
            ("ganspace[layer=mixing]", "ganspace", {"layer": "mixing"}),
            ("ganspace[default layer]", "ganspace", None),
        ]
        for label, method, params in variants:
            found = client.discover(
                SHAPES,
                method,
                top_k=6,
                params=params,
                samples=args.ganspace_samples if method == "ganspace" else 0,
                seed=args.seed,
                name_prefix=f"{PREFIX}_{method}{'_mixing' if params else ''}",
            )
            layer = found[0].params.get("layer", "")
            basis = np.stack([d.vector for d in found if d.vector is not None]).astype(np.float64)
            captured, angles = capture(basis, truth)
            figures["subspace"][label] = {
                "captured": captured,
                "principal_angles_deg": [round(float(x), 3) for x in angles],
                "layer": layer,
            }
            rows.append((f"{label} top-6 captured ({layer})", captured, ">= 0.90", captured >= 0.9))
            rows.append((f"{label} max principal angle (deg)", float(angles.max()), "(info)", None))

        # 4. dcgan-faces brightness monotonicity.
        rho, rho_min, acc = brightness_monotonicity(
            client, args.faces_samples, args.sweep_samples, args.seed
        )
        figures["faces_brightness"] = {
            "spearman_mean": rho,
            "spearman_min": rho_min,
            "val_accuracy": acc,
            "samples": args.faces_samples,
            "edit_samples": args.sweep_samples,
        }
        rows.append(("dcgan-faces brightness Spearman (mean of 32)", rho, ">= 0.95", rho >= 0.95))
        rows.append(("dcgan-faces brightness Spearman (min)", rho_min, "(info)", None))

        # 5. Re-scoring matrix of the shapes InterFaceGAN directions.
        analysis = client.analyze(
            SHAPES, [f"{PREFIX}_{f}" for f in FACTOR_NAMES], samples=128, seed=args.seed
        )
        rel = analysis.relative_rescoring()
        # Columns come in the service's scorer order: find each row's own factor by name.
        own = [analysis.scorers.index(f) for f in FACTOR_NAMES]
        dominant = bool(np.all(np.argmax(np.abs(rel), axis=1) == own))
        print_matrix(analysis)
        diag = np.abs(rel[np.arange(len(own)), own])
        off = np.abs(rel).copy()
        off[np.arange(len(own)), own] = 0.0
        margin = float(np.min(diag / np.maximum(off.max(axis=1), 1e-12)))
        figures["rescoring_scorers"] = analysis.scorers
        figures["rescoring_directions"] = analysis.directions
        figures["rescoring_relative"] = np.round(rel, 3).tolist()
        figures["rescoring_min_diag_over_offdiag"] = margin
        figures["rescoring_diagonal_dominant"] = dominant
        rows.append(("re-scoring: diagonal dominant (each row)", float(dominant), "== 1", dominant))
        rows.append(("re-scoring: min |diag| / max |off-diag|", margin, "(info)", None))
        figures["seconds"] = round(time.perf_counter() - start, 1)
    return rows, figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=20000, help="interfacegan samples (shapes)")
    ap.add_argument("--faces-samples", type=int, default=2000, help="interfacegan (dcgan-faces)")
    ap.add_argument("--ganspace-samples", type=int, default=5000)
    ap.add_argument("--edit-samples", type=int, default=256, help="codes for the ±3σ edits")
    ap.add_argument("--sweep-samples", type=int, default=32, help="codes for the alpha sweep")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    rows, figures = run(args)
    print(f"\n{'figure':<52} {'value':>10}  {'threshold':<10} result")
    for name, value, threshold, ok in rows:
        mark = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<52} {value:>10.4f}  {threshold:<10} {mark}")
    failed = [r[0] for r in rows if r[3] is False]
    figures["passed"] = not failed
    figures["failed"] = failed
    print(json.dumps(figures, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
