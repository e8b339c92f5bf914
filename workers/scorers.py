"""Named attribute scorers: what InterFaceGAN trains a boundary against.

A :class:`Scorer` maps a batch to one float per sample. Image scorers read
images (N, 3, H, W) float in [-1, 1]; latent scorers read the latents (N, d)
(the ``shapes`` testbed knows its exact factors from z, so no image is needed).

For ``dcgan-faces`` there is no attribute classifier in the package, so the
scorers are honest image statistics, documented as *proxies*: they measure the
pixels, not the semantic (``brightness`` is lighting *and* skin tone *and*
background; ``asymmetry`` is a yaw proxy that lighting also moves). An operator
with a real classifier loads it with :func:`load_torchscript_scorer`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from latentedit.errors import InvalidArgument, NotFound

ScoreFn = Callable[[Tensor | None, Tensor | None], Tensor]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


@dataclass(frozen=True)
class Scorer:
    """A named scorer: ``scorer(images, latents) -> (N,) float64`` on the CPU.

    Attributes:
        name: registry name, e.g. ``"brightness"``.
        description: what it measures, its unit, and whether it is a proxy.
        fn: (images or None, latents or None) -> (N,) or (N, 1) tensor.
        needs_images: the caller must render images (N, 3, H, W) in [-1, 1].
        needs_latents: the caller must pass the latents (N, d).
        exact: the score is the ground truth (testbed factors), not an estimate.
    """

    name: str
    description: str
    fn: ScoreFn
    needs_images: bool = True
    needs_latents: bool = False
    exact: bool = False

    def __call__(self, images: Tensor | None = None, latents: Tensor | None = None) -> Tensor:
        """images (N, 3, H, W) in [-1, 1] and/or latents (N, d) -> scores (N,) float64 CPU."""
        if self.needs_images and images is None:
            raise InvalidArgument(f"scorer {self.name!r} needs images")
        if self.needs_latents and latents is None:
            raise InvalidArgument(f"scorer {self.name!r} needs latents")
        if images is not None and (images.ndim != 4 or images.shape[1] != 3):
            raise InvalidArgument(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        n = len(images) if images is not None else len(latents) if latents is not None else 0
        with torch.inference_mode():
            out = self.fn(images, latents)
        return _as_scores(out, n, self.name)


def _as_scores(out: Any, n: int, name: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise InvalidArgument(f"scorer {name!r} returned {type(out).__name__}, not a tensor")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 1 or out.shape[0] != n:
        raise InvalidArgument(
            f"scorer {name!r} must return ({n},) or ({n}, 1) scores, got {tuple(out.shape)}"
        )
    scores = out.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(scores).all()):
        raise InvalidArgument(f"scorer {name!r} returned non-finite scores")
    return scores


def _unit_rgb(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], float32."""
    return (images.float() + 1) / 2


