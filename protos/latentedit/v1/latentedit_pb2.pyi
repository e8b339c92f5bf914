from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]
    IMAGE_FORMAT_RAW: _ClassVar[ImageFormat]

class EditMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDIT_MODE_RELATIVE: _ClassVar[EditMode]
    EDIT_MODE_ABSOLUTE: _ClassVar[EditMode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType
DTYPE_FLOAT16: DType
DTYPE_UINT8: DType
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
IMAGE_FORMAT_RAW: ImageFormat
EDIT_MODE_RELATIVE: EditMode
EDIT_MODE_ABSOLUTE: EditMode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("format", "data", "width", "height")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    format: ImageFormat
    data: bytes
    width: int
    height: int
    def __init__(self, format: _Optional[_Union[ImageFormat, str]] = ..., data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "resolution", "latent_dim", "description", "scorers", "invert_methods", "discover_methods", "max_batch", "feature_shape", "training_methods", "architecture", "spaces", "default_space", "w_dim", "num_ws", "sefa_layers", "channels", "sha256", "truncation_psi", "details", "w_invert_methods")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    INVERT_METHODS_FIELD_NUMBER: _ClassVar[int]
    DISCOVER_METHODS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_METHODS_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    SPACES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SPACE_FIELD_NUMBER: _ClassVar[int]
    W_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_WS_FIELD_NUMBER: _ClassVar[int]
    SEFA_LAYERS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_PSI_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    W_INVERT_METHODS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    resolution: int
    latent_dim: int
    description: str
    scorers: _containers.RepeatedScalarFieldContainer[str]
    invert_methods: _containers.RepeatedScalarFieldContainer[str]
    discover_methods: _containers.RepeatedScalarFieldContainer[str]
    max_batch: int
    feature_shape: _containers.RepeatedScalarFieldContainer[int]
    training_methods: _containers.RepeatedScalarFieldContainer[str]
    architecture: str
    spaces: _containers.RepeatedScalarFieldContainer[str]
    default_space: str
    w_dim: int
    num_ws: int
    sefa_layers: _containers.RepeatedScalarFieldContainer[str]
    channels: int
    sha256: str
    truncation_psi: float
    details: ModelDetails
    w_invert_methods: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., resolution: _Optional[int] = ..., latent_dim: _Optional[int] = ..., description: _Optional[str] = ..., scorers: _Optional[_Iterable[str]] = ..., invert_methods: _Optional[_Iterable[str]] = ..., discover_methods: _Optional[_Iterable[str]] = ..., max_batch: _Optional[int] = ..., feature_shape: _Optional[_Iterable[int]] = ..., training_methods: _Optional[_Iterable[str]] = ..., architecture: _Optional[str] = ..., spaces: _Optional[_Iterable[str]] = ..., default_space: _Optional[str] = ..., w_dim: _Optional[int] = ..., num_ws: _Optional[int] = ..., sefa_layers: _Optional[_Iterable[str]] = ..., channels: _Optional[int] = ..., sha256: _Optional[str] = ..., truncation_psi: _Optional[float] = ..., details: _Optional[_Union[ModelDetails, _Mapping]] = ..., w_invert_methods: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class Seeds(_message.Message):
    __slots__ = ("seeds",)
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    seeds: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, seeds: _Optional[_Iterable[int]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "seeds", "latents", "image_format", "extras", "space", "truncation_psi")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_PSI_FIELD_NUMBER: _ClassVar[int]
    model: str
    seeds: Seeds
    latents: Tensor
    image_format: ImageFormat
    extras: CodeExtras
    space: str
    truncation_psi: float
    def __init__(self, model: _Optional[str] = ..., seeds: _Optional[_Union[Seeds, _Mapping]] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., extras: _Optional[_Union[CodeExtras, _Mapping]] = ..., space: _Optional[str] = ..., truncation_psi: _Optional[float] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("model_version", "latents", "images")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    latents: Tensor
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, model_version: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class DirectionStrength(_message.Message):
    __slots__ = ("direction", "strength", "mode", "layers")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    direction: str
    strength: float
    mode: EditMode
    layers: str
    def __init__(self, direction: _Optional[str] = ..., strength: _Optional[float] = ..., mode: _Optional[_Union[EditMode, str]] = ..., layers: _Optional[str] = ...) -> None: ...

class CodeExtras(_message.Message):
    __slots__ = ("residual", "tuning_ids")
    RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    TUNING_IDS_FIELD_NUMBER: _ClassVar[int]
    residual: Tensor
    tuning_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, residual: _Optional[_Union[Tensor, _Mapping]] = ..., tuning_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Sweep(_message.Message):
    __slots__ = ("frames", "start", "stop")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    frames: int
    start: float
    stop: float
    def __init__(self, frames: _Optional[int] = ..., start: _Optional[float] = ..., stop: _Optional[float] = ...) -> None: ...

class EditRequest(_message.Message):
    __slots__ = ("model", "latents", "edits", "sweep", "image_format", "extras", "space", "layers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    latents: Tensor
    edits: _containers.RepeatedCompositeFieldContainer[DirectionStrength]
    sweep: Sweep
    image_format: ImageFormat
    extras: CodeExtras
    space: str
    layers: str
    def __init__(self, model: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., edits: _Optional[_Iterable[_Union[DirectionStrength, _Mapping]]] = ..., sweep: _Optional[_Union[Sweep, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., extras: _Optional[_Union[CodeExtras, _Mapping]] = ..., space: _Optional[str] = ..., layers: _Optional[str] = ...) -> None: ...

class EditResponse(_message.Message):
    __slots__ = ("model_version", "latents", "images", "multipliers", "directions")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIERS_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    latents: Tensor
    images: _containers.RepeatedCompositeFieldContainer[Image]
    multipliers: _containers.RepeatedScalarFieldContainer[float]
    directions: _containers.RepeatedCompositeFieldContainer[Direction]
    def __init__(self, model_version: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., multipliers: _Optional[_Iterable[float]] = ..., directions: _Optional[_Iterable[_Union[Direction, _Mapping]]] = ...) -> None: ...

class ConditionalEditRequest(_message.Message):
    __slots__ = ("model", "latents", "direction", "conditions", "strength", "sweep", "image_format", "extras", "space", "layers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    latents: Tensor
    direction: str
    conditions: _containers.RepeatedScalarFieldContainer[str]
    strength: float
    sweep: Sweep
    image_format: ImageFormat
    extras: CodeExtras
    space: str
    layers: str
    def __init__(self, model: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., direction: _Optional[str] = ..., conditions: _Optional[_Iterable[str]] = ..., strength: _Optional[float] = ..., sweep: _Optional[_Union[Sweep, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., extras: _Optional[_Union[CodeExtras, _Mapping]] = ..., space: _Optional[str] = ..., layers: _Optional[str] = ...) -> None: ...

class ConditionalEditResponse(_message.Message):
    __slots__ = ("model_version", "latents", "images", "multipliers", "projected_direction", "condition_cosines", "primary_cosine")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIERS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CONDITION_COSINES_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_COSINE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    latents: Tensor
    images: _containers.RepeatedCompositeFieldContainer[Image]
    multipliers: _containers.RepeatedScalarFieldContainer[float]
    projected_direction: Tensor
    condition_cosines: _containers.RepeatedScalarFieldContainer[float]
    primary_cosine: float
    def __init__(self, model_version: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., multipliers: _Optional[_Iterable[float]] = ..., projected_direction: _Optional[_Union[Tensor, _Mapping]] = ..., condition_cosines: _Optional[_Iterable[float]] = ..., primary_cosine: _Optional[float] = ...) -> None: ...

class InvertRequest(_message.Message):
    __slots__ = ("model", "images", "method", "steps", "restarts", "seed", "prior_weight", "image_format", "target_psnr", "space", "report_edit_error", "max_edit_error")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRIOR_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TARGET_PSNR_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    REPORT_EDIT_ERROR_FIELD_NUMBER: _ClassVar[int]
    MAX_EDIT_ERROR_FIELD_NUMBER: _ClassVar[int]
    model: str
    images: _containers.RepeatedCompositeFieldContainer[Image]
    method: str
    steps: int
    restarts: int
    seed: int
    prior_weight: float
    image_format: ImageFormat
    target_psnr: float
    space: str
    report_edit_error: bool
    max_edit_error: float
    def __init__(self, model: _Optional[str] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., method: _Optional[str] = ..., steps: _Optional[int] = ..., restarts: _Optional[int] = ..., seed: _Optional[int] = ..., prior_weight: _Optional[float] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., target_psnr: _Optional[float] = ..., space: _Optional[str] = ..., report_edit_error: _Optional[bool] = ..., max_edit_error: _Optional[float] = ...) -> None: ...

class InvertProgress(_message.Message):
    __slots__ = ("step", "total_steps", "loss", "psnr", "method")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    PSNR_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    loss: float
    psnr: _containers.RepeatedScalarFieldContainer[float]
    method: str
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., psnr: _Optional[_Iterable[float]] = ..., method: _Optional[str] = ...) -> None: ...

class InvertEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: InvertProgress
    result: InvertResponse
    def __init__(self, progress: _Optional[_Union[InvertProgress, _Mapping]] = ..., result: _Optional[_Union[InvertResponse, _Mapping]] = ...) -> None: ...

class CropBox(_message.Message):
    __slots__ = ("left", "top", "size")
    LEFT_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    left: int
    top: int
    size: int
    def __init__(self, left: _Optional[int] = ..., top: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class InvertResponse(_message.Message):
    __slots__ = ("model_version", "latents", "reconstructions", "psnr", "steps", "seconds", "method", "crops", "ssim", "extras", "methods", "tuning_bytes", "edit_error", "code_psnr")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    RECONSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    PSNR_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    SSIM_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    TUNING_BYTES_FIELD_NUMBER: _ClassVar[int]
    EDIT_ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_PSNR_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    latents: Tensor
    reconstructions: _containers.RepeatedCompositeFieldContainer[Image]
    psnr: _containers.RepeatedScalarFieldContainer[float]
    steps: int
    seconds: float
    method: str
    crops: _containers.RepeatedCompositeFieldContainer[CropBox]
    ssim: _containers.RepeatedScalarFieldContainer[float]
    extras: CodeExtras
    methods: _containers.RepeatedScalarFieldContainer[str]
    tuning_bytes: _containers.RepeatedScalarFieldContainer[int]
    edit_error: _containers.RepeatedScalarFieldContainer[float]
    code_psnr: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model_version: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., reconstructions: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., psnr: _Optional[_Iterable[float]] = ..., steps: _Optional[int] = ..., seconds: _Optional[float] = ..., method: _Optional[str] = ..., crops: _Optional[_Iterable[_Union[CropBox, _Mapping]]] = ..., ssim: _Optional[_Iterable[float]] = ..., extras: _Optional[_Union[CodeExtras, _Mapping]] = ..., methods: _Optional[_Iterable[str]] = ..., tuning_bytes: _Optional[_Iterable[int]] = ..., edit_error: _Optional[_Iterable[float]] = ..., code_psnr: _Optional[_Iterable[float]] = ...) -> None: ...

class Direction(_message.Message):
    __slots__ = ("id", "model", "name", "method", "params", "version", "created_unix_ms", "model_version", "vector", "metrics", "owner", "space")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    name: str
    method: str
    params: _containers.ScalarMap[str, str]
    version: int
    created_unix_ms: int
    model_version: str
    vector: Tensor
    metrics: _containers.ScalarMap[str, float]
    owner: str
    space: str
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., name: _Optional[str] = ..., method: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., version: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., model_version: _Optional[str] = ..., vector: _Optional[_Union[Tensor, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., owner: _Optional[str] = ..., space: _Optional[str] = ...) -> None: ...

class DiscoverDirectionsRequest(_message.Message):
    __slots__ = ("model", "method", "top_k", "name_prefix", "params", "latents", "scores", "scorer", "samples", "seed", "space")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    model: str
    method: str
    top_k: int
    name_prefix: str
    params: _containers.ScalarMap[str, str]
    latents: Tensor
    scores: Tensor
    scorer: str
    samples: int
    seed: int
    space: str
    def __init__(self, model: _Optional[str] = ..., method: _Optional[str] = ..., top_k: _Optional[int] = ..., name_prefix: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., scores: _Optional[_Union[Tensor, _Mapping]] = ..., scorer: _Optional[str] = ..., samples: _Optional[int] = ..., seed: _Optional[int] = ..., space: _Optional[str] = ...) -> None: ...

class DiscoverDirectionsResponse(_message.Message):
    __slots__ = ("model_version", "directions", "job_id")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    directions: _containers.RepeatedCompositeFieldContainer[Direction]
    job_id: str
    def __init__(self, model_version: _Optional[str] = ..., directions: _Optional[_Iterable[_Union[Direction, _Mapping]]] = ..., job_id: _Optional[str] = ...) -> None: ...

class ListDirectionsRequest(_message.Message):
    __slots__ = ("model", "include_vectors", "space")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    model: str
    include_vectors: bool
    space: str
    def __init__(self, model: _Optional[str] = ..., include_vectors: _Optional[bool] = ..., space: _Optional[str] = ...) -> None: ...

class ListDirectionsResponse(_message.Message):
    __slots__ = ("directions",)
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    directions: _containers.RepeatedCompositeFieldContainer[Direction]
    def __init__(self, directions: _Optional[_Iterable[_Union[Direction, _Mapping]]] = ...) -> None: ...

class GetDirectionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDirectionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDirectionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class PutDirectionRequest(_message.Message):
    __slots__ = ("model", "name", "vector", "method", "params", "space")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    model: str
    name: str
    vector: Tensor
    method: str
    params: _containers.ScalarMap[str, str]
    space: str
    def __init__(self, model: _Optional[str] = ..., name: _Optional[str] = ..., vector: _Optional[_Union[Tensor, _Mapping]] = ..., method: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., space: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model", "latents", "images", "scorers", "space")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    model: str
    latents: Tensor
    images: ImageList
    scorers: _containers.RepeatedScalarFieldContainer[str]
    space: str
    def __init__(self, model: _Optional[str] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., images: _Optional[_Union[ImageList, _Mapping]] = ..., scorers: _Optional[_Iterable[str]] = ..., space: _Optional[str] = ...) -> None: ...

class ImageList(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("model_version", "scorers", "scores")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    scorers: _containers.RepeatedScalarFieldContainer[str]
    scores: Tensor
    def __init__(self, model_version: _Optional[str] = ..., scorers: _Optional[_Iterable[str]] = ..., scores: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("model", "directions", "scorers", "samples", "strength", "seed", "space", "layers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    directions: _containers.RepeatedScalarFieldContainer[str]
    scorers: _containers.RepeatedScalarFieldContainer[str]
    samples: int
    strength: float
    seed: int
    space: str
    layers: str
    def __init__(self, model: _Optional[str] = ..., directions: _Optional[_Iterable[str]] = ..., scorers: _Optional[_Iterable[str]] = ..., samples: _Optional[int] = ..., strength: _Optional[float] = ..., seed: _Optional[int] = ..., space: _Optional[str] = ..., layers: _Optional[str] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("model_version", "directions", "scorers", "cosine", "correlation", "rescoring", "rescoring_std", "score_std")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    COSINE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    RESCORING_FIELD_NUMBER: _ClassVar[int]
    RESCORING_STD_FIELD_NUMBER: _ClassVar[int]
    SCORE_STD_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    directions: _containers.RepeatedScalarFieldContainer[str]
    scorers: _containers.RepeatedScalarFieldContainer[str]
    cosine: Tensor
    correlation: Tensor
    rescoring: Tensor
    rescoring_std: Tensor
    score_std: Tensor
    def __init__(self, model_version: _Optional[str] = ..., directions: _Optional[_Iterable[str]] = ..., scorers: _Optional[_Iterable[str]] = ..., cosine: _Optional[_Union[Tensor, _Mapping]] = ..., correlation: _Optional[_Union[Tensor, _Mapping]] = ..., rescoring: _Optional[_Union[Tensor, _Mapping]] = ..., rescoring_std: _Optional[_Union[Tensor, _Mapping]] = ..., score_std: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "directions", "scorers", "samples", "strength", "seed", "figure_samples", "image_format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FIGURE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    directions: _containers.RepeatedScalarFieldContainer[str]
    scorers: _containers.RepeatedScalarFieldContainer[str]
    samples: int
    strength: float
    seed: int
    figure_samples: int
    image_format: ImageFormat
    def __init__(self, model: _Optional[str] = ..., directions: _Optional[_Iterable[str]] = ..., scorers: _Optional[_Iterable[str]] = ..., samples: _Optional[int] = ..., strength: _Optional[float] = ..., seed: _Optional[int] = ..., figure_samples: _Optional[int] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("model_version", "directions", "scorers", "ranges", "exact_ranges", "targets", "change", "side_effect", "commutativity", "reversibility", "identity", "alignment", "image_change", "summary", "worst_pair", "pair_images", "samples", "strength")
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    EXACT_RANGES_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    SIDE_EFFECT_FIELD_NUMBER: _ClassVar[int]
    COMMUTATIVITY_FIELD_NUMBER: _ClassVar[int]
    REVERSIBILITY_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ALIGNMENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    WORST_PAIR_FIELD_NUMBER: _ClassVar[int]
    PAIR_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    directions: _containers.RepeatedScalarFieldContainer[str]
    scorers: _containers.RepeatedScalarFieldContainer[str]
    ranges: Tensor
    exact_ranges: bool
    targets: _containers.RepeatedScalarFieldContainer[int]
    change: Tensor
    side_effect: Tensor
    commutativity: Tensor
    reversibility: Tensor
    identity: Tensor
    alignment: Tensor
    image_change: Tensor
    summary: _containers.ScalarMap[str, float]
    worst_pair: _containers.RepeatedScalarFieldContainer[int]
    pair_images: _containers.RepeatedCompositeFieldContainer[Image]
    samples: int
    strength: float
    def __init__(self, model_version: _Optional[str] = ..., directions: _Optional[_Iterable[str]] = ..., scorers: _Optional[_Iterable[str]] = ..., ranges: _Optional[_Union[Tensor, _Mapping]] = ..., exact_ranges: _Optional[bool] = ..., targets: _Optional[_Iterable[int]] = ..., change: _Optional[_Union[Tensor, _Mapping]] = ..., side_effect: _Optional[_Union[Tensor, _Mapping]] = ..., commutativity: _Optional[_Union[Tensor, _Mapping]] = ..., reversibility: _Optional[_Union[Tensor, _Mapping]] = ..., identity: _Optional[_Union[Tensor, _Mapping]] = ..., alignment: _Optional[_Union[Tensor, _Mapping]] = ..., image_change: _Optional[_Union[Tensor, _Mapping]] = ..., summary: _Optional[_Mapping[str, float]] = ..., worst_pair: _Optional[_Iterable[int]] = ..., pair_images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., samples: _Optional[int] = ..., strength: _Optional[float] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "model", "method", "state", "step", "total_steps", "metrics", "accuracy", "eta_seconds", "steps_per_second", "created_unix_ms", "started_unix_ms", "updated_unix_ms", "finished_unix_ms", "checkpoint_unix_ms", "checkpoint_step", "worker", "attempts", "resumed_from_step", "error_code", "error_message", "direction_ids", "name_prefix", "params", "seed", "cancel_requested", "message", "owner")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_STEP_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_IDS_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model: str
    method: str
    state: JobState
    step: int
    total_steps: int
    metrics: _containers.ScalarMap[str, float]
    accuracy: float
    eta_seconds: float
    steps_per_second: float
    created_unix_ms: int
    started_unix_ms: int
    updated_unix_ms: int
    finished_unix_ms: int
    checkpoint_unix_ms: int
    checkpoint_step: int
    worker: str
    attempts: int
    resumed_from_step: int
    error_code: int
    error_message: str
    direction_ids: _containers.RepeatedScalarFieldContainer[str]
    name_prefix: str
    params: _containers.ScalarMap[str, str]
    seed: int
    cancel_requested: bool
    message: str
    owner: str
    def __init__(self, job_id: _Optional[str] = ..., model: _Optional[str] = ..., method: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., accuracy: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., steps_per_second: _Optional[float] = ..., created_unix_ms: _Optional[int] = ..., started_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ..., checkpoint_unix_ms: _Optional[int] = ..., checkpoint_step: _Optional[int] = ..., worker: _Optional[str] = ..., attempts: _Optional[int] = ..., resumed_from_step: _Optional[int] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., direction_ids: _Optional[_Iterable[str]] = ..., name_prefix: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., seed: _Optional[int] = ..., cancel_requested: _Optional[bool] = ..., message: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "wait_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wait_seconds: float
    def __init__(self, job_id: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("status", "cancelled")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    cancelled: bool
    def __init__(self, status: _Optional[_Union[JobStatus, _Mapping]] = ..., cancelled: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("model", "states", "limit")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    limit: int
    def __init__(self, model: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class ModelDetails(_message.Message):
    __slots__ = ("bytes_per_image", "render_batch", "feature_shape", "num_noises", "n_mlp", "channel_multiplier", "device", "dtype")
    BYTES_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    RENDER_BATCH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_NOISES_FIELD_NUMBER: _ClassVar[int]
    N_MLP_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    bytes_per_image: int
    render_batch: int
    feature_shape: _containers.RepeatedScalarFieldContainer[int]
    num_noises: int
    n_mlp: int
    channel_multiplier: int
    device: str
    dtype: str
    def __init__(self, bytes_per_image: _Optional[int] = ..., render_batch: _Optional[int] = ..., feature_shape: _Optional[_Iterable[int]] = ..., num_noises: _Optional[int] = ..., n_mlp: _Optional[int] = ..., channel_multiplier: _Optional[int] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ...) -> None: ...
