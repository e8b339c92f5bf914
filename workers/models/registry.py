"""The model registry as data: name -> architecture, resolution, latent dim, weights.

Adding a model is adding a :class:`ModelSpec` here plus, at most, an
architecture in :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from latentedit.errors import NotFound
from latentedit.workers.models.dcgan import DCGANGenerator
from latentedit.workers.models.shapes import SHAPES_SPEC_KWARGS, ShapesGenerator


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
    name: str
    architecture: str  # key of ARCHITECTURES
    resolution: int  # output images are resolution x resolution RGB
    latent_dim: int  # z in R^latent_dim, z ~ N(0, I)
    description: str
    weights: PackagedWeights | None  # None: the architecture is procedural
    first_projection: str  # state-dict name of the first linear map's weight (SeFa)
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    ganspace_layer: str = ""  # module whose activations GANSpace decomposes; "": first projection


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "dcgan": DCGANGenerator,
    "shapes": ShapesGenerator,
}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="dcgan-faces",
            architecture="dcgan",
            resolution=64,
            latent_dim=100,
            description="DCGAN trained on DigiFace1M faces, 64x64 (gan-face-generate 1.1.1, MIT)",
            weights=PackagedWeights(
                package="gan_face_generate",
                resource="weights.tar",
                state_dict_key="netG_state_dict",
                sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
                pip_spec="pip install --no-deps gan-face-generate==1.1.1",
            ),
            first_projection="main.0.weight",
            arch_kwargs={"latent_dim": 100, "channels": 3, "width": 64},
        ),
        ModelSpec(**SHAPES_SPEC_KWARGS),
    ]
}


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; NotFound lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise NotFound(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None
