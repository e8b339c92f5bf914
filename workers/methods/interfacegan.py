"""InterFaceGAN (Shen et al., CVPR 2020): a semantic is a hyperplane in latent space.

Boundary training follows genforce/interfacegan ``utils/manipulator.py:
train_boundary``: sort samples by score, keep the top and bottom ``ratio``
(capped at N/2) as positives and negatives, split each 70/30 into training and
validation sets (seeded), fit a linear SVM, and return the unit normal of the
separating hyperplane, oriented so that moving along it raises the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.svm import SVC

from latentedit.errors import InvalidArgument
from latentedit.workers.latent_math import unit


@dataclass(frozen=True)
class Boundary:
    """A trained boundary.

    Attributes:
        normal: (d,) float64 unit normal; +normal is the direction of higher scores.
        intercept: b / ||w|| of the SVM, so the fitted hyperplane is normal . z + intercept = 0
            (in the space the SVM saw, renormalised when ``renorm``). Edits drop it, as the
            reference does: distances are measured to the parallel hyperplane through 0.
        val_accuracy: accuracy on the held-out 30% of the top/bottom samples, 0..1.
        remaining_accuracy: accuracy on the middle samples labelled by the mid threshold
            (max score + min score) / 2; NaN when no sample is left.
        n_train: training samples (both classes together).
        n_val: validation samples (both classes together).
        n_remaining: middle samples.
        renorm: the latents were scaled to radius sqrt(d) before training.
    """

    normal: np.ndarray
    intercept: float
    val_accuracy: float
    remaining_accuracy: float
    n_train: int
    n_val: int
    n_remaining: int
    renorm: bool = False


def renormalise(latents: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, d) float64, each row scaled to norm sqrt(d) (zero rows stay zero)."""
    z = np.asarray(latents, dtype=np.float64)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z * (np.sqrt(z.shape[1]) / np.maximum(norms, 1e-12))


def train_boundary(
    latents: np.ndarray,
    scores: np.ndarray,
    ratio: float = 0.02,
    split: float = 0.7,
    seed: int = 0,
    renorm: bool = False,
) -> Boundary:
    """Fit InterFaceGAN's linear-SVM boundary for one attribute.

    Args:
        latents: (N, d) codes.
        scores: (N,) or (N, 1) attribute scores, finite.
        ratio: fraction of N taken as positives (top scores) and as negatives (bottom),
            in (0, 0.5]; the count is ``min(int(N * ratio), N // 2)``.
        split: fraction of each class used for training, in (0, 1); the rest validates.
        seed: seeds the train/validation split; same inputs and seed -> same normal.
        renorm: scale each code to radius sqrt(d) first (for Gaussian Z spaces).
    Returns:
        The :class:`Boundary`.
    Raises:
        InvalidArgument: bad shapes, non-finite values, or too few samples per class.
    """
    z = np.asarray(latents, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if z.ndim != 2 or s.ndim != 1 or len(s) != len(z):
        raise InvalidArgument(
            f"latents must be (N, d) and scores (N,), got {z.shape} and {np.shape(scores)}"
        )
    if not (np.isfinite(z).all() and np.isfinite(s).all()):
        raise InvalidArgument("latents and scores must be finite")
    if not 0 < ratio <= 0.5:
        raise InvalidArgument(f"ratio must be in (0, 0.5], got {ratio}")
    if not 0 < split < 1:
        raise InvalidArgument(f"split must be in (0, 1), got {split}")
    if renorm:
        z = renormalise(z)
    n, d = z.shape
    chosen = min(int(n * ratio), n // 2)
    n_train = int(chosen * split)
    n_val = chosen - n_train
    if n_train < 2:
        raise InvalidArgument(
            f"{n} samples at ratio {ratio} and split {split} give {n_train} training "
            "samples per class; need at least 2"
        )
    order = np.argsort(-s, kind="stable")  # descending score
    z, s = z[order], s[order]
    rng = np.random.default_rng(seed)
    pos_perm, neg_perm = rng.permutation(chosen), rng.permutation(chosen)
    positives, negatives = z[:chosen], z[n - chosen :]
    train_x = np.concatenate([positives[pos_perm[:n_train]], negatives[neg_perm[:n_train]]])
    train_y = np.concatenate([np.ones(n_train, np.int64), np.zeros(n_train, np.int64)])
    val_x = np.concatenate([positives[pos_perm[n_train:]], negatives[neg_perm[n_train:]]])
    val_y = np.concatenate([np.ones(n_val, np.int64), np.zeros(n_val, np.int64)])

    classifier = SVC(kernel="linear")
    classifier.fit(train_x, train_y)
    w = np.asarray(classifier.coef_, dtype=np.float64).reshape(d)
    b = float(np.asarray(classifier.intercept_).reshape(-1)[0])
    norm = float(np.linalg.norm(w))
    normal = unit(w, "SVM normal")
    intercept = b / norm
    # coef_ points to classes_[1] (= 1, the top scores); keep the guarantee explicit.
    if positives.mean(0) @ normal < negatives.mean(0) @ normal:
        normal, intercept = -normal, -intercept

    val_accuracy = float(np.mean(classifier.predict(val_x) == val_y)) if n_val else float("nan")
    middle_x, middle_s = z[chosen : n - chosen], s[chosen : n - chosen]
    if len(middle_x):
        threshold = (s[0] + s[-1]) / 2
        middle_y = (middle_s >= threshold).astype(np.int64)
        remaining_accuracy = float(np.mean(classifier.predict(middle_x) == middle_y))
    else:
        remaining_accuracy = float("nan")
    return Boundary(
        normal=normal,
        intercept=intercept,
        val_accuracy=val_accuracy,
        remaining_accuracy=remaining_accuracy,
        n_train=2 * n_train,
        n_val=2 * n_val,
        n_remaining=len(middle_x),
        renorm=renorm,
    )


def signed_distance(latents: np.ndarray, normal: np.ndarray, intercept: float = 0.0) -> np.ndarray:
    """(N, d), unit (d,) -> (N,) float64: normal . z + intercept (0: the hyperplane through 0)."""
    n = unit(normal, "normal")
    return np.asarray(latents, dtype=np.float64) @ n + float(intercept)


def absolute_edit(latents: np.ndarray, normal: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Move each code to each signed distance from the hyperplane through the origin.

    InterFaceGAN's ``linear_interpolate``: z' = z + (t - n . z) n, so n . z' = t exactly
    and the component of z orthogonal to n is kept. The SVM intercept is not used (as in
    the reference); a relative edit is ``latent_math.apply_edit(z, n, ts)`` instead.

    Args:
        latents: (N, d).
        normal: (d,), normalised here.
        distances: (K,) target signed distances t (a scalar counts as K = 1).
    Returns:
        (N, K, d) float32.
    """
    n = unit(normal, "normal")
    z = np.asarray(latents, dtype=np.float64)
    t = np.atleast_1d(np.asarray(distances, dtype=np.float64))
    shift = t[None, :] - (z @ n)[:, None]  # (N, K)
    return (z[:, None, :] + shift[:, :, None] * n[None, None, :]).astype(np.float32)
