"""GAN inversion: encoder, optimize, hybrid, extended, tune and auto, as one package.

Modules, one job each:

- :mod:`.protocol`: what a generator must offer (:class:`Renderer`, :class:`SplitGenerator`)
  and which methods it supports (:func:`supported_methods`).
- :mod:`.metrics`: PSNR, SSIM (pytorch-msssim), relative edit error.
- :mod:`.optim`: the row-wise Adam every stage runs, as a step generator, and :class:`Run`,
  the context the stages of a batch share.
- :mod:`.stages`: encoder passes, optimize, hybrid, extended.
- :mod:`.deltas` / :mod:`.tuner` / :mod:`.tuning`: per-image generator deltas (what they
  change, their stored form), rendering many at once, and locality-regularised tuning.
- :mod:`.pipeline`: the dispatcher and ``auto``.
- :mod:`.session`: continuous batching of inversion requests (the worker's inverter).

See /work/shared/METHODS.md, "GAN inversion", for the published methods.
"""

from latentedit.workers.methods.inversion.deltas import (
    apply_delta,
    delta_nbytes,
    tunable_parameters,
)
from latentedit.workers.methods.inversion.metrics import (
    EDIT_ALPHAS,
    EDIT_DIRECTIONS,
    edit_error,
    psnr,
    psnr_uint8,
    ssim,
    to_unit,
)
from latentedit.workers.methods.inversion.optim import Run, drive
from latentedit.workers.methods.inversion.perceptual import load_perceptual
from latentedit.workers.methods.inversion.pipeline import (
    DEFAULT_MAX_EDIT_ERROR,
    InvertConfig,
    invert,
    invert_steps,
)
from latentedit.workers.methods.inversion.protocol import (
    INVERT_METHODS,
    METHODS,
    Features,
    Progress,
    Renderer,
    SplitGenerator,
    feature_scale,
    generate,
    is_split,
    prior_loss,
    supported_methods,
)
from latentedit.workers.methods.inversion.results import InversionResult, StageResult
from latentedit.workers.methods.inversion.stages import (
    ExtendedConfig,
    FeedbackConfig,
    HybridConfig,
    OptimizeConfig,
    encode,
    encode_feedback,
    extended,
    hybrid,
    optimize,
)
from latentedit.workers.methods.inversion.tuner import Tuner, render
from latentedit.workers.methods.inversion.tuning import TuneConfig, tune

__all__ = [
    "DEFAULT_MAX_EDIT_ERROR",
    "EDIT_ALPHAS",
    "EDIT_DIRECTIONS",
    "INVERT_METHODS",
    "METHODS",
    "ExtendedConfig",
    "Features",
    "FeedbackConfig",
    "HybridConfig",
    "InversionResult",
    "InvertConfig",
    "OptimizeConfig",
    "Progress",
    "Renderer",
    "Run",
    "SplitGenerator",
    "StageResult",
    "TuneConfig",
    "Tuner",
    "apply_delta",
    "delta_nbytes",
    "drive",
    "edit_error",
    "encode",
    "encode_feedback",
    "extended",
    "feature_scale",
    "generate",
    "hybrid",
    "invert",
    "invert_steps",
    "is_split",
    "load_perceptual",
    "optimize",
    "prior_loss",
    "psnr",
    "psnr_uint8",
    "render",
    "ssim",
    "supported_methods",
    "to_unit",
    "tunable_parameters",
    "tune",
]
