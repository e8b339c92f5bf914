"""The model contract: what a generator declares and what it must implement.

Every architecture (DCGAN, StyleGAN2, the procedural ``shapes``) is an
``nn.Module`` that satisfies :class:`Generator` and carries a
:class:`GeneratorInfo`. The worker advertises ``info`` in ``ListModels``; the
methods a model supports are derived from the protocol members it implements
(:func:`supported_methods`), never from a list kept elsewhere.

Spaces:

- ``z``: (N, z_dim) float32, z ~ N(0, I).
- ``w``: (N, w_dim), the mapping network's output (style generators only).
- ``w+``: (N, num_ws, w_dim), one w per style input of the synthesis network.

Images are (N, channels, resolution, resolution) float in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

SPACES: tuple[str, ...] = ("z", "w", "w+")
Z_ONLY: tuple[str, ...] = ("z",)
STYLE_SPACES: tuple[str, ...] = ("z", "w", "w+")


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator declares (ListModels returns all of it).

    Attributes:
        resolution: output side in pixels.
        channels: the checkpoint's image channels: 3 (RGB) or 1 (grey; the generator
            puts its channel in R, G and B (:func:`as_rgb`), so every image the service
            renders, scores or inverts is RGB).
        z_dim: size of z (``ModelInfo.latent_dim``).
        w_dim: size of w; 0 = the model has no W space.
        num_ws: number of style inputs (w+ is (num_ws, w_dim)); 0 = no W+.
        spaces: the spaces the model accepts, ``("z",)`` or ``("z", "w", "w+")``.
        default_space: the space used when a request names none.
        sefa_layers: names of the layers SeFa may factorise, in synthesis order
            (style generators: the style affines, one per w+ entry that has one;
            others: the first projection). ``sefa_weight(layers)`` indexes this tuple.
        invert_methods / discover_methods: what the model supports, from
            :func:`supported_methods` (filled in by the loader); invert_methods are z's.
        w_invert_methods: the invert methods of spaces w and w+ (style generators).
        architecture: ``"dcgan"``, ``"stylegan2"``, ``"shapes"``...
        version: SHA-256 (hex) of the weights file, or of the state dict if none.
        truncation_psi: the default psi of :meth:`Generator.mapping` (1.0 = none).
        feature_shape: (C, H, W) of ``head``'s output (the first feature map), what the
            extended inversion adds its residual to.
        num_noises: number of per-layer noise inputs (noise regularisation in W/W+
            inversion); 0 = none.
        n_mlp: mapping layers (style generators), 0 otherwise.
        channel_multiplier: StyleGAN2's width multiplier, 0 otherwise.
    """

    resolution: int
    channels: int
    z_dim: int
    w_dim: int = 0
    num_ws: int = 0
    spaces: tuple[str, ...] = Z_ONLY
    default_space: str = "z"
    sefa_layers: tuple[str, ...] = ()
    invert_methods: tuple[str, ...] = ()
    w_invert_methods: tuple[str, ...] = ()
    discover_methods: tuple[str, ...] = ()
    architecture: str = ""
    version: str = ""
    truncation_psi: float = 1.0
    feature_shape: tuple[int, ...] = ()
    num_noises: int = 0
    n_mlp: int = 0
    channel_multiplier: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def latent_dim(self, space: str) -> int:
        """Size of one code in ``space`` as sent over the wire (w+ flattened)."""
        if space not in self.spaces:
            raise ValueError(f"space {space!r} not in {self.spaces}")
        return {"z": self.z_dim, "w": self.w_dim, "w+": self.num_ws * self.w_dim}[space]


