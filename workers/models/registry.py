"""The model registry: data the operator writes.

A model is ``NAME=ARCH:PATH`` (``latentedit worker --model ffhq=stylegan2:/models/ffhq.pt``)
or a table in a TOML models file (``--models-file``)::

    [models.ffhq]
    arch = "stylegan2"            # dcgan | stylegan2 | shapes
    path = "/models/ffhq.pt"      # rosinality .pt or NVIDIA .pkl; a DCGAN state dict
    description = "FFHQ 1024"     # optional
    truncation_psi = 0.7          # optional, style generators (z -> w)
    sha256 = "..."                # optional: refuse a file with another digest

Built in (:data:`DEFAULT_MODELS`): ``dcgan-faces`` (a DCGAN from the packaged
``gan-face-generate`` file) and ``shapes`` (procedural). Resolution, latent sizes and
the rest are inferred from the weights when loading (see :mod:`.runtime`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from latentedit.errors import NotFound
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.shapes import ShapesGenerator
from latentedit.workers.models.stylegan2 import StyleGAN2Generator

#: Architecture name -> constructor (weights, when there are any, are loaded by the runtime).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "dcgan": DCGANGenerator,
    "stylegan2": StyleGAN2Generator,
    "shapes": ShapesGenerator,
}
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)


@dataclass(frozen=True)
class PackagedWeights:
    """A state dict shipped inside an installed Python package (no download at run time)."""

    package: str  # importable name, e.g. "gan_face_generate"
    resource: str  # file inside the package
    state_dict_key: str  # key of the generator's state dict in the checkpoint
    sha256: str  # of the file; checked before loading
    pip_spec: str  # how to install it, for the error message


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``resolution`` .. ``ganspace_layer`` are filled in by loading."""

    name: str
    architecture: str  # one of ARCHITECTURE_NAMES
    path: str = ""  # weights file; "" for packaged or procedural models
    description: str = ""
    weights: PackagedWeights | None = None
    sha256: str = ""  # expected digest of ``path`` ("" = not checked)
    truncation_psi: float = 1.0
    resolution: int = 0  # output images are resolution x resolution
    latent_dim: int = 0  # z in R^latent_dim, z ~ N(0, I)
    first_projection: str = ""  # state-dict name of the first linear map's weight (SeFa in Z)
    ganspace_layer: str = ""  # module whose activations GANSpace decomposes; "": first projection
    # SHA-256 of the encoder shipped as workers/methods/weights/<name>.encoder.safetensors
    # ("" = none shipped); checked before loading, as the generator's weights are
    encoder_sha256: str = ""
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "=:/ \t\n,"):
            raise ValueError(f"bad model name {self.name!r}: no '=', ':', '/', ',' or spaces")
        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(
                f"model {self.name!r}: unknown architecture {self.architecture!r}; "
                f"known: {list(ARCHITECTURE_NAMES)}"
            )
        if self.architecture != "shapes" and not self.path and self.weights is None:
            raise ValueError(f"model {self.name!r}: {self.architecture} needs a weights path")
        if not 0 < self.truncation_psi <= 1:
            raise ValueError(f"model {self.name!r}: truncation_psi must be in (0, 1]")


DCGAN_FACES = ModelSpec(
    name="dcgan-faces",
    architecture="dcgan",
    description="DCGAN trained on DigiFace1M faces, 64x64 (gan-face-generate 1.1.1, MIT)",
    weights=PackagedWeights(
        package="gan_face_generate",
        resource="weights.tar",
        state_dict_key="netG_state_dict",
        sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
        pip_spec="pip install --no-deps gan-face-generate==1.1.1",
    ),
    resolution=64,
    latent_dim=100,
    first_projection="main.0.weight",
    encoder_sha256="ff41ba2465c35f240a6ccc0ca3750cebb3545a19ee1ae8d075005363840eb66a",
)
SHAPES = ModelSpec(
    name="shapes",
    architecture="shapes",
    description=(
        "procedural testbed, 64x64: one soft box whose x, y, scale, rotation, hue and "
        "background are known functions of z (scale and hue entangled, 4 nuisance dims)"
    ),
    resolution=64,
    latent_dim=16,
    first_projection="mixing.weight",
)
DEFAULT_MODELS: dict[str, ModelSpec] = {s.name: s for s in (DCGAN_FACES, SHAPES)}
#: The built-in entries (kept under its old name for callers that list them).
MODELS = DEFAULT_MODELS


def parse_model_arg(text: str) -> ModelSpec:
    """``NAME=ARCH:PATH`` -> a spec; ValueError says what is wrong."""
    name, eq, rest = text.partition("=")
    arch, colon, path = rest.partition(":")
    if not (eq and colon and name and arch and path):
        raise ValueError(
            f"--model wants NAME=ARCH:PATH (e.g. ffhq=stylegan2:/m/ffhq.pt), got {text!r}"
        )
    return ModelSpec(name=name.strip(), architecture=arch.strip(), path=path.strip())


def load_models_file(path: str | Path) -> dict[str, ModelSpec]:
    """The ``[models.NAME]`` tables of a TOML file -> specs (paths relative to the file)."""
    path = Path(path)
    with path.open("rb") as f:
        data = tomllib.load(f)
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path}: expected [models.NAME] tables")
    known = {"arch", "path", "description", "truncation_psi", "sha256"}
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or "arch" not in table:
            raise ValueError(f'{path}: [models.{name}] needs arch = "dcgan"|"stylegan2"|...')
        extra = set(table) - known
        if extra:
            raise ValueError(
                f"{path}: [models.{name}]: unknown keys {sorted(extra)}; known {sorted(known)}"
            )
        weights = str(table.get("path", ""))
        if weights and not Path(weights).is_absolute():
            weights = str(path.parent / weights)
        out[name] = ModelSpec(
            name=name,
            architecture=str(table["arch"]),
            path=weights,
            description=str(table.get("description", "")),
            truncation_psi=float(table.get("truncation_psi", 1.0)),
            sha256=str(table.get("sha256", "")),
        )
    return out


def build_registry(
    model_args: list[str] | None = None,
    models_file: str | None = None,
    defaults: bool = True,
) -> dict[str, ModelSpec]:
    """Built-ins (unless ``defaults`` is False), then the file, then ``--model`` args.

    A later entry with the same name replaces an earlier one.
    """
    registry = dict(DEFAULT_MODELS) if defaults else {}
    if models_file:
        registry.update(load_models_file(models_file))
    for arg in model_args or []:
        spec = parse_model_arg(arg)
        registry[spec.name] = spec
    return registry


def get_spec(name: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec of a registered model; NotFound lists the registered names."""
    registry = DEFAULT_MODELS if registry is None else registry
    try:
        return registry[name]
    except KeyError:
        raise NotFound(f"unknown model {name!r}; registered: {sorted(registry)}") from None
