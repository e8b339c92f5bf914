"""Worker settings (one typed dataclass, checked at start) and the ModelInfo a worker publishes."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from latentedit.v1 import latentedit_pb2 as pb
from latentedit.validate import Limits
from latentedit.workers.jobs import DISCOVER_METHODS, INVERT_METHODS
from latentedit.workers.models.registry import ModelSpec, build_registry, get_spec
from latentedit.workers.models.runtime import LoadedModel
from latentedit.workers.trainers import training_methods
from latentedit.workers.training_jobs import TrainingSettings


@dataclass
class WorkerSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    models: list[str] = field(default_factory=list)  # names to serve; empty: every registered one
    # The operator's registry (built-ins + --models-file + --model NAME=ARCH:PATH).
    registry: dict[str, ModelSpec] = field(default_factory=build_registry)
    device: str = "cpu"
    dtype: str = "float32"
    max_batch: int = 32  # jobs gathered into one batch
    max_wait_ms: float = 5.0  # most time spent gathering more jobs, only under load
    max_render_batch: int = 64  # images per generator forward pass
    worker_id: str = ""
    metrics_port: int = 0  # 0: no /metrics endpoint
    torch_threads: int = 0  # generator intra-op threads; 0: torch's default (one per core)
    render_threads: int = 0  # of the hot path's renders (Generate, Edit ...); 0: torch_threads
    scorer_files: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> name -> .pt
    limits: Limits = field(default_factory=Limits)
    training: TrainingSettings = field(default_factory=TrainingSettings)  # jobs: training lane

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        if not self.models:
            self.models = sorted(self.registry)
        for name in self.models:
            get_spec(name, self.registry)  # NotFound lists the registered models
        if self.torch_threads < 0 or self.render_threads < 0:
            raise ValueError("torch_threads and render_threads must be >= 0")
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.max_render_batch < 1:
            raise ValueError("max_batch and max_render_batch must be >= 1, max_wait_ms >= 0")


def model_info(model: LoadedModel, settings: WorkerSettings, scorers: list[str]) -> pb.ModelInfo:
    info = model.info  # the model contract: capabilities come from the generator's protocol
    return pb.ModelInfo(
        name=model.name,
        version=model.version,
        resolution=info.resolution,
        latent_dim=info.z_dim,
        description=model.spec.description,
        invert_methods=[m for m in INVERT_METHODS if m in info.invert_methods],
        w_invert_methods=list(info.w_invert_methods),
        discover_methods=[m for m in DISCOVER_METHODS if m in info.discover_methods],
        scorers=sorted(scorers),
        max_batch=settings.limits.max_latents,
        feature_shape=list(info.feature_shape),  # what Edit's extras.residual rows are
        training_methods=training_methods(),
        architecture=info.architecture,
        spaces=list(info.spaces),
        default_space=info.default_space,
        w_dim=info.w_dim,
        num_ws=info.num_ws,
        sefa_layers=list(info.sefa_layers),
        channels=info.channels,
        sha256=info.version,
        truncation_psi=info.truncation_psi,
        details=pb.ModelDetails(
            bytes_per_image=model.bytes_per_image,
            render_batch=model.max_batch,
            feature_shape=list(info.feature_shape),
            num_noises=info.num_noises,
            n_mlp=info.n_mlp,
            channel_multiplier=info.channel_multiplier,
            device=str(model.device),
            dtype=str(model.dtype).removeprefix("torch."),
        ),
    )