@runtime_checkable
class Generator(Protocol):
    """The members every generator implements (an ``nn.Module``)."""

    info: GeneratorInfo

    def forward(self, z: Tensor) -> Tensor:
        """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""
        ...

    def __call__(self, z: Tensor) -> Tensor: ...

    def sefa_weight(self, layers: Sequence[int] | None = None) -> Tensor:
        """Stacked weights SeFa factorises: (out_total, dim of the default space's code).

        Style generators: the style-affine weights of ``info.sefa_layers[i]`` for i in
        ``layers`` (None: all), concatenated along outputs -> (sum out, w_dim), with
        equalised-lr scale applied. Others: the first projection (out, z_dim).
        """
        ...

    def head(self, code: Tensor) -> Tensor:
        """Code (z (N, z_dim), or w+ (N, num_ws, w_dim) for style gens) -> first feature map."""
        ...

    def tail(self, h: Tensor) -> Tensor:
        """First feature map (N, *info.feature_shape) -> images (N, C, H, W) in [-1, 1]."""
        ...


@runtime_checkable
class StyleGenerator(Generator, Protocol):
    """A generator with W and W+ spaces."""

    w_avg: Tensor  # (w_dim,) buffer: mean of mapping(z), z ~ N(0, I)

    def mapping(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """z (N, z_dim) -> w (N, w_dim); truncated towards ``w_avg`` by psi (1 = none)."""
        ...

    def synthesis(self, ws: Tensor) -> Tensor:
        """w+ (N, num_ws, w_dim) -> images (N, C, H, W) in [-1, 1]."""
        ...


#: the image channels a checkpoint may have (:attr:`GeneratorInfo.channels`)
SERVED_CHANNELS = (1, 3)


def as_rgb(image: Tensor) -> Tensor:
    """A generator's output (N, C, R, R) as RGB: a grey image (C = 1) in all three channels
    (a copy, (N, 3, R, R)); RGB as it is."""
    return image.repeat(1, 3, 1, 1) if image.shape[1] == 1 else image


def is_style(generator: object) -> bool:
    """Whether ``generator`` has W / W+ (implements :class:`StyleGenerator`)."""
    info = getattr(generator, "info", None)
    return isinstance(info, GeneratorInfo) and info.num_ws > 0 and hasattr(generator, "synthesis")


# What each method needs of the generator (protocol members). A method whose members are all
# there is supported; this table is the only place that decides it.
DISCOVER_REQUIRES: dict[str, tuple[str, ...]] = {
    "sefa": ("sefa_weight",),
    "interfacegan": ("forward",),
    "ganspace": ("forward",),
}


def supported_methods(generator: object, requires: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The methods of ``requires`` whose protocol members ``generator`` implements."""
    return tuple(
        name
        for name, members in requires.items()
        if all(callable(getattr(generator, m, None)) for m in members)
    )


def invert_methods(generator: object) -> tuple[str, ...]:
    """The invert methods ``generator`` supports; the inversion package decides (one source)."""
    from latentedit.workers.methods.inversion.protocol import supported_methods as supported

    methods = supported(generator)
    info = getattr(generator, "info", None)
    if info is not None and info.w_dim:
        # A style generator's tail needs the w+ code besides the feature map: z-space
        # "extended" (a residual on the first feature map of G(z)) does not apply.
        methods = tuple(m for m in methods if m != "extended")
    return methods


def w_invert_methods(generator: object) -> tuple[str, ...]:
    """The invert methods of spaces w / w+: projection ("optimize"), the model's W encoder
    alone or as the projection's start ("encoder", "hybrid"; FAILED_PRECONDITION until
    ``latentedit train-encoder NAME --space w`` has run), pivotal tuning ("tune") where
    the synthesis network has layers tuning can change, and "auto" (the projection, then
    tuning where the target PSNR needs it and the model has it)."""
    from latentedit.workers.methods.inversion.tuning import tunable_parameters

    if not getattr(getattr(generator, "info", None), "w_dim", 0):
        return ()
    tunable = isinstance(generator, nn.Module) and bool(tunable_parameters(generator))
    methods = ("optimize", "encoder", "hybrid")
    return (*methods, "tune", "auto") if tunable else (*methods, "auto")