def luma(images: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] -> BT.601 luma (N, H, W) in [0, 1]."""
    rgb = _unit_rgb(images)
    return _LUMA[0] * rgb[:, 0] + _LUMA[1] * rgb[:, 1] + _LUMA[2] * rgb[:, 2]


def brightness(images: Tensor) -> Tensor:
    """Mean luma over the whole image, (N,) in [0, 1]."""
    return luma(images).mean(dim=(1, 2))


def warmth(images: Tensor) -> Tensor:
    """Mean of red minus blue over the whole image, (N,) in [-1, 1]."""
    rgb = _unit_rgb(images)
    return (rgb[:, 0] - rgb[:, 2]).mean(dim=(1, 2))


def border_mask(height: int, width: int, fraction: float = 0.125) -> Tensor:
    """(H, W) bool: the frame of width ``max(1, round(fraction * side))`` pixels."""
    bh, bw = max(1, round(fraction * height)), max(1, round(fraction * width))
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[bh : height - bh, bw : width - bw] = False
    return mask


def background_green(images: Tensor, fraction: float = 0.125) -> Tensor:
    """Greenness G - (R + B) / 2 averaged over the border frame (the background): (N,), -1..1."""
    rgb = _unit_rgb(images)
    green = rgb[:, 1] - (rgb[:, 0] + rgb[:, 2]) / 2  # (N, H, W)
    mask = border_mask(images.shape[2], images.shape[3], fraction).to(images.device)
    return green[:, mask].mean(dim=1)


def asymmetry(images: Tensor, margin: float = 0.125) -> Tensor:
    """Left minus right mean luma of the central (face) box, (N,) in [-1, 1]; a yaw proxy.

    The box leaves ``margin`` of each side out and is symmetric about the vertical
    centre line, so a left-right mirrored image scores exactly the negative, and a
    mirror-symmetric image exactly 0.
    """
    y = luma(images)
    h, w = y.shape[1], y.shape[2]
    mh, mw = round(margin * h), round(margin * w)
    box = y[:, mh : h - mh, mw : w - mw]
    half = box.shape[2] // 2
    left, right = box[:, :, :half], box[:, :, box.shape[2] - half :]
    return left.mean(dim=(1, 2)) - right.mean(dim=(1, 2))


def _image_scorer(name: str, fn: Callable[[Tensor], Tensor], description: str) -> Scorer:
    def score(images: Tensor | None, latents: Tensor | None) -> Tensor:
        assert images is not None
        return fn(images)

    return Scorer(name, description, score)


def image_proxy_scorers() -> dict[str, Scorer]:
    """The image-statistic proxies (any RGB model; face semantics only approximately)."""
    return {
        "brightness": _image_scorer(
            "brightness", brightness, "proxy: mean BT.601 luma of the image, 0..1"
        ),
        "warmth": _image_scorer("warmth", warmth, "proxy: mean red minus blue, -1..1"),
        "background_green": _image_scorer(
            "background_green",
            background_green,
            "proxy: mean G - (R+B)/2 over the outer 1/8 frame (the background), -1..1",
        ),
        "asymmetry": _image_scorer(
            "asymmetry",
            asymmetry,
            "proxy for yaw: left minus right mean luma of the central box, -1..1 "
            "(lighting moves it too)",
        ),
    }


def factor_scorers(model: nn.Module) -> dict[str, Scorer]:
    """One exact scorer per factor of a model with ``factors(z) -> (N, F)`` and ``factor_names``.

    Scores are the factor values in their natural units, computed from the latents.
    """
    testbed: Any = model  # nn.Module's __getattr__ types every attribute as Tensor | Module
    names: tuple[str, ...] = tuple(testbed.factor_names)
    factors: Callable[[Tensor], Tensor] = testbed.factors
    scorers = {}
    for i, name in enumerate(names):

        def score(images: Tensor | None, latents: Tensor | None, i: int = i) -> Tensor:
            assert latents is not None
            return factors(torch.as_tensor(latents))[:, i]

        scorers[name] = Scorer(
            name,
            f"exact ground-truth factor {name!r} of the testbed, from the latent",
            score,
            needs_images=False,
            needs_latents=True,
            exact=True,
        )
    return scorers


def scorers_for(model_name: str, model_module: nn.Module) -> dict[str, Scorer]:
    """The built-in scorers of a model, by name.

    ``shapes`` (any module with ``factors`` and ``factor_names``): its exact factors.
    Every other model: the image proxies (brightness, warmth, background_green, asymmetry),
    meant for ``dcgan-faces``.
    """
    if hasattr(model_module, "factors") and hasattr(model_module, "factor_names"):
        return factor_scorers(model_module)
    return image_proxy_scorers()


def get_scorer(model_name: str, model_module: nn.Module, name: str) -> Scorer:
    """One built-in scorer; NotFound lists the model's scorer names."""
    scorers = scorers_for(model_name, model_module)
    try:
        return scorers[name]
    except KeyError:
        raise NotFound(
            f"model {model_name!r} has no scorer {name!r}; built-in: {sorted(scorers)}"
        ) from None


def _module_scorer(
    module: Callable[[Tensor], Any], label: str, what: str, device: str | torch.device
) -> Scorer:
    target = torch.device(device)

    def score(images: Tensor | None, latents: Tensor | None) -> Tensor:
        assert images is not None
        try:
            out = module(images.to(target, torch.float32))
        except RuntimeError as exc:
            raise InvalidArgument(f"scorer {label!r} ({what}) failed: {exc}") from exc
        if not isinstance(out, Tensor):
            raise InvalidArgument(f"scorer {label!r} returned {type(out).__name__}, not a tensor")
        return out

    return Scorer(label, f"{what}: images -> scores", score)


def load_torchscript_scorer(
    path: str | Path, name: str | None = None, device: str | torch.device = "cpu"
) -> Scorer:
    """An operator's TorchScript classifier (``torch.jit.save`` file) as an image scorer.

    The module maps images (N, 3, H, W) float32 in [-1, 1] to scores (N,) or (N, 1);
    other output shapes raise InvalidArgument when scoring. Loaded with
    ``torch.jit.load(map_location="cpu")``, eval mode, then moved to ``device``. The file
    is code as well as weights: load only files the operator trusts. (torch 2.13 marks
    ``torch.jit`` deprecated; :func:`load_exported_scorer` reads its successor's files.)

    Raises:
        NotFound: no such file.
        InvalidArgument: the file is not a TorchScript module.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no TorchScript scorer at {p}")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
            )
            module = torch.jit.load(str(p), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise InvalidArgument(f"{p} is not a TorchScript module: {exc}") from exc
    module = module.eval().to(device)
    return _module_scorer(module, name or p.stem, f"TorchScript classifier {p.name}", device)


def load_exported_scorer(
    path: str | Path, name: str | None = None, device: str | torch.device = "cpu"
) -> Scorer:
    """An operator's ``torch.export`` program (``.pt2`` file) as an image scorer.

    Same contract as :func:`load_torchscript_scorer`; export the model with a dynamic
    batch dimension so that any N is accepted.

    Raises:
        NotFound: no such file.
        InvalidArgument: the file is not an exported program.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no exported scorer at {p}")
    try:
        program = torch.export.load(str(p))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InvalidArgument(f"{p} is not a torch.export program: {exc}") from exc
    module = program.module().to(device)
    return _module_scorer(module, name or p.stem, f"exported classifier {p.name}", device)
