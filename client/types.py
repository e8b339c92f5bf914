"""Result types of the SDK: plain dataclasses of numpy arrays and PIL images."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str  # first 16 hex digits of the weights' SHA-256
    resolution: int
    latent_dim: int
    description: str
    invert_methods: list[str]  # of space "z"
    discover_methods: list[str]
    scorers: list[str]
    max_batch: int
    training_methods: list[str] = field(default_factory=list)  # discover() returns a job
    # stylegan: the model contract (latent_dim above is z's size)
    architecture: str = ""  # "dcgan", "stylegan2", "shapes"
    spaces: list[str] = field(default_factory=lambda: ["z"])  # or ["z", "w", "w+"]
    default_space: str = "z"
    w_dim: int = 0  # 0: no W space
    num_ws: int = 0  # w+ codes are (num_ws, w_dim); 0: no W+
    sefa_layers: list[str] = field(default_factory=list)
    channels: int = 3
    sha256: str = ""  # of the weights file; version is its first 16 hex digits
    truncation_psi: float = 1.0
    bytes_per_image: int = 0  # worker device memory per image in a batch
    render_batch: int = 0  # images per generator pass on the worker
    feature_shape: tuple[int, ...] = ()  # (C, H, W) of the first feature map
    num_noises: int = 0
    device: str = ""
    dtype: str = ""
    w_invert_methods: list[str] = field(default_factory=list)  # of spaces "w" / "w+"


@dataclass(frozen=True)
class Direction:
    id: str  # "<model>/<name>"
    model: str
    name: str
    method: str
    version: int
    created_unix_ms: int
    model_version: str
    vector: np.ndarray | None  # (d,) float32 unit norm; None in listings
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    space: str = "z"  # "z" or "w" (a w direction edits w and the layers of w+ codes)
    owner: str = ""  # name of the API key that stored it ("" on an open gateway)


@dataclass(frozen=True)
class Generated:
    model_version: str
    latents: np.ndarray  # (N, d) float32
    images: list[Image.Image]  # N


@dataclass(frozen=True)
class Edited:
    model_version: str
    latents: np.ndarray  # (N, K, d) float32
    images: list[list[Image.Image]]  # [N][K]
    multipliers: np.ndarray  # (K,) sweep multipliers t
    directions: list[Direction]


@dataclass(frozen=True)
class ConditionallyEdited(Edited):
    projected_direction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (d,) unit
    condition_cosines: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,)
    primary_cosine: float = 1.0


@dataclass(frozen=True)
class CodeExtras:
    """What an inverted code carries besides z; pass it back with the latents to render them."""

    residual: np.ndarray | None = None  # (N, C, h, w) first-feature-map residual ("extended")
    tuning_ids: list[str] = field(default_factory=list)  # per row ("tune"); "" = none

    def __bool__(self) -> bool:
        return self.residual is not None or any(self.tuning_ids)


@dataclass(frozen=True)
class Inverted:
    """Pass the whole object as ``latents`` to generate/edit/conditional_edit: its extras go too."""

    model_version: str
    latents: np.ndarray  # (N, d) float32
    reconstructions: list[Image.Image]
    psnr: np.ndarray  # (N,) dB against the preprocessed (cropped, resized) target
    steps: int
    seconds: float
    method: str  # asked for
    crops: list[tuple[int, int, int]]  # (left, top, size) of the square used, per image
    ssim: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) in [0, 1]
    methods: list[str] = field(default_factory=list)  # per image: what produced it ("auto")
    extras: CodeExtras = field(default_factory=CodeExtras)
    tuning_bytes: list[int] = field(default_factory=list)  # per image: stored delta size
    # per image: relative edit error (report_edit_error, or "auto"); empty when not measured
    edit_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # per image: dB of the plain generator at ``latents`` (no residual / tuning delta); far
    # below ``psnr``, edits that move the face may show the photo doubled
    code_psnr: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class InvertProgress:
    step: int
    total_steps: int
    loss: float
    psnr: np.ndarray  # (N,) dB so far
    method: str


@dataclass(frozen=True)
class Scores:
    model_version: str
    scorers: list[str]
    scores: np.ndarray  # (N, S) float64, column j from scorers[j]

    def __getitem__(self, scorer: str) -> np.ndarray:
        """(N,) scores of one scorer."""
        return self.scores[:, self.scorers.index(scorer)]


@dataclass(frozen=True)
class Analysis:
    """Entanglement report and re-scoring matrix (rows: directions, columns: scorers)."""

    model_version: str
    directions: list[str]
    scorers: list[str]
    cosine: np.ndarray  # (D, D) cosine similarity of the directions
    correlation: np.ndarray  # (S, S) correlation of the scores over the samples
    rescoring: np.ndarray  # (D, S) mean (s(z + a n) - s(z - a n)) / 2
    rescoring_std: np.ndarray  # (D, S)
    score_std: np.ndarray  # (S,) spread of each score over the samples

    def relative_rescoring(self) -> np.ndarray:
        """(D, S) re-scoring in units of each score's standard deviation."""
        return self.rescoring / np.where(self.score_std > 0, self.score_std, 1.0)
