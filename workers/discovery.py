"""Scoring, direction discovery (SeFa, InterFaceGAN, GANSpace) and the analysis report.

All of it runs on the worker, on one loaded model: latents are rendered in
chunks, scored by the model's named scorers, and directions found are stored
in the direction store. Blocking torch / scikit-learn work runs in a thread.
Every method works in the space the request names: z, or w / w+ for style
generators, where directions are found in w (SeFa on the style-modulation
weights of a layer range, GANSpace as PCA of sampled w, InterFaceGAN on mapped
codes) and stored as "w" directions with their layer range.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from latentedit import validate, validate_spaces
from latentedit.codec import decode_image, from_tensor, latents_from, to_tensor
from latentedit.errors import InvalidArgument
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers import latent_math as lm
from latentedit.workers.direction_store import DirectionStore
from latentedit.workers.methods.ganspace import ganspace, layer_sampler
from latentedit.workers.methods.interfacegan import train_boundary
from latentedit.workers.methods.preprocess import preprocess
from latentedit.workers.methods.sefa import sefa
from latentedit.workers.models.runtime import LoadedModel, first_projection_matrix, from_uint8
from latentedit.workers.scorers import Scorer
from latentedit.workers.spaces import seeded_codes, spaces_of, synthesize

log = logging.getLogger(__name__)

DISCOVER_METHODS = ("sefa", "interfacegan", "ganspace")
# Default samples for InterFaceGAN from a scorer: latent-only (exact) scorers cost nothing per
# sample, so take many (the direction's accuracy grows with them); image scorers must render.
INTERFACEGAN_SAMPLES = {"latent": 20_000, "image": 5_000}
GANSPACE_SAMPLES = 5000


@dataclass
class ModelTools:
    """A loaded model with its scorers (built-in plus operator TorchScript files)."""

    model: LoadedModel
    scorers: dict[str, Scorer] = field(default_factory=dict)

    def score_latents(
        self, latents: np.ndarray, names: list[str], chunk: int = 256, space: str = "z"
    ) -> np.ndarray:
        """Codes (N, *shape) of ``space`` -> scores (N, S) float64.

        Renders only for scorers that need images; scorers that read z codes need space z.
        """
        scorers = [self.scorers[n] for n in names]
        need_images = any(s.needs_images for s in scorers)
        reads_z = [n for n in names if self.scorers[n].needs_latents]
        if space != "z" and reads_z:
            raise InvalidArgument(f"scorer(s) {reads_z} read z codes; score them in space 'z'")
        out = []
        for start in range(0, len(latents), chunk):
            z = torch.from_numpy(np.ascontiguousarray(latents[start : start + chunk])).float()
            images = None
            if need_images:
                with torch.inference_mode():
                    images = synthesize(self.model, z, space).cpu()
            out.append(
                np.stack([s(images, z).double().numpy() for s in scorers], axis=1)
                if scorers
                else np.zeros((len(z), 0))
            )
        return np.concatenate(out) if out else np.zeros((0, len(names)))

    def score_images(self, images: torch.Tensor, names: list[str]) -> np.ndarray:
        """images (N, 3, H, W) in [-1, 1] -> (N, S); scorers that need latents are refused."""
        needs = [n for n in names if self.scorers[n].needs_latents]
        if needs:
            raise InvalidArgument(f"scorer(s) {needs} need latents, not images")
        return np.stack([self.scorers[n](images, None).double().numpy() for n in names], axis=1)


def z_first_projection(model: LoadedModel) -> str:
    """State-dict name of the first linear map of z (SeFa / GANSpace in z).

    A style generator's z enters through its mapping network's first layer (rosinality's
    ``style.1``, after the pixel norm).
    """
    return model.spec.first_projection or ("style.1.weight" if spaces_of(model).num_ws else "")


class Discovery:
    def __init__(self, tools: dict[str, ModelTools], store: DirectionStore, limits: Limits):
        self.tools = tools
        self.store = store
        self.limits = limits

    # ---- Score --------------------------------------------------------------------------

    async def score(self, name: str, req: pb.ScoreRequest) -> pb.ScoreResponse:
        tools = self.tools[name]
        model = tools.model
        space, shape = validate_spaces.space_request(req, spaces_of(model))
        names = validate.score(req, shape, sorted(tools.scorers), self.limits)
        if req.WhichOneof("source") == "latents":
            z = validate.codes(req.latents, shape, self.limits.max_latents)
            scores = await asyncio.to_thread(tools.score_latents, z, names, 256, space)
        else:
            pixels = np.stack(
                [
                    preprocess(
                        decode_image(img, self.limits.max_pixels, f"images[{i}]"),
                        model.spec.resolution,
                        model.info.channels,
                    )[0]
                    for i, img in enumerate(req.images.images)
                ]
            )
            scores = await asyncio.to_thread(tools.score_images, from_uint8(pixels), names)
        return pb.ScoreResponse(
            model_version=model.version, scorers=names, scores=to_tensor(scores)
        )

    # ---- DiscoverDirections ----------------------------------------------------------------

    async def discover(
        self, name: str, req: pb.DiscoverDirectionsRequest
    ) -> pb.DiscoverDirectionsResponse:
        tools = self.tools[name]
        model = tools.model
        sp = spaces_of(model)
        space, _ = validate_spaces.space_request(req, sp)
        dspace = validate_spaces.direction_space(space)
        method, top_k, prefix = validate.discover(
            req,
            list(DISCOVER_METHODS),
            sp.direction_dim(dspace),
            sorted(tools.scorers),
            self.limits,
        )
        params = {k: str(validate.param(k, v)) for k, v in req.params.items()}
        found: list[tuple[str, np.ndarray, dict[str, str], dict[str, float]]]
        if method == "sefa":
            found = await asyncio.to_thread(self._sefa, model, top_k, prefix, dspace, params)
        elif method == "interfacegan":
            found = [
                await asyncio.to_thread(self._interfacegan, tools, req, prefix, params, dspace)
            ]
        elif dspace == "w":
            found = await asyncio.to_thread(self._ganspace_w, model, req, top_k, prefix, params)
        else:
            found = await asyncio.to_thread(self._ganspace, model, req, top_k, prefix, params)
        stored = [
            await self.store.put(model.name, n, v, method, model.version, p, m, space=dspace)
            for n, v, p, m in found
        ]
        return pb.DiscoverDirectionsResponse(model_version=model.version, directions=stored)

    @staticmethod
    def _sefa(
        model: LoadedModel, top_k: int, prefix: str, space: str, params: dict[str, str]
    ) -> list[tuple[str, np.ndarray, dict[str, str], dict[str, float]]]:
        if space == "z":
            name = z_first_projection(model)
            params_by_name = dict(model.generator.named_parameters())
            if name not in params_by_name:
                raise InvalidArgument("sefa in z needs the first projection; use space 'w'")
            weight = first_projection_matrix(params_by_name[name], model.latent_dim).numpy()
            vectors, eigenvalues = sefa(weight, top_k)
            where = {"layer": name}
        else:
            layers = params.get("layers", "all")
            mask = validate_spaces.layer_mask(layers, spaces_of(model).num_ws, "params.layers")
            # Style layers with a style affine SeFa may factorise (StyleGAN2: all but the last
            # ToRGB's); "all" means all of those.
            available = len(model.generator.info.sefa_layers)
            chosen = np.flatnonzero(mask)
            if layers not in ("", "all") and chosen.max() >= available:
                raise InvalidArgument(
                    f"params.layers: {layers!r}; SeFa factorises style layers 0-{available - 1}"
                )
            stacked = model.generator.sefa_weight([int(i) for i in chosen if i < available])
            vectors, eigenvalues = sefa(stacked.detach().cpu().numpy(), top_k, "output")
            where = {"layers": layers}
        return [
            (f"{prefix}_{i:02d}", v, {"rank": str(i), **where}, {"eigenvalue": float(e)})
            for i, (v, e) in enumerate(zip(vectors, eigenvalues, strict=True))
        ]

    def _interfacegan(
        self,
        tools: ModelTools,
        req: pb.DiscoverDirectionsRequest,
        prefix: str,
        params: dict[str, str],
        space: str = "z",
    ) -> tuple[str, np.ndarray, dict[str, str], dict[str, float]]:
        """One boundary; in w, sampled z are mapped and the SVM separates the w codes."""
        model = tools.model
        dim = spaces_of(model).direction_dim(space)
        if req.scorer:
            kind = "image" if tools.scorers[req.scorer].needs_images else "latent"
            n = req.samples or INTERFACEGAN_SAMPLES[kind]
            rng = np.random.default_rng(req.seed)
            z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
            z = seeded_codes(model, z, space)
            scores = tools.score_latents(z, [req.scorer], space=space)[:, 0]
            source = {"scorer": req.scorer, "samples": str(n)}
        else:
            z = latents_from(req.latents, dim, self.limits.max_samples)
            scores = from_tensor(req.scores, "scores").reshape(-1).astype(np.float64)
            source = {"scorer": "client", "samples": str(len(z))}
        ratio = float(params.get("ratio", 0.02))
        split = float(params.get("split", 0.7))
        boundary = train_boundary(z, scores, ratio=ratio, split=split, seed=req.seed)
        return (
            prefix,
            boundary.normal,
            {**source, "ratio": str(ratio), "split": str(split), "seed": str(req.seed)},
            {
                "val_accuracy": boundary.val_accuracy,
                "remaining_accuracy": boundary.remaining_accuracy,
                "n_train": float(boundary.n_train),
                "n_val": float(boundary.n_val),
            },
        )

    def _ganspace(
        self,
        model: LoadedModel,
        req: pb.DiscoverDirectionsRequest,
        top_k: int,
        prefix: str,
        params: dict[str, str],
    ) -> list[tuple[str, np.ndarray, dict[str, str], dict[str, float]]]:
        space = params.get("space", "activation")
        if space not in ("activation", "latent"):
            raise InvalidArgument(f"params.space: {space!r}; use 'activation' or 'latent'")
        default_layer = model.spec.ganspace_layer or z_first_projection(model).rsplit(".", 1)[0]
        layer = params.get("layer", default_layer) if space == "activation" else None
        n = req.samples or GANSPACE_SAMPLES
        if n <= top_k:
            raise InvalidArgument(f"samples ({n}) must exceed top_k ({top_k})")
        sampler = layer_sampler(model.generator, layer, model.latent_dim, model.device)
        result = ganspace(
            sampler,
            n,
            top_k,
            batch_size=256,
            seed=req.seed,
            space="latent" if layer is None else "activation",
        )
        return [
            (
                f"{prefix}_{i:02d}",
                v,
                {
                    "rank": str(i),
                    "layer": layer or "latent",
                    "samples": str(n),
                    "seed": str(req.seed),
                },
                {"std": float(sd), "explained_variance_ratio": float(ev)},
            )
            for i, (v, sd, ev) in enumerate(
                zip(result.components, result.stds, result.explained_variance_ratio, strict=True)
            )
        ]

    def _ganspace_w(
        self,
        model: LoadedModel,
        req: pb.DiscoverDirectionsRequest,
        top_k: int,
        prefix: str,
        params: dict[str, str],
    ) -> list[tuple[str, np.ndarray, dict[str, str], dict[str, float]]]:
        """GANSpace for style generators (harskish's way): PCA of sampled w = mapping(z)."""
        if "layer" in params or params.get("space", "latent") != "latent":
            raise InvalidArgument("ganspace in w is PCA of sampled w: no params.layer / space")
        n = req.samples or GANSPACE_SAMPLES
        if n <= top_k:
            raise InvalidArgument(f"samples ({n}) must exceed top_k ({top_k})")

        def sample_w(rng: np.random.Generator, size: int) -> tuple[np.ndarray, None]:
            z = rng.standard_normal((size, model.latent_dim)).astype(np.float32)
            return seeded_codes(model, z, "w"), None

        result = ganspace(sample_w, n, top_k, batch_size=256, seed=req.seed, space="latent")
        layers = params.get("layers", "all")
        return [
            (
                f"{prefix}_{i:02d}",
                v,
                {"rank": str(i), "layers": layers, "samples": str(n), "seed": str(req.seed)},
                {"std": float(sd), "explained_variance_ratio": float(ev)},
            )
            for i, (v, sd, ev) in enumerate(
                zip(result.components, result.stds, result.explained_variance_ratio, strict=True)
            )
        ]

    # ---- Analyze ----------------------------------------------------------------------------

    async def analyze(self, name: str, req: pb.AnalyzeRequest) -> pb.AnalyzeResponse:
        tools = self.tools[name]
        sp = spaces_of(tools.model)
        space, _ = validate_spaces.space_request(req, sp)
        names, scorer_names, samples, strength = validate.analyze(
            req, sorted(tools.scorers), self.limits
        )
        dirs = await self.store.get_many(name, names)
        for d in dirs:
            validate_spaces.check_direction_space(d.meta.id, d.meta.space, space)
        vectors = np.stack([d.vector for d in dirs])
        masks = None
        if space == "w+":
            masks = np.stack(
                [
                    validate_spaces.layer_mask(
                        req.layers or d.meta.params.get("layers", ""),
                        sp.num_ws,
                        f"layers of {d.meta.id}",
                    )
                    for d in dirs
                ]
            )
        report = await asyncio.to_thread(
            analysis, tools, vectors, scorer_names, samples, strength, req.seed, space, masks
        )
        return pb.AnalyzeResponse(
            model_version=tools.model.version,
            directions=names,
            scorers=scorer_names,
            **{k: to_tensor(v) for k, v in report.items()},
        )


def analysis(
    tools: ModelTools,
    vectors: np.ndarray,
    scorers: list[str],
    samples: int,
    strength: float,
    seed: int,
    space: str = "z",
    masks: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """InterFaceGAN's entanglement measures and SeFa's re-scoring, on ``samples`` seeded codes.

    The samples are seeded z mapped to ``space``; in w+ direction i moves the layers of
    ``masks[i]`` (D, num_ws). Returns cosine (D, D), correlation (S, S), rescoring and
    rescoring_std (D, S): the mean and spread of (s(c + a n) - s(c - a n)) / 2, and
    score_std (S,).
    """
    model = tools.model
    z = np.random.default_rng(seed).standard_normal((samples, model.latent_dim))
    codes = seeded_codes(model, z.astype(np.float32), space)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    base = tools.score_latents(codes, scorers, space=space)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(base, rowvar=False).reshape(len(scorers), len(scorers))
    changes = []
    for i, n in enumerate(unit):
        offset = strength * (n if masks is None else masks[i][:, None] * n[None, :])
        plus = tools.score_latents(
            lm.apply_edit(codes, offset, np.ones(1))[:, 0], scorers, space=space
        )
        minus = tools.score_latents(
            lm.apply_edit(codes, -offset, np.ones(1))[:, 0], scorers, space=space
        )
        changes.append((plus - minus) / 2)
    delta = np.stack(changes)  # (D, N, S)
    return {
        "cosine": unit @ unit.T,
        "correlation": np.nan_to_num(corr),  # a constant score correlates with nothing
        "rescoring": delta.mean(1),
        "rescoring_std": delta.std(1),
        "score_std": base.std(0),
    }
